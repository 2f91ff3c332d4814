"""Admin views of the outbox: every delivery with its status, and retrying dead ones."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import strawberry
from bson import ObjectId
from strawberry import relay

from documents.notifications.catalogue import Channel, NotificationKind
from documents.notifications.deliveries import Delivery, DeliveryStatus
from resolvers.notifications import admin as admin_notifications
from resolvers.notifications.admin import DeliveryFilter
from schema.accounts.users import UserNode, user_node
from schema.common.context import Info
from schema.common.payloads import Payload, mutation_payload
from schema.common.permissions import IsAdmin, allow
from schema.common.relay import admin_documents, decode_id, requested_page, to_connection
from schema.notifications.preferences import (  # noqa: F401 # the GraphQL enums of both
    NotificationChannelType,
    NotificationKindType,
)

DeliveryStatusType = strawberry.enum(DeliveryStatus, name="NotificationDeliveryStatus")


@strawberry.type(
    name="NotificationDelivery",
    description="One message to one person on one channel, as the outbox holds it.",
)
class NotificationDeliveryNode(relay.Node):
    id: relay.NodeID[str]
    kind: NotificationKind
    channel: Channel
    status: DeliveryStatus
    title: str
    user_id: strawberry.Private[ObjectId]
    attempts: int
    last_error: str | None
    ended_reason: str | None = strawberry.field(description="Why it was SKIPPED, or is DEAD.")
    due_at: datetime = strawberry.field(description="When it is (next) sent, if PENDING.")
    created_at: datetime
    sent_at: datetime | None

    @strawberry.field(description="Whom it is for.")
    async def user(self, info: Info) -> UserNode | None:
        return await user_node(info, self.user_id)

    @classmethod
    def of(cls, delivery: Delivery) -> NotificationDeliveryNode:
        return cls(
            id=str(delivery.id),
            kind=delivery.kind,
            channel=delivery.channel,
            status=delivery.status,
            title=delivery.title,
            user_id=delivery.user_id,
            attempts=delivery.attempts,
            last_error=delivery.last_error,
            ended_reason=delivery.ended_reason,
            due_at=delivery.due_at,
            created_at=delivery.created_at,
            sent_at=delivery.sent_at,
        )

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[NotificationDeliveryNode | None]:
        found = await admin_documents(info, node_ids, Delivery)
        return [cls.of(d) if d else None for d in found]


@strawberry.type
class NotificationDeliveryConnection(relay.Connection[NotificationDeliveryNode]):
    pass


@strawberry.input
class NotificationDeliveryFilter:
    status: DeliveryStatus | None = None
    channel: Channel | None = None
    kind: NotificationKind | None = None
    user_id: relay.GlobalID | None = None


@strawberry.type
class NotificationAdminQuery:
    @strawberry.field(
        extensions=allow(IsAdmin()),
        description="The outbox's deliveries, newest first; DEAD ones need an admin.",
    )
    async def notification_deliveries(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        filter: NotificationDeliveryFilter | None = None,
    ) -> NotificationDeliveryConnection:
        chosen = filter or NotificationDeliveryFilter()
        page = await admin_notifications.deliveries(
            DeliveryFilter(
                status=chosen.status,
                channel=chosen.channel,
                kind=chosen.kind,
                user_id=decode_id(chosen.user_id, UserNode, "userId") if chosen.user_id else None,
            ),
            requested_page(info, first, after),
        )
        return to_connection(NotificationDeliveryConnection, page, NotificationDeliveryNode.of)


@strawberry.input
class RetryNotificationDeliveryInput:
    id: relay.GlobalID


@strawberry.type
class RetryNotificationDeliveryPayload(Payload):
    delivery: NotificationDeliveryNode | None = None


@strawberry.type
class NotificationAdminMutation:
    @strawberry.mutation(
        extensions=allow(IsAdmin()),
        description="Send a DEAD delivery again, with fresh attempts (audited).",
    )
    @mutation_payload
    async def retry_notification_delivery(
        self, info: Info, input: RetryNotificationDeliveryInput
    ) -> RetryNotificationDeliveryPayload:
        admin = await info.context.require_viewer()
        delivery_id = decode_id(input.id, NotificationDeliveryNode, "id")
        retried = await admin_notifications.retry_delivery(info.context.meta, admin, delivery_id)
        return RetryNotificationDeliveryPayload(delivery=NotificationDeliveryNode.of(retried))
