"""Server CPU per operation sent over a websocket: what admitting each operation against
its session costs, and what the rate limits cost there.

Run from the repository root: `python -m bench.ws_operations` (about a minute). gigql
runs as `bench.run` runs it (production settings, one uvicorn worker), twice: with the
rate limits counting every operation (at limits no client reaches) and with them off.
On each, `--sockets` graphql-transport-ws clients send operations one after another,
each waiting for `complete`, for `--duration` seconds after a warm-up: `{ __typename }`
on sockets opened with an access token (every operation admitted against its session)
and on anonymous ones (`GIGQL_WS_ALLOW_ANONYMOUS=true`: nothing to admit), and
`{ me { id name email } }` on authenticated ones. CPU per operation is the server
process's CPU from /proc over the operations sent, as in `bench.run`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from websockets.asyncio.client import connect
from websockets.typing import Subprotocol

from bench.harness import (
    COUNTING_RATE_LIMITS,
    HOST,
    NO_RATE_LIMITS,
    TYPENAME,
    Server,
    cpu_seconds,
    fail,
    host_facts,
    load_average_before,
    log_in,
    machine_markdown,
    mutate,
    run_and_report,
    serve,
    settle,
    workspace,
)

ME = "{ me { id name email } }"
SIGN_UP = "mutation($input: SignUpInput!) { signUp(input: $input) { errors { code message } } }"
LIMITS_ON = "gigql, rate limits counting"
LIMITS_OFF = "gigql, rate limits off"


@dataclass(frozen=True)
class Row:
    server: str
    socket: str
    """"session" (opened with an access token) or "anonymous"."""
    query: str
    operations: int
    operations_per_s: float
    server_cpu_us_per_operation: float


@dataclass
class Report:
    machine: dict[str, str]
    rows: list[Row]

    def cpu(self, server: str, socket: str, query: str = TYPENAME) -> float:
        return next(
            r.server_cpu_us_per_operation
            for r in self.rows
            if (r.server, r.socket, r.query) == (server, socket, query)
        )


async def _send_operations(
    port: int, token: str | None, query: str, seconds: float, sockets: int
) -> int:
    """Operations answered by `sockets` clients sending `query` one after another."""
    deadline = time.monotonic() + seconds
    init = {"type": "connection_init", "payload": {"accessToken": token} if token else {}}

    async def client() -> int:
        url = f"ws://{HOST}:{port}/graphql"
        async with connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as socket:
            await socket.send(json.dumps(init))
            if json.loads(await socket.recv())["type"] != "connection_ack":
                fail("the websocket was not acknowledged")
            sent = 0
            while time.monotonic() < deadline:
                sent += 1
                subscribe = {"id": str(sent), "type": "subscribe", "payload": {"query": query}}
                await socket.send(json.dumps(subscribe))
                while (message := json.loads(await socket.recv()))["type"] != "complete":
                    if message["type"] != "next" or "errors" in message["payload"]:
                        fail(f"{query} over websocket answered {message}")
            return sent

    return sum(await asyncio.gather(*(client() for _ in range(sockets))))


def measure(
    server: Server, socket: str, token: str | None, query: str, args: argparse.Namespace
) -> Row:
    asyncio.run(_send_operations(server.port, token, query, args.warmup, args.sockets))
    settle([server.pid])
    before = cpu_seconds(server.pid)
    count = asyncio.run(_send_operations(server.port, token, query, args.duration, args.sockets))
    settle([server.pid])
    cpu = cpu_seconds(server.pid) - before
    row = Row(server.name, socket, query, count, count / args.duration, cpu / count * 1e6)
    print(
        f"bench: {row.server:<28} {socket:<9} {query:<26} {row.operations_per_s:7.0f} op/s "
        f"{row.server_cpu_us_per_operation:6.0f} µs/op",
        file=sys.stderr,
    )
    return row


def run(args: argparse.Namespace) -> Report:
    load_before = load_average_before()
    email = f"bench-{secrets.token_hex(6)}@example.com"
    password = secrets.token_urlsafe(12) + "-aA1"
    rows: list[Row] = []
    with workspace() as space:
        base = {**space.gigql_environment("WARNING"), "GIGQL_WS_ALLOW_ANONYMOUS": "true"}
        for name, limits in ((LIMITS_ON, COUNTING_RATE_LIMITS), (LIMITS_OFF, NO_RATE_LIMITS)):
            env = {**base, **limits}
            app = "server.cli:app_from_environment"
            with serve(name, app, space.workdir, env, factory=True, log_name=name) as server:
                if not rows:
                    account = {"name": "Bench", "email": email, "password": password}
                    mutate(server, SIGN_UP, "signUp", {**account, "roles": ["POSTER"]})
                token = log_in(server, email, password)
                rows.append(measure(server, "session", token, TYPENAME, args))
                rows.append(measure(server, "anonymous", None, TYPENAME, args))
                rows.append(measure(server, "session", token, ME, args))
    load = (
        f"{args.sockets} websocket clients in the benchmark's process, {args.warmup} s "
        f"warm-up then {args.duration} s per row, on the same machine"
    )
    return Report(host_facts(load_before, load), rows)


def markdown(report: Report) -> str:
    lines = [
        *machine_markdown(report.machine),
        "",
        "## CPU per websocket operation",
        "",
        "| server | socket | query | operations/s | server CPU µs/op |",
        "| --- | --- | --- | ---: | ---: |",
    ]
    for r in report.rows:
        lines.append(
            f"| {r.server} | {r.socket} | `{r.query}` | {r.operations_per_s:,.0f} "
            f"| {r.server_cpu_us_per_operation:.0f} |"
        )
    floor = report.cpu(LIMITS_OFF, "anonymous")
    session = report.cpu(LIMITS_OFF, "session") - floor
    limits = report.cpu(LIMITS_ON, "anonymous") - floor
    both = report.cpu(LIMITS_ON, "session") - floor
    lines += [
        "",
        f"On `{TYPENAME}`, against an anonymous socket with the rate limits off "
        f"({floor:.0f} µs):",
        "",
        f"- admitting each operation against its session: {session:+.0f} µs "
        f"(**{session / floor:+.1%}**)",
        f"- the rate limits: {limits:+.0f} µs (**{limits / floor:+.1%}**)",
        f"- both: {both:+.0f} µs (**{both / floor:+.1%}**; target: at most +10 %)",
    ]
    return "\n".join(lines) + "\n"


def as_json(report: Report) -> dict[str, Any]:
    return {"machine": report.machine, "rows": [asdict(r) for r in report.rows]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ws_operations",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("--duration", type=float, default=8, help="seconds per row (default 8)")
    parser.add_argument("--warmup", type=float, default=2, help="seconds first (default 2)")
    parser.add_argument("--sockets", type=int, default=8, help="websocket clients (default 8)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    args = parser.parse_args(argv)
    if min(args.duration, args.sockets) <= 0 or args.warmup < 0:
        parser.error("durations and counts must be positive")
    run_and_report(lambda: run(args), markdown, as_json, args.json)


if __name__ == "__main__":
    main()
