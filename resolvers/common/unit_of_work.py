"""A state change and the events it causes, committed together, published after.

    async def work(unit: UnitOfWork) -> Task:
        ...writes with session=unit.session...
        unit.emit(EventKind.TASK_POSTED, actor_id=..., audience=[...], task_id=..., title=...)
        return task

    task = await transact(services, work)

`work` may run more than once (a transaction retries on a write conflict), so it must
do everything through `unit.session` and nothing else with side effects; events are
collected afresh on each attempt and stored with the change.

The stored event is the outbox's record: the notifications and deliveries it makes are
derived from it right after the commit, in the same request, then it is published and
marked derived and published in one write (resolvers/notifications/outbox.py: a job
derives what a crash in between left pending). Its transaction holds only the change and
the event: on the embedded database each statement of a transaction waits for every
other transaction's (bench/README.md, Issue 16, second pass: payment webhooks).

The requests of one process that commit while another's after-commit work is being
written do theirs together, as one group (a group commit: documents/grouped_writes.py): one
derivation (one insert of notifications, one read of preferences, one insert of
deliveries) and one mark for all their events, instead of those four commands each.
Each request still returns only once its own events are derived, published and marked,
so what a request leaves behind, crash or not, is what it left before (bench/README.md,
Issue 16, third pass).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from bson import ObjectId
from pydantic_core import to_jsonable_python
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.clock import utcnow
from documents.events import DomainEvent, EventKind
from documents.grouped_writes import GroupedWrites
from documents.transactions import run_in_transaction
from realtime.broker import Broker
from realtime.topics import booking_topic, task_topic, user_topic
from resolvers.common.services import Services
from resolvers.notifications import outbox

log = logging.getLogger(__name__)

T = TypeVar("T")


class UnitOfWork:
    def __init__(self, session: AsyncClientSession) -> None:
        self.session = session
        self.events: list[DomainEvent] = []

    def emit(
        self,
        kind: EventKind,
        *,
        actor_id: ObjectId | None,
        audience: Iterable[ObjectId | None],
        title: str,
        task_id: ObjectId | None = None,
        offer_id: ObjectId | None = None,
        booking_id: ObjectId | None = None,
        review_id: ObjectId | None = None,
        **data: Any,
    ) -> None:
        """Record an event; everyone in `audience` but the actor gets a notification."""
        people = list(dict.fromkeys(a for a in [*audience, actor_id] if a is not None))
        now = utcnow()
        self.events.append(
            DomainEvent(
                id=ObjectId(),
                kind=kind,
                occurred_at=now,
                actor_id=actor_id,
                audience=people,
                task_id=task_id,
                offer_id=offer_id,
                booking_id=booking_id,
                review_id=review_id,
                # Plain JSON (ids as strings): it is stored, sent between instances and shown.
                data=to_jsonable_python(data, fallback=str),
                title=title,
                # Pending until its notifications are derived (none to derive: not pending).
                notify_pending_since=now if outbox.has_recipients(people, actor_id) else None,
            )
        )

    async def _save(self) -> None:
        if self.events:
            await DomainEvent.insert_many(self.events, session=self.session)


async def transact(services: Services, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    async def attempt(session: AsyncClientSession) -> tuple[T, list[DomainEvent]]:
        unit = UnitOfWork(session)
        result = await work(unit)
        await unit._save()
        return result, unit.events

    result, events = await run_in_transaction(attempt)
    await after_commit(services.broker, events)
    return result


async def after_commit(broker: Broker, events: list[DomainEvent]) -> None:
    """Derive the committed events' notifications, then publish the events (so a live
    subscriber who hears of one finds its notification), then mark both in one write;
    with the events of other requests committing at the same time, when there are
    (documents/grouped_writes.py). A derivation that fails is left pending for the job
    (outbox.derive_pending)."""
    if not events:
        return
    await _GROUPS.submit((broker, events))


async def _write_groups(requests: list[tuple[Broker, list[DomainEvent]]]) -> list[None]:
    """The after-commit work of the requests that committed together: one group per
    broker (a process has one; tests may have several)."""
    for broker in dict.fromkeys(broker for broker, _ in requests):
        await _after_commit_group(broker, [events for b, events in requests if b is broker])
    return [None] * len(requests)


_GROUPS: GroupedWrites[tuple[Broker, list[DomainEvent]], None] = GroupedWrites(_write_groups)


async def _after_commit_group(broker: Broker, requests: list[list[DomainEvent]]) -> None:
    """The after-commit work of the events of `requests` (each request's list), together.
    If their derivation fails, each request's is tried on its own, as it would have been
    alone: one event that cannot be derived leaves only its own request's to the job."""
    events = [event for mine in requests for event in mine]
    derived = await _derive(events)
    if derived is None and len(requests) > 1:
        derived = []
        for mine in requests:
            derived += await _derive(mine) or []
    await _mark(await _send(broker, events), derived or [])


async def _derive(events: list[DomainEvent]) -> list[ObjectId] | None:
    """Derive the notifications of the pending ones of `events`: their ids, or None if
    that failed (they stay pending, for the job)."""
    pending = [event for event in events if event.notify_pending_since is not None]
    if not pending:
        return []
    try:
        await outbox.derive(pending)
    except Exception:
        log.warning("notifications of %d events left to the job", len(pending), exc_info=True)
        return None
    return [event.id for event in pending if event.id is not None]


async def _mark(published: list[ObjectId], derived: list[ObjectId]) -> None:
    """Record what was published and derived: one write when both are the same events,
    as they are unless the broker or the database failed."""
    now = utcnow()
    both = set(published) & set(derived)
    groups: list[tuple[list[ObjectId], dict[str, Any]]] = [
        ([i for i in published if i in both], {"$set": {"published_at": now}, **_DERIVED}),
        ([i for i in published if i not in both], {"$set": {"published_at": now}}),
        ([i for i in derived if i not in both], _DERIVED),
    ]
    for ids, update in groups:
        if ids:
            await DomainEvent.get_pymongo_collection().update_many({"_id": {"$in": ids}}, update)


_DERIVED: dict[str, Any] = {"$unset": {"notify_pending_since": ""}}

_INTERNAL_FIELDS = {"title", "notify_pending_since"}
"""Fields of the stored event that the broker does not carry: the notification's title
is for the people notified, and the marker is the outbox's."""


def event_message(event: DomainEvent) -> bytes:
    """The event as the broker carries it between instances: the stored document's JSON
    (less its outbox fields)."""
    return str(event.model_dump_json(by_alias=True, exclude=_INTERNAL_FIELDS)).encode()


def decode_event(data: bytes) -> DomainEvent | None:
    """The event in a broker message; None for anything else on the topic."""
    try:
        event: DomainEvent = DomainEvent.model_validate_json(data)
    except ValueError:
        return None
    return event


def event_topics(event: DomainEvent) -> list[str]:
    topics = [user_topic(person) for person in event.audience]
    if event.task_id:
        topics.append(task_topic(event.task_id))
    if event.booking_id:
        topics.append(booking_topic(event.booking_id))
    return topics


async def publish(broker: Broker, events: list[DomainEvent]) -> None:
    """Send committed events to their topics; what cannot be sent stays marked unpublished."""
    await _mark(await _send(broker, events), derived=[])


async def _send(broker: Broker, events: list[DomainEvent]) -> list[ObjectId]:
    """Send committed events to their topics; the ids of those sent."""
    published: list[ObjectId] = []
    for event in events:
        message = event_message(event)
        try:
            for topic in event_topics(event):
                await broker.publish(topic, message)
        except Exception:
            log.warning("could not publish event %s (%s)", event.id, event.kind, exc_info=True)
            continue
        if event.id is not None:  # stored: it has its id
            published.append(event.id)
    return published
