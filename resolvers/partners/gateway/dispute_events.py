"""Chargebacks on partner card credits: the payer's bank takes the payment back.

    charge.dispute.created  the card network took `amount` from the platform:
                            PARTNER_DISPUTE_OPENED moves what the wallet still holds of
                            it (up to `amount`) and the rest, from the credit's
                            chargeback account, back to the card (partner funding);
                            `transaction.disputed`
    charge.dispute.closed   won: PARTNER_DISPUTE_WON reverses the opening (the wallet gets
                            back what was taken from it, reopened FROZEN if it was closed
                            since: money_back.py); lost: PARTNER_DISPUTE_LOST
                            covers what the wallet could not, from platform revenue, and
                            logs an alert to collect it from the partner; both with
                            `transaction.dispute_closed`

Taking the money from the wallet at once, as the marketplace freezes a disputed escrow,
keeps a user from spending money their bank is taking back. A frozen wallet is debited
too: the money leaves because of the card network, not by anyone's request. Postings are
keyed by the credit and the dispute (`partner_txn:<id>:dispute:<dp>`, then `:won` or
`:lost`), so a redelivered event moves nothing again; a closing that arrives before its
opening waits (NotReady). A dispute must be of the credit's payment intent, in its
currency, for at most its amount, and on the platform's account, else it is rejected.
"""

from __future__ import annotations

import logging
from typing import Any

from documents.clock import utcnow
from documents.money import Money
from documents.partners.transactions import (
    DisputeStatus,
    PartnerDispute,
    PartnerTransaction,
    TransactionKind,
    TransactionStatus,
)
from documents.partners.webhooks import PartnerEventType
from documents.payments.ledger import Entry, MovementKind
from documents.payments.ledger_accounts import (
    partner_chargeback,
    partner_funding,
    partner_wallet,
    platform_revenue,
)
from integrations.payments.gateway import GatewayEvent
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.partners.gateway.money_back import open_for_money_back
from resolvers.partners.gateway.records import balance_of, keep, reload, step_key, wallet_of
from resolvers.partners.postings import post
from resolvers.partners.webhooks.outbox import record_event
from resolvers.payments.disputes.chargebacks import LOST, WON
from resolvers.payments.webhooks.checks import Comparison, NotReady, upper, whole_number

log = logging.getLogger(__name__)


def entries(moves: dict[str, int], currency: str) -> list[Entry]:
    """One entry per account that moves (none for an account whose amount is zero)."""
    return [
        Entry(account=account, currency=currency, amount=amount)
        for account, amount in moves.items()
        if amount
    ]


async def _credit_of(event: GatewayEvent) -> PartnerTransaction:
    """The card credit whose payment is disputed, checked against the event."""
    dispute = event.data_object
    intent_id = dispute.get("payment_intent")
    found = await PartnerTransaction.find_one({"payment_intent_id": intent_id})
    if found is None or found.status is TransactionStatus.PENDING:
        raise NotReady(f"the payment disputed by {dispute.get('id')} is not recorded yet")
    comparison = Comparison(event)
    comparison.on_platform()
    comparison.same("kind", TransactionKind.CREDIT.value, found.kind.value)
    comparison.same("currency", found.currency, upper(dispute.get("currency")))
    comparison.at_most("amount", found.amount, whole_number(dispute, "amount"), least=1)
    recorded = found.dispute
    if recorded is not None:
        comparison.same("dispute", recorded.id, dispute.get("id"))
    comparison.settle()
    return found


def _opening_key(transaction: PartnerTransaction, dispute_id: str) -> str:
    assert transaction.id is not None
    return step_key(transaction.id, f"dispute:{dispute_id}")


