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
    payment_intent.canceled        FAILED, with `transaction.failed`

A payment that succeeds for a wallet frozen or closed since is refunded in full and the
credit FAILED with WALLET_FROZEN: nothing reaches the wallet.
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
    platform_revenue,
)
from integrations.payments.gateway import GatewayEvent, PaymentIntent, Refund
from resolvers.common.services import Services
from resolvers.common.transitions import transition
from resolvers.common.unit_of_work import UnitOfWork, transact
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
from resolvers.partners.gateway.requests import TRANSACTION_SUBJECT
from resolvers.partners.postings import hold_active, post
from resolvers.partners.webhook_outbox import record_event

log = logging.getLogger(__name__)

PAYMENT_CANCELED = "payment_canceled"


async def payment_succeeded(services: Services, event: GatewayEvent) -> None:
    """payment_intent.succeeded: the wallet is credited, less the partner's fee."""
    intent = PaymentIntent.from_stripe(event.data_object)
    transaction = await transaction_for(event.data_object, intent.id)
    await check_intent(event, transaction, intent, paid=True)
    try:
        await transact(services, lambda unit: _credit(unit, services, event, intent, transaction))
    except DomainError as error:
        if error.code is not ErrorCode.WALLET_FROZEN:
            raise
        # Frozen or closed since the credit was asked for (or just now, racing this).
        await _refund_frozen(services, event, intent, transaction)


async def _credit(
    unit: UnitOfWork,
    services: Services,
    event: GatewayEvent,
    intent: PaymentIntent,
    transaction: PartnerTransaction,
) -> None:
    current = await reload(unit, transaction)
    await check_intent(event, current, intent, paid=True, session=unit.session)
    await keep(unit.session, event.data_object, current, event)
    if current.status is not TransactionStatus.PENDING:
        return  # seen already, or refunded for a frozen wallet
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
        },
    )
    money = Money(amount=completed.amount, currency=completed.currency)
    posted = await post(
        unit.session,
        key=step_key(current.id, "credit"),
        kind=MovementKind.PARTNER_CREDIT,
        entries=transfer(partner_funding(completed.partner_id), partner_wallet(wallet.id), money),
        partner_id=completed.partner_id,
        transaction=completed,
        memo="Card payment into the wallet",
    )
    balance = posted.balance_after[wallet.id]
    if completed.fee:
        fee = Money(amount=completed.fee, currency=completed.currency)
        posted = await post(
            unit.session,
            key=step_key(current.id, "fee"),
            kind=MovementKind.PARTNER_FEE,
            entries=transfer(partner_wallet(wallet.id), platform_revenue(), fee),
            partner_id=completed.partner_id,
            transaction=completed,
            memo="The partner's fee on a card credit",
        )
        balance = posted.balance_after[wallet.id]
    for kind in (PartnerEventType.WALLET_FUNDS_ADDED, PartnerEventType.TRANSACTION_COMPLETED):
        await record_event(unit.session, wallet, kind, transaction=completed, balance=balance)


async def _refund_frozen(
    services: Services, event: GatewayEvent, intent: PaymentIntent, transaction: PartnerTransaction
) -> None:
    """The payment is refunded in full (first, keyed, so a repeat finds the same refund)
    and the credit fails with WALLET_FROZEN."""
    assert transaction.id is not None
    refund = await services.payments.refund(
        intent.id,
        amount=None,
        metadata=our_ids(transaction),
        idempotency_key=step_key(transaction.id, "refund"),
    )

    async def work(unit: UnitOfWork) -> None:
        current = await reload(unit, transaction)
        await keep(unit.session, event.data_object, current, event)
        await keep(unit.session, payload_of(refund, "refund"), current)
        if current.status is not TransactionStatus.PENDING:
            return
        await _fail(
            unit,
            services,
            current,
            ErrorCode.WALLET_FROZEN.value,
            "The wallet was frozen or closed before the payment arrived; it was refunded.",
            event,
            fields={"payment_intent_id": intent.id},
        )

    await transact(services, work)


async def _fail(
    unit: UnitOfWork,
    services: Services,
    transaction: PartnerTransaction,
    code: str,
    message: str,
    event: GatewayEvent,
    fields: dict[str, Any] | None = None,
) -> None:
    failed = await transition(
        unit,
        services,
        PARTNER_TRANSACTION,
        "fail",
        transaction,
        Party.SYSTEM,
        TRANSACTION_SUBJECT,
        note=event.type,
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
        await _fail(
            unit,
            services,
            current,
            PAYMENT_CANCELED,
            "The card payment was cancelled.",
            event,
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
    """charge.refunded of a credit's payment: the refund is ours (a frozen wallet's);
    one made at the gateway directly is left for an operator, with a warning."""
    charge = event.data_object
    transaction = await transaction_for(charge, charge.get("payment_intent"))
    if transaction.failure_code != ErrorCode.WALLET_FROZEN.value:
        log.warning(
            "%s %s: the payment of partner credit %s was refunded at the gateway",
            event.type,
            event.id,
            transaction.id,
        )
