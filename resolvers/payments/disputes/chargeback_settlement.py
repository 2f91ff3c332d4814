"""Settling a lost chargeback: an admin keeps what the escrow holds to cover the loss.

A lost chargeback (resolvers/payments/disputes/chargebacks.py) posts DISPUTE_LOST: the platform's
revenue bears the whole amount the payer's bank took back, and the escrow still holds
the payer's money for the deal. Settling moves what the escrow holds, up to the loss,
to platform revenue (CHARGEBACK_COVERED, key `escrow:<id>:chargeback_covered`):

- all of it covered, the escrow is `charged_back`, final: nothing more moves;
- more held than was lost (a partial chargeback), the rest stays as it was, frozen for
  an admin to release (`adminReleaseEscrow`) or held for the deal's ordinary release.

Refunds stay refused after a lost chargeback (the bank already gave the payer the
money). The task or booking is left as it is, as with every admin tool for escrows.
One settlement per escrow: the posting's key is inserted in the transaction that
changes the escrow, so of concurrent settlements one commits and the rest find it.
"""

from __future__ import annotations

from bson import ObjectId

from documents.accounts.audit import AuditKind
from documents.errors import DomainError, ErrorCode
from documents.events import EventKind
from documents.lifecycles import Party
from documents.money import Money
from documents.payments import ledger_accounts
from documents.payments.escrow import Escrow, EscrowStatus
from documents.payments.ledger import LedgerTransaction, MovementKind, Ref, transfer
from resolvers.accounts import audit
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.services import RequestMeta, Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.common.validation import MAX_REASON_LENGTH, Checked
from resolvers.payments import ledger
from resolvers.payments.disputes import money as dispute_money
from resolvers.payments.escrow.escrows import change_escrow, escrow_by_id, notify


def settlement_key(escrow: Escrow) -> str:
    return f"{escrow.gateway_group}:chargeback_covered"


async def settle_lost_chargeback(
    services: Services, meta: RequestMeta, admin: Viewer, escrow_id: ObjectId, note: str
) -> Escrow:
    """Keep what the escrow holds, up to what lost chargebacks of its payment cost the
    platform (the caller checks the admin role); audited."""
    checked = Checked()
    note = checked.text(note, "note", MAX_REASON_LENGTH, multiline=True)
    checked.raise_if_any()

    async def work(unit: UnitOfWork) -> Escrow:
        escrow = await escrow_by_id(escrow_id, unit.session)
        if escrow is None:
            raise DomainError(ErrorCode.NOT_FOUND, "No such escrow.", "escrowId")
        assert escrow.id is not None
        key = settlement_key(escrow)
        if await LedgerTransaction.find_one({"idempotency_key": key}, session=unit.session):
            raise _refused("The lost chargeback of this escrow is settled already.")
        lost = await _lost(unit, escrow)
        if not lost.amount:
            raise _refused("No chargeback of this escrow's payment was lost.")
        dispute_money.check_decidable(escrow, "escrowId")
        if await dispute_money.open_dispute_of(unit, escrow) is not None:
            raise _refused("The escrow has an open dispute; decide it with resolveDispute first.")
        held = await ledger.balance(ledger_accounts.escrow(escrow.id), lost.currency, unit.session)
        covered = min(held, lost, key=lambda money: money.amount)
        if not covered.amount:
            raise _refused("The escrow holds nothing to cover the loss with.")
        label = note or "kept to cover a lost chargeback"
        await ledger.post(
            unit.session,
            key=key,
            kind=MovementKind.CHARGEBACK_COVERED,
            entries=transfer(
                ledger_accounts.escrow(escrow.id), ledger_accounts.platform_revenue(), covered
            ),
            refs={Ref.ESCROW: escrow.id},
            memo=label,
        )
        # All of it kept: final. Otherwise the rest stays as it was, and the change is
        # recorded in the escrow's history all the same.
        settled = await change_escrow(
            unit.session,
            {"_id": escrow.id, "status": escrow.status.value},
            EscrowStatus.CHARGED_BACK if covered == held else escrow.status,
            note=f"{covered} kept to cover a lost chargeback: {label}",
            fields={"auto_release_at": None} if covered == held else None,
            by=Party.ADMIN,
        )
        if settled is None:
            raise RuntimeError(f"escrow {escrow.id} changed within its transaction")
        await audit.record(
            AuditKind.CHARGEBACK_SETTLED_BY_ADMIN,
            meta,
            actor_id=admin.user_id,
            session=unit.session,
            escrow_id=str(escrow.id),
            amount=covered.model_dump(),
            lost=lost.model_dump(),
            status_before=escrow.status.value,
            note=note,
        )
        notify(
            unit,
            settled,
            EventKind.CHARGEBACK_SETTLED,
            f"{covered} of the payment was kept to cover the chargeback the payer's bank won",
            actor_id=admin.user_id,
            amount=covered.model_dump(),
        )
        return settled

    return await transact(services, work)


async def _lost(unit: UnitOfWork, escrow: Escrow) -> Money:
    """What lost chargebacks of the escrow's payment cost the platform."""
    assert escrow.id is not None
    lost = escrow.fees.charged.zero()
    held_back = ledger_accounts.chargeback(escrow.id)
    postings = LedgerTransaction.find(
        {f"refs.{Ref.ESCROW.value}": str(escrow.id), "kind": MovementKind.DISPUTE_LOST.value},
        session=unit.session,
    )
    async for posting in postings:
        for entry in posting.entries:
            if entry.account == held_back and entry.currency == lost.currency:
                lost += Money(amount=entry.amount, currency=entry.currency)
    return lost


def _refused(message: str) -> DomainError:
    return DomainError(ErrorCode.INVALID_STATE, message, "escrowId")