async def dispute_opened(services: Services, event: GatewayEvent) -> None:
    """charge.dispute.created on a card credit's payment."""
    dispute = event.data_object
    credit = await _credit_of(event)
    amount = int(dispute["amount"])

    async def work(unit: UnitOfWork) -> None:
        current = await reload(unit, credit)
        await keep(unit.session, dispute, current, event)
        if current.dispute is not None:
            return  # recorded already
        assert current.id is not None
        wallet = await wallet_of(unit, current)
        assert wallet.id is not None
        # A credit that failed (refunded for a frozen wallet) never reached the wallet.
        credited = current.status is TransactionStatus.COMPLETED
        held = min(amount, await balance_of(unit, wallet)) if credited else 0
        moves = {
            partner_wallet(wallet.id): -held,
            partner_chargeback(current.id): held - amount,
            partner_funding(current.partner_id): amount,
        }
        posted = await post(
            unit.session,
            key=_opening_key(current, dispute["id"]),
            kind=MovementKind.PARTNER_DISPUTE_OPENED,
            entries=entries(moves, current.currency),
            partner_id=current.partner_id,
            transaction=current,
            memo=f"chargeback opened: {dispute.get('reason') or 'no reason given'}",
        )
        recorded = PartnerDispute(id=dispute["id"], amount=amount, held=held, opened_at=utcnow())
        disputed = await _record(unit, current, recorded)
        balance = posted.balance_after.get(wallet.id, await balance_of(unit, wallet))
        await record_event(
            unit.session,
            wallet,
            PartnerEventType.TRANSACTION_DISPUTED,
            transaction=disputed,
            balance=balance,
        )

    await transact(services, work)


async def dispute_closed(services: Services, event: GatewayEvent) -> None:
    """charge.dispute.closed on a card credit's payment: won or lost."""
    dispute = event.data_object
    status = dispute.get("status")
    if status != LOST and status not in WON:
        log.warning("chargeback %s closed as %r; nothing to record", dispute.get("id"), status)
        return
    credit = await _credit_of(event)
    won = status in WON

    async def work(unit: UnitOfWork) -> None:
        current = await reload(unit, credit)
        await keep(unit.session, dispute, current, event)
        opened = current.dispute
        if opened is None:
            raise NotReady(f"chargeback {dispute['id']} is not recorded as opened yet")
        if opened.status is not DisputeStatus.OPEN:
            return  # closed already
        assert current.id is not None
        wallet = await wallet_of(unit, current)
        if won and opened.held:
            wallet = await open_for_money_back(
                unit, services, wallet, current, "partner_chargeback_won_for_closed_wallet"
            )
        assert wallet.id is not None
        # What the opening moved, whatever this event says: the account returns to zero.
        if won:
            moves = {
                partner_funding(current.partner_id): -opened.amount,
                partner_chargeback(current.id): opened.amount - opened.held,
                partner_wallet(wallet.id): opened.held,
            }
        else:
            shortfall = opened.amount - opened.held
            moves = {platform_revenue(): -shortfall, partner_chargeback(current.id): shortfall}
            if shortfall:
                log.error(
                    "a lost chargeback on a partner's card credit was not covered by its wallet",
                    extra={
                        "alert": "partner_chargeback_shortfall",
                        "partner_id": str(current.partner_id),
                        "transaction_id": str(current.id),
                        "dispute_id": opened.id,
                        "shortfall": str(Money(amount=shortfall, currency=current.currency)),
                    },
                )
        key = f"{_opening_key(current, opened.id)}:{'won' if won else 'lost'}"
        moved = entries(moves, current.currency)
        balance_after: dict[Any, int] = {}
        if moved:
            posted = await post(
                unit.session,
                key=key,
                kind=MovementKind.PARTNER_DISPUTE_WON if won else MovementKind.PARTNER_DISPUTE_LOST,
                entries=moved,
                partner_id=current.partner_id,
                transaction=current,
                memo="chargeback won: the money came back" if won else "chargeback lost",
            )
            balance_after = posted.balance_after
        closed = opened.model_copy(
            update={
                "status": DisputeStatus.WON if won else DisputeStatus.LOST,
                "closed_at": utcnow(),
            }
        )
        decided = await _record(unit, current, closed)
        balance = balance_after.get(wallet.id, await balance_of(unit, wallet))
        await record_event(
            unit.session,
            wallet,
            PartnerEventType.TRANSACTION_DISPUTE_CLOSED,
            transaction=decided,
            balance=balance,
        )

    await transact(services, work)


async def _record(
    unit: UnitOfWork, transaction: PartnerTransaction, dispute: PartnerDispute
) -> PartnerTransaction:
    now = utcnow()
    await PartnerTransaction.get_pymongo_collection().update_one(
        {"_id": transaction.id},
        {"$set": {"dispute": dispute.model_dump(), "updated_at": now}},
        session=unit.session,
    )
    recorded: PartnerTransaction = transaction.model_copy(
        update={"dispute": dispute, "updated_at": now}
    )
    return recorded
