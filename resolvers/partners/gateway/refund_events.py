"""Refunds made at the gateway (an operator in Stripe's dashboard) of completed card
credits: the money goes back to the payer's card, so it leaves the wallet.

    charge.refunded   the charge's `amount_refunded` (cumulative) above what we recorded:
                      PARTNER_REFUNDED takes the difference back from the wallet, as far
                      as it still holds it, and from platform revenue for the rest (an
                      ERROR alert, to settle with the partner), to partner funding;
                      `transaction.refunded`

Our own refunds (of a payment for a wallet frozen meanwhile, credit_events.py) never
reached the wallet and are only kept for the records. A frozen wallet is debited too:
the money leaves because of the gateway, not by anyone's request. Each step is keyed by
the cumulative amount refunded (`partner_txn:<id>:refunded:<amount>`), so a redelivered
event moves nothing again and a later partial refund moves only what is new. The charge
must be of the credit's payment intent, in its currency, refund at most its amount, and
be the platform's own, else the event is rejected.
"""

from __future__ import annotations

import logging

from documents.money import Money
from documents.partners.transactions import PartnerTransaction, TransactionStatus
from documents.partners.webhooks import PartnerEventType
from documents.payments.ledger import MovementKind
from documents.payments.ledger_accounts import partner_funding, partner_wallet, platform_revenue
from integrations.payments.gateway import GatewayEvent
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.partners.gateway.dispute_events import entries
from resolvers.partners.gateway.records import balance_of, keep, reload, step_key, wallet_of
from resolvers.partners.postings import post
from resolvers.partners.webhooks.outbox import record_event
from resolvers.payments.webhooks.checks import Comparison, upper, whole_number

log = logging.getLogger(__name__)


def _check(event: GatewayEvent, transaction: PartnerTransaction) -> int:
    """The cumulative amount refunded, once the charge checks out against the credit."""
    charge = event.data_object
    comparison = Comparison(event)
    comparison.on_platform()
    comparison.same_id(
        "payment_intent", transaction.payment_intent_id, charge.get("payment_intent")
    )
    comparison.same("currency", transaction.currency, upper(charge.get("currency")))
    refunded = whole_number(charge, "amount_refunded")
    comparison.at_most("amount_refunded", transaction.amount, refunded)
    comparison.settle()
    assert refunded is not None
    return refunded


async def refunded_at_gateway(
    services: Services, event: GatewayEvent, transaction: PartnerTransaction
) -> None:
    """charge.refunded of a COMPLETED credit's payment, by someone at the gateway."""
    refunded = _check(event, transaction)

    async def work(unit: UnitOfWork) -> None:
        current = await reload(unit, transaction)
        await keep(unit.session, event.data_object, current, event)
        new = refunded - current.refunded
        if current.status is not TransactionStatus.COMPLETED or new <= 0:
            return  # recorded already (or a later refund's event came first)
        assert current.id is not None
        wallet = await wallet_of(unit, current)
        assert wallet.id is not None
        held = min(new, await balance_of(unit, wallet))
        shortfall = new - held
        moves = {
            partner_wallet(wallet.id): -held,
            platform_revenue(): -shortfall,
            partner_funding(current.partner_id): new,
        }
        posted = await post(
            unit.session,
            key=step_key(current.id, f"refunded:{refunded}"),
            kind=MovementKind.PARTNER_REFUNDED,
            entries=entries(moves, current.currency),
            partner_id=current.partner_id,
            transaction=current,
            memo="refunded at the gateway",
        )
        if shortfall:
            log.error(
                "a refund made at the gateway of a partner's card credit was not covered by "
                "its wallet",
                extra={
                    "alert": "partner_refund_shortfall",
                    "partner_id": str(current.partner_id),
                    "transaction_id": str(current.id),
                    "shortfall": str(Money(amount=shortfall, currency=current.currency)),
                },
            )
        await PartnerTransaction.get_pymongo_collection().update_one(
            {"_id": current.id}, {"$set": {"refunded": refunded}}, session=unit.session
        )
        recorded = current.model_copy(update={"refunded": refunded})
        balance = posted.balance_after.get(wallet.id, await balance_of(unit, wallet))
        await record_event(
            unit.session,
            wallet,
            PartnerEventType.TRANSACTION_REFUNDED,
            transaction=recorded,
            balance=balance,
        )

    await transact(services, work)
