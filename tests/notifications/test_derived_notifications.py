"""Notifications derived from the stored domain event after the commit (the outbox).

The change's transaction stores the event; right after the commit the request makes its
notifications and deliveries, and a job makes those a crash in between left unmade.
Each is made once however many runners derive the event, and none for a change that
rolled back.
"""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.clock import utcnow
from documents.events import DomainEvent, EventKind, Notification
from documents.notifications.catalogue import NotificationKind
from documents.notifications.deliveries import Delivery
from documents.notifications.preferences import NotificationPreferences
from documents.transactions import run_in_transaction
from resolvers.common.unit_of_work import UnitOfWork, after_commit, event_message, transact
from resolvers.notifications.outbox import DERIVE_AFTER, derive, derive_pending
from server.runtime import Runtime


def paid(unit: UnitOfWork, payer: ObjectId, provider: ObjectId) -> None:
    """A payment's event: both sides notified, each by a kind of their own."""
    unit.emit(
        EventKind.PAYMENT_SUCCEEDED,
        actor_id=None,
        audience=[payer, provider],
        title="$10.00 paid into escrow",
        payer_id=payer,
    )


async def committed_then_crashed(payer: ObjectId, provider: ObjectId) -> DomainEvent:
    """The event as a request leaves it that stops right after its commit: stored,
    nothing derived from it."""

    async def attempt(session: AsyncClientSession) -> list[DomainEvent]:
        unit = UnitOfWork(session)
        paid(unit, payer, provider)
        await unit._save()
        return unit.events

    (event,) = await run_in_transaction(attempt)
    return event


async def made_for(event: DomainEvent) -> tuple[list[tuple[ObjectId, str]], list[str]]:
    """The event's notifications (person, title) and its deliveries' keys."""
    notifications = await Notification.find({"event_id": event.id}).to_list()
    deliveries = await Delivery.find({"event_id": event.id}).to_list()
    return (
        sorted((n.user_id, n.title) for n in notifications),
        sorted(d.key for d in deliveries),
    )


async def test_a_change_has_its_notifications_once_it_returns_and_its_event_marked(
    runtime: Runtime,
) -> None:
    payer, provider = ObjectId(), ObjectId()

    async def work(unit: UnitOfWork) -> DomainEvent:
        paid(unit, payer, provider)
        return unit.events[0]

    event = await transact(runtime.services, work)

    notifications, deliveries = await made_for(event)
    assert notifications == sorted(
        [(payer, "$10.00 paid into escrow"), (provider, "$10.00 paid into escrow")]
    )
    kinds = {NotificationKind.PAYMENT_RECEIPT.value, NotificationKind.DEAL_FUNDED.value}
    assert len(deliveries) == 2 and {key.split(":")[3] for key in deliveries} == kinds
    stored = await DomainEvent.get(event.id)
    assert stored is not None and stored.notify_pending_since is None
    assert stored.published_at is not None and stored.title == "$10.00 paid into escrow"
    # Nothing is left for the job.
    assert await derive_pending(now=utcnow() + DERIVE_AFTER * 10) == 0


async def test_a_crash_after_the_commit_leaves_the_event_to_the_job_which_derives_it_once(
    runtime: Runtime,
) -> None:
    payer, provider = ObjectId(), ObjectId()
    event = await committed_then_crashed(payer, provider)
    assert await made_for(event) == ([], [])
    stored = await DomainEvent.get(event.id)
    assert stored is not None and stored.notify_pending_since == event.occurred_at

    # Not before the request has had its chance.
    assert await derive_pending(now=event.occurred_at + DERIVE_AFTER / 2) == 0
    assert await made_for(event) == ([], [])

    later = event.occurred_at + DERIVE_AFTER
    assert await derive_pending(now=later) == 1
    notifications, deliveries = await made_for(event)
    assert [person for person, _ in notifications] == sorted([payer, provider])
    assert len(deliveries) == 2
    stored = await DomainEvent.get(event.id)
    assert stored is not None and stored.notify_pending_since is None
    assert await derive_pending(now=later) == 0
    assert await made_for(event) == (notifications, deliveries)


