"""Refunds to the payer, in the same three steps as a release.

1. `claim_refund` (inside the caller's transaction, e.g. cancelling the booking) adds a
   pending refund numbered n, with where its money comes from already divided.
2. `settle_refund`: the gateway refund with the key `escrow:<id>:refund:<n>` (an
   authorisation never captured is cancelled instead when refunded in full).
3. `record_refund`: refunded or partially_refunded, and the ledger's REFUND under the
   same key. The `charge.refunded` webhook completes a pending refund the same way.
   A refund retried after the gateway's idempotency window is first looked for there
   (resolvers/payments/late_retries.py).

A deal cancelled before it was paid has its payment intent cancelled instead: the
escrow fails, and a payment that still arrives is refunded in full.
"""

from __future__ import annotations

import logging

from documents.events import EventKind
from documents.money import Money
from documents.payments.escrow import (
    HOLDING_STATUSES,
    Escrow,
    EscrowRefund,
    EscrowStatus,
    RefundStatus,
)
from integrations.payments.errors import InvalidRequest
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.payments.escrow.escrows import (
    change_escrow,
    escrow_of_deal,
    notify,
    payment_metadata,
    reload,
)
from resolvers.payments.escrow.postings import post_refund
from resolvers.payments.escrow.release import NOT_REFUNDING
from resolvers.payments.fees import refund_split
from resolvers.payments.late_retries import is_late, late_key, made_refund

log = logging.getLogger(__name__)


def new_refund(escrow: Escrow, amount: Money, reason: str, *, external: bool) -> EscrowRefund:
    split = refund_split(escrow.fees, escrow.refunded, amount)
    return EscrowRefund(
        number=len(escrow.refunds) + 1,
        amount=amount,
        from_escrow=split.from_escrow,
        from_platform=split.from_platform,
        status=RefundStatus.SUCCEEDED if external else RefundStatus.PENDING,
        external=external,
        reason=reason,
    )


async def claim_refund(
    unit: UnitOfWork, escrow: Escrow, amount: Money, reason: str
) -> EscrowRefund | None:
    """Within the caller's transaction: a pending refund of `amount` (at most what is
    left) on an escrow that holds money; None if it holds none or a refund is pending."""
    if escrow.status not in HOLDING_STATUSES or escrow.pending_refund is not None:
        return None
    amount = Money(amount=min(amount.amount, escrow.refundable.amount), currency=amount.currency)
    if amount.amount <= 0:
        return None
    refund = new_refund(escrow, amount, reason, external=False)
    claimed = await Escrow.get_pymongo_collection().update_one(
        {
            "_id": escrow.id,
            "status": escrow.status.value,
            "refunded.amount": escrow.refunded.amount,
            **NOT_REFUNDING,
        },
        {"$push": {"refunds": refund.model_dump()}},
        session=unit.session,
    )
    return refund if claimed.modified_count else None


async def settle_refund(services: Services, escrow: Escrow) -> Escrow:
    """Make the pending refund at the gateway and record it; nothing if none is pending."""
    refund = escrow.pending_refund
    if refund is None:
        return escrow
    assert escrow.payment_intent_id is not None
    gateway = services.payments
    key = f"{escrow.gateway_group}:refund:{refund.number}"
    uncaptured = escrow.capture_manually and not escrow.captured
    if uncaptured and refund.amount == escrow.refundable:
        # An authorisation never captured: letting it go is the whole refund.
        await _let_go(services, escrow.payment_intent_id, key)
        return await record_refund(services, escrow, refund.number, None)
    if is_late(services, refund.at):
        found = await made_refund(gateway, escrow, refund)
        if found is not None:
            return await record_refund(services, escrow, refund.number, found.id)
        key = late_key(key)
    if uncaptured:
        await gateway.capture_payment_intent(
            escrow.payment_intent_id, idempotency_key=f"{escrow.gateway_group}:capture"
        )
    made = await gateway.refund(
        escrow.payment_intent_id,
        amount=refund.amount.amount,
        metadata={**payment_metadata(escrow), "refund_number": str(refund.number)},
        idempotency_key=key,
    )
    return await record_refund(services, escrow, refund.number, made.id)


async def _let_go(services: Services, intent_id: str, key: str) -> None:
    """Cancel an authorisation. One cancelled already (its deal was cancelled unpaid and
    `cancel_unpaid` let it go as it was being authorised) is let go: the gateway refuses a
    second cancellation, so it is asked what the intent is rather than trusted to repeat."""
    gateway = services.payments
    try:
        await gateway.cancel_payment_intent(intent_id, idempotency_key=key)
    except InvalidRequest:
        if (await gateway.retrieve_payment_intent(intent_id)).status != "canceled":
            raise


