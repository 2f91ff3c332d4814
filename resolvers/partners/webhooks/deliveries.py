"""A partner's webhook deliveries: listing them with their attempts, and redelivery.

Redelivery puts the same delivery back (no new row: one delivery per event and
endpoint), PENDING and due at once, so the sender's next run attempts it, signed with
the endpoint's current secrets. Its retry period runs afresh from then. It keeps its
place in its wallet's order: while it is pending, later pending deliveries of the same
wallet to the same endpoint wait behind it.
"""

from __future__ import annotations

from dataclasses import dataclass

from bson import ObjectId

from documents.errors import DomainError, ErrorCode
from documents.partners.webhooks import (
    DeliveryStatus,
    PartnerEventType,
    PartnerWebhookDelivery,
    PartnerWebhookEndpoint,
    PartnerWebhookEvent,
)
from resolvers.common.pagination import Page, PageRequest, paginate
from resolvers.partners.keys import PartnerAccess
from resolvers.partners.webhooks.sender import requeue

NEWEST_FIRST = [("created_at", -1), ("_id", -1)]


@dataclass(frozen=True, slots=True)
class DeliveryFilter:
    endpoint_id: ObjectId | None = None
    status: DeliveryStatus | None = None
    event_type: PartnerEventType | None = None
    wallet_id: ObjectId | None = None


async def deliveries_of(
    partner_id: ObjectId, where: DeliveryFilter, request: PageRequest
) -> Page[PartnerWebhookDelivery]:
    """The partner's deliveries that match, newest first."""
    filters: dict[str, object] = {"partner_id": partner_id}
    for name, value in (
        ("endpoint_id", where.endpoint_id),
        ("wallet_id", where.wallet_id),
        ("status", where.status.value if where.status else None),
        ("event_type", where.event_type.value if where.event_type else None),
    ):
        if value is not None:
            filters[name] = value
    return await paginate(PartnerWebhookDelivery, filters, NEWEST_FIRST, request)


async def events_of(
    deliveries: list[PartnerWebhookDelivery],
) -> dict[ObjectId, PartnerWebhookEvent]:
    """The events of `deliveries`, by id, in one query."""
    ids = list({d.event_id for d in deliveries})
    return {e.id: e async for e in PartnerWebhookEvent.find({"_id": {"$in": ids}}) if e.id}


async def redeliver(access: PartnerAccess, delivery_id: ObjectId) -> PartnerWebhookDelivery:
    """A delivered or dead delivery pending again, due now. NOT_FOUND for another
    partner's; INVALID_STATE while it is pending, or if its endpoint was deleted or is
    disabled."""
    delivery = await PartnerWebhookDelivery.find_one(
        {"_id": delivery_id, "partner_id": access.partner_id}
    )
    if delivery is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such webhook delivery.", "deliveryId")
    endpoint = await PartnerWebhookEndpoint.get(delivery.endpoint_id)
    if endpoint is None or not endpoint.enabled:
        raise DomainError(
            ErrorCode.INVALID_STATE,
            "Its endpoint was deleted or is disabled: enable it (or make a new one) first.",
            "deliveryId",
        )
    redelivered = await requeue(delivery_id)
    if redelivered is None:
        raise DomainError(
            ErrorCode.INVALID_STATE, "It is pending already: it will be sent.", "deliveryId"
        )
    return redelivered
