"""Running `gigql` commands as real processes, and finding the database they start.

Shared by tests/platform/test_serve.py, tests/platform/test_cli.py and tests/platform/test_embedded.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from documents.settings import Settings
from server.embedded import free_port
from tests.conftest import GENEROUS_RATE_LIMIT
from tests.support.graphql_client import ME, GraphQLClient, Tokens

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
CLI_TIMEOUT = 60.0
URL_FILE = "secantusdb.url"

# Cheap hashing and no real mail keep the runs fast, and generous rate limits let every
# test call from 127.0.0.1 as often as it likes; see tests/conftest.py.
FAST_SETTINGS = {
    "GIGQL_ARGON2_MEMORY_COST_KIB": "1024",
    "GIGQL_ARGON2_TIME_COST": "1",
    "GIGQL_ARGON2_PARALLELISM": "1",
    "GIGQL_MAIL_BACKEND": "console",
    "PYTHONUNBUFFERED": "1",
    "GIGQL_RATE_LIMIT_IP_REQUESTS": str(GENEROUS_RATE_LIMIT),
    "GIGQL_RATE_LIMIT_IP_COST": str(GENEROUS_RATE_LIMIT),
    "GIGQL_RATE_LIMIT_ACCOUNT_REQUESTS": str(GENEROUS_RATE_LIMIT),
    "GIGQL_RATE_LIMIT_ACCOUNT_COST": str(GENEROUS_RATE_LIMIT),
}


# --- running the command ------------------------------------------------------------


def gigql_command(*args: str) -> list[str]:
    """The `gigql` script of the virtualenv running the tests, else the same entry point."""
    script = Path(sys.executable).parent / "gigql"
    if script.exists():
        return [str(script), *args]
    return [sys.executable, "-c", "from server.cli import main; main()", *args]


def gigql_env(data_dir: Path | None = None, **extra: str) -> dict[str, str]:
    """The test environment minus every gigql setting: the embedded defaults, plus `extra`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("MONGODB_URL", "REDIS_URL") and not name.startswith("GIGQL_")
    }
    env.update(FAST_SETTINGS)
    if data_dir is not None:
        env["GIGQL_DATA_DIR"] = str(data_dir)
    env.update(extra)
    return env


