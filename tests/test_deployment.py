"""Safe defaults for deployment: what the data folder holds is its owner's alone."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from server.embedded import free_port
from tests.gigql_process import URL_FILE, GigqlServer, graphql, me

JWT_SECRET_FILE = "jwt-secret"


@pytest.fixture(autouse=True)
def clean_state() -> None:
    """Overrides the autouse fixture of conftest: these tests run their own processes."""


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


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
        for secret in (URL_FILE, JWT_SECRET_FILE, "secantusdb.log"):
            assert mode(data_dir / secret) == 0o600, secret
        assert sorted(p.name for p in data_dir.iterdir()) == sorted(
            ["db", URL_FILE, JWT_SECRET_FILE, "secantusdb.log"]
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
