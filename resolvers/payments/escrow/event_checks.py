"""What the gateway's events about an escrow must match before they move its money.

    payment_intent.*   the escrow's intent (by the id we recorded; before that, one for
                       exactly what the escrow charges that no other escrow recorded),
                       its amount and currency; a payment also by the charge we recorded
    charge.refunded    the escrow's intent and charge, what it charged, at most that refunded
    refund.created     the escrow's intent, one of its refunds by number, that refund's
                       amount, currency and gateway id
    transfer.*         the escrow's transfer group and currency, the provider's connected
                       account, a release round we claimed, that round's amount and
                       transfer id

Every one of them is about a platform object, so it names no connected account, and
our ids in its metadata (escrow, deal, task, booking, milestone) must be the escrow's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from documents.accounts.profiles import ProviderProfile
from documents.payments.escrow import Escrow, EscrowRefund, EscrowStatus
from integrations.payments.gateway import GatewayEvent, PaymentIntent, Refund, Transfer
from resolvers.payments.escrow.escrows import payment_metadata
from resolvers.payments.webhooks.checks import Comparison, whole_number

HELD_INTENT_AMOUNTS = {"succeeded": "amount_received", "requires_capture": "amount_capturable"}
"""The field saying how much of a paid intent the payer gave, by its status."""


def _escrow_comparison(event: GatewayEvent, escrow: Escrow, metadata: object) -> Comparison:
    comparison = Comparison(event)
    comparison.on_platform()
    ours = metadata if isinstance(metadata, Mapping) else {}
    comparison.our_links(payment_metadata(escrow), ours)
    return comparison


async def check_intent(
    event: GatewayEvent,
    escrow: Escrow,
    intent: PaymentIntent,
    *,
    paid: bool = False,
    session: AsyncClientSession | None = None,
) -> None:
    """A payment_intent.* event. `paid`: the event says the money was received."""
    comparison = _escrow_comparison(event, escrow, intent.metadata)
    charged = escrow.fees.charged
    comparison.same_money(charged, intent.amount, intent.currency)
    comparison.same_id("payment_intent", escrow.payment_intent_id, intent.id)
    if paid:
        field = HELD_INTENT_AMOUNTS.get(intent.status)
        held = whole_number(event.data_object, field) if field else None
        if field and held is not None:  # Stripe sends it; not every stand-in does
            comparison.same(field, charged.amount, held)
        comparison.same_id("latest_charge", escrow.charge_id, intent.latest_charge_id)
    if escrow.payment_intent_id is None and comparison.matches:
        other = await Escrow.find_one(
            {"payment_intent_id": intent.id, "_id": {"$ne": escrow.id}}, session=session
        )
        if other is not None:
            comparison.differ("payment_intent", f"{intent.id} of escrow {other.id}", intent.id)
    comparison.settle()


def check_charge(event: GatewayEvent, escrow: Escrow, charge: Mapping[str, Any]) -> None:
    """charge.refunded: `amount_refunded` is the charge's total refunded so far."""
    comparison = _escrow_comparison(event, escrow, charge.get("metadata"))
    charged = escrow.fees.charged
    comparison.same_money(charged, charge.get("amount"), charge.get("currency"))
    comparison.at_most("amount_refunded", charged.amount, whole_number(charge, "amount_refunded"))
    comparison.same_id("payment_intent", escrow.payment_intent_id, charge.get("payment_intent"))
    comparison.same_id("charge", escrow.charge_id, charge.get("id"))
    comparison.settle()


def check_refund(
    event: GatewayEvent, escrow: Escrow, refund: Refund, number: int | None
) -> EscrowRefund:
    """refund.created of our refund `number` (from its metadata): that refund of ours."""
    comparison = _escrow_comparison(event, escrow, refund.metadata)
    comparison.same_id("payment_intent", escrow.payment_intent_id, refund.payment_intent_id)
    ours = next((r for r in escrow.refunds if r.number == number), None)
    if ours is None:
        comparison.differ(
            "metadata.refund_number",
            f"1 to {len(escrow.refunds)}",
            refund.metadata.get("refund_number"),
        )
    else:
        comparison.same_money(ours.amount, refund.amount, refund.currency)
        comparison.same_id("refund", ours.refund_id, refund.id)
    comparison.settle()
    assert ours is not None  # else settle() raised
    return ours


async def check_transfer(
    event: GatewayEvent, escrow: Escrow, transfer: Transfer, round: int | None
) -> None:
    """transfer.created and transfer.reversed of release `round` (from its metadata)."""
    comparison = _escrow_comparison(event, escrow, transfer.metadata)
    comparison.same("transfer_group", escrow.gateway_group, transfer.transfer_group)
    comparison.same("currency", escrow.fees.price.currency, transfer.currency)
    comparison.same(
        "destination", await _connected_account(escrow), transfer.destination_account_id
    )
    comparison.at_most("amount_reversed", transfer.amount, transfer.amount_reversed)
    plan = escrow.release
    if plan is None or round is None or not 1 <= round <= plan.round:
        claimed = f"1 to {plan.round}" if plan else "no release claimed"
        comparison.differ("metadata.release_round", claimed, transfer.metadata.get("release_round"))
    elif round == plan.round:
        comparison.same("amount", plan.to_provider.amount, transfer.amount)
        if escrow.status is not EscrowStatus.RELEASING:
            # Recorded with the release (while releasing, it is an earlier round's).
            comparison.same_id("transfer", escrow.transfer_id, transfer.id)
    comparison.settle()


async def _connected_account(escrow: Escrow) -> str | None:
    profile = await ProviderProfile.get(escrow.provider_id)
    return None if profile is None else profile.stripe_account_id
