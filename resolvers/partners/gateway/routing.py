"""Which gateway events are about partner money, and their handlers.

Partner credits and withdrawals share the gateway's event types with the marketplace
(payment intents, refunds, transfers, payouts). An event is a partner's when its
object's metadata names a partner transaction (every object we make for one does), or,
for an object that names neither that nor an escrow of ours (a charge, a refund made at
the gateway), when its payment intent is a partner credit's. Everything else goes to
the marketplace's handler, unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from documents.partners.transactions import PartnerTransaction
from integrations.payments.gateway import GatewayEvent
from resolvers.common.services import Services
from resolvers.partners.gateway import credit_events, dispute_events, payout_events
from resolvers.partners.gateway.records import partner_transaction_id

Handler = Callable[[Services, GatewayEvent], Awaitable[None]]


ESCROW_ID = "escrow_id"
"""The metadata key every gateway object made for a marketplace deal carries
(resolvers/payments/escrow/escrows.py `payment_metadata`); partner objects never do."""


async def is_partners(obj: Mapping[str, Any]) -> bool:
    if partner_transaction_id(obj) is not None:
        return True
    metadata = obj.get("metadata")
    if isinstance(metadata, Mapping) and isinstance(metadata.get(ESCROW_ID), str):
        # A deal's: no partner transaction to look for (one read less per payment).
        return False
    intent_id = (
        obj.get("id") if obj.get("object") == "payment_intent" else obj.get("payment_intent")
    )
    if not isinstance(intent_id, str):
        return False
    return await PartnerTransaction.find_one({"payment_intent_id": intent_id}) is not None


def partner_first(partner: Handler, marketplace: Handler) -> Handler:
    """`partner` for events about partner money, `marketplace` for the others."""

    async def handle(services: Services, event: GatewayEvent) -> None:
        chosen = partner if await is_partners(event.data_object) else marketplace
        await chosen(services, event)

    return handle


PARTNER_HANDLERS: Mapping[str, Handler] = {
    "payment_intent.succeeded": credit_events.payment_succeeded,
    "payment_intent.amount_capturable_updated": credit_events.payment_noted,
    "payment_intent.payment_failed": credit_events.payment_failed,
    "payment_intent.requires_action": credit_events.payment_noted,
    "payment_intent.canceled": credit_events.payment_canceled,
    "charge.refunded": credit_events.charge_noted,
    "refund.created": credit_events.refund_noted,
    "transfer.created": payout_events.transfer_noted,
    "transfer.reversed": payout_events.transfer_noted,
    "payout.paid": payout_events.payout_paid,
    "payout.failed": payout_events.payout_failed,
    "charge.dispute.created": dispute_events.dispute_opened,
    "charge.dispute.closed": dispute_events.dispute_closed,
}
"""The event types partner money has, by the handler of each."""


def with_partners(handlers: Mapping[str, Handler]) -> dict[str, Handler]:
    """The marketplace's handler table, with each type partner money has routed first."""
    return {
        event_type: partner_first(PARTNER_HANDLERS[event_type], handler)
        if event_type in PARTNER_HANDLERS
        else handler
        for event_type, handler in handlers.items()
    }
