"""The other `gigql` commands, run as real processes: export-schema and create-admin."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from graphql import build_schema as parse_sdl

from documents.settings import Settings
from schema.partners.schema import build_partner_schema
from schema.schema import build_schema
from tests.support.gigql_process import (
    URL_FILE,
    GigqlServer,
    assert_one_line_error,
    database_processes,
    gigql_env,
    graphql,
    me,
    run_gigql,
    running_server,
)
from tests.support.graphql_client import STRONG_PASSWORD, error_codes

REPOSITORY = Path(__file__).resolve().parents[2]
ADMIN_PASSWORD = "Admin-Pass-42!"
LOGIN_FIELDS = "user { id } tokens { accessToken }"


@pytest.fixture(autouse=True)
def clean_state() -> None:
    """Overrides the autouse fixture of conftest: these tests run gigql in its own
    processes and never touch the session's shared test database."""


@pytest.fixture(scope="module")
def sdl() -> str:
    """The SDL exactly as `gigql export-schema` must write it."""
    return build_schema(Settings(environment="development")).as_str() + "\n"


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GigqlServer]:
    root = tmp_path_factory.mktemp("cli-serve")
    async with running_server(root / "data", root / "logs") as running:
        yield running


# --- export-schema ------------------------------------------------------------------


async def test_export_schema_writes_the_sdl(tmp_path: Path, sdl: str) -> None:
    result = await asyncio.to_thread(
        run_gigql, "export-schema", "--output", "api.graphql", env=gigql_env(), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["gigql: wrote api.graphql"]
    written = (tmp_path / "api.graphql").read_text()
    assert written == sdl
    assert "type Query" in written and "refreshToken(input: RefreshTokenInput!)" in written


async def test_export_schema_writes_schema_graphql_by_default(tmp_path: Path, sdl: str) -> None:
    result = await asyncio.to_thread(run_gigql, "export-schema", env=gigql_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "schema.graphql").read_text() == sdl


async def test_export_schema_check_fails_when_the_file_differs(tmp_path: Path, sdl: str) -> None:
    stale = sdl.replace("type Query", "type Query @deprecated", 1)
    assert stale != sdl
    (tmp_path / "schema.graphql").write_text(stale)
    result = await asyncio.to_thread(
        run_gigql,
        "export-schema",
        "--check",
        "--output",
        "schema.graphql",
        env=gigql_env(),
        cwd=tmp_path,
    )
    assert_one_line_error(result, "schema.graphql is out of date; run `gigql export-schema`")
    assert (tmp_path / "schema.graphql").read_text() == stale  # --check never writes


async def test_export_schema_check_fails_when_the_file_is_missing(tmp_path: Path) -> None:
    result = await asyncio.to_thread(
        run_gigql,
        "export-schema",
        "--check",
        "--output",
        "missing.graphql",
        env=gigql_env(),
        cwd=tmp_path,
    )
    assert_one_line_error(result, "missing.graphql is out of date")
    assert not (tmp_path / "missing.graphql").exists()


async def test_export_schema_check_succeeds_when_the_file_is_current(
    tmp_path: Path, sdl: str
) -> None:
    (tmp_path / "schema.graphql").write_text(sdl)
    result = await asyncio.to_thread(
        run_gigql, "export-schema", "--check", env=gigql_env(), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert (tmp_path / "schema.graphql").read_text() == sdl


def test_the_checked_in_schema_graphql_is_up_to_date(sdl: str) -> None:
    checked_in = REPOSITORY / "schema.graphql"
    if not checked_in.exists():
        pytest.fail(f"{checked_in} is missing: run `gigql export-schema` and commit it")
    assert checked_in.read_text() == sdl, (
        f"{checked_in} is out of date: run `gigql export-schema` and commit it"
    )


def test_the_checked_in_partner_schema_graphql_is_up_to_date() -> None:
    """What partners' apps generate their clients from: the graph API keys reach."""
    checked_in = REPOSITORY / "partner-schema.graphql"
    sdl = build_partner_schema(Settings(environment="development")).as_str() + "\n"
    assert checked_in.exists() and checked_in.read_text() == sdl, (
        f"{checked_in} is out of date: run `gigql export-schema --graph partner` and commit it"
    )


async def test_export_schema_writes_the_partner_graph(tmp_path: Path) -> None:
    result = await asyncio.to_thread(
        run_gigql, "export-schema", "--graph", "partner", env=gigql_env(), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    written = parse_sdl((tmp_path / "partner-schema.graphql").read_text())
    assert written.query_type is not None and "partner" in written.query_type.fields
    assert not {"Task", "User", "Booking"} & set(written.type_map)


# --- create-admin -------------------------------------------------------------------


async def create_admin(
    data_dir: Path, cwd: Path, email: str, password: str, name: str = "Ada Admin"
) -> subprocess.CompletedProcess[str]:
    """`gigql create-admin` on the embedded defaults, the password typed on stdin."""
    return await asyncio.to_thread(
        run_gigql,
        "create-admin",
        "--email",
        email,
        "--name",
        name,
        "--password-stdin",
        env=gigql_env(data_dir),
        cwd=cwd,
        input=f"{password}\n",
    )


async def test_create_admin_against_a_running_server(server: GigqlServer, tmp_path: Path) -> None:
    """It finds the embedded database of the running server through <data dir>/secantusdb.url."""
    assert (server.data_dir / URL_FILE).exists()
    result = await create_admin(server.data_dir, tmp_path, "ada@example.com", ADMIN_PASSWORD)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["gigql: ada@example.com is an admin"]
    # It used the server's database rather than starting a second one on the folder.
    assert database_processes(server.data_dir) == [server.database_pid]

    async with graphql(server) as client:
        tokens = await client.login("ada@example.com", ADMIN_PASSWORD)
        profile = await me(client, tokens.access)
    assert profile["email"] == "ada@example.com" and profile["name"] == "Ada Admin"
    assert "ADMIN" in profile["roles"]
    assert profile["emailVerified"] is True


async def test_create_admin_refuses_a_weak_password(server: GigqlServer, tmp_path: Path) -> None:
    result = await create_admin(server.data_dir, tmp_path, "weak@example.com", "password")
    assert_one_line_error(result, "Password needs")
    async with graphql(server) as client:
        payload = await client.mutate(
            "login", {"email": "weak@example.com", "password": "password"}, LOGIN_FIELDS
        )
    assert error_codes(payload) == ["INVALID_CREDENTIALS"]  # no account was made


async def test_create_admin_promotes_an_existing_account(
    server: GigqlServer, tmp_path: Path
) -> None:
    async with graphql(server) as client:
        await client.sign_up("pat@example.com", name="Pat Poster", roles=("POSTER",))
        before = await me(client, (await client.login("pat@example.com")).access)
        assert "ADMIN" not in before["roles"]

        result = await create_admin(
            server.data_dir, tmp_path, "pat@example.com", "Another-Pass-77!"
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr.splitlines() == ["gigql: pat@example.com is an admin"]

        # Same account and password, one more role.
        after = await me(client, (await client.login("pat@example.com", STRONG_PASSWORD)).access)
        assert after["id"] == before["id"] and after["name"] == "Pat Poster"
        assert set(after["roles"]) == {*before["roles"], "ADMIN"}
        payload = await client.mutate(
            "login", {"email": "pat@example.com", "password": "Another-Pass-77!"}, LOGIN_FIELDS
        )
        assert error_codes(payload) == ["INVALID_CREDENTIALS"]


async def test_create_admin_without_a_running_server(tmp_path: Path) -> None:
    """It starts the embedded database on the data folder for the moment it needs it."""
    data_dir = tmp_path / "data"
    result = await create_admin(data_dir, tmp_path, "solo@example.com", ADMIN_PASSWORD)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["gigql: solo@example.com is an admin"]
    assert (data_dir / "db").is_dir()
    assert database_processes(data_dir) == []  # stopped again
    assert not (data_dir / URL_FILE).exists()

    async with running_server(data_dir, tmp_path / "logs") as running, graphql(running) as client:
        tokens = await client.login("solo@example.com", ADMIN_PASSWORD)
        assert "ADMIN" in (await me(client, tokens.access))["roles"]
