"""What an admin's decision does to a frozen escrow, within the decision's transaction.

The escrow first returns to holding (`unfreeze`), then the ordinary claims move the
money: `claim_release` for the provider, `claim_refund` for the payer, and for a split a
refund claimed now with the rest released by `escrow_progress.advance` once the refund
is recorded (a release and a refund are never claimed at once). The gateway steps
follow after the commit, so no decision has a money path of its own.
"""

from __future__ import annotations

from documents.errors import DomainError, ErrorCode
from documents.money import Money
from documents.payments.disputes import Dispute, DisputeStatus
from documents.payments.escrow import HOLDING_STATUSES, Escrow, EscrowStatus
from documents.payments.ledger import LedgerTransaction, MovementKind, Ref
from resolvers.common.unit_of_work import UnitOfWork
from resolvers.payments.escrow.escrows import change_escrow
from resolvers.payments.escrow.refunds import claim_refund
from resolvers.payments.escrow.release import claim_release, request_release

DECIDABLE = (*HOLDING_STATUSES, EscrowStatus.DISPUTED)
"""An escrow in these states holds money an admin may release or refund."""


def check_decidable(escrow: Escrow, field: str) -> None:
    """INVALID_STATE unless the escrow holds money and no refund of it is under way."""
    if escrow.status not in DECIDABLE:
        raise DomainError(
            ErrorCode.INVALID_STATE,
            f"The escrow is {escrow.status.value.replace('_', ' ')}: it holds no money.",
            field,
        )
    if escrow.pending_refund is not None:
        raise DomainError(
            ErrorCode.INVALID_STATE, "A refund of this escrow is under way; try again soon.", field
        )


async def open_dispute_of(unit: UnitOfWork, escrow: Escrow) -> Dispute | None:
    """The escrow's open dispute, if any (at most one is open)."""
    return await Dispute.find_one(
        {"escrow_id": escrow.id, "status": DisputeStatus.OPEN.value}, session=unit.session
    )


async def unfreeze(unit: UnitOfWork, escrow: Escrow, note: str) -> Escrow:
    """A disputed escrow back to holding: partially refunded if anything was refunded."""
    if escrow.status is not EscrowStatus.DISPUTED:
        return escrow
    holding = EscrowStatus.PARTIALLY_REFUNDED if escrow.refunded.amount else EscrowStatus.HELD
    thawed = await change_escrow(
        unit.session,
        {"_id": escrow.id, "status": EscrowStatus.DISPUTED.value},
        holding,
        note=note,
        fields={"frozen_by": None},
    )
    if thawed is None:
        raise RuntimeError(f"escrow {escrow.id} changed within its transaction")
    return thawed


async def release(unit: UnitOfWork, escrow: Escrow, note: str, field: str) -> Escrow:
    """Claim the release of whatever the escrow holds to the provider."""
    claimed = await claim_release(unit, {"_id": escrow.id}, note)
    if claimed is None:
        raise _not_claimed(escrow, field)
    return claimed


async def refund(
    unit: UnitOfWork, escrow: Escrow, amount: Money | None, note: str, field: str
) -> Money:
    """Claim a refund of `amount` (None: everything refundable); returns the amount."""
    if await _charged_back(unit, escrow):
        raise DomainError(
            ErrorCode.INVALID_STATE,
            "The payer's bank has taken this payment back (a chargeback): it cannot also be "
            "refunded.",
            field,
        )
    wanted = escrow.refundable if amount is None else amount
    if wanted.currency != escrow.refundable.currency:
        raise DomainError(
            ErrorCode.INVALID_INPUT, f"The escrow is in {escrow.refundable.currency}.", field
        )
    if not 0 < wanted.amount <= escrow.refundable.amount:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"Between 0 and {escrow.refundable} (what is refundable) may be refunded.",
            field,
        )
    claimed = await claim_refund(unit, escrow, wanted, note)
    if claimed is None:
        raise _not_claimed(escrow, field)
    return claimed.amount


async def split(unit: UnitOfWork, escrow: Escrow, amount: Money, note: str, field: str) -> Money:
    """Refund `amount` (less than everything) and release the rest once it is refunded."""
    if amount.currency == escrow.refundable.currency and amount.amount >= escrow.refundable.amount:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"A split refunds less than {escrow.refundable}; refund it all instead.",
            field,
        )
    refunded = await refund(unit, escrow, amount, note, field)
    await request_release(unit, escrow)
    return refunded


async def _charged_back(unit: UnitOfWork, escrow: Escrow) -> bool:
    """Whether a chargeback of the payment is open or was lost: the payer has the money
    back already, and the gateway refuses to refund a charged-back payment."""
    outcomes = LedgerTransaction.find(
        {
            f"refs.{Ref.ESCROW.value}": str(escrow.id),
            "kind": {"$in": [MovementKind.DISPUTE_OPENED.value, MovementKind.DISPUTE_WON.value]},
        },
        session=unit.session,
    )
    kinds = [transaction.kind async for transaction in outcomes]
    return kinds.count(MovementKind.DISPUTE_OPENED) > kinds.count(MovementKind.DISPUTE_WON)


def _not_claimed(escrow: Escrow, field: str) -> DomainError:
    return DomainError(
        ErrorCode.INVALID_STATE, f"The escrow {escrow.id} changed meanwhile; try again.", field
    )
