"""Crediting a partner's wallet by card.

1. One transaction stores a PENDING credit under the partner's idempotency key (the same
   key with the same request finds it again: `idempotency.replay` and `once`), after
   holding the wallet, so a frozen or closed wallet is WALLET_FROZEN at once. The fee
   (the partner's `credit_bp` of the amount) is fixed then and shown on it.
2. After the commit, never inside a transaction, the payment intent: keyed
   `partner_txn:<id>:intent`, so every repeat (the same request again, the retry job
   after a crash, a sandbox payment) gets the one intent. Its id is recorded once.
3. The payer's app confirms it with the client secret, fetched from the gateway each
   time and never stored; the gateway's events settle the credit
   (resolvers/partners/gateway/credit_events.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

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
from resolvers.partners.gateway.records import group, keep, metadata_for, payload_of, step_key
from resolvers.partners.gateway.requests import MoveRequest, checked_move, owned_transaction
from resolvers.partners.gateway.requests import owned_wallet as _owned_wallet
from resolvers.partners.idempotency import once, replay
from resolvers.partners.keys import PartnerAccess
from resolvers.partners.postings import hold_active
from resolvers.payments.sandbox_card import SandboxOutcome, play_card, sandbox_gateway

log = logging.getLogger(__name__)


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
    return intent.client_secret


async def ensure_intent(services: Services, transaction: PartnerTransaction) -> PaymentIntent:
    """The credit's payment intent, made now if it has none yet (the same one on every
    repeat: the key is the transaction's)."""
    gateway = services.payments
    if transaction.payment_intent_id:
        return await gateway.retrieve_payment_intent(transaction.payment_intent_id)
    assert transaction.id is not None and transaction.to_wallet_id is not None
    wallet = await PartnerWallet.get(transaction.to_wallet_id)
    assert wallet is not None, "wallets are never deleted"
    intent = await gateway.create_payment_intent(
        amount=transaction.amount,
        currency=transaction.currency,
        transfer_group=group(transaction.id),
        metadata=metadata_for(transaction, wallet),
        idempotency_key=step_key(transaction.id, "intent"),
    )
    recorded = await PartnerTransaction.get_pymongo_collection().update_one(
        {"_id": transaction.id, "payment_intent_id": None},
        {"$set": {"payment_intent_id": intent.id, "updated_at": utcnow()}},
    )
    if recorded.modified_count:
        # Only the first answer is kept from here: events bring the gateway's own later.
        await keep(None, payload_of(intent, "payment_intent"), transaction)
    return intent


async def retry_missing_intents(
    services: Services, older_than: timedelta | None = None, limit: int = 100
) -> int:
    """Make the intents of pending credits left without one (the process died between
    the commit and the gateway, or the gateway failed); how many were tried. Only those
    at least `older_than` (by default the job's interval) old, so that a request still
    on its way to the gateway is normally left to finish."""
    cutoff = utcnow() - (
        services.settings.partner_gateway_retry_interval if older_than is None else older_than
    )
    due = (
        await PartnerTransaction.find(
            {
                "status": TransactionStatus.PENDING.value,
                "kind": TransactionKind.CREDIT.value,
                "payment_intent_id": None,
                "created_at": {"$lte": cutoff},
            }
        )
        .sort("created_at")
        .limit(limit)
        .to_list()
    )
    for transaction in due:
        try:
            await ensure_intent(services, transaction)
        except GatewayError as error:
            log.warning("intent of partner credit %s not made yet: %s", transaction.id, error)
    return len(due)


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
    await play_card(gateway, await ensure_intent(services, transaction), outcome, "transactionId")
    paid = await PartnerTransaction.get(transaction.id)
    assert paid is not None
    return paid
