"""The delivery outbox: deliveries written with the change that causes them, sent after.

`plan` runs inside the transaction of the change (resolvers/common/unit_of_work.py): for
each person an event concerns, the notification kind it makes for them
(recipients.py) on each channel they receive it on (their preferences, read in the same
transaction). `sending.send_due` runs on every instance in the background: it claims one due
delivery at a time with a lease, so that exactly one instance sends it and a crashed
sender's delivery is taken up again once the lease runs out; it retries failures with
backoff and ends a delivery as dead after the last attempt, with its error, for an
admin to retry (`retry`).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from documents.clock import utcnow
from documents.events import DomainEvent
from documents.notifications.catalogue import NotificationKind
from documents.notifications.deliveries import Delivery, DeliveryStatus
from documents.notifications.preferences import NotificationPreferences
from resolvers.notifications.recipients import kind_for

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
"""How long a sender may take over one delivery before another instance may take it."""
MAX_ATTEMPTS = 6
FIRST_RETRY = timedelta(seconds=30)
"""The wait before the second attempt; each later wait doubles (30 s ... 8 min)."""


@dataclass(frozen=True, slots=True)
class Planned:
    """A notification to one person, before it is split into one delivery per channel."""

    key: str
    user_id: ObjectId
    kind: NotificationKind
    title: str
    context: dict[str, Any]
    event_id: ObjectId | None = None
    due_at: datetime | None = None
    drop_after: datetime | None = None


def from_events(events: Sequence[DomainEvent], titles: Sequence[str]) -> list[Planned]:
    """What `events` (and their in-app titles) tell people beyond the app."""
    planned = []
    for event, title in zip(events, titles, strict=True):
        for person in event.audience:
            if person == event.actor_id:
                continue
            kind = kind_for(event, person)
            if kind is None:
                continue
            planned.append(
                Planned(
                    key=f"event:{event.id}:{person}",
                    user_id=person,
                    kind=kind,
                    title=title,
                    context=_context(event),
                    event_id=event.id,
                )
            )
    return planned


def _context(event: DomainEvent) -> dict[str, Any]:
    ids = {
        name: str(value)
        for name, value in (
            ("task_id", event.task_id),
            ("offer_id", event.offer_id),
            ("booking_id", event.booking_id),
            ("review_id", event.review_id),
        )
        if value is not None
    }
    return {**event.data, **ids, "event": event.kind.value}


async def plan(session: AsyncClientSession | None, planned: Iterable[Planned]) -> int:
    """Write the deliveries of `planned` inside the caller's transaction: one per channel
    each person receives that kind on. Returns how many were written."""
    planned = list(planned)
    if not planned:
        return 0
    people = list({p.user_id for p in planned})
    found = await NotificationPreferences.find(
        {"user_id": {"$in": people}}, session=session
    ).to_list()
    preferences: dict[ObjectId, NotificationPreferences] = {p.user_id: p for p in found}
    now = utcnow()
    deliveries = [
        Delivery(
            key=f"{item.key}:{item.kind.value}:{channel.value}",
            user_id=item.user_id,
            kind=item.kind,
            channel=channel,
            title=item.title,
            context=item.context,
            event_id=item.event_id,
            due_at=item.due_at or now,
            drop_after=item.drop_after,
            created_at=now,
        )
        for item in planned
        for channel in sorted(_preferences(preferences, item.user_id).channels(item.kind))
    ]
    if deliveries:
        await Delivery.insert_many(deliveries, session=session)
    return len(deliveries)


async def claim_due(
    collection: AsyncCollection[dict[str, Any]],
    now: datetime,
    lease: timedelta,
    **marks: Any,
) -> dict[str, Any] | None:
    """The earliest document of `collection` that is pending and due by `now` and whose
    lease, if it had one, has run out: leased to the caller until `now + lease` (with
    `marks` set on it too). The outbox's deliveries and the scheduled messages are both
    claimed this way, so one instance at a time has each."""
    raw: dict[str, Any] | None = await collection.find_one_and_update(
        {
            "status": "pending",
            "due_at": {"$lte": now},
            "$or": [{"lease_until": None}, {"lease_until": {"$lte": now}}],
        },
        {"$set": {"lease_until": now + lease, **marks}},
        sort=[("due_at", 1)],
        return_document=ReturnDocument.AFTER,
    )
    return raw


async def claim(now: datetime) -> Delivery | None:
    """One due delivery, leased to this caller until `now + LEASE`; None if none is due."""
    raw = await claim_due(Delivery.get_pymongo_collection(), now, LEASE, lease_id=uuid.uuid4().hex)
    return None if raw is None else Delivery.model_validate(raw)


async def finish(
    delivery: Delivery, status: DeliveryStatus, *, reason: str | None = None, **fields: Any
) -> bool:
    """End `delivery` as `status`, if this caller still holds its lease."""
    done = await Delivery.get_pymongo_collection().update_one(
        {"_id": delivery.id, "lease_id": delivery.lease_id},
        {
            "$set": {
                "status": status.value,
                "lease_until": None,
                "lease_id": None,
                "ended_reason": reason,
                **fields,
            }
        },
    )
    return bool(done.modified_count)


async def postpone(delivery: Delivery, until: datetime, **fields: Any) -> None:
    """Send `delivery` at `until` instead (quiet hours, a retry)."""
    await Delivery.get_pymongo_collection().update_one(
        {"_id": delivery.id, "lease_id": delivery.lease_id},
        {"$set": {"due_at": until, "lease_until": None, "lease_id": None, **fields}},
    )


def _preferences(
    found: dict[ObjectId, NotificationPreferences], user_id: ObjectId
) -> NotificationPreferences:
    """What `user_id` chose, or the defaults if they never chose."""
    return found.get(user_id) or NotificationPreferences(user_id=PydanticObjectId(user_id))


def backoff(attempts: int) -> timedelta:
    """The wait after the `attempts`-th failed attempt."""
    wait: timedelta = FIRST_RETRY * 2 ** (attempts - 1)
    return wait


async def failed(delivery: Delivery, error: str, now: datetime) -> None:
    attempts = delivery.attempts + 1
    if attempts >= MAX_ATTEMPTS:
        await finish(
            delivery, DeliveryStatus.DEAD, reason=error, attempts=attempts, last_error=error
        )
        log.warning("delivery %s is dead after %d attempts: %s", delivery.id, attempts, error)
        return
    await postpone(delivery, now + backoff(attempts), attempts=attempts, last_error=error)


async def retry(delivery_id: ObjectId) -> Delivery | None:
    """A dead delivery sent again from now, with its attempts counted afresh; None if it
    is not dead."""
    raw = await Delivery.get_pymongo_collection().find_one_and_update(
        {"_id": delivery_id, "status": DeliveryStatus.DEAD.value},
        {
            "$set": {
                "status": DeliveryStatus.PENDING.value,
                "due_at": utcnow(),
                "attempts": 0,
                "ended_reason": None,
            }
        },
        return_document=ReturnDocument.AFTER,
    )
    return None if raw is None else Delivery.model_validate(raw)
