"""A withdrawal settled: the gateway's payout events, and a failure however it came.

    payout.paid      COMPLETED: PARTNER_PAYOUT_PAID (payout in flight -> paid out), with
                     `payout.processed` and `transaction.completed`
    payout.failed    the transfer reversed, FAILED: PARTNER_PAYOUT_FAILED (payout in
                     flight -> the wallet), with `payout.failed` and `transaction.failed`;
                     a wallet closed since is reopened FROZEN (money_back.py)
    transfer.*       the transfer's payload kept

A payout event is checked against the withdrawal (its connected account, amount,
currency and recorded payout) before it changes anything; one that arrives before the
payout's id was recorded (a crash between the gateway's answer and our write) records
it, if everything else matches. Each settlement is a transition together with its
postings keyed by the transaction, so a redelivered event changes nothing.
"""

from __future__ import annotations

import logging

from documents.clock import utcnow
from documents.lifecycles import PARTNER_TRANSACTION, Party
from documents.money import Money
from documents.partners.transactions import PartnerTransaction, TransactionStatus
from documents.partners.webhooks import PartnerEventType
from documents.payments.ledger import MovementKind, transfer
from documents.payments.ledger_accounts import (
    partner_paid_out,
    partner_payout_in_flight,
    partner_wallet,
)
from integrations.payments.gateway import GatewayEvent, Payout, Transfer
from resolvers.common.services import Services
from resolvers.common.transitions import transition
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.partners.gateway.checks import check_payout
from resolvers.partners.gateway.money_back import open_for_money_back
from resolvers.partners.gateway.records import (
    balance_of,
    keep,
    our_ids,
    payload_of,
    reload,
    step_key,
    transaction_for,
    wallet_of,
)
from resolvers.partners.gateway.requests import TRANSACTION_SUBJECT
from resolvers.partners.postings import post
from resolvers.partners.webhooks.outbox import record_event
from resolvers.payments.webhooks.checks import Comparison

log = logging.getLogger(__name__)

REFUSED = "payout_refused"
RETURNED_TO_CLOSED = "partner_payout_returned_to_closed_wallet"
"""The alert of a payout returned to a wallet closed since: reopened frozen."""
"""The failure code of a transfer or payout the gateway refused without giving one."""


async def _payout_recorded(
    unit: UnitOfWork, services: Services, transaction: PartnerTransaction, payout: Payout
) -> PartnerTransaction:
    """The withdrawal with the payout's id recorded: moved to PROCESSING now if its
    event came before our own record of it."""
    if transaction.status is not TransactionStatus.PENDING:
        return transaction
    return await transition(
        unit,
        services,
        PARTNER_TRANSACTION,
        "pay_out",
        transaction,
        Party.SYSTEM,
        TRANSACTION_SUBJECT,
        note="payout recorded from its event",
        fields={"payout_id": payout.id},
    )


async def payout_paid(services: Services, event: GatewayEvent) -> None:
    """payout.paid: the partner's bank has the money."""
    payout = Payout.from_stripe(event.data_object, event.account or "")
    transaction = await transaction_for(event.data_object, None)
    check_payout(event, transaction, payout)

    async def work(unit: UnitOfWork) -> None:
        current = await reload(unit, transaction)
        check_payout(event, current, payout)
        await keep(unit.session, event.data_object, current, event)
        if current.status not in (TransactionStatus.PENDING, TransactionStatus.PROCESSING):
            return  # paid already, or failed (its failure came first)
        current = await _payout_recorded(unit, services, current, payout)
        completed = await transition(
            unit,
            services,
            PARTNER_TRANSACTION,
            "complete",
            current,
            Party.SYSTEM,
            TRANSACTION_SUBJECT,
            note=event.type,
            fields={"completed_at": utcnow()},
        )
        assert completed.id is not None
        partner_id = completed.partner_id
        await post(
            unit.session,
            key=step_key(completed.id, "paid"),
            kind=MovementKind.PARTNER_PAYOUT_PAID,
            entries=transfer(
                partner_payout_in_flight(partner_id),
                partner_paid_out(partner_id),
                Money(amount=completed.amount, currency=completed.currency),
            ),
            partner_id=partner_id,
            transaction=completed,
            memo="Paid to the partner's bank",
        )
        wallet = await wallet_of(unit, completed)
        balance = await balance_of(unit, wallet)
        for kind in (PartnerEventType.PAYOUT_PROCESSED, PartnerEventType.TRANSACTION_COMPLETED):
            await record_event(unit.session, wallet, kind, transaction=completed, balance=balance)

    await transact(services, work)


