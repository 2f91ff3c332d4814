"""Crediting a partner's wallet by card.

1. One transaction stores a PENDING credit under the partner's idempotency key (the same
   key with the same request finds it again: `idempotency.replay` and `once`), after
   holding the wallet, so a frozen or closed wallet is WALLET_FROZEN at once. The fee
   (the partner's `credit_bp` of the amount) is fixed then and shown on it.
2. After the commit, never inside a transaction, the payment intent: keyed
   `partner_txn:<id>:intent`, so every repeat (the same request again, the retry job
   after a crash, a sandbox payment, a cancel) gets the one intent. Its id is recorded
   once. If the gateway refuses to make it (not unavailable: refused, which no repeat
   changes), the credit fails at once rather than wait for a payment that cannot come.
3. The payer's app confirms it with the client secret, fetched from the gateway each
   time and never stored; the gateway's events settle the credit
   (resolvers/partners/gateway/credit_events.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from bson import ObjectId

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.partners.transactions import (
    PartnerTransaction,
    TransactionKind,
    TransactionStatus,
)
from documents.partners.wallets import PartnerWallet
from integrations.payments.errors import GatewayError
from integrations.payments.gateway import PaymentIntent
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.partners.fees import fee_of
from resolvers.partners.gateway.credit_events import fail_credit
from resolvers.partners.gateway.records import (
    group,
    keep,
    metadata_for,
    payload_of,
    reload,
    step_key,
)
from resolvers.partners.gateway.requests import MoveRequest, checked_move, owned_transaction
from resolvers.partners.gateway.requests import owned_wallet as _owned_wallet
from resolvers.partners.idempotency import once, replay
from resolvers.partners.keys import PartnerAccess
from resolvers.partners.postings import hold_active
from resolvers.payments.sandbox_card import SandboxOutcome, play_card, sandbox_gateway

log = logging.getLogger(__name__)

INTENT_REFUSED = "intent_refused"
"""The failure code of a credit whose intent the gateway refused without giving one."""


@dataclass(frozen=True, slots=True)
class Credit:
    transaction: PartnerTransaction
    client_secret: str | None
    """While the credit awaits its payment: what the payer's app confirms it with."""


async def credit_wallet(services: Services, access: PartnerAccess, request: MoveRequest) -> Credit:
    """A card credit of `request.amount` into the wallet, and the client secret of its
    payment intent; the same transaction (and secret) for a repeated request."""
    partner_id = access.partner_id
    wallet = await _owned_wallet(partner_id, request.wallet_id)
    move = checked_move(TransactionKind.CREDIT, request, wallet)
    fee = fee_of(access.partner, TransactionKind.CREDIT, move.money)

    async def work(unit: UnitOfWork) -> PartnerTransaction:
        found = await replay(unit.session, partner_id, request.idempotency_key, move.digest)
        if found is not None:
            return found
        await hold_active(unit.session, wallet, "walletId")
        transaction = move.pending(partner_id, fee, wallet)
        await transaction.insert(session=unit.session)
        return transaction

    transaction = await once(lambda: transact(services, work))
    secret = await client_secret(services, transaction)
    # As it is now: with its intent recorded, or settled since by the gateway's events.
    current = await PartnerTransaction.get(transaction.id)
    assert current is not None
    return Credit(current, secret if current.status is TransactionStatus.PENDING else None)


async def client_secret(services: Services, transaction: PartnerTransaction) -> str | None:
    """The client secret while the credit awaits its payment (None after); the intent
    is made now if it has none yet. GATEWAY_UNAVAILABLE if the gateway failed: the same
    request again, with the same key, picks up where this one stopped."""
    if transaction.kind is not TransactionKind.CREDIT:
        return None
    if transaction.status is not TransactionStatus.PENDING:
        return None
    try:
        intent = await ensure_intent(services, transaction)
    except GatewayError as error:
        raise DomainError(ErrorCode.GATEWAY_UNAVAILABLE, f"The gateway failed: {error}") from error
    return intent.client_secret if intent is not None else None


