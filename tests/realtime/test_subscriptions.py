"""A broker subscription's own queue: bounded, in order, ended by its timer, and holding
next to nothing while idle (a websocket holds two subscriptions: its session's and its
operation's)."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Callable

import pytest

from realtime.broker import (
    ENDED,
    RESYNC,
    InProcessBroker,
    Message,
    SubscriberOverflow,
    Subscription,
)

IDLE = 500
MOST_BYTES_IDLE = 1024
"""An asyncio.Queue with its three deques and an Event came to about 3 KB."""


async def test_an_idle_subscription_holds_next_to_nothing() -> None:
    broker = InProcessBroker()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        subscriptions = [await broker.subscribe(f"user:{n}") for n in range(IDLE)]
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown / len(subscriptions) < MOST_BYTES_IDLE


async def test_messages_come_in_order_and_a_waiting_consumer_wakes() -> None:
    broker = InProcessBroker()
    async with await broker.subscribe("a") as subscription:
        waiting = asyncio.create_task(subscription.get())
        await asyncio.sleep(0)
        await broker.publish("a", b"one")
        await broker.publish("a", b"two")
        assert (await waiting).data == b"one"
        assert (await subscription.get()).data == b"two"
        assert not subscription.pending


async def test_a_full_queue_drops_and_the_consumer_learns_it() -> None:
    broker = InProcessBroker(queue_size=2)
    async with await broker.subscribe("a") as subscription:
        for n in range(3):
            await broker.publish("a", str(n).encode())
        assert subscription.pending
        with pytest.raises(SubscriberOverflow):
            await subscription.get()


async def test_the_end_wakes_a_waiting_consumer_and_ends_a_busy_one() -> None:
    broker = InProcessBroker()
    async with await broker.subscribe("a") as idle, await broker.subscribe("a") as busy:
        waiting = asyncio.create_task(idle.get())
        await asyncio.sleep(0)
        await broker.publish("b", b"elsewhere")
        await broker.publish("a", b"early")  # busy does not take it: the end comes first
        idle.discard_pending()
        for subscription in (idle, busy):
            subscription.end_after(0, lambda: TimeoutError("over"))
        await asyncio.sleep(0.01)
        with pytest.raises(TimeoutError, match="over"):
            await waiting
        with pytest.raises(TimeoutError, match="over"):
            await busy.get()


async def test_a_cancelled_wait_leaves_the_subscription_usable() -> None:
    broker = InProcessBroker()
    async with await broker.subscribe("a") as subscription:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(subscription.get(), 0.01)
        await broker.publish("a", b"after")
        assert (await subscription.get()).data == b"after"
        subscription.discard_pending()
        await broker.publish("a", b"again")
        subscription.discard_pending()
        assert not subscription.pending


async def test_a_callback_takes_what_was_queued_first_then_each_message_in_order() -> None:
    """`on_message`: the consumer needs no task waiting; nothing is queued for it."""
    broker = InProcessBroker()
    async with await broker.subscribe("a") as subscription:
        await broker.publish("a", b"queued")
        heard: list[bytes] = []
        subscription.on_message(lambda message: heard.append(message.data))
        await broker.publish("a", b"live")
        assert heard == [b"queued", b"live"]
        assert not subscription.pending


async def test_a_callback_hears_resync_for_what_was_dropped_before_it() -> None:
    broker = InProcessBroker(queue_size=1)
    async with await broker.subscribe("a") as subscription:
        for data in (b"kept", b"dropped"):
            await broker.publish("a", data)
        heard: list[Message] = []
        subscription.on_message(heard.append)
        assert heard[0] is RESYNC and [m.data for m in heard[1:]] == [b"kept"]


async def test_a_failing_callback_stops_no_one_elses_delivery() -> None:
    broker = InProcessBroker()
    async with await broker.subscribe("a") as failing, await broker.subscribe("a") as other:

        def fail(message: Message) -> None:
            raise RuntimeError("a bug of its own")

        failing.on_message(fail)
        await broker.publish("a", b"for both")
        assert (await other.get()).data == b"for both"


def timers_of(broker: InProcessBroker, subscriptions: list[Subscription]) -> int:
    """Timers on the running (asyncio) loop for the ends of these subscriptions: set by
    them, or by their hub."""
    owners = [*subscriptions, broker._hub.ends]
    scheduled = asyncio.get_running_loop()._scheduled  # type: ignore[attr-defined]
    return sum(
        not handle.cancelled()
        and any(getattr(handle._callback, "__self__", None) is owner for owner in owners)
        for handle in scheduled
    )


async def test_ends_come_in_their_order_on_one_timer_and_those_gone_are_forgotten() -> None:
    """Every socket's subscriptions end with its token: one timer a process for all of
    them, not a timer each (about half a KB an idle websocket held)."""
    broker = InProcessBroker()
    ended: list[str] = []

    def heard(name: str) -> Callable[[Message], None]:
        return lambda message: ended.append(name) if message is ENDED else None

    subscriptions = [await broker.subscribe("a") for _ in range(4)]
    gone = await broker.subscribe("a")
    for name, subscription, seconds in zip(
        "dcba", subscriptions, (0.2, 0.15, 0.1, 0.05), strict=True
    ):
        subscription.on_message(heard(name))
        subscription.end_after(seconds, lambda: TimeoutError("over"))
    gone.on_message(heard("gone"))
    gone.end_after(0.12, lambda: TimeoutError("over"))
    assert timers_of(broker, [*subscriptions, gone]) == 1
    await gone.__aexit__(None, None, None)  # leaves before its time

    await asyncio.sleep(0.3)
    assert ended == ["a", "b", "c", "d"]
    for subscription in subscriptions:
        with pytest.raises(TimeoutError, match="over"):
            await subscription.get()
        await subscription.__aexit__(None, None, None)
    assert timers_of(broker, subscriptions) == 0