async def record_refund(
    services: Services,
    escrow: Escrow,
    number: int,
    refund_id: str | None,
    event_id: str | None = None,
) -> Escrow:
    """Mark refund `number` made (once, whoever comes first) and post it. One recorded
    already without its gateway id (by `charge.refunded`, which does not name it) gets it."""

    async def work(unit: UnitOfWork) -> Escrow:
        current = await reload(unit, escrow)
        pending = current.pending_refund
        if pending is not None and pending.number == number:
            return await _refunded(unit, current, pending, refund_id, event_id)
        if refund_id is not None:
            await Escrow.get_pymongo_collection().update_one(
                {
                    "_id": current.id,
                    "refunds": {"$elemMatch": {"number": number, "refund_id": None}},
                },
                {"$set": {"refunds.$.refund_id": refund_id}},
                session=unit.session,
            )
        return current

    return await transact(services, work)


async def record_external_refund(
    unit: UnitOfWork, escrow: Escrow, amount: Money, event_id: str
) -> Escrow:
    """A refund made at the gateway directly (its dashboard): recorded and posted."""
    refund = new_refund(escrow, amount, "refunded at the gateway", external=True)
    return await _refunded(unit, escrow, refund, None, event_id)


async def _refunded(
    unit: UnitOfWork,
    escrow: Escrow,
    refund: EscrowRefund,
    refund_id: str | None,
    event_id: str | None,
) -> Escrow:
    """Record `refund` (pending on the escrow, or new) as made, and post it."""
    done = refund.model_copy(update={"status": RefundStatus.SUCCEEDED, "refund_id": refund_id})
    refunds = [r for r in escrow.refunds if r.number != refund.number] + [done]
    refunded = escrow.refunded + refund.amount
    status = (
        EscrowStatus.REFUNDED
        if refunded == escrow.fees.charged
        else EscrowStatus.PARTIALLY_REFUNDED
    )
    updated = await change_escrow(
        unit.session,
        # Nothing else recorded a refund since `escrow` was read in this transaction.
        {"_id": escrow.id, "refunded.amount": escrow.refunded.amount},
        status,
        note=f"{refund.amount} refunded",
        event_id=event_id,
        fields={
            "refunded": refunded.model_dump(),
            "refunds": [r.model_dump() for r in sorted(refunds, key=lambda r: r.number)],
        },
    )
    if updated is None:
        raise RuntimeError(f"escrow {escrow.id} changed while its refund was recorded")
    await post_refund(unit.session, updated, refund)
    notify(
        unit,
        updated,
        EventKind.PAYMENT_REFUNDED,
        f"{refund.amount} refunded to the payer",
        amount=refund.amount.model_dump(),
        refunded=refunded.model_dump(),
    )
    return updated


async def cancel_unpaid(services: Services, escrow: Escrow) -> None:
    """Cancel the intent of a deal cancelled before payment. Too late (it was paid just
    now): the payment's webhook refunds it."""
    if escrow.payment_intent_id is None:
        return
    try:
        await services.payments.cancel_payment_intent(
            escrow.payment_intent_id, idempotency_key=f"{escrow.gateway_group}:cancel"
        )
    except InvalidRequest:
        log.info("intent of escrow %s could not be cancelled; it was paid", escrow.id)


async def cancel_deal(
    unit: UnitOfWork, deal: str, refund: Money | None, reason: str
) -> Escrow | None:
    """Within the transaction that cancels the task or booking: an unpaid escrow fails, a
    paid one gets a pending refund of `refund` (None: all). What is not refunded is the
    provider's (a late cancellation), released by `progress.advance`."""
    escrow = await escrow_of_deal(deal, unit.session)
    if escrow is None:
        return None
    fields = {"deal_cancelled": True, "auto_release_at": None}
    if escrow.status is EscrowStatus.AWAITING_PAYMENT:
        failed = await change_escrow(
            unit.session,
            {"_id": escrow.id, "status": EscrowStatus.AWAITING_PAYMENT.value},
            EscrowStatus.FAILED,
            note="the deal was cancelled before payment",
            fields=fields,
        )
        if failed is not None:
            notify(unit, failed, EventKind.PAYMENT_CANCELLED, "The payment is no longer due")
        return failed
    await Escrow.get_pymongo_collection().update_one(
        {"_id": escrow.id}, {"$set": fields}, session=unit.session
    )
    await claim_refund(unit, escrow, refund or escrow.refundable, reason)
    return escrow
