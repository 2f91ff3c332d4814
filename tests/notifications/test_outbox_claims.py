"""A sender's run reads its due deliveries once and takes each by a conditional update:
one read however long the backlog, and still each delivery to exactly one sender."""

from __future__ import annotations

from datetime import timedelta

from bson import ObjectId

from documents.clock import utcnow
from documents.notifications.catalogue import Channel, NotificationKind
from documents.notifications.deliveries import Delivery, DeliveryStatus
from resolvers.common.request_ids import request_id_var
from resolvers.notifications.outbox import LEASE, claim, due, postpone, take
from resolvers.notifications.sending import BATCH, send_due
from server.runtime import Runtime
from tests.support.command_log import CommandLog


async def pending(count: int) -> list[Delivery]:
    now = utcnow() - timedelta(seconds=1)
    rows = [
        Delivery(
            key=f"test:{ObjectId()}",
            user_id=ObjectId(),
            kind=NotificationKind.PAYMENT_RECEIPT,
            channel=Channel.EMAIL,
            title="paid",
            context={},
            due_at=now + timedelta(milliseconds=n),
            created_at=now,
        )
        for n in range(count)
    ]
    await Delivery.insert_many(rows)
    return await Delivery.find({"key": {"$in": [r.key for r in rows]}}).sort("due_at").to_list()


async def test_a_run_reads_its_deliveries_once_and_claims_none_by_find_and_modify(
    runtime: Runtime, command_log: CommandLog
) -> None:
    await pending(5)
    token = request_id_var.set("sender-run")
    try:
        with command_log.recording("sender-run") as commands:
            handled = await send_due(runtime.services)
    finally:
        request_id_var.reset(token)

    assert handled == 5
    on_deliveries = [
        command for command, collection in commands if collection == "notification_deliveries"
    ]
    # One read, then per delivery its claim and its ending (the accounts do not exist).
    assert on_deliveries == ["find"] + ["update", "update"] * 5, commands
    ended = await Delivery.find({"status": DeliveryStatus.SKIPPED.value}).count()
    assert ended == 5


async def test_a_candidate_another_sender_took_or_moved_is_not_taken_again(
    runtime: Runtime,
) -> None:
    first, second, third = await pending(3)
    now = utcnow()
    candidates = await due(now, 10)
    assert [c.id for c in candidates] == [first.id, second.id, third.id]

    # Meanwhile another sender claims the first and postpones the second.
    other = await claim(now)
    assert other is not None and other.id == first.id
    postponed = await take(candidates[1], now)
    assert postponed is not None
    await postpone(postponed, now + timedelta(minutes=1))

    assert await take(candidates[0], now) is None  # held by the other sender
    assert await take(candidates[1], now) is None  # due later now
    mine = await take(candidates[2], now)
    assert mine is not None and mine.id == third.id
    assert await take(candidates[2], now) is None  # once


async def test_a_lease_still_running_is_not_a_candidate_and_one_run_out_is(
    runtime: Runtime,
) -> None:
    (only,) = await pending(1)
    now = utcnow()
    held = await claim(now)
    assert held is not None and held.id == only.id
    assert await due(now, 10) == []
    later = now + LEASE + timedelta(seconds=1)
    (again,) = await due(later, 10)
    retaken = await take(again, later)
    assert retaken is not None and retaken.lease_id != held.lease_id


async def test_a_run_sends_the_whole_backlog_not_one_batch(runtime: Runtime) -> None:
    """A batch a run (every few seconds) would cap sending at that many per interval and
    instance, far below what a busy marketplace makes: a run reads again while it finds
    a full batch."""
    backlog = await pending(BATCH * 2 + 7)
    assert await send_due(runtime.services) == len(backlog)
    assert await Delivery.find({"status": DeliveryStatus.PENDING.value}).count() == 0


async def test_deliveries_another_sender_holds_do_not_hide_those_behind_them(
    runtime: Runtime,
) -> None:
    """A full batch's worth held at the head of the queue (being sent by another
    instance, or by one that died, until its leases run out) is passed over by the read
    itself, so what is due behind it goes out now."""
    queue = await pending(BATCH + 3)
    now = utcnow()
    for held in queue[:BATCH]:
        assert await take(held, now) is not None  # by another sender
    assert await send_due(runtime.services) == 3
    still_held = await Delivery.find({"status": DeliveryStatus.PENDING.value}).count()
    assert still_held == BATCH