async def payout_failed(services: Services, event: GatewayEvent) -> None:
    """payout.failed: the bank returned the payout (also after it was reported paid)."""
    payout = Payout.from_stripe(event.data_object, event.account or "")
    transaction = await transaction_for(event.data_object, None)
    check_payout(event, transaction, payout)
    message = event.data_object.get("failure_message") or "The bank returned the payout."
    await fail_withdrawal(
        services, transaction, payout.failure_code or REFUSED, message, event=event, payout=payout
    )


async def fail_withdrawal(
    services: Services,
    transaction: PartnerTransaction,
    code: str,
    message: str,
    *,
    event: GatewayEvent | None,
    payout: Payout | None = None,
) -> PartnerTransaction:
    """The payout failed, or the gateway refused a step outright: the transfer to the
    partner's account (if one was made) is reversed, then the money goes back to the
    wallet, once. The transaction as it is now."""
    assert transaction.id is not None
    reversal = None
    if transaction.transfer_id is not None:
        # First, keyed: a repeat after a crash gets the same reversal, never a second.
        reversal = await services.payments.reverse_transfer(
            transaction.transfer_id,
            amount=None,
            idempotency_key=step_key(transaction.id, "reversal"),
        )

    async def work(unit: UnitOfWork) -> PartnerTransaction:
        current = await reload(unit, transaction)
        if event is not None:
            await keep(unit.session, event.data_object, current, event)
        if reversal is not None:
            await keep(unit.session, payload_of(reversal, "transfer_reversal"), current)
        if current.status is TransactionStatus.FAILED:
            return current
        if payout is not None:
            current = await _payout_recorded(unit, services, current, payout)
        # A bank may return a payout after it was reported paid.
        returned = current.status is TransactionStatus.COMPLETED
        failed = await transition(
            unit,
            services,
            PARTNER_TRANSACTION,
            "return" if returned else "fail",
            current,
            Party.SYSTEM,
            TRANSACTION_SUBJECT,
            note=event.type if event else "refused by the gateway",
            fields={"failure_code": code, "failure_message": message},
        )
        partner_id = failed.partner_id
        source = partner_paid_out(partner_id) if returned else partner_payout_in_flight(partner_id)
        wallet = await open_for_money_back(
            unit, services, await wallet_of(unit, failed), failed, RETURNED_TO_CLOSED
        )
        assert failed.id is not None and wallet.id is not None
        # No hold on the wallet: a frozen (or closed, now reopened frozen) wallet gets its
        # own money back. Returning what left it is not a new movement into it, and the
        # money must not stay in flight with nowhere to go.
        posted = await post(
            unit.session,
            key=step_key(failed.id, "return"),
            kind=MovementKind.PARTNER_PAYOUT_FAILED,
            entries=transfer(
                source,
                partner_wallet(wallet.id),
                Money(amount=failed.amount, currency=failed.currency),
            ),
            partner_id=partner_id,
            transaction=failed,
            memo=f"Payout failed ({code}): back to the wallet",
        )
        balance = posted.balance_after[wallet.id]
        for kind in (PartnerEventType.PAYOUT_FAILED, PartnerEventType.TRANSACTION_FAILED):
            await record_event(unit.session, wallet, kind, transaction=failed, balance=balance)
        return failed

    return await transact(services, work)


async def transfer_noted(services: Services, event: GatewayEvent) -> None:
    """transfer.created and transfer.reversed of a withdrawal's transfer: the platform's
    own object, to the account the withdrawal fixed; its payload is kept."""
    sent = Transfer.from_stripe(event.data_object)
    transaction = await transaction_for(event.data_object, None)
    comparison = Comparison(event)
    comparison.on_platform()
    comparison.our_links(our_ids(transaction), sent.metadata)
    comparison.same("destination", transaction.destination_account_id, sent.destination_account_id)
    comparison.same_id("transfer", transaction.transfer_id, sent.id)
    comparison.settle()
    await keep(None, event.data_object, transaction, event)