async def test_an_event_that_cannot_be_derived_holds_up_no_other(runtime: Runtime) -> None:
    """A recipient's stored preferences that no longer read make their event fail; the
    job derives the events behind it and sends that one to the back of the queue."""
    broken_payer, payer, provider = ObjectId(), ObjectId(), ObjectId()
    await NotificationPreferences.get_pymongo_collection().insert_one(
        {"user_id": broken_payer, "choices": "not a mapping", "updated_at": utcnow()}
    )
    stuck = await committed_then_crashed(broken_payer, provider)
    fine = await committed_then_crashed(payer, provider)

    later = fine.occurred_at + DERIVE_AFTER
    assert await derive_pending(now=later) == 1
    notifications, _ = await made_for(fine)
    assert [person for person, _ in notifications] == sorted([payer, provider])
    # Its in-app notifications may be made (they are, before the deliveries fail), and
    # are kept once when it is derived again; its deliveries are not.
    assert (await made_for(stuck))[1] == []
    kept = await DomainEvent.get(stuck.id)
    assert kept is not None and kept.notify_pending_since == later
    # Not retried before its turn comes again, and still pending when it does.
    assert await derive_pending(now=later + DERIVE_AFTER / 2) == 0
    assert await derive_pending(now=later + DERIVE_AFTER) == 0
    kept = await DomainEvent.get(stuck.id)
    assert kept is not None and kept.notify_pending_since == later + DERIVE_AFTER


async def test_runners_deriving_one_event_at_once_make_each_notification_once(
    runtime: Runtime,
) -> None:
    payer, provider = ObjectId(), ObjectId()
    event = await committed_then_crashed(payer, provider)
    later = event.occurred_at + DERIVE_AFTER

    # The request (late), the job on two instances, and a retried derivation together.
    await asyncio.gather(
        after_commit(runtime.services.broker, [event]),
        derive_pending(now=later),
        derive_pending(now=later),
        derive([event]),
    )

    notifications, deliveries = await made_for(event)
    assert [person for person, _ in notifications] == sorted([payer, provider])
    assert len(deliveries) == len(set(deliveries)) == 2
    stored = await DomainEvent.get(event.id)
    assert stored is not None and stored.notify_pending_since is None


async def test_a_change_that_rolls_back_notifies_nobody_now_or_later(runtime: Runtime) -> None:
    payer, provider = ObjectId(), ObjectId()

    async def work(unit: UnitOfWork) -> None:
        paid(unit, payer, provider)
        await unit._save()
        raise RuntimeError("the change fails after its event was written")

    with pytest.raises(RuntimeError):
        await transact(runtime.services, work)

    assert await Notification.find({"user_id": {"$in": [payer, provider]}}).count() == 0
    assert await Delivery.find({"user_id": {"$in": [payer, provider]}}).count() == 0
    assert await derive_pending(now=utcnow() + timedelta(hours=1)) == 0


async def test_an_event_that_notifies_nobody_is_not_pending(runtime: Runtime) -> None:
    actor = ObjectId()

    async def work(unit: UnitOfWork) -> DomainEvent:
        unit.emit(EventKind.TASK_UPDATED, actor_id=actor, audience=[actor], title="edited")
        return unit.events[0]

    event = await transact(runtime.services, work)
    stored = await DomainEvent.get(event.id)
    assert stored is not None and stored.notify_pending_since is None
    assert await Notification.find({"event_id": event.id}).count() == 0


async def test_the_broker_carries_the_event_without_its_outbox_fields(runtime: Runtime) -> None:
    payer, provider = ObjectId(), ObjectId()
    event = await committed_then_crashed(payer, provider)
    carried = json.loads(event_message(event))
    assert "title" not in carried and "notify_pending_since" not in carried
    assert carried["kind"] == EventKind.PAYMENT_SUCCEEDED.value
