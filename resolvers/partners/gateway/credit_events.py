"""The gateway's events about partner credits: their payment intents and refunds.

Each handler finds the credit by the `partner_transaction_id` in the object's metadata
(events can arrive before we recorded the intent's id), else by the intent's id, and
compares the event with it (resolvers/partners/gateway/checks.py) before changing
anything: one that differs is rejected and changes nothing. Each change is conditional
on the credit's status and its postings keyed by the transaction, so a redelivered
event changes nothing. Every event about one of the credit's objects updates the
payload kept of it.

    payment_intent.succeeded       COMPLETED: PARTNER_CREDIT partner_funding -> wallet
                                   and the fee as PARTNER_FEE wallet -> platform revenue,
                                   with `wallet.funds_added` and `transaction.completed`
    payment_intent.payment_failed  the failure recorded; still PENDING (another card may
                                   be tried)
    payment_intent.canceled        FAILED, with `transaction.failed` (its code the one we
                                   cancelled it with, if we did: `canceled`, `expired`)

A payment that succeeds for a wallet frozen or closed since fails the credit with
WALLET_FROZEN (`transaction.failed`) and, after that commit, is refunded in full (key
`partner_txn:<id>:refund`, again on every repeat of the event until the gateway has
made it): nothing reaches the wallet. Failing first makes a completion racing it (the
wallet unfrozen meanwhile) lose, so money is never both credited and refunded.
"""

from __future__ import annotations

import logging
from typing import Any

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.lifecycles import PARTNER_TRANSACTION, Party
from documents.money import Money
from documents.partners.transactions import PartnerTransaction, TransactionStatus
from documents.partners.webhooks import PartnerEventType
from documents.payments.ledger import MovementKind, transfer
from documents.payments.ledger_accounts import (
    partner_funding,
    partner_wallet,
)
from integrations.payments.gateway import GatewayEvent, PaymentIntent, Refund
from resolvers.common.services import Services
from resolvers.common.transitions import transition
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.partners.fees import post_fee
from resolvers.partners.gateway.checks import check_intent
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
from resolvers.partners.gateway.refund_events import refunded_at_gateway
from resolvers.partners.gateway.requests import TRANSACTION_SUBJECT
from resolvers.partners.postings import hold_active, post
from resolvers.partners.webhooks.outbox import record_event
from resolvers.payments.webhooks.checks import NotReady

log = logging.getLogger(__name__)

PAYMENT_CANCELED = "payment_canceled"
CANCELED = "canceled"
EXPIRED = "expired"
CANCEL_MESSAGES = {
    CANCELED: "The partner cancelled the credit before it was paid.",
    EXPIRED: "No payment came in time: the credit expired.",
}
"""The failure codes of credits we cancelled (resolvers/partners/gateway/cancellations.py),
and what they say."""
REFUSED = ErrorCode.WALLET_FROZEN.value
"""The failure code of a credit whose payment was refunded: its wallet was frozen."""


async def payment_succeeded(services: Services, event: GatewayEvent) -> None:
    """payment_intent.succeeded: the wallet is credited, less the partner's fee; or, for
    a wallet frozen or closed since the credit was asked for, the payment is refunded."""
    intent = PaymentIntent.from_stripe(event.data_object)
    transaction = await transaction_for(event.data_object, intent.id)
    await check_intent(event, transaction, intent, paid=True)
    try:
        current = await transact(
            services, lambda unit: _credit(unit, services, event, intent, transaction)
        )
    except DomainError as error:
        if error.code is not ErrorCode.WALLET_FROZEN:
            raise
        current = await transact(
            services, lambda unit: _refused(unit, services, event, intent, transaction)
        )
    if current.status is TransactionStatus.FAILED and current.failure_code == REFUSED:
        # After the commit that failed it; again on every repeat of the event (the same
        # key gives the same refund), so a refund the gateway did not make is retried.
        await _refund(services, current, intent)


async def _credit(
    unit: UnitOfWork,
    services: Services,
    event: GatewayEvent,
    intent: PaymentIntent,
    transaction: PartnerTransaction,
) -> PartnerTransaction:
    current = await reload(unit, transaction)
    await check_intent(event, current, intent, paid=True, session=unit.session)
    await keep(unit.session, event.data_object, current, event)
    if current.status is not TransactionStatus.PENDING:
        return current  # seen already, or failed for a frozen wallet
    wallet = await wallet_of(unit, current)
    # Raises WALLET_FROZEN for a wallet frozen or closed by now: nothing is credited.
    await hold_active(unit.session, wallet, "walletId")
    assert current.id is not None and wallet.id is not None
    completed = await transition(
        unit,
        services,
        PARTNER_TRANSACTION,
        "complete",
        current,
        Party.SYSTEM,
        TRANSACTION_SUBJECT,
        note=event.type,
        fields={
            "payment_intent_id": intent.id,
            "completed_at": utcnow(),
            "failure_code": None,
            "failure_message": None,
            "cancel_code": None,  # a cancel the payment beat
        },
    )
    money = Money(amount=completed.amount, currency=completed.currency)
    credited = await post(
        unit.session,
        key=step_key(current.id, "credit"),
        kind=MovementKind.PARTNER_CREDIT,
        entries=transfer(partner_funding(completed.partner_id), partner_wallet(wallet.id), money),
        partner_id=completed.partner_id,
        transaction=completed,
        memo="Card payment into the wallet",
    )
    charged = await post_fee(
        unit.session,
        partner_id=completed.partner_id,
        transaction=completed,
        wallet_id=wallet.id,
        fee=Money(amount=completed.fee, currency=completed.currency),
        memo="The partner's fee on a card credit",
    )
    balance = (charged or credited).balance_after[wallet.id]
    for kind in (PartnerEventType.WALLET_FUNDS_ADDED, PartnerEventType.TRANSACTION_COMPLETED):
        await record_event(unit.session, wallet, kind, transaction=completed, balance=balance)
    return completed