def run_gigql(
    *args: str,
    env: dict[str, str],
    cwd: Path,
    input: str | None = None,
    timeout: float = CLI_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """Run a `gigql` command to the end (blocking: call it through asyncio.to_thread)."""
    return run_command(gigql_command(*args), env=env, cwd=cwd, input=input, timeout=timeout)


def run_command(
    command: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    input: str | None = None,
    timeout: float = CLI_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        env=env,
        cwd=cwd,
        input=input if input is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *expected: str) -> str:
    """Exit status 1 and exactly one stderr line, `gigql: error: ...` containing `expected`."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert len(lines) == 1, f"expected one error line, got:\n{result.stderr}"
    line = lines[0]
    assert line.startswith("gigql: error: "), line
    for part in expected:
        assert part in line, line
    return line


# --- processes ----------------------------------------------------------------------


def process_alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped, counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rpartition(")")[2].split()[0]
    return state not in ("Z", "X")


def children_of(pid: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return children


def command_line(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_secantus(argv: list[str]) -> bool:
    return any(a == "-m" and b == "secantus" for a, b in pairwise(argv))


def database_processes(data_dir: Path) -> list[int]:
    """Live SecantusDB processes whose storage is inside `data_dir`, whoever started them."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        argv = command_line(int(entry.name))
        if is_secantus(argv) and any(Path(arg).is_relative_to(data_dir) for arg in argv):
            found.append(int(entry.name))
    return [pid for pid in found if process_alive(pid)]


def stop_processes(pids: list[int]) -> None:
    """Teardown only: SIGKILL processes these tests started and which are still running."""
    for pid in pids:
        if process_alive(pid):
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


async def eventually(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll `condition` without blocking the event loop; whether it came true in time."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)


async def wait_until_gone(pid: int, timeout: float = STOP_TIMEOUT) -> bool:
    return await eventually(lambda: not process_alive(pid), timeout)


def ping(url: str) -> bool:
    """Whether a MongoDB-wire server answers at `url` (blocking)."""
    client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=5000)
    with client:
        return bool(client.admin.command("ping")["ok"] == 1)


# --- a `gigql serve` process --------------------------------------------------------


class GigqlServer:
    """`gigql serve` as a child process, its output in files (a full pipe would block it)."""

    def __init__(
        self,
        data_dir: Path,
        port: int,
        logs: Path,
        *,
        name: str = "serve",
        args: tuple[str, ...] = (),
        **env: str,
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.args = args
        self.env = gigql_env(data_dir, **env)
        logs.mkdir(parents=True, exist_ok=True)
        self.stdout_path = logs / f"{name}.stdout"
        self.stderr_path = logs / f"{name}.stderr"
        self.cwd = logs
        self.process: subprocess.Popen[bytes] | None = None
        self.database_pid: int | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> None:
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                gigql_command("serve", "--port", str(self.port), *self.args),
                env=self.env,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                # Its own process group, as in a terminal: killpg(SIGINT) is a Ctrl-C.
                start_new_session=True,
            )

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def output(self) -> str:
        stdout = self.stdout_path.read_text(errors="replace")[-3000:]
        return f"stderr:\n{self.stderr()}\nstdout (tail):\n{stdout}"

    async def wait_until_healthy(self) -> None:
        returncode = await self.healthy_or_exited()
        if returncode is not None:
            pytest.fail(f"gigql serve exited with {returncode}\n{self.output()}")

    async def healthy_or_exited(self) -> int | None:
        """Wait until /healthz answers (None) or the process exits (its exit code)."""
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT
        async with httpx.AsyncClient(base_url=self.base_url, timeout=2) as http:
            while True:
                if self.process.poll() is not None:
                    return self.process.returncode
                try:
                    if (await http.get("/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"gigql serve not healthy within {START_TIMEOUT:.0f}s\n{self.output()}"
                    )
                await asyncio.sleep(0.1)
        if "MONGODB_URL" not in self.env:  # else there is no embedded database to find
            self.database_pid = self.find_database_pid()
        return None

    def find_database_pid(self) -> int:
        """The SecantusDB child: a child process of gigql running `-m secantus` on our folder."""
        children = [pid for pid in children_of(self.pid) if is_secantus(command_line(pid))]
        assert len(children) == 1, (children, children_of(self.pid))
        assert database_processes(self.data_dir) == children
        return children[0]

    async def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send `signum` (SIGINT to the whole process group, as Ctrl-C does); the exit code."""
        assert self.process is not None
        if signum == signal.SIGINT:
            os.killpg(self.process.pid, signum)
        else:
            self.process.send_signal(signum)
        process = self.process
        if not await eventually(lambda: process.poll() is not None, STOP_TIMEOUT):
            pytest.fail(
                f"gigql serve still running {STOP_TIMEOUT:.0f}s after {signum}\n{self.output()}"
            )
        return process.returncode

    async def shutdown(self) -> None:
        """Teardown: stop it as an operator would if it still runs, then make sure."""
        try:
            process = self.process
            if process is not None and process.poll() is None:
                process.terminate()
                await eventually(lambda: process.poll() is not None, STOP_TIMEOUT)
        finally:
            self.kill()

    def kill(self) -> None:
        """Leave nothing running, whatever happened."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        pids = [self.database_pid] if self.database_pid is not None else []
        stop_processes(pids + database_processes(self.data_dir))


@asynccontextmanager
async def running_server(
    data_dir: Path,
    logs: Path,
    *,
    port: int | None = None,
    name: str = "serve",
    args: tuple[str, ...] = (),
    **env: str,
) -> AsyncIterator[GigqlServer]:
    server = GigqlServer(data_dir, port or free_port(), logs, name=name, args=args, **env)
    server.start()
    try:
        await server.wait_until_healthy()
        yield server
    finally:
        await server.shutdown()


@asynccontextmanager
async def sharing_the_test_database(
    root: Path, settings: Settings, args: tuple[str, ...] = (), /, **env: str
) -> AsyncIterator[GigqlServer]:
    """`gigql serve [args]` on the in-process tests' database and signing key (no embedded
    database): accounts and tokens made through the in-process app work on it too."""
    assert settings.mongodb_url is not None and settings.jwt_secret is not None
    server = GigqlServer(root / "data", free_port(), root / "logs", args=args)
    server.env.update(
        MONGODB_URL=settings.mongodb_url,
        GIGQL_MONGODB_DATABASE=settings.mongodb_database,
        GIGQL_JWT_SECRET=settings.jwt_secret.get_secret_value(),
        **env,
    )
    server.start()
    try:
        await server.wait_until_healthy()
        yield server
    finally:
        await server.shutdown()


@asynccontextmanager
async def graphql(server: GigqlServer) -> AsyncIterator[GraphQLClient]:
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        yield GraphQLClient(http)


async def refresh(client: GraphQLClient, refresh_token: str) -> Tokens:
    payload = await client.mutate(
        "refreshToken", {"refreshToken": refresh_token}, "tokens { accessToken refreshToken }"
    )
    assert payload["errors"] == [], payload
    tokens = payload["tokens"]
    return Tokens("", tokens["accessToken"], tokens["refreshToken"])


async def me(client: GraphQLClient, access_token: str) -> dict[str, Any]:
    user: dict[str, Any] = (await client.data(ME, token=access_token))["me"]
    return user


@contextmanager
def listening_socket(port: int) -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield sock
