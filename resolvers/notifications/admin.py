"""Operator views of the outbox: deliveries by status, channel, kind and person, and
sending a dead one again."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId

from documents.accounts.audit import AuditKind
from documents.errors import DomainError, ErrorCode
from documents.notifications.catalogue import Channel, NotificationKind
from documents.notifications.deliveries import Delivery, DeliveryStatus
from resolvers.accounts import audit
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.pagination import Page, PageRequest, paginate
from resolvers.common.services import RequestMeta
from resolvers.notifications import outbox


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    status: DeliveryStatus | None = None
    channel: Channel | None = None
    kind: NotificationKind | None = None
    user_id: ObjectId | None = None


async def deliveries(filter: DeliveryFilter, request: PageRequest) -> Page[Delivery]:
    """Deliveries, newest first; DEAD ones wait for an admin."""
    query: dict[str, Any] = {}
    if filter.status is not None:
        query["status"] = filter.status.value
    if filter.channel is not None:
        query["channel"] = filter.channel.value
    if filter.kind is not None:
        query["kind"] = filter.kind.value
    if filter.user_id is not None:
        query["user_id"] = filter.user_id
    return await paginate(Delivery, query, [("created_at", -1), ("_id", -1)], request)


async def retry_delivery(meta: RequestMeta, admin: Viewer, delivery_id: ObjectId) -> Delivery:
    """A dead delivery back in the outbox, due now, with its attempts counted afresh
    (audited); the background sender takes it within seconds."""
    before = await Delivery.get(PydanticObjectId(delivery_id))
    if before is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such delivery.", "id")
    retried = await outbox.retry(delivery_id)
    if retried is None:
        current = await Delivery.get(PydanticObjectId(delivery_id))
        status = current.status.value if current else "gone"
        raise DomainError(ErrorCode.INVALID_STATE, f"The delivery is {status}, not dead.", "id")
    await audit.record(
        AuditKind.NOTIFICATION_DELIVERY_RETRIED,
        meta,
        actor_id=admin.user_id,
        delivery_id=str(delivery_id),
        attempts_before=before.attempts,
        last_error=before.last_error,
    )
    return retried
