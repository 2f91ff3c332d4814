"""argon2 under a burst of concurrent password checks: memory and time per pool size.

`python -m bench.argon2_burst [--burst 24] [--json FILE]`: gigql at its production
settings and argon2 cost (time 3, 64 MiB, parallelism 4) receives `--burst` concurrent
failed logins, once per GIGQL_ARGON2_MAX_CONCURRENT of 1, 2 (the default) and the
yardstick: as many as the event loop's default executor has threads on this machine
(min(32, cores + 4)), which is how many hashes ran at once before the pool. Reported per
row: how much the process's peak resident memory (VmHWM) rose over its resident memory
before the burst, the burst's wall time until the last answer, and the process's CPU.
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.harness import (
    LOGIN,
    Server,
    cpu_seconds,
    fail,
    host_facts,
    load_average_before,
    machine_markdown,
    post,
    rss_bytes,
    run_and_report,
    serve,
    settle,
    workspace,
)

DEFAULT_EXECUTOR_THREADS = min(32, (os.cpu_count() or 1) + 4)
APP = "server.cli:app_from_environment"


@dataclass(frozen=True)
class Row:
    max_concurrent: int
    burst: int
    rss_before_mib: float
    peak_growth_mib: float
    wall_s: float
    cpu_s: float


@dataclass(frozen=True)
class Report:
    machine: dict[str, str]
    rows: list[Row]


def peak_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise ValueError(f"no VmHWM for process {pid}")


def failed_login(server: Server, n: int) -> None:
    variables = {"input": {"email": f"burst{n}@example.com", "password": "Wrong-Pass-1!"}}
    status, answer = post(server, {"query": LOGIN, "variables": variables}, timeout=300)
    codes = [e["code"] for e in answer["data"]["login"]["errors"]] if status == 200 else []
    if codes != ["INVALID_CREDENTIALS"]:
        fail(f"a guess was answered with HTTP {status}: {answer}")


def burst(server: Server, max_concurrent: int, size: int) -> Row:
    failed_login(server, -1)  # one hash done, as in a process that has served a while
    settle([server.pid])
    before = rss_bytes(server.pid)
    cpu_before = cpu_seconds(server.pid)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=size) as clients:
        list(clients.map(lambda n: failed_login(server, n), range(size)))
    wall = time.perf_counter() - started
    peak = peak_bytes(server.pid)
    mib = 1024 * 1024
    return Row(
        max_concurrent,
        size,
        round(before / mib, 1),
        round((peak - before) / mib, 1),
        round(wall, 2),
        round(cpu_seconds(server.pid) - cpu_before, 2),
    )


def run(args: argparse.Namespace) -> Report:
    load_before = load_average_before()
    rows = []
    with workspace() as space:
        for max_concurrent in (1, 2, DEFAULT_EXECUTOR_THREADS):
            env = {
                **space.gigql_environment("WARNING"),
                "GIGQL_ARGON2_MAX_CONCURRENT": str(max_concurrent),
                "GIGQL_LOGIN_IP_MAX_FAILURES": "100000",
            }
            name = f"gigql-argon2-{max_concurrent}"
            with serve(name, APP, space.workdir, env, factory=True) as server:
                rows.append(burst(server, max_concurrent, args.burst))
    load = f"{args.burst} concurrent failed logins over HTTP from one process"
    return Report(host_facts(load_before, load, ("argon2-cffi",)), rows)


def markdown(report: Report) -> str:
    lines = [
        *machine_markdown(report.machine, ("argon2-cffi",)),
        "",
        "| hashes at once | burst | RSS before (MiB) | peak rise (MiB) | wall (s) | CPU (s) |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in report.rows:
        label = f"{row.max_concurrent}" + (
            " (default executor, before the pool)"
            if row.max_concurrent == DEFAULT_EXECUTOR_THREADS
            else ""
        )
        lines.append(
            f"| {label} | {row.burst} | {row.rss_before_mib} | {row.peak_growth_mib} "
            f"| {row.wall_s} | {row.cpu_s} |"
        )
    return "\n".join(lines)


def as_json(report: Report) -> dict[str, Any]:
    return {"machine": report.machine, "rows": [asdict(row) for row in report.rows]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.argon2_burst", description=__doc__)
    parser.add_argument("--burst", type=int, default=24, help="concurrent logins (24)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    run_and_report(lambda: run(args), markdown, as_json, args.json)


if __name__ == "__main__":
    main()
