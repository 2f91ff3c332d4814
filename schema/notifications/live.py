"""Live subscriptions to domain events: of a task, of a booking, and everything for me.

Each is authorised when it starts and again per event (a subscriber receives only the
events whose audience includes them, or everything as an admin), re-checks the
caller's access when told it may have changed, and ends with TOKEN_EXPIRED when the
token it was opened with runs out. `after` (the id of the last event seen) replays
what was missed from the database first.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from contextlib import nullcontext
from datetime import datetime
from functools import partial
from typing import Any, TypeVar, cast

import strawberry
from beanie import PydanticObjectId
from bson import ObjectId
from starlette.websockets import WebSocket, WebSocketState
from strawberry import relay
from strawberry.scalars import JSON

from documents.errors import DomainError, ErrorCode
from documents.events import DomainEvent, EventKind
from documents.metrics import SLOW_SUBSCRIBERS_CLOSED
from realtime.broker import Message, SubscriberOverflow
from realtime.signals import is_access_change
from realtime.streams import Feed, follow
from realtime.topics import booking_topic, task_topic, user_topic
from resolvers.accounts.auth.viewer import Viewer, authenticate
from resolvers.common.lookups import by_ids
from resolvers.common.unit_of_work import decode_event
from resolvers.marketplace.bookings import get_booking
from resolvers.marketplace.tasks import get_task
from schema.accounts.users import UserNode, user_node
from schema.common.context import Context, Info
from schema.common.copying import copied
from schema.common.loaders import Loaders
from schema.common.permissions import IsAuthenticated, allow
from schema.common.relay import decode_id, visible_documents
from schema.marketplace.bookings import BookingNode
from schema.marketplace.tasks import OfferNode, TaskNode

REPLAY_LIMIT = 500
FIRST_EVENT = "0" * 24
"""A position before every event."""
SLOW_CONSUMER = 1013
"""WebSocket close code "try again later": the client fell too far behind."""

T = TypeVar("T")
N = TypeVar("N")


@strawberry.type(name="Event", description="Something that happened, as it happened.")
class EventNode(relay.Node):
    id: relay.NodeID[str]
    kind: EventKind
    occurred_at: datetime
    data: JSON
    doc: strawberry.Private[DomainEvent]

    @classmethod
    def of(cls, event: DomainEvent) -> EventNode:
        return copied(cls, event, id=str(event.id), data=JSON(event.data), doc=event)

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[EventNode | None]:
        events = await visible_documents(info, node_ids, partial(by_ids, DomainEvent), may_see)
        return [cls.of(e) if e else None for e in events]

    @strawberry.field
    async def actor(self, info: Info) -> UserNode | None:
        return await user_node(info, self.doc.actor_id)

    @strawberry.field
    async def task(self, info: Info) -> TaskNode | None:
        if self.doc.task_id is None:
            return None
        task = await info.context.loaders.tasks.load(self.doc.task_id)
        return TaskNode.of(task) if task else None

    @strawberry.field
    async def offer(self, info: Info) -> OfferNode | None:
        [offer] = await OfferNode.resolve_nodes(info=info, node_ids=_ids(self.doc.offer_id))
        return offer

    @strawberry.field
    async def booking(self, info: Info) -> BookingNode | None:
        [booking] = await BookingNode.resolve_nodes(info=info, node_ids=_ids(self.doc.booking_id))
        return booking


def _ids(node_id: ObjectId | None) -> list[str]:
    return [str(node_id) if node_id else ""]


def may_see(viewer: Viewer, event: DomainEvent) -> bool:
    return viewer.user_id in event.audience or viewer.user.is_admin


async def _events(
    info: Info,
    viewer: Viewer,
    topics: list[str],
    query: dict[str, Any],
    after: relay.GlobalID | None,
) -> AsyncIterator[EventNode]:
    """Events matching `query` that the viewer may see: missed ones, then live ones."""
    scope = query if viewer.user.is_admin else {**query, "audience": viewer.user_id}

    async def history(last: str | None) -> list[DomainEvent]:
        found = {**scope, "_id": {"$gt": PydanticObjectId(last or FIRST_EVENT)}}
        return await DomainEvent.find(found).sort("_id").limit(REPLAY_LIMIT).to_list()

    async def decode(message: Message) -> DomainEvent | None:
        if is_access_change(message):
            await recheck_access(info)
            return None
        event = decode_event(message.data)
        if event is None or not may_see(viewer, event):
            return None
        return event if all(getattr(event, key) == value for key, value in query.items()) else None

    feed = Feed(topics=topics, history=history, decode=decode, position=lambda e: str(e.id))
    if after is not None:
        start = str(decode_id(after, EventNode, "after"))
    else:
        # From now on, but from a position all the same: after a broker outage (RESYNC)
        # the events missed are re-read from it even if none was delivered yet.
        newest = await DomainEvent.find(scope).sort("-_id").limit(1).to_list()
        start = str(newest[0].id) if newest else FIRST_EVENT
    stream = follow(info.context.services.broker, feed, start, expires_at=viewer.expires_at)
    async for event in delivered(info, stream):
        yield EventNode.of(event)


async def recheck_access(info: Info) -> Viewer:
    """The caller as they are now: raises if their session or account stopped them."""
    return await recheck_caller(info.context)


async def recheck_caller(context: Context) -> Viewer:
    """`recheck_access` for a subscription that runs without resolver info
    (schema/live/framed.py)."""
    if not context.access_token:
        raise DomainError(ErrorCode.UNAUTHENTICATED, "Log in to do this.")
    return await authenticate(context.services.tokens, context.access_token)


class _Shared:
    """What the subscriptions delivering the very same item share: a chat message is
    decoded once per process for all its subscribers (resolvers/chat/signals.py), so
    what they load for it, such as its sender, is read once for all of them rather than
    once each, and the node made of it is one object, whose result may be executed once
    (schema/common/shared_events.py)."""

    __slots__ = ("item", "loaders", "nodes")

    def __init__(self, item: object) -> None:
        self.item = item  # kept alive with the rest, so that no other item takes its id
        self.loaders = Loaders()
        self.nodes: dict[Callable[[Any], object], object] = {}


class _SharedItems:
    """The latest items delivered, by identity."""

    SIZE = 64

    def __init__(self) -> None:
        self._recent: OrderedDict[int, _Shared] = OrderedDict()

    def of(self, item: object) -> _Shared:
        found = self._recent.get(id(item))
        if found is None:
            found = self._recent[id(item)] = _Shared(item)
            if len(self._recent) > self.SIZE:
                self._recent.popitem(last=False)
        return found


_shared_items = _SharedItems()


def shared_node(item: T, make: Callable[[T], N]) -> N:
    """`make(item)`, made once for all the subscriptions delivering this very item."""
    nodes = _shared_items.of(item).nodes
    if (node := nodes.get(make)) is None:
        node = nodes[make] = make(item)
    return cast("N", node)


async def delivered(info: Info, items: AsyncIterator[T]) -> AsyncIterator[T]:
    """Each item with fresh data loaders (a websocket's context outlives its operations);
    a consumer too slow to keep up loses its connection rather than growing our memory."""
    open_socket = info.context.socket
    try:
        async for item in items:
            info.context.loaders = _shared_items.of(item).loaders
            # Until the next item is asked for, this one is being resolved and sent: a
            # graceful shutdown lets that finish (realtime/going_away.py).
            with open_socket.working() if open_socket else nullcontext():
                yield item
    except SubscriberOverflow:
        socket = info.context.request
        if isinstance(socket, WebSocket) and socket.application_state is WebSocketState.CONNECTED:
            SLOW_SUBSCRIBERS_CLOSED.inc()
            await socket.close(
                code=SLOW_CONSUMER, reason="Subscriber too slow; reconnect with after"
            )
            # The close ends every operation of the connection, this one included. Until
            # then, neither end nor fail: either would be sent on the closed socket (and
            # logged as a crash).
            await asyncio.Future()
        raise


@strawberry.type
class LiveSubscription:
    @strawberry.subscription(
        extensions=allow(IsAuthenticated()),
        description="Everything addressed to me: offers, status changes, bookings, reviews.",
    )
    async def my_events(
        self, info: Info, after: relay.GlobalID | None = None
    ) -> AsyncGenerator[EventNode, None]:
        viewer = await info.context.require_viewer()
        async for event in _events(info, viewer, [user_topic(viewer.user_id)], {}, after):
            yield event

    @strawberry.subscription(
        extensions=allow(IsAuthenticated()),
        description="Live status and offers of a task, as far as they concern me.",
    )
    async def task_events(
        self, info: Info, task_id: relay.GlobalID, after: relay.GlobalID | None = None
    ) -> AsyncGenerator[EventNode, None]:
        viewer = await info.context.require_viewer()
        task = await get_task(decode_id(task_id, TaskNode, "taskId"))
        assert task.id is not None
        topics = [task_topic(task.id), user_topic(viewer.user_id)]
        async for event in _events(info, viewer, topics, {"task_id": task.id}, after):
            yield event

    @strawberry.subscription(
        extensions=allow(IsAuthenticated()),
        description="Live status of a booking, for its customer and provider.",
    )
    async def booking_events(
        self, info: Info, booking_id: relay.GlobalID, after: relay.GlobalID | None = None
    ) -> AsyncGenerator[EventNode, None]:
        viewer = await info.context.require_viewer()
        booking = await get_booking(decode_id(booking_id, BookingNode, "bookingId"), viewer)
        assert booking.id is not None
        topics = [booking_topic(booking.id), user_topic(viewer.user_id)]
        async for event in _events(info, viewer, topics, {"booking_id": booking.id}, after):
            yield event
