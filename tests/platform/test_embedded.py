"""The embedded SecantusDB child process: one per data folder, and never outliving gigql."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from server.embedded import EmbeddedDatabaseError, EmbeddedMongo, free_port
from tests.support.gigql_process import (
    URL_FILE,
    GigqlServer,
    command_line,
    database_processes,
    eventually,
    gigql_env,
    graphql,
    me,
    process_alive,
    run_gigql,
    running_server,
    stop_processes,
)

# SecantusDB takes about two seconds to stop after SIGTERM.
DIES_WITHIN = 20.0

HOLD_A_DATABASE = """
import sys, time
from pathlib import Path
from server.embedded import EmbeddedMongo

folder = Path(sys.argv[1])
database = EmbeddedMongo(folder / "db", log_path=folder / "secantusdb.log")
database.start()
(folder / "pid.tmp").write_text(str(database.pid))
(folder / "pid.tmp").rename(folder / "pid")  # atomically: never seen half-written
time.sleep(600)
"""


@pytest.fixture(autouse=True)
def clean_state() -> None:
    """Overrides the autouse fixture of conftest: these tests run their own databases."""


def test_a_folder_holds_one_database_at_a_time(tmp_path: Path) -> None:
    log = tmp_path / "secantusdb.log"
    with EmbeddedMongo(tmp_path / "db", log_path=log) as first:
        second = EmbeddedMongo(tmp_path / "db", log_path=tmp_path / "second.log")
        with pytest.raises(EmbeddedDatabaseError) as refused:
            second.start()
        assert str(refused.value) == (
            f"the data folder {tmp_path / 'db'} is in use by another gigql or SecantusDB process"
        )
        assert second.pid is None or not process_alive(second.pid)
        assert database_processes(tmp_path) == [first.pid]
    assert database_processes(tmp_path) == []


def test_the_database_stops_when_its_parent_is_killed(tmp_path: Path) -> None:
    """Even SIGKILL, which runs no clean-up: the child asked the kernel for a SIGTERM then."""
    errors = tmp_path / "holder.stderr"
    with errors.open("wb") as stderr:
        parent = subprocess.Popen(
            [sys.executable, "-c", HOLD_A_DATABASE, str(tmp_path)],
            env=gigql_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    database_pid = None
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "pid").exists():
            assert parent.poll() is None, f"the holder exited: {errors.read_text()}"
            assert time.monotonic() < deadline, f"no database within 60s: {errors.read_text()}"
            time.sleep(0.05)
        database_pid = int((tmp_path / "pid").read_text())
        assert process_alive(database_pid)

        parent.kill()
        parent.wait(10)
        deadline = time.monotonic() + DIES_WITHIN
        while process_alive(database_pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not process_alive(database_pid), command_line(database_pid)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(10)
        stop_processes([database_pid] if database_pid else [])
        stop_processes(database_processes(tmp_path))


async def kill_hard(server: GigqlServer) -> int:
    """SIGKILL `gigql serve`, as the OOM killer would; the pid of its orphaned database."""
    assert server.process is not None
    database_pid = server.database_pid
    assert database_pid is not None
    server.process.kill()
    await asyncio.to_thread(server.process.wait, 10)
    return database_pid


async def test_a_killed_server_leaves_no_database_running_and_starts_again(tmp_path: Path) -> None:
    data_dir, logs = tmp_path / "data", tmp_path / "logs"
    async with running_server(data_dir, logs, name="killed") as killed:
        async with graphql(killed) as client:
            await client.sign_up("survivor@example.com")
        database_pid = await kill_hard(killed)
        assert await eventually(lambda: not process_alive(database_pid), DIES_WITHIN)
        assert database_processes(data_dir) == []
    # A killed server cannot clean up: its URL file is left behind, stale ...
    stale = (data_dir / URL_FILE).read_text()

    # ... and the next `gigql serve` replaces it.
    async with running_server(data_dir, logs, name="restarted") as restarted:
        assert (data_dir / URL_FILE).read_text() not in ("", stale)
        async with graphql(restarted) as client:
            tokens = await client.login("survivor@example.com")
            assert (await me(client, tokens.access))["email"] == "survivor@example.com"


async def test_create_admin_after_a_killed_server(tmp_path: Path) -> None:
    """No server is running, so create-admin must start the embedded database itself, even
    though a killed server left its secantusdb.url behind (shown by the test above)."""
    data_dir, logs = tmp_path / "data", tmp_path / "logs"
    data_dir.mkdir()
    closed = free_port()  # where the killed server's database used to listen
    (data_dir / URL_FILE).write_text(
        f"mongodb://127.0.0.1:{closed}/?retryWrites=false&directConnection=true"
    )

    result = await asyncio.to_thread(
        run_gigql,
        "create-admin",
        "--email",
        "late@example.com",
        "--password-stdin",
        env=gigql_env(data_dir),
        cwd=tmp_path,
        input="Admin-Pass-42!\n",
    )
    assert result.returncode == 0, (
        "BUG: create-admin trusts a stale <data dir>/secantusdb.url left by a killed server "
        "(server/cli.py _database_url) and fails instead of starting the embedded database: "
        + result.stderr
    )
    assert result.stderr.splitlines() == ["gigql: late@example.com is an admin"]
    assert database_processes(data_dir) == []
    async with running_server(data_dir, logs) as running, graphql(running) as client:
        tokens = await client.login("late@example.com", "Admin-Pass-42!")
        assert "ADMIN" in (await me(client, tokens.access))["roles"]
