"""What every benchmark here shares: servers in uvicorn child processes with the same
options, wrk driving them through `post.lua`, CPU accounting from /proc, the database,
the machine's facts, and the command line's load knobs."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import redis
from pydantic import SecretStr
from pymongo import MongoClient

from documents.settings import Settings
from server.embedded import IN_MEMORY, EmbeddedDatabaseError, EmbeddedMongo, free_port

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
LUA_SCRIPT = BENCH_DIR / "post.lua"
HOST = "127.0.0.1"
RATE_LIMITS = ("IP_REQUESTS", "IP_COST", "ACCOUNT_REQUESTS", "ACCOUNT_COST")
COUNTING_RATE_LIMITS = {f"GIGQL_RATE_LIMIT_{limit}": str(10**12) for limit in RATE_LIMITS}
"""wrk sends every request from one address: the rate limits count each one, and refuse
none (production's 100 requests a minute would refuse all but the first hundred)."""
NO_RATE_LIMITS = {f"GIGQL_RATE_LIMIT_{limit}": "0" for limit in RATE_LIMITS}
"""The rate limits off, to measure what counting costs."""
# A 1-minute load average above this before the run means something else is using the CPU.
BUSY_LOAD = 0.5
WRK_TIMEOUT = 2  # wrk's own default, in seconds
# A process is idle when it used at most one clock tick (10 ms) of CPU in this many seconds.
SETTLE_INTERVAL = 0.3
IDLE_CPU = 0.015

TYPENAME = "{ __typename }"
LOGIN = (
    "mutation($input: LoginInput!) "
    "{ login(input: $input) { errors { code message } tokens { accessToken } } }"
)
PACKAGES = (
    "strawberry-graphql",
    "graphql-core",
    "starlette",
    "uvicorn",
    "uvloop",
    "httptools",
    "argon2-cffi",
    "pymongo",
    "beanie",
    "SecantusDB",
)

R = TypeVar("R")


def fail(message: str) -> NoReturn:
    print(f"bench: error: {message}", file=sys.stderr)
    raise SystemExit(1)


# --- servers --------------------------------------------------------------------------


@dataclass(frozen=True)
class Server:
    name: str
    port: int
    pid: int


def _clean_environment(extra: dict[str, str]) -> dict[str, str]:
    """The caller's environment without anything that would change what is measured."""
    kept = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("GIGQL_")
        and key not in ("MONGODB_URL", "REDIS_URL", "WEB_CONCURRENCY")
    }
    return {**kept, **extra}


