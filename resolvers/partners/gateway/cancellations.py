"""Card credits that end without a payment: cancelled by the partner, or expired.

A pending credit's intent can be paid until it is cancelled, so the gateway decides
between a cancel and a payment racing it: the intent (made now if it has none, with the
credit's key, so there is never a second one) is cancelled first (key
`partner_txn:<id>:cancel`), and only then the credit fails (`transaction.failed`). If
the payment won, the cancel is refused and the credit is left for its
`payment_intent.succeeded` (INVALID_STATE for the partner). `cancel_code`, written
before the gateway is asked, gives the credit its failure code (`canceled`, `expired`)
whichever of this and the gateway's `payment_intent.canceled` fails it first.

Pending credits older than GIGQL_PARTNER_CREDIT_EXPIRY are cancelled so by every
instance's `expire-partner-credits` job, each claimed by one instance at a time
(`credits.claimed`).
"""

from __future__ import annotations

import logging

from bson import ObjectId

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.partners.transactions import (
    PartnerTransaction,
    TransactionKind,
    TransactionStatus,
)
from integrations.payments.errors import GatewayError, InvalidRequest
from integrations.payments.gateway import PaymentIntent
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.partners.gateway.credit_events import (
    CANCEL_MESSAGES,
    CANCELED,
    EXPIRED,
    fail_credit,
)
from resolvers.partners.gateway.credits import claimed, due_credits, ensure_intent
from resolvers.partners.gateway.records import keep, payload_of, reload, step_key
from resolvers.partners.gateway.requests import owned_transaction
from resolvers.partners.keys import PartnerAccess

log = logging.getLogger(__name__)


async def cancel_credit(
    services: Services, access: PartnerAccess, transaction_id: ObjectId
) -> PartnerTransaction:
    """The partner's pending credit cancelled: FAILED with `canceled`. INVALID_STATE for
    any other transaction, or if the payment came first."""
    transaction = await owned_transaction(access.partner_id, transaction_id)
    if (
        transaction.kind is not TransactionKind.CREDIT
        or transaction.status is not TransactionStatus.PENDING
    ):
        raise _not_cancellable(f"a {transaction.status.value} {transaction.kind.value}")
    return await cancel_pending_credit(services, transaction, CANCELED)


async def expire_pending_credits(services: Services, limit: int = 100) -> int:
    """Cancel the pending credits older than GIGQL_PARTNER_CREDIT_EXPIRY that this
    runner claimed; how many it expired."""
    now = utcnow()
    settings = services.settings
    due = await due_credits(
        {"created_at": {"$lte": now - settings.partner_credit_expiry}},
        now - settings.partner_gateway_retry_interval,
        limit,
    )
    expired = 0
    for transaction in due:
        if not await claimed(transaction):
            continue
        try:
            ended = await cancel_pending_credit(services, transaction, EXPIRED)
        except DomainError as error:  # paid meanwhile, or the gateway is down: next time
            log.warning("partner credit %s not expired: %s", transaction.id, error)
            continue
        if ended.status is TransactionStatus.FAILED:
            expired += 1
    return expired


async def cancel_pending_credit(
    services: Services, transaction: PartnerTransaction, code: str
) -> PartnerTransaction:
    """Cancel the credit's intent at the gateway, then fail the credit with `code` (or
    the code a cancel before this one asked for); the transaction as it is now."""
    await PartnerTransaction.get_pymongo_collection().update_one(
        {"_id": transaction.id, "status": TransactionStatus.PENDING.value, "cancel_code": None},
        {"$set": {"cancel_code": code, "updated_at": utcnow()}},
    )
    try:
        intent = await ensure_intent(services, transaction)
        if intent is not None:  # else refused by the gateway, and failed for it
            await _cancel_intent(services, transaction, intent)
    except GatewayError as error:
        raise DomainError(ErrorCode.GATEWAY_UNAVAILABLE, f"The gateway failed: {error}") from error

    async def work(unit: UnitOfWork) -> PartnerTransaction:
        current = await reload(unit, transaction)
        if current.status is not TransactionStatus.PENDING:
            return current  # its payment_intent.canceled came first, or it was refused
        asked = current.cancel_code or code
        message = CANCEL_MESSAGES[asked]
        return await fail_credit(unit, services, current, asked, message, f"cancelled: {asked}")

    return await transact(services, work)


async def _cancel_intent(
    services: Services, transaction: PartnerTransaction, intent: PaymentIntent
) -> None:
    """The intent cancelled at the gateway (or found cancelled already); INVALID_STATE if
    its payment succeeded or is under way."""
    assert transaction.id is not None
    gateway = services.payments
    try:
        canceled = await gateway.cancel_payment_intent(
            intent.id, idempotency_key=step_key(transaction.id, "cancel")
        )
    except InvalidRequest:
        # Cancelled already (at the gateway, or by a cancel racing this one), or paid.
        canceled = await gateway.retrieve_payment_intent(intent.id)
        if canceled.status != "canceled":
            raise _not_cancellable(f"its payment is {canceled.status}") from None
    await keep(None, payload_of(canceled, "payment_intent"), transaction)


def _not_cancellable(why: str) -> DomainError:
    return DomainError(
        ErrorCode.INVALID_STATE,
        f"Only a pending credit can be cancelled; this is {why}.",
        "transactionId",
    )
