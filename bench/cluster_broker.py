"""Publish to deliver through the broker: a three-node Redis Cluster (sharded pub/sub)
next to a single Redis, the yardstick, in the same run.

One process holds two brokers, a publisher and a subscriber, as two API instances would.
The subscriber follows `--topics` topics, one local subscriber each; `--publishers`
concurrent tasks publish `--messages` messages round-robin over the topics, each
awaiting its publish as a mutation does, and a round ends when every message has been
delivered. Reported per setup (the median of `--rounds`, the setups alternating): messages
delivered a second, this process's CPU per message (both brokers: publishing and
reading), and the Redis servers' (the sum over the cluster's nodes).

    python -m bench.cluster_broker [--messages 20000] [--topics 300] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from bench.harness import cpu_seconds, host_facts, load_average_before, machine_markdown
from realtime.broker import Broker, RedisBroker, Subscription
from realtime.cluster import ClusterBroker
from realtime.redis_urls import cluster_address
from tests.support.redis_cluster import OwnCluster
from tests.support.services import OwnRedis


@dataclass(frozen=True)
class Round:
    messages_per_second: float
    client_cpu_us: float
    redis_cpu_us: float


def _broker(url: str) -> Broker:
    address = cluster_address(url)
    return RedisBroker(url) if address is None else ClusterBroker(address)


async def _drain(subscriptions: list[Subscription], expected: int) -> None:
    async def one(subscription: Subscription) -> int:
        received = 0
        while received < expected:
            await subscription.get()
            received += 1
        return received

    await asyncio.gather(*(one(s) for s in subscriptions))


async def _round(url: str, redis_pids: list[int], args: argparse.Namespace) -> Round:
    publisher, subscriber = _broker(url), _broker(url)
    topics = [f"bench:{n}" for n in range(args.topics)]
    payload = b"x" * args.payload
    per_topic = args.messages // args.topics
    try:
        subscriptions = [await subscriber.subscribe(topic) for topic in topics]
        await publisher.publish(topics[0], b"warm")  # the clients' first connections
        await subscriptions[0].get()

        async def publish(lane: int) -> None:
            for n in range(lane, per_topic * args.topics, args.publishers):
                await publisher.publish(topics[n % args.topics], payload)

        redis_before = sum(cpu_seconds(pid) for pid in redis_pids)
        cpu_before, started = time.process_time(), time.perf_counter()
        await asyncio.gather(
            _drain(subscriptions, per_topic), *(publish(lane) for lane in range(args.publishers))
        )
        elapsed = time.perf_counter() - started
        client_cpu = time.process_time() - cpu_before
        redis_cpu = sum(cpu_seconds(pid) for pid in redis_pids) - redis_before
        await asyncio.sleep(0.2)  # for a duplicate to show
        if any(subscription.pending for subscription in subscriptions):
            raise SystemExit("bench: a message was delivered twice")
        for subscription in subscriptions:
            await subscription.__aexit__(None, None, None)
    finally:
        await publisher.close()
        await subscriber.close()
    total = per_topic * args.topics
    return Round(total / elapsed, client_cpu / total * 1e6, redis_cpu / total * 1e6)


def _median(rounds: list[Round]) -> Round:
    return Round(
        statistics.median(r.messages_per_second for r in rounds),
        statistics.median(r.client_cpu_us for r in rounds),
        statistics.median(r.redis_cpu_us for r in rounds),
    )


async def _run(args: argparse.Namespace, workdir: Path) -> dict[str, Round]:
    single = OwnRedis(workdir / "single")
    (workdir / "single").mkdir()
    cluster = OwnCluster(workdir / "cluster")
    single.start()
    try:
        cluster.start()
        setups = {
            "single Redis (PUBLISH/SUBSCRIBE)": (single.url, [_pid(single.process)]),
            "Redis Cluster, 3 nodes (SPUBLISH/SSUBSCRIBE)": (
                cluster.url,
                [_pid(node.process) for node in cluster.nodes],
            ),
        }
        rounds: dict[str, list[Round]] = {name: [] for name in setups}
        for n in range(args.rounds):
            for name, (url, pids) in setups.items():
                result = await _round(url, pids, args)
                rounds[name].append(result)
                print(
                    f"bench: round {n + 1} {name}: {result.messages_per_second:,.0f} msg/s, "
                    f"{result.client_cpu_us:.0f} µs client, {result.redis_cpu_us:.0f} µs Redis",
                    file=sys.stderr,
                )
        return {name: _median(results) for name, results in rounds.items()}
    finally:
        cluster.stop()
        single.stop()


def _pid(process: object) -> int:
    pid = getattr(process, "pid", None)
    assert isinstance(pid, int), "the server is not running"
    return pid


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.cluster_broker", description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--topics", type=int, default=300)
    parser.add_argument("--publishers", type=int, default=16)
    parser.add_argument("--payload", type=int, default=400, help="bytes per message")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    load_before = load_average_before()
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as workdir:
        results = asyncio.run(_run(args, Path(workdir)))
    load = (
        f"{args.messages:,} messages of {args.payload} bytes over {args.topics} topics, "
        f"{args.publishers} publishing tasks, median of {args.rounds} alternating rounds"
    )
    lines = [*machine_markdown(host_facts(load_before, load)), ""]
    lines += [
        "| setup | messages/s | client CPU µs/msg | Redis CPU µs/msg |",
        "| --- | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {name} | {r.messages_per_second:,.0f} | {r.client_cpu_us:.0f} | {r.redis_cpu_us:.0f} |"
        for name, r in results.items()
    ]
    print("\n".join(lines))


if __name__ == "__main__":
    main()
