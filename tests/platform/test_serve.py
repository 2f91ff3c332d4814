"""`gigql serve` end to end: the command run as a real process on the embedded defaults.

With nothing configured it must start SecantusDB as a child process on a free loopback
port (data kept in a folder across restarts), use the in-process broker, say where
GraphiQL is, and stop the database when it stops (SIGTERM, or Ctrl-C = SIGINT).
Misconfigurations end with one `gigql: error:` line and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from server.embedded import free_port
from tests.support.gigql_process import (
    URL_FILE,
    GigqlServer,
    assert_one_line_error,
    children_of,
    command_line,
    database_processes,
    gigql_env,
    graphql,
    listening_socket,
    me,
    ping,
    process_alive,
    refresh,
    run_command,
    run_gigql,
    running_server,
)

# --- fixtures -----------------------------------------------------------------------


@pytest.fixture(autouse=True)
def clean_state() -> None:
    """Overrides the autouse fixture of conftest: these tests bring their own processes
    and databases and never touch the session's shared test database."""


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GigqlServer]:
    """One `gigql serve` on the embedded defaults, shared by the tests of this module."""
    root = tmp_path_factory.mktemp("serve")
    async with running_server(root / "data", root / "logs") as running:
        yield running


# --- start-up on the embedded defaults ----------------------------------------------


