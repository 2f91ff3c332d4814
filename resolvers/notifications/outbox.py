"""The delivery outbox: what a committed change tells people, derived from it, sent after.

A change's domain events are stored in its transaction (resolvers/common/unit_of_work.py):
they are the outbox's record. Right after the commit, `derive` makes from them the in-app
notifications (one per person an event concerns but whoever caused it) and the
deliveries (for each such person, the notification kind it makes for them,
recipients.py, on each channel they receive it on, their preferences); then the events
are marked derived. An event stored marked pending whose notifications a crash kept from
being made is derived by `derive_pending`, a background job, once `DERIVE_AFTER` has
passed. Both may run for one event (a slow request beside the job, two instances): each
notification is unique per event and person and each delivery per key, and what exists
already is kept, so nothing is made twice; a rolled-back change stored no event, so it
tells nobody. Keeping them out of the transaction keeps the change's transaction short
(on the embedded database every statement of a transaction waits for the others':
bench/README.md, Issue 16, second pass: payment webhooks).

A scheduled message (scheduled.py) is already such a record: `plan` writes its
deliveries in the transaction that marks it done. `sending.send_due` runs on every
instance in the background: it reads its run's due deliveries once (`due`) and takes
each in turn with a lease (`take`), so that exactly one instance sends it and a crashed
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

from beanie import Document, PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from documents.clock import utcnow
from documents.events import DomainEvent, Notification
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
DERIVE_AFTER = timedelta(seconds=30)
"""How long after it occurred the job derives an event still pending: by then the request
that committed it has derived it, or has died. (Were both to run, nothing doubles.)"""
DUPLICATE_KEY = 11000
CLAIM_CANDIDATES = 10
"""How many due deliveries `claim` reads to find one nobody holds."""


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


def has_recipients(audience: Iterable[ObjectId], actor_id: ObjectId | None) -> bool:
    """Whether an event with this audience notifies anyone (its actor is not notified)."""
    return any(person != actor_id for person in audience)


async def derive(events: Sequence[DomainEvent]) -> None:
    """The in-app notifications and the deliveries of committed `events`, made once: what
    an earlier run made is kept. The caller marks the events derived after this returns."""
    notifications = [
        Notification(
            user_id=person,
            event_id=event.id,
            kind=event.kind,
            title=event.title,
            created_at=event.occurred_at,
            task_id=event.task_id,
            offer_id=event.offer_id,
            booking_id=event.booking_id,
            review_id=event.review_id,
        )
        for event in events
        for person in event.audience
        if person != event.actor_id
    ]
    await _insert_once(Notification, notifications)
    await _insert_once(Delivery, await _deliveries(None, from_events(events)))


async def derive_pending(limit: int = 100, now: datetime | None = None) -> int:
    """Derive the events whose notifications a crash after their commit left unmade (the
    background job); returns how many events it derived."""
    cutoff = (now or utcnow()) - DERIVE_AFTER
    pending = (
        await DomainEvent.find({"notify_pending_since": {"$lte": cutoff}})
        .sort("notify_pending_since")
        .limit(limit)
        .to_list()
    )
    if not pending:
        return 0
    try:
        await derive(pending)
        derived = pending
    except Exception:
        derived = await _derive_one_by_one(pending, now or utcnow())
    if derived:
        await DomainEvent.get_pymongo_collection().update_many(
            {"_id": {"$in": [event.id for event in derived]}},
            {"$unset": {"notify_pending_since": ""}},
        )
        log.warning("derived the notifications of %d events after their request", len(derived))
    return len(derived)


async def _derive_one_by_one(pending: Sequence[DomainEvent], now: datetime) -> list[DomainEvent]:
    """The events of a batch that failed, derived each on its own: one that cannot be (its
    data or a recipient's stored preferences broken) must not hold up the others behind
    it, so it goes to the back of the queue, tried again after `DERIVE_AFTER`, and logged
    for an operator."""
    derived = []
    for event in pending:
        try:
            await derive([event])
        except Exception:
            log.exception(
                "could not derive the notifications of event %s (%s)", event.id, event.kind
            )
            await DomainEvent.get_pymongo_collection().update_one(
                {"_id": event.id, "notify_pending_since": {"$exists": True}},
                {"$set": {"notify_pending_since": now}},
            )
            continue
        derived.append(event)
    return derived


async def _insert_once(document: type[Document], rows: Sequence[Document]) -> None:
    """Insert `rows`, keeping any already there by a unique key (an earlier derivation)."""
    if not rows:
        return
    try:
        await document.insert_many(rows, ordered=False)
    except BulkWriteError as error:
        details = error.details
        if details.get("writeConcernErrors") or any(
            failure.get("code") != DUPLICATE_KEY for failure in details.get("writeErrors", [])
        ):
            raise


def from_events(events: Sequence[DomainEvent]) -> list[Planned]:
    """What `events` tell people beyond the app."""
    planned = []
    for event in events:
        title = event.title
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
    deliveries = await _deliveries(session, list(planned))
    if deliveries:
        await Delivery.insert_many(deliveries, session=session)
    return len(deliveries)


async def _deliveries(session: AsyncClientSession | None, planned: list[Planned]) -> list[Delivery]:
    """The deliveries of `planned`, by the preferences of the people it concerns."""
    if not planned:
        return []
    people = list({p.user_id for p in planned})
    found = await NotificationPreferences.find(
        {"user_id": {"$in": people}}, session=session
    ).to_list()
    preferences: dict[ObjectId, NotificationPreferences] = {p.user_id: p for p in found}
    now = utcnow()
    return [
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
    for candidate in await due(now, CLAIM_CANDIDATES):
        taken = await take(candidate, now)
        if taken is not None:
            return taken
    return None


async def due(now: datetime, limit: int) -> list[Delivery]:
    """Up to `limit` pending deliveries due by `now`, earliest first, that nobody holds:
    the candidates a sender then `take`s one by one.

    One read for a sender's whole run, not one per delivery: the embedded database reads
    every pending due delivery to answer either (it sorts before it limits), and takes a
    `findAndModify` as a scan of the collection, so a claim per delivery by
    `findAndModify` cost in proportion to the backlog, each time (bench/README.md, Issue
    16, second pass). The `(status, due_at)` index finds them; a lease still running is
    left out by the read itself, so that a batch's worth held at the head of the queue
    (by another sender, or one that died) hides nothing behind it, and as a condition on
    the field (no lease, or one that ran out) rather than an `$or`, which that database
    answers with a collection scan."""
    found = Delivery.find(
        {
            "status": DeliveryStatus.PENDING.value,
            "due_at": {"$lte": now},
            "lease_until": {"$not": {"$gt": now}},
        }
    )
    return await found.sort("due_at").limit(limit).to_list()


async def take(candidate: Delivery, now: datetime) -> Delivery | None:
    """`candidate` (read by `due`) leased to this caller until `now + LEASE`, if it is
    still as it was read: pending, due then, and held by nobody since (a claim sets a new
    lease, a postponement a new due time, an ending a new status), so of any number of
    senders exactly one takes it. None if another did."""
    held = {"lease_until": now + LEASE, "lease_id": uuid.uuid4().hex}
    taken = await Delivery.get_pymongo_collection().update_one(
        {
            "_id": candidate.id,
            "status": DeliveryStatus.PENDING.value,
            "due_at": candidate.due_at,
            "lease_until": candidate.lease_until,
            "lease_id": candidate.lease_id,
        },
        {"$set": held},
    )
    return candidate.model_copy(update=held) if taken.modified_count else None


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
