"""HTTP throughput and latency of gigql against a raw Starlette floor and a default
Strawberry app, what its rate limits and its metrics cost, and the cost of one login.

Run from the repository root: `python -m bench.run` (about 90 s; `--help` for the knobs).
Every server runs alone, one at a time, in its own `uvicorn` process with the same
options; wrk drives each with the same connections and the same request bodies.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from functools import partial
from typing import Any

from starlette.middleware.cors import CORSMiddleware

from bench.harness import (
    FIGURE_ALIGNMENT,
    FIGURE_HEADINGS,
    NO_RATE_LIMITS,
    TYPENAME,
    LoadResult,
    Server,
    add_load_arguments,
    check_load_arguments,
    cpu_seconds,
    expect,
    fail,
    figure_cells,
    load,
    load_average_before,
    load_options,
    log_in,
    machine_facts,
    machine_markdown,
    mutate,
    run_and_report,
    serve,
    workspace,
)
from documents.settings import Settings
from resolvers.accounts.auth.passwords import Passwords
from resolvers.accounts.auth.tokens import AccessTokens
from schema.common.operation_metrics import Outcome
from schema.common.rate_limits import RateLimits
from schema.schema import build_schema
from server.middleware import EdgeMiddleware
from server.observability.http_metrics import HttpRoutes
from server.observability.mongodb import CommandDurations
from server.runtime import jwt_secret

ME = "{ me { id name email } }"
UNLIMITED = "gigql, rate limits off"
UNMEASURED = "gigql, metrics off"
NO_METRICS = {"GIGQL_METRICS": "false"}
"""The metrics middleware and every count off (server/observability/), to measure them."""
SIGN_UP = "mutation($input: SignUpInput!) { signUp(input: $input) { errors { code message } } }"


# --- login cost -----------------------------------------------------------------------


@dataclass(frozen=True)
class Timing:
    what: str
    samples_ms: list[float] = field(repr=False)
    cpu_ms: float
    """Mean CPU time per operation, all threads: argon2 spreads its lanes over cores."""

    @property
    def mean_ms(self) -> float:
        return statistics.fmean(self.samples_ms)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples_ms)


def time_logins(server: Server, email: str, password: str, count: int) -> Timing:
    """Sequential logins over HTTP: argon2 verification plus the session and audit writes."""
    samples = []
    cpu_before = cpu_seconds(server.pid)
    for _ in range(count):
        started = time.perf_counter()
        log_in(server, email, password)
        samples.append((time.perf_counter() - started) * 1000)
    cpu_ms = (cpu_seconds(server.pid) - cpu_before) / count * 1000
    return Timing("login over HTTP (gigql)", samples, cpu_ms)


def default_passwords() -> Passwords:
    """Hashing at the cost production runs with: the defaults of Settings, not the env."""
    fields = Settings.model_fields
    return Passwords(
        int(fields["argon2_time_cost"].default),
        int(fields["argon2_memory_cost_kib"].default),
        int(fields["argon2_parallelism"].default),
    )


def time_hashing(count: int) -> list[Timing]:
    passwords = default_passwords()
    password = secrets.token_urlsafe(12)

    async def run() -> list[Timing]:
        hashes, verifications = [], []
        hash_cpu = verify_cpu = 0.0
        for _ in range(count):
            started, cpu = time.perf_counter(), time.process_time()
            hashed = await passwords.hash(password)
            hashes.append((time.perf_counter() - started) * 1000)
            hash_cpu += time.process_time() - cpu
            started, cpu = time.perf_counter(), time.process_time()
            if not await passwords.verify(hashed, password):
                fail("argon2 verification failed")
            verifications.append((time.perf_counter() - started) * 1000)
            verify_cpu += time.process_time() - cpu
        return [
            Timing("argon2id hash (Passwords)", hashes, hash_cpu / count * 1000),
            Timing("argon2id verify (Passwords)", verifications, verify_cpu / count * 1000),
        ]

    return asyncio.run(run())


# --- what the rate limits cost ---------------------------------------------------------


def time_rate_limits(settings: Settings, token: str, count: int) -> dict[str, float]:
    """CPU µs per request of what the rate limits add to one, in this process: finding
    the client (the account from the token's claims, verified once), counting the request,
    then its cost, on the in-process counters a server uses without Redis."""
    limits = RateLimits(settings)
    tokens = AccessTokens(
        jwt_secret(settings), settings.jwt_issuer, settings.jwt_audience, timedelta(minutes=15)
    )
    schema = build_schema(settings)

    async def count_requests(access_token: str | None, query: str) -> float:
        cost = schema.documents.prepare(schema._schema, query).cost(None)
        started = time.process_time()
        for _ in range(count):
            client = limits.client_of("127.0.0.1", access_token, tokens)
            await limits.admit(client, 1)
            await limits.charge(client, cost)
        return (time.process_time() - started) / count * 1_000_000

    async def run() -> dict[str, float]:
        return {TYPENAME: await count_requests(None, TYPENAME), ME: await count_requests(token, ME)}

    return asyncio.run(run())


# --- what the metrics cost --------------------------------------------------------------


def time_metrics(settings: Settings, count: int) -> dict[str, float]:
    """CPU µs of what the metrics add, in this process: per HTTP request, the count by
    route in the app's edge layer plus its operation's name, count and time (`{ __typename
    }`: nothing else);
    per MongoDB command, its round trip filed by PyMongo's listener (`ME` adds a few)."""
    schema = build_schema(settings)
    operations = schema.http_metrics
    prepared = schema.documents.prepare(schema._schema, TYPENAME)

    async def answer(scope: Any, receive: Any, send: Any) -> None:
        name, kind = operations.label(prepared, None)
        operations.name_request(name, kind)
        operations.record(name, kind, Outcome.OK, 0.0005)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    def edge(app: Any, routes: HttpRoutes | None) -> EdgeMiddleware:
        cors = partial(CORSMiddleware, allow_origins=settings.cors_origins)
        return EdgeMiddleware(app, max_bytes=settings.max_body_bytes, cors=cors, routes=routes)

    scope = {"type": "http", "path": "/graphql", "method": "POST", "headers": []}

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        return None

    async def requests(app: Any) -> float:
        started = time.process_time()
        for _ in range(count):
            await app(scope, receive, send)
        return time.process_time() - started

    def commands() -> float:
        listener = CommandDurations()
        event = _FindSucceeded()
        started = time.process_time()
        for _ in range(count):
            listener.succeeded(event)  # type: ignore[arg-type]
        return time.process_time() - started

    # The request through the edge layer counting it, with its operation counted, less the
    # same answer through the edge layer with neither.
    with_metrics = asyncio.run(requests(edge(answer, HttpRoutes(["/graphql"]))))
    bare = asyncio.run(requests(edge(_bare_answer, None)))
    return {
        "HTTP request": (with_metrics - bare) / count * 1_000_000,
        "MongoDB command": commands() / count * 1_000_000,
    }


async def _bare_answer(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


class _FindSucceeded:
    """The fields of a CommandSucceededEvent the listener reads."""

    command_name = "find"
    duration_micros = 420


# --- the run --------------------------------------------------------------------------


def answers_typename(answer: Any) -> bool:
    return bool(answer == {"data": {"__typename": "Query"}})


def answers_me(email: str) -> Callable[[Any], bool]:
    def check(answer: Any) -> bool:
        me = (answer.get("data") or {}).get("me") if isinstance(answer, dict) else None
        return "errors" not in answer and isinstance(me, dict) and me.get("email") == email

    return check


@dataclass(frozen=True)
class Row:
    result: LoadResult
    log_level: str
    """gigql's log level, "-" for the yardsticks."""


@dataclass
class Report:
    machine: dict[str, str]
    load: list[Row]
    login: list[Timing]
    ratios: dict[str, float]
    rate_limits_us: dict[str, float]
    """CPU µs per request of the rate limits alone, by query (`time_rate_limits`)."""
    metrics_us: dict[str, float]
    """CPU µs of the metrics alone, per HTTP request and per MongoDB command (`time_metrics`)."""


def run(args: argparse.Namespace) -> Report:
    options = load_options(args)
    load_before = load_average_before()
    rows: list[Row] = []
    log_levels = ["WARNING", "INFO"] if args.info_log else ["WARNING"]
    email = f"bench-{secrets.token_hex(6)}@example.com"
    password = secrets.token_urlsafe(12) + "-aA1"  # random, and passes the password policy
    typename = {"query": TYPENAME}
    logins: list[Timing] = []

    with workspace() as space:
        for name, app in (
            ("raw Starlette", "bench.baselines:raw_app"),
            ("Strawberry default", "bench.baselines:strawberry_app"),
        ):
            with serve(name, app, space.workdir, {}) as server:
                expect(server, typename, None, answers_typename)
                rows.append(Row(load(options, server, typename, TYPENAME), "-"))

        for level in log_levels:
            env = space.gigql_environment(level)
            app = "server.cli:app_from_environment"
            with serve(
                "gigql", app, space.workdir, env, factory=True, log_name=f"gigql-{level}"
            ) as server:
                if level == log_levels[0]:
                    account = {"name": "Bench", "email": email, "password": password}
                    mutate(server, SIGN_UP, "signUp", {**account, "roles": ["POSTER"]})
                token = log_in(server, email, password)  # fresh: a long run outlives a token
                me = {"query": ME}
                expect(server, typename, None, answers_typename)
                expect(server, me, token, answers_me(email))
                # The database too must be idle first: it may still be building what the
                # first start asked of it, on the same cores.
                rows.append(
                    Row(load(options, server, typename, TYPENAME, None, space.database_pid), level)
                )
                rows.append(Row(load(options, server, me, ME, token, space.database_pid), level))
                if not logins and args.logins:
                    logins.append(time_logins(server, email, password, args.logins))
            if level == log_levels[0]:
                # The same, without the rate limits: what counting each request costs.
                with serve(
                    UNLIMITED, app, space.workdir, {**env, **NO_RATE_LIMITS}, factory=True
                ) as server:
                    token = log_in(server, email, password)
                    expect(server, me, token, answers_me(email))
                    rows.append(
                        Row(
                            load(options, server, typename, TYPENAME, None, space.database_pid),
                            level,
                        )
                    )
                    rows.append(
                        Row(load(options, server, me, ME, token, space.database_pid), level)
                    )
                # The same, without the metrics: what counting for /metrics costs.
                with serve(
                    UNMEASURED, app, space.workdir, {**env, **NO_METRICS}, factory=True
                ) as server:
                    token = log_in(server, email, password)
                    expect(server, me, token, answers_me(email))
                    for body, query, bearer in ((typename, TYPENAME, None), (me, ME, token)):
                        rows.append(
                            Row(
                                load(options, server, body, query, bearer, space.database_pid),
                                level,
                            )
                        )
        limits_cost = time_rate_limits(
            space.gigql_settings(log_levels[0]), token, args.limiter_requests
        )
        metrics_cost = time_metrics(space.gigql_settings(log_levels[0]), args.limiter_requests)
    if args.logins:
        logins.extend(time_hashing(args.logins))

    return Report(
        machine_facts(options, load_before), rows, logins, ratios(rows), limits_cost, metrics_cost
    )


def ratios(rows: list[Row]) -> dict[str, float]:
    def rps(server: str) -> float:
        # WARNING is first: gigql's ratio is taken at the production log level.
        return next(
            row.result.requests_per_s
            for row in rows
            if row.result.server == server and row.result.query == TYPENAME
        )

    strawberry_rps = rps("Strawberry default")
    return {
        "gigql / Strawberry default": rps("gigql") / strawberry_rps,
        "raw Starlette / Strawberry default": rps("raw Starlette") / strawberry_rps,
        "gigql / raw Starlette": rps("gigql") / rps("raw Starlette"),
    }


# --- output ---------------------------------------------------------------------------


def markdown(report: Report) -> str:
    lines = [
        *machine_markdown(report.machine),
        "",
        "## Throughput and latency",
        "",
        f"| server | query | gigql log level | {FIGURE_HEADINGS} |",
        f"| --- | --- | --- | {FIGURE_ALIGNMENT} |",
    ]
    for row in report.load:
        r = row.result
        lines.append(
            "| " + " | ".join([r.server, f"`{r.query}`", row.log_level, *figure_cells(r)]) + " |"
        )
    lines += ["", "Ratios of requests/s on `{ __typename }` (gigql at log level WARNING):", ""]
    for name, value in report.ratios.items():
        target = " (target: at least 5, issue 16)" if name == "gigql / Strawberry default" else ""
        lines.append(f"- {name}: **{value:.2f}**{target}")
    lines += [
        "",
        "## What the rate limits cost",
        "",
        "| query | server CPU µs/req, rate limits on | off | on / off "
        "| the rate limits alone, µs/req | alone / off |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for query, alone in report.rate_limits_us.items():
        on, off = (cpu_per_request(report, server, query) for server in ("gigql", UNLIMITED))
        lines.append(
            f"| `{query}` | {on:.0f} | {off:.0f} | {on / off:.2f} | {alone:.1f} "
            f"| {alone / off:.1%} |"
        )
    lines += [
        "",
        "## What the metrics cost",
        "",
        "| query | server CPU µs/req, metrics on | off | on / off (target: under 1.05) |",
        "| --- | ---: | ---: | ---: |",
    ]
    for query in (TYPENAME, ME):
        on, off = (cpu_per_request(report, server, query) for server in ("gigql", UNMEASURED))
        lines.append(f"| `{query}` | {on:.0f} | {off:.0f} | {on / off:.3f} |")
    lines += ["", "The metrics alone, in process (`time_metrics`):", ""]
    for what, alone in report.metrics_us.items():
        lines.append(f"- per {what}: {alone:.1f} µs")
    if report.login:
        lines += [
            "",
            "## Login cost",
            "",
            "| what | n | mean ms | median ms | min ms | max ms | CPU ms each |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
        ]
        for t in report.login:
            lines.append(
                f"| {t.what} | {len(t.samples_ms)} | {t.mean_ms:.1f} | {t.median_ms:.1f} "
                f"| {min(t.samples_ms):.1f} | {max(t.samples_ms):.1f} | {t.cpu_ms:.0f} |"
            )
    return "\n".join(lines) + "\n"


def cpu_per_request(report: Report, server: str, query: str) -> float:
    """At log level WARNING, the first of each server's rows."""
    return next(
        row.result.server_cpu_us_per_request
        for row in report.load
        if row.result.server == server and row.result.query == query
    )


def row_json(row: Row) -> dict[str, Any]:
    figures = asdict(row.result)
    server, query = figures.pop("server"), figures.pop("query")
    return {"server": server, "query": query, "log_level": row.log_level, **figures}


def as_json(report: Report) -> dict[str, Any]:
    return {
        "machine": report.machine,
        "load": [row_json(row) for row in report.load],
        "login": [
            {
                "what": t.what,
                "n": len(t.samples_ms),
                "mean_ms": t.mean_ms,
                "median_ms": t.median_ms,
                "cpu_ms": t.cpu_ms,
                "samples_ms": t.samples_ms,
            }
            for t in report.login
        ],
        "ratios": report.ratios,
        "rate_limits_us_per_request": report.rate_limits_us,
        "metrics_us": report.metrics_us,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    add_load_arguments(parser)
    parser.add_argument(
        "--logins", type=int, default=20, help="logins and argon2 hashes to time (default 20)"
    )
    parser.add_argument(
        "--limiter-requests",
        type=int,
        default=20_000,
        help="requests counted in process to time the rate limits, and the metrics, alone "
        "(default 20000)",
    )
    parser.add_argument(
        "--no-info-log",
        dest="info_log",
        action="store_false",
        help="skip the gigql rows at log level INFO (one access log line per request)",
    )
    args = parser.parse_args(argv)
    check_load_arguments(parser, args, args.logins)
    run_and_report(lambda: run(args), markdown, as_json, args.json)


if __name__ == "__main__":
    main()
