"""The broker on a Redis Cluster: sharded pub/sub on a three-node cluster of our own."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import pytest
import redis.asyncio as redis
from prometheus_client import REGISTRY
from redis.crc import key_slot

from realtime.broker import RESYNC, Message, Subscription
from realtime.cluster import ClusterBroker
from realtime.redis_urls import cluster_address
from schema.common.rate_limits import _shared_storage
from tests.support.redis_cluster import ClusterNode, OwnCluster, move_slot, own_cluster

TIMEOUT = 10.0
RESTART_TIMEOUT = 30.0
"""Seconds for a node to come back and the broker to subscribe again (backoff up to 5 s)."""


@pytest.fixture
def cluster(redis_cluster: OwnCluster) -> OwnCluster:
    return redis_cluster


@asynccontextmanager
async def broker_on(url: str) -> AsyncIterator[ClusterBroker]:
    address = cluster_address(url)
    assert address is not None
    broker = ClusterBroker(address)
    try:
        yield broker
    finally:
        await broker.close()


def topic_per_node(cluster: OwnCluster, prefix: str) -> dict[int, str]:
    """A topic on each node, by the node's port."""
    topics: dict[int, str] = {}
    n = 0
    while len(topics) < len(cluster.nodes):
        topic = f"{prefix}:{n}"
        topics.setdefault(cluster.node_owning(key_slot(topic.encode())).port, topic)
        n += 1
    return topics


async def shard_subscribers(node: ClusterNode, topic: str) -> int:
    client = redis.Redis(port=node.port)
    try:
        [(_, count)] = await client.pubsub_shardnumsub(topic)
        return int(count)
    finally:
        await client.aclose()


def reconnects_counted() -> float:
    value = REGISTRY.get_sample_value("gigql_broker_reconnects_total")
    return value or 0.0


def connected(broker: ClusterBroker) -> bool:
    return broker.connected


async def next_message(subscription: Subscription) -> Message:
    return await asyncio.wait_for(subscription.get(), TIMEOUT)