@contextmanager
def serve(
    name: str,
    app: str,
    workdir: Path,
    env: dict[str, str],
    factory: bool = False,
    log_name: str = "",
) -> Iterator[Server]:
    """Run `uvicorn app` in a child process until the block ends.

    The same options for every app, as `gigql serve` sets them: one worker, uvicorn's
    default event loop and HTTP parser (uvloop, httptools), no uvicorn access log, the
    default GIGQL_MAX_BODY_BYTES as the websocket message limit. The
    app must answer `{ __typename }` posted to /graphql once it is ready.
    """
    port = free_port(HOST)
    flags = f"--host {HOST} --port {port} --workers 1 --no-access-log --log-level warning"
    flags += f" --ws-max-size {Settings.model_fields['max_body_bytes'].default}"
    command = [sys.executable, "-m", "uvicorn", app, *flags.split(), "--app-dir", str(REPO)]
    if factory:
        command.append("--factory")
    log_path = workdir / f"{log_name or name}.log"
    with log_path.open("wb") as log:
        # The working directory is a scratch folder so that no `.env` file leaks in.
        process = subprocess.Popen(
            command,
            cwd=workdir,
            env=_clean_environment(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        server = Server(name, port, process.pid)
        _wait_until_ready(server, process, log_path)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_ready(server: Server, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            fail(f"{server.name} exited at start-up:\n{tail}")
        try:
            status, _ = post(server, {"query": TYPENAME}, timeout=2)
            if status == 200:
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            fail(f"{server.name} did not answer within 60 s (see {log_path})")
        time.sleep(0.1)


def post(
    server: Server, body: dict[str, Any], token: str | None = None, timeout: float = 30
) -> tuple[int, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    connection = http.client.HTTPConnection(HOST, server.port, timeout=timeout)
    try:
        connection.request("POST", "/graphql", json.dumps(body), headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def expect(
    server: Server, body: dict[str, Any], token: str | None, check: Callable[[Any], bool]
) -> Any:
    """One request before the load: a benchmark of wrong answers measures nothing.

    Returns the answer, for comparing servers with each other.
    """
    status, answer = post(server, body, token)
    if status != 200 or not check(answer):
        fail(f"{server.name} answered {body.get('query')!r} with HTTP {status}: {answer}")
    return answer


def mutate(server: Server, query: str, name: str, values: dict[str, Any]) -> dict[str, Any]:
    """Run a mutation; return its payload, failing on any error."""
    status, answer = post(server, {"query": query, "variables": {"input": values}})
    data = answer.get("data") if isinstance(answer, dict) else None
    payload = data.get(name) if isinstance(data, dict) else None
    if status != 200 or not isinstance(payload, dict) or answer.get("errors") or payload["errors"]:
        fail(f"{name} failed: HTTP {status}: {answer}")
    return payload


def log_in(server: Server, email: str, password: str) -> str:
    payload = mutate(server, LOGIN, "login", {"email": email, "password": password})
    token: str = payload["tokens"]["accessToken"]
    return token


# --- load -----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadOptions:
    wrk: str
    duration: int
    warmup: int
    connections: int
    threads: int
    timeout: int
    """Seconds before wrk gives up on a request and counts it as an error."""


@dataclass(frozen=True)
class LoadResult:
    server: str
    query: str
    """What was asked: the query text, or a short name for a long one."""
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    server_cpu_us_per_request: float
    database_cpu_us_per_request: float | None
    socket_errors: int
    non_2xx: int


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and all its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmRSS for process {pid}")


def _wrk(
    options: LoadOptions, server: Server, body: str, token: str | None, seconds: int
) -> dict[str, Any]:
    flags = (
        f"--latency -t {options.threads} -c {options.connections} -d {seconds}s "
        f"--timeout {options.timeout}s"
    )
    url = f"http://{HOST}:{server.port}/graphql"
    command = [options.wrk, *flags.split(), "-s", str(LUA_SCRIPT), url]
    env = {**os.environ, "BENCH_BODY": body, "BENCH_TOKEN": token or ""}
    done = subprocess.run(
        command,
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + options.timeout + 60,
        check=False,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("BENCH ")]
    if done.returncode != 0 or not lines:
        fail(f"wrk failed on {server.name} (exit {done.returncode}):\n{done.stdout}{done.stderr}")
    figures: dict[str, Any] = json.loads(lines[-1].removeprefix("BENCH "))
    return figures


def settle(pids: list[int], limit: float = 120) -> None:
    """Wait until these processes are idle.

    When wrk stops, each connection leaves one request behind that the server (and the
    database) still serve; with requests that take a second, that work would otherwise
    land in the next measured window.
    """
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before = sum(cpu_seconds(pid) for pid in pids)
        time.sleep(SETTLE_INTERVAL)
        if sum(cpu_seconds(pid) for pid in pids) - before <= IDLE_CPU:
            return
    print(
        f"bench: warning: still busy after {limit:.0f} s; the next row may be low", file=sys.stderr
    )


def load(
    options: LoadOptions,
    server: Server,
    body: dict[str, Any],
    label: str,
    token: str | None = None,
    database_pid: int | None = None,
) -> LoadResult:
    """wrk posting `body` to the server: an unmeasured warm-up, then the measured window.

    CPU per request is the CPU from the window's start until the processes are idle
    again, over the requests started in it: those completed, plus the one each connection
    had in flight when wrk stopped, which the server still serves.
    """
    encoded = json.dumps(body)
    pids = [server.pid] + ([database_pid] if database_pid else [])
    if options.warmup:
        _wrk(options, server, encoded, token, options.warmup)  # fill caches, open connections
    settle(pids)
    cpu_before = cpu_seconds(server.pid)
    db_before = cpu_seconds(database_pid) if database_pid else 0.0
    figures = _wrk(options, server, encoded, token, options.duration)
    settle(pids)
    requests = max(int(figures["requests"]), 1)
    started = requests + options.connections
    server_cpu = cpu_seconds(server.pid) - cpu_before
    db_cpu = cpu_seconds(database_pid) - db_before if database_pid else None
    result = LoadResult(
        server=server.name,
        query=label,
        requests_per_s=requests / (figures["duration_us"] / 1e6),
        p50_ms=figures["p50_us"] / 1000,
        p99_ms=figures["p99_us"] / 1000,
        requests=requests,
        server_cpu_us_per_request=server_cpu / started * 1e6,
        database_cpu_us_per_request=db_cpu / started * 1e6 if db_cpu is not None else None,
        socket_errors=int(figures["socket_errors"]),
        non_2xx=int(figures["non_2xx"]),
    )
    print(
        f"bench: {result.server:<18} {label:<26} {result.requests_per_s:9.0f} req/s  "
        f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms",
        file=sys.stderr,
    )
    if result.socket_errors or result.non_2xx:
        print(
            f"bench: warning: {result.socket_errors} socket errors and {result.non_2xx} "
            "non-2xx answers under load: this row does not measure what it should",
            file=sys.stderr,
        )
    return result


def figure_cells(result: LoadResult) -> list[str]:
    """A row's measured cells: requests/s, p50, p99, server CPU, DB CPU, errors."""
    db = result.database_cpu_us_per_request
    rps = result.requests_per_s
    return [
        f"{rps:,.0f}" if rps >= 100 else f"{rps:.1f}",
        f"{result.p50_ms:.2f}",
        f"{result.p99_ms:.2f}",
        f"{result.server_cpu_us_per_request:.0f}",
        f"{db:.0f}" if db is not None else "-",
        str(result.socket_errors + result.non_2xx),
    ]


FIGURE_HEADINGS = "requests/s | p50 ms | p99 ms | server CPU µs/req | DB CPU µs/req | errors"
FIGURE_ALIGNMENT = "---: | ---: | ---: | ---: | ---: | ---:"


# --- the database ---------------------------------------------------------------------


@dataclass(frozen=True)
class Workspace:
    """What one run works in: a scratch folder, a database of its own, a JWT secret."""

    workdir: Path
    mongodb_url: str
    database_pid: int | None
    """The local SecantusDB's process, None for a database at MONGODB_URL."""
    database_name: str
    jwt_secret: str

    def gigql_environment(self, log_level: str) -> dict[str, str]:
        """Production settings, as `server.cli:app_from_environment` reads them."""
        return {
            "GIGQL_ENVIRONMENT": "production",
            "GIGQL_ALLOW_SANDBOX_PAYMENTS": "true",
            # No browsers subscribe in a benchmark: no VAPID key pair to configure.
            "GIGQL_PUSH_BACKEND": "log",
            "GIGQL_JWT_SECRET": self.jwt_secret,
            "MONGODB_URL": self.mongodb_url,
            "GIGQL_MONGODB_DATABASE": self.database_name,
            "GIGQL_DATA_DIR": str(self.workdir / "gigql-data"),
            "GIGQL_MAIL_BACKEND": "memory",
            "GIGQL_LOG_LEVEL": log_level,
            **COUNTING_RATE_LIMITS,
        }

    def gigql_settings(self, log_level: str) -> Settings:
        """The same settings as `gigql_environment`, for work done in this process."""
        return Settings(
            _env_file=None,
            environment="production",
            allow_sandbox_payments=True,
            push_backend="log",
            jwt_secret=SecretStr(self.jwt_secret),
            mongodb_url=self.mongodb_url,
            mongodb_database=self.database_name,
            data_dir=self.workdir / "gigql-data",
            mail_backend="memory",
            log_level=log_level,
            rate_limit_ip_requests=10**12,
            rate_limit_ip_cost=10**12,
            rate_limit_account_requests=10**12,
            rate_limit_account_cost=10**12,
        )


@contextmanager
def workspace() -> Iterator[Workspace]:
    """A scratch folder and a database: MONGODB_URL if set, else an in-memory SecantusDB.

    On a server of the caller's (MONGODB_URL), the database the run used is dropped at
    the end, leaving the server as it was.
    """
    name = f"gigql_bench_{secrets.token_hex(4)}"
    jwt_secret = secrets.token_urlsafe(48)
    with tempfile.TemporaryDirectory(prefix="gigql-bench-") as scratch:
        workdir = Path(scratch)
        url = os.environ.get("MONGODB_URL")
        if url:
            try:
                yield Workspace(workdir, url, None, name, jwt_secret)
            finally:
                client: MongoClient[dict[str, Any]] = MongoClient(url)
                with client:
                    client.drop_database(name)
            return
        embedded = EmbeddedMongo(IN_MEMORY, log_path=workdir / "secantusdb.log")
        try:
            url = embedded.start()
        except EmbeddedDatabaseError as error:
            fail(str(error))
        try:
            yield Workspace(workdir, url, embedded.pid, name, jwt_secret)
        finally:
            embedded.stop()


# --- Redis ----------------------------------------------------------------------------

LOCAL_REDIS = "redis://127.0.0.1:6379/0"


def _redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    """REDIS_URL if set; else the machine's Redis if one answers on its default port;
    else a redis-server of the run's own on a free port, without persistence."""
    configured = os.environ.get("REDIS_URL")
    if configured or _redis_answers(LOCAL_REDIS):
        yield configured or LOCAL_REDIS
        return
    binary = shutil.which("redis-server")
    if binary is None:
        fail("no Redis answers: set REDIS_URL or install redis-server")
    port = free_port(HOST)
    flags = f"--port {port} --bind {HOST} --save '' --appendonly no --dir {workdir}"
    process = subprocess.Popen(
        [binary, *shlex.split(flags)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"redis://{HOST}:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while not _redis_answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                fail("redis-server did not start")
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)


# --- the machine ----------------------------------------------------------------------


def load_average_before() -> float:
    """The 1-minute load average, with a warning when the machine is already busy."""
    load_before = os.getloadavg()[0]
    if load_before > BUSY_LOAD:
        print(
            f"bench: warning: load average {load_before:.2f}: figures will be low", file=sys.stderr
        )
    return load_before


def machine_facts(options: LoadOptions, load_before: float) -> dict[str, str]:
    wrk_version = subprocess.run(
        [options.wrk, "-v"], capture_output=True, text=True, check=False
    ).stdout.split("[")[0]
    load = (
        f"wrk, {options.threads} threads, {options.connections} connections, "
        f"{options.warmup} s warm-up then {options.duration} s per row, on the same machine"
        + (f", {options.timeout} s timeout" if options.timeout != WRK_TIMEOUT else "")
    )
    return host_facts(load_before, load, wrk=wrk_version.strip())


def host_facts(
    load_before: float, load: str, packages: tuple[str, ...] = PACKAGES, **tools: str
) -> dict[str, str]:
    """The machine, the packages' versions, and how it was loaded (`tools`: load
    generators' versions, such as wrk's)."""
    cpu = "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        models = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = models[0] if models else cpu
    facts = {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "os": platform.platform(),
        "python": platform.python_version(),
        **tools,
        "load": load,
    }
    for package in packages:
        try:
            facts[package] = version(package)
        except PackageNotFoundError:
            facts[package] = "not installed"
    # Other work on the machine skews every row; say how busy it was around the run.
    facts["load average"] = f"{load_before:.2f} at the start"
    return facts


def machine_markdown(machine: dict[str, str], packages: tuple[str, ...] = PACKAGES) -> list[str]:
    listed = ", ".join(f"{p} {machine[p]}" for p in packages)
    tools = f" ({machine['wrk']})" if "wrk" in machine else ""
    return [
        "## Machine",
        "",
        f"- CPU: {machine['cpu']}, {machine['cores']} cores",
        f"- OS: {machine['os']}",
        f"- Python {machine['python']}; {listed}",
        f"- Load: {machine['load']}{tools}",
        f"- 1-minute load average: {machine['load average']}",
    ]


# --- the command line -----------------------------------------------------------------


def add_load_arguments(
    parser: argparse.ArgumentParser, connections: int = 32, timeout: int = WRK_TIMEOUT
) -> None:
    parser.add_argument(
        "--duration", type=int, default=10, help="seconds of load per row (default 10)"
    )
    parser.add_argument(
        "--warmup", type=int, default=2, help="seconds of unmeasured load first (default 2)"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=connections,
        help=f"open connections (default {connections})",
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument(
        "--timeout",
        type=int,
        default=timeout,
        help=f"seconds before wrk counts a request as failed (default {timeout})",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")


def check_load_arguments(
    parser: argparse.ArgumentParser, args: argparse.Namespace, *counts: int
) -> None:
    """Refuse nonsense knobs; `counts` are the script's own, which may be zero."""
    if (
        min(args.duration, args.connections, args.threads, args.timeout) < 1
        or min((args.warmup, *counts)) < 0
    ):
        parser.error("durations and counts must be positive")
    if args.threads > args.connections:
        parser.error("--threads must not exceed --connections")


def load_options(args: argparse.Namespace) -> LoadOptions:
    wrk = shutil.which("wrk")
    if wrk is None:
        fail("wrk is not installed; install it with `apt-get install wrk` (Debian/Ubuntu)")
    return LoadOptions(
        wrk, args.duration, args.warmup, args.connections, args.threads, args.timeout
    )


def run_and_report(
    run: Callable[[], R],
    markdown: Callable[[R], str],
    as_json: Callable[[R], dict[str, Any]],
    json_path: str | None,
) -> None:
    """`run`, then its Markdown on stdout and, given a file name, its JSON there."""
    try:
        result = run()
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    print(markdown(result))
    if json_path:
        Path(json_path).write_text(json.dumps(as_json(result), indent=2) + "\n")
