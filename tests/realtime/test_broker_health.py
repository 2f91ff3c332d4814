"""The Redis broker notices a subscriber connection that went silent without closing.

Its reader waits for the next message without a timeout (realtime/broker.py tells why),
so a half-open connection (a partition, a host gone without a word) never fails that
read: without a check of its own, the broker would stay deaf, and what is published
meanwhile would be lost with no RESYNC to say so.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import redis.asyncio as redis

from documents.metrics import BROKER_RECONNECTS
from realtime.broker import RESYNC, RedisBroker
from tests.support.silent_proxy import SilentProxy

TIMEOUT = 10
CHECK_SECONDS, PONG_TIMEOUT = 0.2, 0.3
"""Quick checks, so that a test sees several."""


async def test_a_silent_connection_is_dropped_and_subscribers_told_to_resync(
    redis_url: str,
) -> None:
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
            async with await broker.subscribe("health:one") as subscription:
                await direct.publish("health:one", b"before")
                assert (await asyncio.wait_for(subscription.get(), TIMEOUT)).data == b"before"

                proxy.silence()
                await direct.publish("health:one", b"lost in the silence")
                # The silent connection is given up on: RESYNC, so the subscriber reads
                # again what it follows, then live messages flow on a new connection.
                assert await asyncio.wait_for(subscription.get(), TIMEOUT) is RESYNC
                async with asyncio.timeout(TIMEOUT):
                    while (await direct.pubsub_numsub("health:one"))[0][1] < 2:
                        await asyncio.sleep(0.02)  # the silent one still counts, and the new
                await direct.publish("health:one", b"after")
                assert (await asyncio.wait_for(subscription.get(), TIMEOUT)).data == b"after"
        finally:
            await broker.close()
            await direct.aclose()


async def test_a_quiet_but_healthy_connection_is_kept(redis_url: str) -> None:
    address = urlsplit(redis_url)
    assert address.hostname is not None and address.port is not None
    direct = redis.Redis.from_url(redis_url)
    reconnects = BROKER_RECONNECTS._value.get()
    async with SilentProxy(address.hostname, address.port) as proxy:
        broker = RedisBroker(
            f"redis://127.0.0.1:{proxy.port}/0",
            health_check_seconds=CHECK_SECONDS,
            pong_timeout=PONG_TIMEOUT,
        )
        try:
            async with await broker.subscribe("health:two") as subscription:
                connections = proxy.connections
                await asyncio.sleep(2.0)  # several checks' worth of nothing published
                assert not subscription.pending
                assert proxy.connections == connections
                assert BROKER_RECONNECTS._value.get() == reconnects
                await direct.publish("health:two", b"still here")
                assert (await asyncio.wait_for(subscription.get(), TIMEOUT)).data == b"still here"
        finally:
            await broker.close()
            await direct.aclose()
