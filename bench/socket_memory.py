"""Where an idle subscription's memory goes: tracemalloc in the server measured by
bench/chat_fanout.py, with the same clients (bench/chat_clients.py) in processes of
their own, so that nothing the clients allocate is counted.

Run from the repository root: `python -m bench.socket_memory` (`--help` for the knobs).
The gigql server (or the raw yardstick, `--raw`) runs in a uvicorn child process under
tracemalloc (`bench/traced_app.py`); a snapshot is taken after one subscriber has come
and gone, another with `--sockets` subscribers idle, and the difference is printed per
socket, grouped by the innermost frame of the repository's own code in each
allocation's traceback (what our code called that allocated it), and by allocation
site. The RSS growth is printed beside it, as the benchmark reports RSS.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import time
import tracemalloc
from collections import defaultdict
from pathlib import Path

from bench.chat_fanout import LOG_LEVEL, SELECTION, connected, open_chats, subscribers
from bench.harness import REPO, redis_server, rss_bytes, serve, settle, workspace

_VENDORED = ("site-packages", "/lib/python3")


def _ours(filename: str) -> bool:
    return filename.startswith(str(REPO)) and not any(v in filename for v in _VENDORED)


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/lib/python3.", str(REPO) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def _snapshot(pid: int, path: Path) -> tracemalloc.Snapshot:
    path.unlink(missing_ok=True)
    os.kill(pid, signal.SIGUSR1)
    deadline = time.monotonic() + 60
    while not path.with_suffix(".done").exists():
        if time.monotonic() > deadline:
            raise SystemExit(f"no snapshot from {pid}")
        time.sleep(0.1)
    path.with_suffix(".done").unlink()
    return tracemalloc.Snapshot.load(str(path))


def report(
    before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, sockets: int, top: int
) -> None:
    by_ours: dict[str, int] = defaultdict(int)
    by_site: dict[tuple[str, str], int] = defaultdict(int)
    by_package: dict[str, int] = defaultdict(int)
    total = 0
    for stat in after.compare_to(before, "traceback"):
        size = stat.size_diff
        total += size
        frames = list(reversed(stat.traceback))  # tracemalloc's order is oldest first
        ours = next((f for f in frames if _ours(f.filename)), None)
        site = frames[0]
        owner = f"{_short(ours.filename)}:{ours.lineno}" if ours else "(library only)"
        by_ours[owner] += size
        by_site[(f"{_short(site.filename)}:{site.lineno}", owner)] += size
        by_package[_short(site.filename).split("/")[0]] += size
    print(f"total: {total / sockets / 1024:.2f} KB per socket ({total / 2**20:.1f} MB)")
    print("\nby package of the allocation site (KB per socket):")
    for package, size in sorted(by_package.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {size / sockets / 1024:7.3f}  {package}")
    print("\nby the innermost frame of our code (KB per socket):")
    for owner, size in sorted(by_ours.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {size / sockets / 1024:7.3f}  {owner}")
    print("\nby allocation site, with our frame (KB per socket):")
    for (where, owner), size in sorted(by_site.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {size / sockets / 1024:7.3f}  {where}  <- {owner}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sockets", type=int, default=300, help="idle subscribers (default 300)")
    parser.add_argument("--top", type=int, default=40, help="rows per table (default 40)")
    parser.add_argument("--frames", type=int, default=30, help="traceback depth (default 30)")
    parser.add_argument("--raw", action="store_true", help="the raw yardstick instead")
    parser.add_argument(
        "--collect", action="store_true", help="run the cycle collector before each snapshot"
    )
    parser.add_argument("--save", help="keep both snapshots at this path (.before, .after)")
    args = parser.parse_args(argv)
    conversations = (args.sockets + 1) // 2
    with workspace() as space, redis_server(space.workdir) as redis_url:
        chats = asyncio.run(open_chats(space, conversations))
        subscribed = subscribers(chats)[: args.sockets]
        dump = space.workdir / "snapshot.bin"
        traced = {
            "BENCH_TRACE_FRAMES": str(args.frames),
            "BENCH_TRACE_PATH": str(dump),
            "BENCH_TRACE_GC": "1" if args.collect else "0",
            "BENCH_TRACED_APP": "bench.raw_chat" if args.raw else "server.cli",
            "REDIS_URL": redis_url,
        }
        env = traced if args.raw else {**space.gigql_environment(LOG_LEVEL), **traced}
        app = "bench.traced_app:app_from_environment"
        with serve("traced", app, space.workdir, env, factory=True) as server:
            with connected(server, subscribed[:1], SELECTION, 1):
                pass
            settle([server.pid])
            rss_before = rss_bytes(server.pid)
            before = _snapshot(server.pid, dump)
            with connected(server, subscribed, SELECTION, 2):
                settle([server.pid])
                rss_after = rss_bytes(server.pid)
                after = _snapshot(server.pid, dump)
    count = len(subscribed)
    print(f"{'raw' if args.raw else 'gigql'}: {count} idle subscriptions")
    print(f"RSS: {(rss_after - rss_before) / count / 1024:.2f} KB per socket (under tracemalloc)")
    report(before, after, count, args.top)
    if args.save:
        before.dump(f"{args.save}.before")
        after.dump(f"{args.save}.after")


if __name__ == "__main__":
    main()