async def ensure_intent(
    services: Services, transaction: PartnerTransaction
) -> PaymentIntent | None:
    """The credit's payment intent, made now if it has none yet (the same one on every
    repeat: the key is the transaction's); None if the gateway refused to make it, and
    the credit is failed. A gateway that could not answer raises (GatewayError)."""
    gateway = services.payments
    if transaction.payment_intent_id:
        return await gateway.retrieve_payment_intent(transaction.payment_intent_id)
    assert transaction.id is not None and transaction.to_wallet_id is not None
    wallet = await PartnerWallet.get(transaction.to_wallet_id)
    assert wallet is not None, "wallets are never deleted"
    try:
        intent = await gateway.create_payment_intent(
            amount=transaction.amount,
            currency=transaction.currency,
            transfer_group=group(transaction.id),
            metadata=metadata_for(transaction, wallet),
            idempotency_key=step_key(transaction.id, "intent"),
        )
    except GatewayError as error:
        if error.retryable:
            raise
        log.warning("intent of partner credit %s refused by the gateway: %s", transaction.id, error)
        await _fail_refused(services, transaction, error)
        return None
    recorded = await PartnerTransaction.get_pymongo_collection().update_one(
        {"_id": transaction.id, "payment_intent_id": None},
        {"$set": {"payment_intent_id": intent.id, "updated_at": utcnow()}},
    )
    if recorded.modified_count:
        # Only the first answer is kept from here: events bring the gateway's own later.
        await keep(None, payload_of(intent, "payment_intent"), transaction)
    return intent


async def _fail_refused(
    services: Services, transaction: PartnerTransaction, error: GatewayError
) -> None:
    """The gateway will not make the credit's intent, however often asked (the same key
    gives the same refusal): no payment can come, so the credit fails."""

    async def work(unit: UnitOfWork) -> None:
        current = await reload(unit, transaction)
        if current.status is TransactionStatus.PENDING:
            code = error.code or INTENT_REFUSED
            await fail_credit(unit, services, current, code, str(error), "intent refused")

    await transact(services, work)


async def claimed(transaction: PartnerTransaction) -> bool:
    """Whether this runner claimed the pending credit's gateway step (found by
    `due_credits`): a conditional write on the attempt time it was read with, so of the
    instances that found it one wins, and a claim a crash left is taken over once stale."""
    won = await PartnerTransaction.get_pymongo_collection().update_one(
        {
            "_id": transaction.id,
            "status": TransactionStatus.PENDING.value,
            "gateway_attempted_at": transaction.gateway_attempted_at,
        },
        {"$set": {"gateway_attempted_at": utcnow()}},
    )
    return won.modified_count == 1


async def retry_missing_intents(
    services: Services, older_than: timedelta | None = None, limit: int = 100
) -> int:
    """Make the intents of pending credits left without one (the process died between
    the commit and the gateway, or the gateway failed); how many this runner tried.
    Only those at least `older_than` (by default the job's interval) old, so that a
    request still on its way to the gateway is normally left to finish, and each at
    most once an interval, however many instances run the job."""
    cutoff = utcnow() - (
        services.settings.partner_gateway_retry_interval if older_than is None else older_than
    )
    tried = 0
    for transaction in await due_credits(
        {"payment_intent_id": None, "created_at": {"$lte": cutoff}}, cutoff, limit
    ):
        if not await claimed(transaction):
            continue
        tried += 1
        try:
            await ensure_intent(services, transaction)
        except GatewayError as error:
            log.warning("intent of partner credit %s not made yet: %s", transaction.id, error)
    return tried


async def due_credits(
    query: dict[str, Any], stale_before: datetime, limit: int
) -> list[PartnerTransaction]:
    """Pending credits matching `query` not claimed since `stale_before`, the least
    recently tried first (never tried, then the oldest), so that credits the gateway
    keeps failing do not starve the others."""
    return (
        await PartnerTransaction.find(
            {
                "status": TransactionStatus.PENDING.value,
                "kind": TransactionKind.CREDIT.value,
                **query,
                "$or": [
                    {"gateway_attempted_at": None},
                    {"gateway_attempted_at": {"$lte": stale_before}},
                ],
            }
        )
        .sort("gateway_attempted_at", "created_at")
        .limit(limit)
        .to_list()
    )


async def sandbox_pay_credit(
    services: Services, access: PartnerAccess, transaction_id: ObjectId, outcome: SandboxOutcome
) -> PartnerTransaction:
    """Development only: play the payer's card in the sandbox gateway, as `sandboxPay`
    does for escrows. On an intent that asks for authentication, SUCCEEDED passes it and
    DECLINED fails it. The transaction as the gateway's events left it."""
    gateway = sandbox_gateway(services)
    transaction = await owned_transaction(access.partner_id, transaction_id)
    if (
        transaction.kind is not TransactionKind.CREDIT
        or transaction.status is not TransactionStatus.PENDING
    ):
        raise DomainError(
            ErrorCode.INVALID_STATE,
            f"The transaction is a {transaction.status.value} {transaction.kind.value}; "
            "only a pending credit can be paid.",
            "transactionId",
        )
    intent = await ensure_intent(services, transaction)
    if intent is not None:  # else failed: refused by the gateway
        await play_card(gateway, intent, outcome, "transactionId")
    paid = await PartnerTransaction.get(transaction.id)
    assert paid is not None
    return paid
