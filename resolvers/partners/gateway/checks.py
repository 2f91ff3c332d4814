"""What the gateway's events about partner money must match before they move it.

    payment_intent.*   a credit's intent (by the id we recorded; before that, one for
                       exactly the credit's amount that no other transaction recorded),
                       its amount and currency; a payment also its amount received
    payout.*           a withdrawal's connected account, amount, currency and the payout
                       we recorded (before that, any payout that matches the rest)

Payment intents are the platform's own objects, so their events name no connected
account; payouts happen on the partner's account, which the withdrawal fixed. Our ids
in the object's metadata (transaction, wallet, partner) must be the transaction's.
"""

from __future__ import annotations

from pymongo.asynchronous.client_session import AsyncClientSession

from documents.money import Money
from documents.partners.transactions import PartnerTransaction, TransactionKind
from integrations.payments.gateway import GatewayEvent, PaymentIntent, Payout
from resolvers.partners.gateway.records import our_ids
from resolvers.payments.escrow.event_checks import HELD_INTENT_AMOUNTS
from resolvers.payments.webhooks.checks import Comparison, whole_number


def _comparison(
    event: GatewayEvent, transaction: PartnerTransaction, kind: TransactionKind
) -> Comparison:
    comparison = Comparison(event)
    comparison.same("kind", kind.value, transaction.kind.value)
    return comparison


def _money(transaction: PartnerTransaction) -> Money:
    return Money(amount=transaction.amount, currency=transaction.currency)


async def check_intent(
    event: GatewayEvent,
    transaction: PartnerTransaction,
    intent: PaymentIntent,
    *,
    paid: bool = False,
    session: AsyncClientSession | None = None,
) -> None:
    """A payment_intent.* event about a credit. `paid`: it says the money was received."""
    comparison = _comparison(event, transaction, TransactionKind.CREDIT)
    comparison.on_platform()
    comparison.our_links(our_ids(transaction), intent.metadata)
    comparison.same_money(_money(transaction), intent.amount, intent.currency)
    comparison.same_id("payment_intent", transaction.payment_intent_id, intent.id)
    if paid:
        field = HELD_INTENT_AMOUNTS.get(intent.status)
        held = whole_number(event.data_object, field) if field else None
        if field and held is not None:  # Stripe sends it; not every stand-in does
            comparison.same(field, transaction.amount, held)
    if transaction.payment_intent_id is None and comparison.matches:
        other = await PartnerTransaction.find_one(
            {"payment_intent_id": intent.id, "_id": {"$ne": transaction.id}}, session=session
        )
        if other is not None:
            comparison.differ("payment_intent", f"{intent.id} of transaction {other.id}", intent.id)
    comparison.settle()


def check_payout(event: GatewayEvent, transaction: PartnerTransaction, payout: Payout) -> None:
    """A payout.* event about a withdrawal."""
    comparison = _comparison(event, transaction, TransactionKind.WITHDRAWAL)
    comparison.on_account(transaction.destination_account_id)
    comparison.our_links(our_ids(transaction), payout.metadata)
    comparison.same_money(_money(transaction), payout.amount, payout.currency)
    comparison.same_id("payout", transaction.payout_id, payout.id)
    comparison.settle()
