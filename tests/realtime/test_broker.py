"""The broker: in-process and over Redis, one subscriber connection per process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from urllib.parse import urlsplit

import pytest
import redis.asyncio as redis

from documents.metrics import BROKER_RECONNECTS
from realtime.broker import RESYNC, InProcessBroker, Message, RedisBroker
from realtime.cluster import ClusterBroker
from realtime.redis_urls import cluster_address
from resolvers.common.request_ids import request_id_var
from tests.support.redis_cluster import OwnCluster
from tests.support.services import SilentProxy

TIMEOUT = 5


async def test_in_process_broker_delivers_to_every_subscriber_of_a_topic() -> None:
    broker = InProcessBroker()
    async with await broker.subscribe("a") as first, await broker.subscribe("a", "b") as second:
        await broker.publish("a", b"one")
        await broker.publish("b", b"two")
        assert (await first.get()).data == b"one"
        assert [(await second.get()).data for _ in range(2)] == [b"one", b"two"]
    await broker.publish("a", b"nobody listens")  # no error without subscribers


async def test_redis_carries_messages_between_instances(redis_url: str) -> None:
    instance_a, instance_b = RedisBroker(redis_url), RedisBroker(redis_url)
    try:
        async with await instance_b.subscribe("chat:42") as subscription:
            await instance_a.publish("chat:42", b"hello from A")
            message = await asyncio.wait_for(subscription.get(), TIMEOUT)
            assert (message.topic, message.data) == ("chat:42", b"hello from A")
    finally:
        await instance_a.close()
        await instance_b.close()


async def test_one_redis_connection_serves_all_local_subscribers(redis_url: str) -> None:
    broker = RedisBroker(redis_url)
    observer = redis.Redis.from_url(redis_url)
    topics = [f"fanout-test:{i}" for i in range(20)]
    try:
        subscriptions = [await broker.subscribe(topic) for topic in topics for _ in range(5)]
        counts = dict(await observer.pubsub_numsub(*topics))
        # 100 local subscribers, yet each channel has exactly one Redis subscriber: ours.
        assert all(counts[topic.encode()] == 1 for topic in topics), counts
        for topic in topics:
            await broker.publish(topic, topic.encode())
        received = await asyncio.wait_for(
            asyncio.gather(*(s.get() for s in subscriptions)), TIMEOUT
        )
        assert sorted({m.data for m in received}) == sorted(t.encode() for t in topics)

        for subscription in subscriptions:
            await subscription.__aexit__(None, None, None)
        # UNSUBSCRIBE travels on the subscriber connection; wait for Redis to have seen it.
        async with asyncio.timeout(TIMEOUT):
            while any(count for _, count in await observer.pubsub_numsub(*topics)):
                await asyncio.sleep(0.01)
    finally:
        await observer.aclose()
        await broker.close()


async def test_redis_broker_ping_fails_when_redis_is_unreachable() -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from server.embedded import free_port

    broker = RedisBroker(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(RedisConnectionError):
            await broker.ping()
    finally:
        await broker.close()


def _hear_request_id(heard: list[str | None], _message: Message) -> None:
    heard.append(request_id_var.get())


async def test_subscribers_hear_messages_outside_the_first_subscribers_context(
    redis_url: str, redis_cluster: OwnCluster
) -> None:
    """The reader that hands every message to the subscriptions is started by whichever
    subscribes first; it must not run in that caller's context (its request id, its
    websocket's frame target), which it would otherwise keep for the process's life and
    lend to every subscriber's callback."""
    address = cluster_address(redis_cluster.url)
    assert address is not None
    brokers: tuple[RedisBroker | ClusterBroker, ...] = (
        RedisBroker(redis_url),
        ClusterBroker(address),
    )
    for broker in brokers:
        heard: list[str | None] = []
        try:
            token = request_id_var.set("the-first-subscriber")
            try:
                subscription = await broker.subscribe("context:one")
            finally:
                request_id_var.reset(token)
            subscription.on_message(partial(_hear_request_id, heard))
            async with asyncio.timeout(TIMEOUT):
                while not heard:
                    await broker.publish("context:one", b"hello")
                    await asyncio.sleep(0.05)
            assert heard[0] is None, heard
            await subscription.__aexit__(None, None, None)
        finally:
            await broker.close()


# A subscriber connection gone silent without closing (a partition, a host gone without a
# word) never fails the reader's read, which waits without a timeout: the broker checks it.
CHECK_SECONDS, PONG_TIMEOUT = 0.2, 0.3
"""Quick checks, so that a test sees several."""


@asynccontextmanager
async def through_a_silent_proxy(
    redis_url: str,
) -> AsyncIterator[tuple[RedisBroker, SilentProxy, redis.Redis]]:
    """A broker whose Redis connections go through a proxy the test can silence, and a
    client of Redis itself to publish with."""
    address = urlsplit(redis_url)
    assert address.hostname is not None and address.port is not None
    direct = redis.Redis.from_url(redis_url)
    async with SilentProxy(address.hostname, address.port) as proxy:
        broker = RedisBroker(
            f"redis://127.0.0.1:{proxy.port}/0",
            health_check_seconds=CHECK_SECONDS,
            pong_timeout=PONG_TIMEOUT,
        )
        try:
            yield broker, proxy, direct
        finally:
            await broker.close()
            await direct.aclose()


async def test_a_silent_connection_is_dropped_and_subscribers_told_to_resync(
    redis_url: str,
) -> None:
    async with (
        through_a_silent_proxy(redis_url) as (broker, proxy, direct),
        await broker.subscribe("health:one") as subscription,
    ):
        await direct.publish("health:one", b"before")
        assert (await asyncio.wait_for(subscription.get(), TIMEOUT)).data == b"before"

        proxy.silence()
        await direct.publish("health:one", b"lost in the silence")
        # The silent connection is given up on: RESYNC, so the subscriber reads again
        # what it follows, then live messages flow on a new connection.
        assert await asyncio.wait_for(subscription.get(), TIMEOUT) is RESYNC
        async with asyncio.timeout(TIMEOUT):
            while (await direct.pubsub_numsub("health:one"))[0][1] < 2:
                await asyncio.sleep(0.02)  # the silent one still counts, and the new
        await direct.publish("health:one", b"after")
        assert (await asyncio.wait_for(subscription.get(), TIMEOUT)).data == b"after"


async def test_a_quiet_but_healthy_connection_is_kept(redis_url: str) -> None:
    reconnects = BROKER_RECONNECTS._value.get()
    async with (
        through_a_silent_proxy(redis_url) as (broker, proxy, direct),
        await broker.subscribe("health:two") as subscription,
    ):
        connections = proxy.connections
        await asyncio.sleep(2.0)  # several checks' worth of nothing published
        assert not subscription.pending
        assert proxy.connections == connections
        assert BROKER_RECONNECTS._value.get() == reconnects
        await direct.publish("health:two", b"still here")
        assert (await asyncio.wait_for(subscription.get(), TIMEOUT)).data == b"still here"
