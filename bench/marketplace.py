"""Marketplace reads under load: gigql's task feed and nearby-provider search against a
raw Starlette endpoint sending the same database queries, on the demo marketplace.

Run from the repository root: `python -m bench.marketplace` (about 4 minutes with the
seeding; `--help` for the knobs). The database is seeded in-process with
`server.demo_data.seed_demo`, as `gigql seed --demo` does; then each server runs alone in
its own `uvicorn` process with the same options, and wrk drives each with the same
requests. Before any load, both servers' database commands are recorded in-process and
must be the same, and both servers' answers over HTTP must be equal.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

import httpx
from pymongo import monitoring

from bench import raw_marketplace
from bench.harness import (
    FIGURE_ALIGNMENT,
    FIGURE_HEADINGS,
    LoadOptions,
    LoadResult,
    Server,
    add_load_arguments,
    check_load_arguments,
    expect,
    fail,
    figure_cells,
    load,
    load_average_before,
    load_options,
    log_in,
    machine_facts,
    machine_markdown,
    run_and_report,
    serve,
    workspace,
)
from bench.raw_marketplace import FEED, PAGE, PROVIDERS, SYDNEY
from documents.settings import Settings
from server.app import create_app
from server.demo_data import DEMO_DOMAIN, DEMO_PASSWORD, DemoCounts, seed_demo
from server.runtime import jwt_secret, open_runtime

GIGQL = "gigql"
RAW = "raw Starlette"
LOG_LEVEL = "WARNING"  # production's choice in bench/run.py: no access line per request
# Who the requests come from: a demo poster, logged in over HTTP (see `run`).
VIEWER = f"poster0@{DEMO_DOMAIN}"


@dataclass(frozen=True)
class Operation:
    name: str
    """The GraphQL operation name, which the raw server dispatches on."""
    label: str
    field: str
    """The root field of the answer."""
    query: str

    def body(self) -> dict[str, Any]:
        return {"query": self.query, "operationName": self.name}


FEED_OPERATION = Operation(
    FEED,
    "task feed",
    "tasks",
    f"query {FEED} {{ tasks(first: {PAGE}) {{ edges {{ node {{ id title "
    "budget { amount currency } offerCount poster { id name } } } "
    "pageInfo { hasNextPage endCursor } } }",
)
PROVIDERS_OPERATION = Operation(
    PROVIDERS,
    "nearby providers",
    "searchProviders",
    f"query {PROVIDERS} {{ searchProviders(first: {PAGE}, filter: {{near: "
    f"{{latitude: {SYDNEY.latitude}, longitude: {SYDNEY.longitude}, "
    f"radiusKm: {SYDNEY.radius_km}}}}}, sort: DISTANCE) {{ edges {{ node {{ "
    "user { id name } profile { hourlyRate { amount currency } rating { average count } } "
    "distanceKm } } pageInfo { hasNextPage endCursor } } }",
)
OPERATIONS = (FEED_OPERATION, PROVIDERS_OPERATION)


# --- seeding --------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeding:
    counts: DemoCounts
    seconds: float
    """Wall time of `seed_demo`: one argon2 hash, then the inserts in chunks of 1,000."""


async def seed(settings: Settings, tasks: int, providers: int, posters: int) -> Seeding:
    async with open_runtime(settings) as runtime:
        started = time.perf_counter()
        counts = await seed_demo(
            runtime.services, tasks=tasks, providers=providers, posters=posters
        )
        return Seeding(counts, time.perf_counter() - started)


# --- the same queries -----------------------------------------------------------------

# What decides a read's result; the rest of a command is transport (sessions, cursors).
QUERY_KEYS = ("filter", "sort", "projection", "skip", "limit", "hint", "pipeline")


class CommandRecorder(monitoring.CommandListener):
    """The reads sent to one database, comparable between clients."""

    def __init__(self, database_name: str) -> None:
        self.database_name = database_name
        self.commands: list[Any] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.database_name != self.database_name or event.command_name not in (
            "find",
            "aggregate",
        ):
            return
        command = event.command
        self.commands.append(
            [
                event.command_name,
                command[event.command_name],
                *[(key, _comparable(command[key])) for key in QUERY_KEYS if key in command],
            ]
        )

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _comparable(value: Any) -> Any:
    """Documents as ordered pairs (a sort's order matters); `$in` lists as sets, since
    gigql's loaders ask for a set of ids, in no particular order; times as a mere time,
    since the feed's windows are counted back from the moment each server asks."""
    if isinstance(value, datetime):
        return "a time"
    if isinstance(value, Mapping):
        return [
            (key, sorted(map(repr, item)) if key == "$in" else _comparable(item))
            for key, item in value.items()
        ]
    if isinstance(value, list | tuple):
        return [_comparable(item) for item in value]
    return value


async def record_commands(
    settings: Settings, token: str, raw_feed: str
) -> dict[tuple[str, str], list[Any]]:
    """Each operation once through each app in-process, with the benchmark's request;
    the find and aggregate commands each sent, by (server, operation)."""
    assert settings.mongodb_url is not None
    recorder = CommandRecorder(settings.mongodb_database)
    monitoring.register(recorder)  # before the clients below exist: they report to it
    recorded: dict[tuple[str, str], list[Any]] = {}
    async with open_runtime(settings) as runtime:
        apps = {
            GIGQL: create_app(settings, runtime),
            RAW: raw_marketplace.create_app(
                settings.mongodb_url, settings.mongodb_database, jwt_secret(settings), raw_feed
            ),
        }
        for server, app in apps.items():
            transport = httpx.ASGITransport(app=app)
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(transport=transport, base_url="http://bench") as client,
            ):
                for operation in OPERATIONS:
                    recorder.commands.clear()
                    response = await client.post(
                        "/graphql",
                        json=operation.body(),
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    if response.status_code != 200:
                        fail(f"{server} in-process: HTTP {response.status_code}: {response.text}")
                    recorded[server, operation.name] = list(recorder.commands)
    return recorded


def check_same_commands(
    recorded: dict[tuple[str, str], list[Any]], raw_feed: str
) -> dict[str, int]:
    """The number of commands of each operation, once both servers are seen to agree
    (but for the feed when the raw server is told to read it the old way)."""
    counts = {}
    for operation in OPERATIONS:
        gigql, raw = recorded[GIGQL, operation.name], recorded[RAW, operation.name]
        if gigql != raw and not (operation is FEED_OPERATION and raw_feed == "plain"):
            fail(
                f"{operation.label}: the raw server's commands differ from gigql's:\n"
                f"gigql: {gigql}\nraw:   {raw}"
            )
        counts[operation.label] = len(gigql)
    return counts


# --- answers --------------------------------------------------------------------------


def answers_page(operation: Operation) -> Callable[[Any], bool]:
    def check(answer: Any) -> bool:
        data = answer.get("data") if isinstance(answer, dict) else None
        found = data.get(operation.field) if isinstance(data, dict) else None
        edges = found.get("edges") if isinstance(found, dict) else None
        return "errors" not in answer and isinstance(edges, list) and 0 < len(edges) <= PAGE

    return check


def equal_to(expected: Any) -> Callable[[Any], bool]:
    def check(answer: Any) -> bool:
        return bool(answer == expected)

    return check


def items(answer: Any, operation: Operation) -> int:
    return len(answer["data"][operation.field]["edges"])


# --- the run --------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    connections: int
    result: LoadResult


@dataclass
class Report:
    machine: dict[str, str]
    seeding: Seeding
    commands: dict[str, int]
    """Database commands per request of each operation, the same for both servers."""
    items: dict[str, int]
    """Items on the page each operation returns, the same for both servers."""
    rows: list[Row]
    ratios: dict[str, dict[str, float]]
    raw_feed: str = "windows"
    """How the raw server read the feed (`--raw-feed`)."""


def levels(options: LoadOptions) -> list[LoadOptions]:
    """One connection (latency with nothing queued), then the connections asked for."""
    single = replace(options, connections=1, threads=1)
    return [single] if options.connections == 1 else [single, options]


def run(args: argparse.Namespace) -> Report:
    options = load_options(args)
    load_before = load_average_before()
    rows: list[Row] = []
    answers: dict[str, Any] = {}

    with workspace() as space:
        # gigql's settings in this process (seeding, recording its commands) and in its
        # server's environment are the same.
        settings = space.gigql_settings(LOG_LEVEL)
        print(
            f"bench: seeding {args.tasks} tasks, {args.providers} providers and "
            f"{args.posters} posters",
            file=sys.stderr,
        )
        seeding = asyncio.run(seed(settings, args.tasks, args.providers, args.posters))
        print(f"bench: seeded in {seeding.seconds:.1f} s", file=sys.stderr)

        app = "server.cli:app_from_environment"
        env = space.gigql_environment(LOG_LEVEL)
        with serve(GIGQL, app, space.workdir, env, factory=True) as server:
            # Logged in, as a marketplace's users mostly are; gigql reads who the viewer
            # is only when a field needs it, and neither of these does.
            token = log_in(server, VIEWER, DEMO_PASSWORD)
            recorded = asyncio.run(record_commands(settings, token, args.raw_feed))
            commands = check_same_commands(recorded, args.raw_feed)
            for operation in OPERATIONS:
                answers[operation.name] = expect(
                    server, operation.body(), token, answers_page(operation)
                )
            rows += load_all(options, server, token, space.database_pid)

        app = "bench.raw_marketplace:app_from_environment"
        env = {
            "MONGODB_URL": space.mongodb_url,
            "GIGQL_MONGODB_DATABASE": space.database_name,
            "GIGQL_JWT_SECRET": space.jwt_secret,  # to sign cursors as gigql does
            "BENCH_RAW_FEED": args.raw_feed,
        }
        with serve(RAW, app, space.workdir, env, factory=True) as server:
            for operation in OPERATIONS:
                # The very same JSON: ids, order, figures and cursors.
                expect(server, operation.body(), token, equal_to(answers[operation.name]))
            rows += load_all(options, server, token, space.database_pid)

    machine = machine_facts(options, load_before)
    machine["load"] = " and ".join(
        f"{level.threads} wrk thread{'s' * (level.threads > 1)} with {level.connections} "
        f"connection{'s' * (level.connections > 1)}"
        for level in levels(options)
    ) + (
        f", {options.warmup} s warm-up then {options.duration} s per row, "
        f"{options.timeout} s timeout, on the same machine"
    )
    sizes = {op.label: items(answers[op.name], op) for op in OPERATIONS}
    return Report(machine, seeding, commands, sizes, rows, ratios(rows), args.raw_feed)


def load_all(
    options: LoadOptions, server: Server, token: str, database_pid: int | None
) -> list[Row]:
    return [
        Row(level.connections, load(level, server, op.body(), op.label, token, database_pid))
        for op in OPERATIONS
        for level in levels(options)
    ]


def ratios(rows: list[Row]) -> dict[str, dict[str, float]]:
    """gigql / raw for each operation and number of connections: requests/s, latency
    and server CPU per request."""

    def find(server: str, label: str, connections: int) -> LoadResult:
        return next(
            row.result
            for row in rows
            if row.result.server == server
            and row.result.query == label
            and row.connections == connections
        )

    found = {}
    for row in rows:
        if row.result.server != GIGQL:
            continue
        gigql, label = row.result, row.result.query
        raw = find(RAW, label, row.connections)
        found[f"{label}, {row.connections} connection{'s' * (row.connections > 1)}"] = {
            "requests/s": _ratio(gigql.requests_per_s, raw.requests_per_s),
            "p50": _ratio(gigql.p50_ms, raw.p50_ms),
            "server CPU per request": _ratio(
                gigql.server_cpu_us_per_request, raw.server_cpu_us_per_request
            ),
        }
    return found


def _ratio(gigql: float, raw: float) -> float:
    """NaN when the raw row served nothing (a window too short for one request)."""
    return gigql / raw if raw else math.nan


# --- output ---------------------------------------------------------------------------


def markdown(report: Report) -> str:
    counts = report.seeding.counts
    lines = [
        *machine_markdown(report.machine),
        f"- Data: `seed_demo` with {counts.tasks:,} tasks, {counts.providers:,} providers, "
        f"{counts.posters:,} posters ({counts.offers:,} offers, {counts.packages:,} "
        f"packages), seeded in {report.seeding.seconds:.1f} s",
        "",
        "## Throughput and latency",
        "",
        f"| query | server | connections | {FIGURE_HEADINGS} |",
        f"| --- | --- | ---: | {FIGURE_ALIGNMENT} |",
    ]
    ordered = sorted(
        report.rows,
        key=lambda row: (
            [op.label for op in OPERATIONS].index(row.result.query),
            row.connections,
            row.result.server != RAW,
        ),
    )
    for row in ordered:
        r = row.result
        cells = [r.query, r.server, str(row.connections), *figure_cells(r)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "gigql / raw Starlette:", ""]
    for label, ratio in report.ratios.items():
        lines.append(
            f"- {label}: requests/s **{ratio['requests/s']:.2f}**, p50 "
            f"**{ratio['p50']:.2f}**, server CPU per request "
            f"**{ratio['server CPU per request']:.1f}**"
        )
    lines += ["", "Checked before the load, for each query:", ""]
    for operation in OPERATIONS:
        label = operation.label
        if operation is FEED_OPERATION and report.raw_feed == "plain":
            sent = (
                f"gigql's {report.commands[label]} database commands, the raw server's "
                "plain query and its users (not compared)"
            )
        else:
            sent = f"the same {report.commands[label]} database commands from both servers"
        lines.append(f"- {label}: {sent}, and the same answer ({report.items[label]} items)")
    return "\n".join(lines) + "\n"


def as_json(report: Report) -> dict[str, Any]:
    return {
        "machine": report.machine,
        "seeding": {**asdict(report.seeding.counts), "seconds": report.seeding.seconds},
        "queries": {op.label: op.query for op in OPERATIONS},
        "commands": report.commands,
        "items": report.items,
        "load": [{**asdict(row.result), "connections": row.connections} for row in report.rows],
        "ratios": report.ratios,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.marketplace",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    # Few connections: the database serves these requests one at a time, so more would
    # only queue longer (and the feed's take over a second each).
    add_load_arguments(parser, connections=4, timeout=60)
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks to seed (default 10000)")
    parser.add_argument(
        "--providers", type=int, default=1_000, help="providers to seed (default 1000)"
    )
    parser.add_argument("--posters", type=int, default=500, help="posters to seed (default 500)")
    parser.add_argument(
        "--raw-feed",
        choices=raw_marketplace.FEED_READS,
        default="windows",
        help="the raw server reads the feed in gigql's windows of created_at (default), "
        "or with the one plain query gigql sent before them",
    )
    args = parser.parse_args(argv)
    check_load_arguments(parser, args)
    if min(args.tasks, args.providers, args.posters) < 1:
        parser.error("seed at least one task, provider and poster")
    run_and_report(lambda: run(args), markdown, as_json, args.json)


if __name__ == "__main__":
    main()
