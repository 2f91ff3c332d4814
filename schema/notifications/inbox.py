"""What happened that concerns me: offers, status changes, bookings, reviews."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TypeVar

import strawberry
from bson import ObjectId
from strawberry import relay

from documents.events import EventKind, Notification
from resolvers.common.pagination import paginate
from resolvers.notifications import inbox as notifications
from schema.common.context import Info
from schema.common.copying import copied
from schema.common.payloads import Payload, mutation_payload
from schema.common.permissions import IsAuthenticated, allow
from schema.common.relay import decode_id, object_ids, requested_page, to_connection
from schema.marketplace.bookings import BookingNode
from schema.marketplace.reviews import ReviewNode
from schema.marketplace.tasks import OfferNode, TaskNode

EventKindType = strawberry.enum(EventKind, name="EventKind")


@strawberry.type(name="Notification")
class NotificationNode(relay.Node):
    id: relay.NodeID[str]
    kind: EventKind
    title: str
    created_at: datetime
    read_at: datetime | None
    doc: strawberry.Private[Notification]

    @classmethod
    def of(cls, notification: Notification) -> NotificationNode:
        return copied(cls, notification, id=str(notification.id), doc=notification)

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[NotificationNode | None]:
        viewer = await info.context.viewer()
        ids = object_ids(node_ids)
        if viewer is None:
            return [None for _ in ids]
        mine = await Notification.find(
            {"_id": {"$in": [i for i in ids if i]}, "user_id": viewer.user_id}
        ).to_list()
        found: dict[ObjectId | None, Notification] = {n.id: n for n in mine}
        return [cls.of(found[i]) if i in found else None for i in ids]

    @strawberry.field
    async def task(self, info: Info) -> TaskNode | None:
        if self.doc.task_id is None:
            return None
        task = await info.context.loaders.tasks.load(self.doc.task_id)
        return TaskNode.of(task) if task else None

    @strawberry.field
    async def offer(self, info: Info) -> OfferNode | None:
        if self.doc.offer_id is None:
            return None
        offer = await info.context.loaders.offers.load(self.doc.offer_id)
        return OfferNode.of(offer) if offer else None

    @strawberry.field
    async def booking(self, info: Info) -> BookingNode | None:
        return await _visible(info, BookingNode, self.doc.booking_id)

    @strawberry.field(description="Null while the review is still hidden from the reader.")
    async def review(self, info: Info) -> ReviewNode | None:
        return await _visible(info, ReviewNode, self.doc.review_id)


N = TypeVar("N", BookingNode, ReviewNode)


async def _visible(info: Info, node_type: type[N], node_id: ObjectId | None) -> N | None:
    """The node if it exists and the reader may see it, by the node type's own rules."""
    if node_id is None:
        return None
    [node] = await node_type.resolve_nodes(info=info, node_ids=[str(node_id)])
    return node


@strawberry.type
class NotificationConnection(relay.Connection[NotificationNode]):
    pass


@strawberry.type
class NotificationQuery:
    @strawberry.field(extensions=allow(IsAuthenticated()), description="Newest first.")
    async def my_notifications(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        unread_only: bool = False,
    ) -> NotificationConnection:
        viewer = await info.context.require_viewer()
        filters: dict[str, object] = {"user_id": viewer.user_id}
        if unread_only:
            filters["read_at"] = None
        page = await paginate(
            Notification,
            filters,
            [("created_at", -1), ("_id", -1)],
            requested_page(info, first, after),
        )
        return to_connection(NotificationConnection, page, NotificationNode.of)

    @strawberry.field(extensions=allow(IsAuthenticated()))
    async def unread_notification_count(self, info: Info) -> int:
        return await notifications.unread_count(await info.context.require_viewer())


@strawberry.input
class MarkNotificationsReadInput:
    ids: list[relay.GlobalID] | None = strawberry.field(default=None, description="Omit for all.")


@strawberry.type
class MarkNotificationsReadPayload(Payload):
    marked: int | None = None


@strawberry.type
class NotificationMutation:
    @strawberry.mutation(extensions=allow(IsAuthenticated()))
    @mutation_payload
    async def mark_notifications_read(
        self, info: Info, input: MarkNotificationsReadInput
    ) -> MarkNotificationsReadPayload:
        viewer = await info.context.require_viewer()
        ids = (
            None
            if input.ids is None
            else [decode_id(i, NotificationNode, "ids") for i in input.ids]
        )
        return MarkNotificationsReadPayload(marked=await notifications.mark_read(viewer, ids))
