"""A state change and the events it causes, committed together, published after.

    async def work(unit: UnitOfWork) -> Task:
        ...writes with session=unit.session...
        unit.emit(EventKind.TASK_POSTED, actor_id=..., audience=[...], task_id=..., title=...)
        return task

    task = await transact(services, work)

`work` may run more than once (a transaction retries on a write conflict), so it must
do everything through `unit.session` and nothing else with side effects; events are
collected afresh on each attempt and published once, after the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from bson import ObjectId
from pydantic_core import to_jsonable_python
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.clock import utcnow
from documents.events import DomainEvent, EventKind, Notification
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
        self._titles: list[str] = []

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
        self.events.append(
            DomainEvent(
                id=ObjectId(),
                kind=kind,
                actor_id=actor_id,
                audience=people,
                task_id=task_id,
                offer_id=offer_id,
                booking_id=booking_id,
                review_id=review_id,
                # Plain JSON (ids as strings): it is stored, sent between instances and shown.
                data=to_jsonable_python(data, fallback=str),
            )
        )
        self._titles.append(title)

    async def _save(self) -> None:
        if not self.events:
            return
        await DomainEvent.insert_many(self.events, session=self.session)
        notifications = [
            Notification(
                user_id=person,
                event_id=event.id,
                kind=event.kind,
                title=title,
                created_at=event.occurred_at,
                task_id=event.task_id,
                offer_id=event.offer_id,
                booking_id=event.booking_id,
                review_id=event.review_id,
            )
            for event, title in zip(self.events, self._titles, strict=True)
            for person in event.audience
            if person != event.actor_id
        ]
        if notifications:
            await Notification.insert_many(notifications, session=self.session)
        # What people hear beyond the app, in the outbox, committed with the change.
        await outbox.plan(self.session, outbox.from_events(self.events, self._titles))


async def transact(services: Services, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
    async def attempt(session: AsyncClientSession) -> tuple[T, list[DomainEvent]]:
        unit = UnitOfWork(session)
        result = await work(unit)
        await unit._save()
        return result, unit.events

    result, events = await run_in_transaction(attempt)
    await publish(services.broker, events)
    return result


def event_message(event: DomainEvent) -> bytes:
    """The event as the broker carries it between instances: the stored document's JSON."""
    return str(event.model_dump_json(by_alias=True)).encode()


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
    published = []
    for event in events:
        message = event_message(event)
        try:
            for topic in event_topics(event):
                await broker.publish(topic, message)
        except Exception:
            log.warning("could not publish event %s (%s)", event.id, event.kind, exc_info=True)
            continue
        published.append(event.id)
    if published:
        await DomainEvent.get_pymongo_collection().update_many(
            {"_id": {"$in": published}}, {"$set": {"published_at": utcnow()}}
        )