async def _refused(
    unit: UnitOfWork,
    services: Services,
    event: GatewayEvent,
    intent: PaymentIntent,
    transaction: PartnerTransaction,
) -> PartnerTransaction:
    """The credit fails with WALLET_FROZEN, before its payment is refunded: a status
    change that only one of this and a completion racing it (the wallet unfrozen
    meanwhile) can make, so the money is never both credited and refunded."""
    current = await reload(unit, transaction)
    await keep(unit.session, event.data_object, current, event)
    if current.status is not TransactionStatus.PENDING:
        return current
    return await fail_credit(
        unit,
        services,
        current,
        REFUSED,
        "The wallet was frozen or closed before the payment arrived; it is refunded.",
        event.type,
        fields={"payment_intent_id": intent.id},
    )


async def _refund(
    services: Services, transaction: PartnerTransaction, intent: PaymentIntent
) -> None:
    """The whole payment back to the payer, keyed by the transaction."""
    assert transaction.id is not None
    refund = await services.payments.refund(
        intent.id,
        amount=None,
        metadata=our_ids(transaction),
        idempotency_key=step_key(transaction.id, "refund"),
    )
    await keep(None, payload_of(refund, "refund"), transaction)


async def fail_credit(
    unit: UnitOfWork,
    services: Services,
    transaction: PartnerTransaction,
    code: str,
    message: str,
    note: str,
    fields: dict[str, Any] | None = None,
) -> PartnerTransaction:
    """The pending credit FAILED with `code`, and the partner told
    (`transaction.failed`)."""
    failed = await transition(
        unit,
        services,
        PARTNER_TRANSACTION,
        "fail",
        transaction,
        Party.SYSTEM,
        TRANSACTION_SUBJECT,
        note=note,
        fields={"failure_code": code, "failure_message": message, **(fields or {})},
    )
    wallet = await wallet_of(unit, failed)
    balance = await balance_of(unit, wallet)
    await record_event(
        unit.session,
        wallet,
        PartnerEventType.TRANSACTION_FAILED,
        transaction=failed,
        balance=balance,
    )
    return failed


async def payment_failed(services: Services, event: GatewayEvent) -> None:
    """The payer's attempt failed; the intent takes another card, so the credit stays
    pending with the reason shown."""
    intent = PaymentIntent.from_stripe(event.data_object)
    transaction = await transaction_for(event.data_object, intent.id)
    await check_intent(event, transaction, intent)
    code = intent.failure_code or "payment_failed"
    error = event.data_object.get("last_payment_error") or {}
    message = error.get("message") if isinstance(error, dict) else None

    async def work(unit: UnitOfWork) -> None:
        await keep(unit.session, event.data_object, transaction, event)
        await PartnerTransaction.get_pymongo_collection().update_one(
            {
                "_id": transaction.id,
                "status": TransactionStatus.PENDING.value,
                "payment_intent_id": {"$in": [None, intent.id]},
            },
            {
                "$set": {
                    "payment_intent_id": intent.id,
                    "failure_code": code,
                    "failure_message": message or "The card payment failed.",
                    "updated_at": utcnow(),
                }
            },
            session=unit.session,
        )

    await transact(services, work)


async def payment_canceled(services: Services, event: GatewayEvent) -> None:
    """The intent was cancelled: no payment can come any more, the credit fails."""
    intent = PaymentIntent.from_stripe(event.data_object)
    transaction = await transaction_for(event.data_object, intent.id)
    await check_intent(event, transaction, intent)

    async def work(unit: UnitOfWork) -> None:
        current = await reload(unit, transaction)
        await keep(unit.session, event.data_object, current, event)
        if current.status is not TransactionStatus.PENDING:
            return
        await fail_credit(
            unit,
            services,
            current,
            current.cancel_code or PAYMENT_CANCELED,
            CANCEL_MESSAGES.get(current.cancel_code or "", "The card payment was cancelled."),
            event.type,
            fields={"payment_intent_id": intent.id},
        )

    await transact(services, work)


async def payment_noted(services: Services, event: GatewayEvent) -> None:
    """Any other event about a credit's intent (asks for authentication, ...): its
    payload is kept, nothing else changes."""
    intent = PaymentIntent.from_stripe(event.data_object)
    transaction = await transaction_for(event.data_object, intent.id)
    await check_intent(event, transaction, intent)
    await keep(None, event.data_object, transaction, event)


async def refund_noted(services: Services, event: GatewayEvent) -> None:
    """refund.created of a credit's refund (a frozen wallet's): its payload is kept."""
    refund = Refund.from_stripe(event.data_object)
    transaction = await transaction_for(event.data_object, refund.payment_intent_id)
    await keep(None, event.data_object, transaction, event)


async def charge_noted(services: Services, event: GatewayEvent) -> None:
    """charge.refunded of a credit's payment: our own refund (a frozen wallet's) is kept
    for the records; one made at the gateway of a completed credit takes the money back
    from the wallet (refund_events.py). A refund before the payment was recorded waits."""
    charge = event.data_object
    transaction = await transaction_for(charge, charge.get("payment_intent"))
    if transaction.status is TransactionStatus.PENDING:
        raise NotReady(f"the payment refunded by {event.id} is not recorded yet")
    if transaction.status is TransactionStatus.COMPLETED:
        await refunded_at_gateway(services, event, transaction)
        return
    await keep(None, charge, transaction, event)