async def test_serve_announces_graphiql_and_the_embedded_services(server: GigqlServer) -> None:
    lines = server.stderr().splitlines()
    assert f"gigql: GraphiQL at http://127.0.0.1:{server.port}/graphql" in lines, lines
    serving = [line for line in lines if line.startswith("gigql: serving on ")]
    assert serving == [
        f"gigql: serving on http://127.0.0.1:{server.port} "
        f"(embedded SecantusDB in {server.data_dir}, in-process broker)"
    ], lines
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        page = await http.get("/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()


async def test_serve_runs_secantusdb_as_a_child_on_a_loopback_port(server: GigqlServer) -> None:
    pid = server.database_pid
    assert pid is not None and process_alive(pid)
    argv = command_line(pid)
    assert argv[argv.index("--storage-path") + 1] == str(server.data_dir / "db")
    assert argv[argv.index("--host") + 1] == "127.0.0.1"
    assert "--sync-on-commit" in argv
    assert (server.data_dir / "db").is_dir()

    # Other commands find it through the URL file; it answers there.
    url = (server.data_dir / URL_FILE).read_text().strip()
    match = re.fullmatch(r"mongodb://127\.0\.0\.1:(\d+)/\?(.*)", url)
    assert match is not None, url
    database_port = int(match.group(1))
    assert argv[argv.index("--port") + 1] == str(database_port)
    assert database_port != server.port
    assert "retryWrites=false" in match.group(2)
    assert await asyncio.to_thread(ping, url)


async def test_readyz_checks_the_database_and_the_in_process_broker(server: GigqlServer) -> None:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        health = await http.get("/healthz")
        ready = await http.get("/readyz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


async def test_sign_up_log_in_refresh_and_me_over_http(server: GigqlServer) -> None:
    async with graphql(server) as client:
        await client.sign_up("http@example.com", name="Http Person")
        tokens = await client.login("http@example.com")
        assert tokens.refresh
        refreshed = await refresh(client, tokens.refresh)
        assert refreshed.refresh and refreshed.refresh != tokens.refresh
        profile = await me(client, refreshed.access)
        assert profile["id"] == tokens.user_id and profile["email"] == "http@example.com"
        # Refresh tokens rotate: the old one is spent.
        again = await client.mutate(
            "refreshToken", {"refreshToken": tokens.refresh}, "tokens { accessToken }"
        )
        assert again["errors"] and again["tokens"] is None, again


# --- stopping -----------------------------------------------------------------------


async def test_sigterm_stops_the_database_and_the_data_survives_a_restart(tmp_path: Path) -> None:
    data_dir, logs = tmp_path / "data", tmp_path / "logs"
    port = free_port()
    async with running_server(data_dir, logs, port=port, name="first") as first:
        async with graphql(first) as client:
            await client.sign_up("keep@example.com", name="Kept Across Restarts")
            tokens = await client.login("keep@example.com")
            assert tokens.refresh
            refreshed = await refresh(client, tokens.refresh)
            assert refreshed.refresh
            profile = await me(client, refreshed.access)
            assert profile["id"] == tokens.user_id and profile["email"] == "keep@example.com"

        database_pid = first.database_pid
        assert database_pid is not None
        started = time.monotonic()
        assert await first.stop(signal.SIGTERM) == 0, first.output()
        assert time.monotonic() - started < 20
        # gigql waits for its database before exiting: nothing is left running.
        assert not process_alive(database_pid), command_line(database_pid)
        assert database_processes(data_dir) == []
        assert not (data_dir / URL_FILE).exists()

    async with running_server(data_dir, logs, port=port, name="second") as second:
        assert second.database_pid != database_pid
        async with graphql(second) as client:
            # The account, its session and the signing key were all kept.
            again = await client.login("keep@example.com")
            assert again.user_id == tokens.user_id
            assert (await me(client, again.access))["email"] == "keep@example.com"
            assert (await me(client, refreshed.access))["id"] == tokens.user_id
            assert (await refresh(client, refreshed.refresh)).access
        second_database = second.database_pid
        assert second_database is not None
        assert await second.stop(signal.SIGTERM) == 0, second.output()
        assert not process_alive(second_database)


async def test_ctrl_c_stops_the_server_and_its_database(tmp_path: Path) -> None:
    """SIGINT to the process group, as a terminal sends on Ctrl-C. SecantusDB runs in its
    own session so only gigql receives it; gigql then stops the database itself. The
    command exits 130 (128 + SIGINT), the shell convention for an interrupted command."""
    async with running_server(tmp_path / "data", tmp_path / "logs") as running:
        database_pid = running.database_pid
        assert database_pid is not None
        assert os.getsid(database_pid) != os.getsid(running.pid)
        returncode = await running.stop(signal.SIGINT)
        assert returncode == 130, running.output()
        assert not process_alive(database_pid)
        assert database_processes(running.data_dir) == []
        assert not (running.data_dir / URL_FILE).exists()
        assert "Traceback" not in running.stderr(), running.output()


# --- clear errors -------------------------------------------------------------------


async def test_unreachable_database_is_one_clear_error(tmp_path: Path) -> None:
    closed = free_port()  # nothing listens there
    env = gigql_env(
        tmp_path / "data", MONGODB_URL=f"mongodb://127.0.0.1:{closed}/?directConnection=true"
    )
    result = await asyncio.to_thread(
        run_gigql, "serve", "--port", str(free_port()), env=env, cwd=tmp_path
    )
    assert_one_line_error(result, "cannot reach the database at MONGODB_URL", f"127.0.0.1:{closed}")
    assert database_processes(tmp_path / "data") == []


async def test_a_port_in_use_is_one_clear_error(tmp_path: Path) -> None:
    port = free_port()
    with listening_socket(port):
        result = await asyncio.to_thread(
            run_gigql, "serve", "--port", str(port), env=gigql_env(tmp_path / "data"), cwd=tmp_path
        )
    assert_one_line_error(result, f"127.0.0.1:{port} is already in use")
    # Checked before anything is started.
    assert database_processes(tmp_path / "data") == []
    assert not (tmp_path / "data" / "db").exists()


# `server/embedded.py` looks for the extra with importlib.util.find_spec("secantus"); hide it.
WITHOUT_SECANTUS = """
import sys

class WithoutSecantus:
    def __init__(self, finders):
        self.finders = finders

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] == "secantus":
            return None
        for finder in self.finders:
            find_spec = getattr(finder, "find_spec", None)
            spec = find_spec(name, path, target) if find_spec else None
            if spec is not None:
                return spec
        return None

    def find_distributions(self, *args, **kwargs):
        # Installed packages' metadata stays visible (beanie reads its own version).
        for finder in self.finders:
            find = getattr(finder, "find_distributions", None)
            if find is not None:
                yield from find(*args, **kwargs)

sys.meta_path[:] = [WithoutSecantus(list(sys.meta_path))]
import importlib.util
assert importlib.util.find_spec("secantus") is None
from server.cli import main
main(sys.argv[1:])
"""


async def test_a_missing_embedded_extra_is_one_clear_error(tmp_path: Path) -> None:
    command = [sys.executable, "-c", WITHOUT_SECANTUS, "serve", "--port", str(free_port())]
    result = await asyncio.to_thread(
        run_command, command, env=gigql_env(tmp_path / "data"), cwd=tmp_path
    )
    assert_one_line_error(
        result,
        "the embedded database is not installed",
        "pip install 'gigql[embedded]'",
        "MONGODB_URL",
    )
    assert database_processes(tmp_path / "data") == []


async def test_several_workers_without_redis_is_one_clear_error(tmp_path: Path) -> None:
    result = await asyncio.to_thread(
        run_gigql,
        "serve",
        "--workers",
        "2",
        "--port",
        str(free_port()),
        env=gigql_env(tmp_path / "data"),
        cwd=tmp_path,
    )
    assert_one_line_error(result, "several workers need REDIS_URL")
    assert database_processes(tmp_path / "data") == []


async def test_several_workers_share_redis_and_stop_together(
    redis_url: str, tmp_path: Path
) -> None:
    """With REDIS_URL, `--workers 2` runs two uvicorn workers on one socket and one database."""
    served = GigqlServer(
        tmp_path / "data",
        free_port(),
        tmp_path / "logs",
        args=("--workers", "2"),
        REDIS_URL=redis_url,
    )
    served.start()
    try:
        returncode = await served.healthy_or_exited()
        # (It once crashed here: server/cli.py passed `target=` to uvicorn's Multiprocess.)
        assert returncode is None, f"`gigql serve --workers 2` did not start\n{served.output()}"
        lines = served.stderr().splitlines()
        expected = f"(embedded SecantusDB in {served.data_dir}, Redis)"
        assert f"gigql: serving on {served.base_url} {expected}" in lines, lines
        workers = [
            pid for pid in children_of(served.pid) if "spawn_main" in " ".join(command_line(pid))
        ]
        assert len(workers) == 2, [command_line(pid) for pid in children_of(served.pid)]

        async with graphql(served) as client:
            ready = await client.http.get("/readyz")
            assert ready.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}
            await client.sign_up("workers@example.com")
            tokens = await client.login("workers@example.com")
        # A new connection each time, accepted by either worker: both know the account and
        # the signing key.
        for _ in range(8):
            async with graphql(served) as client:
                assert (await me(client, tokens.access))["email"] == "workers@example.com"

        database_pid = served.database_pid
        assert database_pid is not None
        assert await served.stop(signal.SIGTERM) == 0, served.output()
        for pid in [database_pid, *workers]:
            assert not process_alive(pid), command_line(pid)
        assert not (served.data_dir / URL_FILE).exists()
    finally:
        await served.shutdown()


async def test_a_data_folder_in_use_is_one_clear_error(server: GigqlServer, tmp_path: Path) -> None:
    result = await asyncio.to_thread(
        run_gigql, "serve", "--port", str(free_port()), env=gigql_env(server.data_dir), cwd=tmp_path
    )
    assert_one_line_error(result, f"the data folder {server.data_dir / 'db'} is in use")

    # The running server is untouched: same database process, still serving.
    assert database_processes(server.data_dir) == [server.database_pid]
    async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
        assert (await http.get("/readyz")).status_code == 200
    # ... and other commands can still find its database.
    assert (server.data_dir / URL_FILE).exists(), (
        "BUG: the failed `gigql serve` deleted the running server's secantusdb.url "
        "(server/cli.py serve(): its `finally` unlinks the URL file whenever `embedded` is set, "
        "even when this process's database never started)"
    )