def test_cluster_urls_name_their_seed_nodes_and_login() -> None:
    address = cluster_address("rediss+cluster://ann:s%40cret@10.0.0.1:7000,10.0.0.2,[::1]:7002")
    assert address is not None
    assert address.seeds == (("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002))
    assert (address.username, address.password, address.tls) == ("ann", "s@cret", True)
    # The login goes to `limits` as options, never back into a URI.
    assert address.limits_uri() == ("async+redis+cluster://10.0.0.1:7000,10.0.0.2:6379,[::1]:7002")
    assert cluster_address("redis://127.0.0.1:6379/0") is None
    with pytest.raises(ValueError, match="at least one host:port"):
        cluster_address("redis+cluster://")
    with pytest.raises(ValueError, match="takes no \\?options"):
        cluster_address("redis+cluster://10.0.0.1:7000?ssl_cert_reqs=none")


def test_a_cluster_password_any_characters_reaches_the_rate_limits_and_no_uri() -> None:
    # Generated passwords hold `/`, `?` and `#`: put back into a URI they broke its parse,
    # whose error printed the password.
    url = "redis+cluster://:s3cr%2Fe%3Ft%23@10.0.0.1:7000,10.0.0.2:7001"
    storage, _ = _shared_storage(url)
    bridge = cast("Any", storage.bridge)
    assert bridge.parsed_auth == {"password": "s3cr/e?t#"}


async def test_a_cluster_carries_messages_between_instances_on_every_shard(
    cluster: OwnCluster,
) -> None:
    topics = topic_per_node(cluster, "spread")
    async with (
        broker_on(cluster.url) as instance_a,
        broker_on(cluster.url) as instance_b,
        await instance_b.subscribe(*topics.values()) as subscription,
    ):
        for topic in topics.values():
            await instance_a.publish(topic, f"hello {topic}".encode())
        received = [await next_message(subscription) for _ in topics]
        assert sorted((m.topic, m.data) for m in received) == sorted(
            (topic, f"hello {topic}".encode()) for topic in topics.values()
        )


async def test_each_topic_is_one_sharded_subscription_on_its_owner_alone(
    cluster: OwnCluster,
) -> None:
    """SSUBSCRIBE on the slot's owner, once per process however many local subscribers;
    SPUBLISH reaches that shard only: a plain (cluster-wide) subscriber hears nothing."""
    topics = topic_per_node(cluster, "owner")
    async with broker_on(cluster.url) as broker:
        subscriptions = [await broker.subscribe(topic) for topic in topics.values() for _ in "ab"]
        plain = redis.Redis(port=cluster.nodes[0].port).pubsub(ignore_subscribe_messages=True)
        await plain.subscribe(*topics.values())
        try:
            for node in cluster.nodes:
                for port, topic in topics.items():
                    assert await shard_subscribers(node, topic) == (port == node.port)
            for topic in topics.values():
                await broker.publish(topic, b"sharded")
            received = [await next_message(s) for s in subscriptions]
            assert {m.data for m in received} == {b"sharded"}
            assert await plain.get_message(timeout=0.5) is None
        finally:
            await plain.aclose()
            for subscription in subscriptions:
                await subscription.__aexit__(None, None, None)
        for node in cluster.nodes:  # the last local subscriber gone, so is the shard's
            for topic in topics.values():
                assert await shard_subscribers(node, topic) == 0


async def test_a_restarted_node_resyncs_its_topics_only_and_carries_them_again(
    tmp_path: Path,
) -> None:
    with own_cluster(tmp_path) as cluster:
        topics = topic_per_node(cluster, "restart")
        lost_port, lost_topic = next(iter(topics.items()))
        lost_node = next(node for node in cluster.nodes if node.port == lost_port)
        kept_topic = next(topic for port, topic in topics.items() if port != lost_port)
        async with (
            broker_on(cluster.url) as publisher,
            broker_on(cluster.url) as subscriber,
            await subscriber.subscribe(lost_topic) as on_lost,
            await subscriber.subscribe(kept_topic) as on_kept,
        ):
            # Both instances up and running before the node goes (the cluster client reads
            # the slot map and command table at its first command).
            await publisher.publish(kept_topic, b"before")
            assert (await next_message(on_kept)).data == b"before"
            await asyncio.to_thread(lost_node.kill)
            # The other shards keep carrying their topics while one is down.
            await publisher.publish(kept_topic, b"meanwhile")
            assert (await next_message(on_kept)).data == b"meanwhile"
            async with asyncio.timeout(TIMEOUT):
                while connected(subscriber):
                    await asyncio.sleep(0.02)

            reconnects = reconnects_counted()
            await asyncio.to_thread(lost_node.start)
            await asyncio.to_thread(cluster.wait_until_ok)
            assert await asyncio.wait_for(on_lost.get(), RESTART_TIMEOUT) is RESYNC
            assert connected(subscriber)
            assert reconnects_counted() == reconnects + 1
            await publisher.publish(lost_topic, b"back")
            assert (await next_message(on_lost)).data == b"back"
            assert await shard_subscribers(lost_node, lost_topic) == 1
            assert not on_kept.pending  # its node was never lost: no RESYNC for it


async def test_a_slot_moving_to_another_node_takes_its_topic_along(tmp_path: Path) -> None:
    """The node giving the slot away SUNSUBSCRIBEs its channels unasked: the topic is
    subscribed again on its new owner, and its subscription told to RESYNC."""
    with own_cluster(tmp_path) as cluster:
        topics = topic_per_node(cluster, "moving")
        source_port, topic = next(iter(topics.items()))
        source = next(node for node in cluster.nodes if node.port == source_port)
        target = next(node for node in cluster.nodes if node.port != source_port)
        async with (
            broker_on(cluster.url) as publisher,
            broker_on(cluster.url) as subscriber,
            await subscriber.subscribe(topic) as subscription,
        ):
            await publisher.publish(topic, b"before")
            assert (await next_message(subscription)).data == b"before"

            slot = key_slot(topic.encode())
            await asyncio.to_thread(move_slot, slot, source, target, cluster.nodes)
            assert await next_message(subscription) is RESYNC
            assert await shard_subscribers(target, topic) == 1
            assert await shard_subscribers(source, topic) == 0
            await publisher.publish(topic, b"moved")  # MOVED: the publisher follows
            assert (await next_message(subscription)).data == b"moved"
