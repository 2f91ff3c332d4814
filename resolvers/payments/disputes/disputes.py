"""Disputes over a deal's money: opened by its payer or provider, decided by an admin.

Opening moves the task or booking to `disputed` by its ordinary move, which freezes the
escrow (nothing is released automatically), and records the dispute: one transaction.
Only money the escrow holds can be disputed; one already being transferred to the
provider cannot be stopped safely, so that is refused. A task paid in milestones is
disputed one milestone at a time (resolvers/payments/disputes/milestones.py).

Resolving (admins only, audited) commits the decision, the deal's last move and the
escrow's claims together (resolvers/payments/disputes/money.py); the gateway steps follow:

    RELEASE  the provider is paid what the escrow holds;  the deal is completed
    REFUND   everything refundable goes back to the payer;  the deal is cancelled
    SPLIT    `refund` back to the payer, the rest to the provider;  the deal is completed

(for a milestone, the task goes on or ends as resolvers/payments/disputes/milestones.py says).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from documents.accounts.audit import AuditKind
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.events import EventKind
from documents.lifecycles import BOOKING, DISPUTE, TASK, Party
from documents.marketplace.bookings import Booking, BookingStatus
from documents.marketplace.tasks import Task, TaskStatus
from documents.money import Money
from documents.payments.disputes import (
    MAX_EVIDENCE_URLS,
    Dispute,
    DisputeOutcome,
    DisputeStatus,
    Evidence,
    Resolution,
)
from documents.payments.escrow import Escrow, EscrowStatus, booking_deal, task_deal
from resolvers.accounts import audit
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.deals import count_completed_job
from resolvers.common.inputs import MoneyInput
from resolvers.common.pagination import Page, PageRequest, paginate
from resolvers.common.services import RequestMeta, Services
from resolvers.common.transitions import BOOKING_SUBJECT, DISPUTE_SUBJECT, TASK_SUBJECT, transition
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.common.validation import MAX_REASON_LENGTH, Checked
from resolvers.marketplace import bookings, tasks
from resolvers.payments.disputes import milestones as milestone_disputes
from resolvers.payments.disputes import money as dispute_money
from resolvers.payments.escrow.escrows import escrow_of_deal, notify, reload
from resolvers.payments.escrow.progress import after_commit


@dataclass(frozen=True, slots=True)
class Deal:
    kind: Literal["task", "booking"]
    id: ObjectId

    @property
    def key(self) -> str:
        return task_deal(self.id) if self.kind == "task" else booking_deal(self.id)


def can_see_dispute(viewer: Viewer, dispute: Dispute) -> bool:
    return viewer.user_id in dispute.participants or viewer.user.is_admin


async def get_dispute(dispute_id: ObjectId, viewer: Viewer) -> Dispute:
    dispute = await Dispute.get(PydanticObjectId(dispute_id))
    if dispute is None or not can_see_dispute(viewer, dispute):
        raise DomainError(ErrorCode.NOT_FOUND, "No such dispute.", "disputeId")
    return dispute


async def open_dispute(
    services: Services,
    viewer: Viewer,
    deal: Deal,
    reason: str,
    evidence_urls: Sequence[str],
    milestone: int | None = None,
) -> Dispute:
    """`milestone`: the one disputed, for a task paid in milestones (and only then)."""
    checked = Checked()
    reason = checked.required_text(
        reason, "reason", min_length=3, max_length=MAX_REASON_LENGTH, multiline=True
    )
    urls = checked.urls(
        evidence_urls, "evidenceUrls", maximum=MAX_EVIDENCE_URLS, noun="evidence links"
    )
    checked.raise_if_any()

    async def work(unit: UnitOfWork) -> Dispute:
        escrow = await escrow_of_deal(await _deal_key(unit, viewer, deal, milestone), unit.session)
        if escrow is not None and viewer.user_id not in escrow.participants:
            raise _forbidden()
        await _check_disputable(unit, escrow, "dealId" if milestone is None else "milestone")
        assert escrow is not None
        if deal.kind == "task":
            task = await tasks.get_task(deal.id, unit)
            await tasks.apply_move(unit, services, viewer, task, "dispute", note=reason)
        else:
            await bookings.apply_move(unit, services, viewer, deal.id, "dispute", reason)
        frozen = await reload(unit, escrow)
        if frozen.status is not EscrowStatus.DISPUTED:
            raise DomainError(
                ErrorCode.INVALID_STATE, "The payment changed meanwhile; try again.", "dealId"
            )
        dispute = Dispute(
            escrow_id=frozen.id,
            deal=frozen.deal,
            milestone=frozen.milestone,
            task_id=frozen.task_id,
            booking_id=frozen.booking_id,
            payer_id=frozen.payer_id,
            provider_id=frozen.provider_id,
            opened_by=viewer.user_id,
            reason=reason,
            evidence=[Evidence(url=url, by=viewer.user_id) for url in urls],
        )
        try:
            await dispute.insert(session=unit.session)
        except DuplicateKeyError:
            raise _already_open() from None
        notify(
            unit,
            frozen,
            EventKind.DISPUTE_OPENED,
            "A dispute was opened; the payment is frozen until an admin decides",
            actor_id=viewer.user_id,
            dispute_id=dispute.id,
            reason=reason,
        )
        return dispute

    return await transact(services, work)


async def _deal_key(unit: UnitOfWork, viewer: Viewer, deal: Deal, milestone: int | None) -> str:
    """The deal whose escrow is disputed: a task's milestone is named by `milestone`."""
    if deal.kind == "booking":
        if milestone is not None:
            raise DomainError(ErrorCode.INVALID_INPUT, "A booking has no milestones.", "milestone")
        return deal.key
    task = await Task.get(deal.id, session=unit.session)
    if task is None:
        return deal.key  # no escrow: nothing has been paid for it
    if task.milestones and viewer.user_id not in task.participants:
        raise _forbidden()
    return milestone_disputes.disputed_deal(task, milestone)


def _forbidden() -> DomainError:
    return DomainError(
        ErrorCode.FORBIDDEN, "Only the deal's payer or provider can dispute it.", "dealId"
    )


async def _check_disputable(unit: UnitOfWork, escrow: Escrow | None, field: str) -> None:
    if escrow is None:
        raise DomainError(ErrorCode.INVALID_STATE, "Nothing has been paid for it.", field)
    if escrow.status is EscrowStatus.RELEASING:
        raise DomainError(
            ErrorCode.INVALID_STATE,
            "The payment is being released to the provider; it can no longer be disputed.",
            field,
        )
    if await dispute_money.open_dispute_of(unit, escrow) is not None:
        raise _already_open()
    dispute_money.check_decidable(escrow, field)


def _already_open() -> DomainError:
    return DomainError(ErrorCode.ALREADY_EXISTS, "A dispute about it is open already.", "dealId")


async def add_evidence(
    services: Services, viewer: Viewer, dispute_id: ObjectId, evidence_urls: Sequence[str]
) -> Dispute:
    checked = Checked()
    urls = checked.urls(
        evidence_urls, "evidenceUrls", maximum=MAX_EVIDENCE_URLS, noun="evidence links"
    )
    if not urls:
        checked.fail(ErrorCode.INVALID_INPUT, "Give at least one link.", "evidenceUrls")
    checked.raise_if_any()
    dispute = await get_dispute(dispute_id, viewer)
    if viewer.user_id not in dispute.participants:
        raise DomainError(
            ErrorCode.FORBIDDEN, "Only the payer or the provider adds evidence.", "disputeId"
        )

    async def work(unit: UnitOfWork) -> Dispute:
        added = [Evidence(url=url, by=viewer.user_id) for url in urls]
        raw = await Dispute.get_pymongo_collection().find_one_and_update(
            {
                "_id": dispute.id,
                "status": DisputeStatus.OPEN.value,
                # Room for all of them: no element at the index the last would take.
                f"evidence.{MAX_EVIDENCE_URLS - len(added)}": {"$exists": False},
            },
            {
                "$push": {"evidence": {"$each": [e.model_dump() for e in added]}},
                "$set": {"updated_at": utcnow()},
            },
            return_document=ReturnDocument.AFTER,
            session=unit.session,
        )
        if raw is None:
            current = await Dispute.get(dispute.id, session=unit.session)
            if current is not None and current.status is DisputeStatus.OPEN:
                raise DomainError(
                    ErrorCode.INVALID_INPUT,
                    f"A dispute keeps at most {MAX_EVIDENCE_URLS} evidence links.",
                    "evidenceUrls",
                )
            raise DomainError(ErrorCode.INVALID_STATE, "The dispute is resolved.", "disputeId")
        updated: Dispute = Dispute.model_validate(raw)
        unit.emit(
            EventKind.DISPUTE_EVIDENCE_ADDED,
            actor_id=viewer.user_id,
            audience=updated.participants,
            title="New evidence was added to the dispute",
            task_id=updated.task_id,
            booking_id=updated.booking_id,
            dispute_id=updated.id,
            escrow_id=updated.escrow_id,
        )
        return updated

    return await transact(services, work)


async def resolve_dispute(
    services: Services,
    meta: RequestMeta,
    admin: Viewer,
    dispute_id: ObjectId,
    outcome: DisputeOutcome,
    refund_amount: MoneyInput | None,
    note: str,
) -> Dispute:
    """An admin's decision (the caller checks the role); audited with the decision."""
    checked = Checked()
    note = checked.text(note, "note", MAX_REASON_LENGTH, multiline=True)
    refund = None
    if refund_amount is not None:
        refund = checked.money(refund_amount.amount, refund_amount.currency, "refundAmount")
    if (outcome is DisputeOutcome.SPLIT) != (refund is not None):
        checked.fail(
            ErrorCode.INVALID_INPUT,
            "A split needs `refundAmount`; nothing else takes one.",
            "refundAmount",
        )
    checked.raise_if_any()
    label = note or f"dispute decided: {outcome.value}"

    async def work(unit: UnitOfWork) -> Dispute:
        dispute = await Dispute.get(PydanticObjectId(dispute_id), session=unit.session)
        if dispute is None:
            raise DomainError(ErrorCode.NOT_FOUND, "No such dispute.", "disputeId")
        if dispute.status is not DisputeStatus.OPEN:
            raise DomainError(ErrorCode.INVALID_STATE, "The dispute is resolved.", "disputeId")
        escrow = await Escrow.get(dispute.escrow_id, session=unit.session)
        assert escrow is not None
        dispute_money.check_decidable(escrow, "disputeId")
        escrow = await dispute_money.unfreeze(unit, escrow, label)
        refunded = escrow.fees.price.zero()
        if outcome is DisputeOutcome.RELEASE:
            await dispute_money.release(unit, escrow, label, "disputeId")
        elif outcome is DisputeOutcome.REFUND:
            refunded = await dispute_money.refund(unit, escrow, None, label, "disputeId")
        else:
            assert refund is not None
            refunded = await dispute_money.split(unit, escrow, refund, label, "refundAmount")
        await _end_deal(unit, services, dispute, admin, outcome, label)
        resolution = Resolution(outcome=outcome, refund=refunded, admin_id=admin.user_id, note=note)
        resolved = await transition(
            unit,
            services,
            DISPUTE,
            "resolve",
            dispute,
            Party.ADMIN,
            DISPUTE_SUBJECT,
            fields={"resolution": resolution.model_dump()},
            history=None,
        )
        await audit.record(
            AuditKind.DISPUTE_RESOLVED,
            meta,
            actor_id=admin.user_id,
            session=unit.session,
            dispute_id=str(dispute.id),
            escrow_id=str(escrow.id),
            outcome=outcome.value,
            refund=refunded.model_dump(),
            note=note,
        )
        notify(
            unit,
            escrow,
            EventKind.DISPUTE_RESOLVED,
            _decided_title(outcome, refunded),
            actor_id=admin.user_id,
            dispute_id=dispute.id,
            outcome=outcome.value,
            refund=refunded.model_dump(),
        )
        return resolved

    resolved = await transact(services, work)
    if resolved.milestone is not None and resolved.task_id is not None:
        await milestone_disputes.after_decision(services, resolved.task_id)
    else:
        await after_commit(services, resolved.escrow_id)  # the refund, then the release
    return resolved


def _decided_title(outcome: DisputeOutcome, refunded: Money) -> str:
    if outcome is DisputeOutcome.RELEASE:
        return "The dispute was decided: the provider is paid"
    if outcome is DisputeOutcome.REFUND:
        return f"The dispute was decided: {refunded} is refunded"
    return f"The dispute was decided: {refunded} is refunded and the rest paid to the provider"


_DECISIONS = {
    TaskStatus.COMPLETED: "decide_completed",
    TaskStatus.CANCELLED: "decide_cancelled",
    TaskStatus.IN_PROGRESS: "decide_resumed",
}
"""The move of the task's lifecycle that each decision makes."""


async def _end_deal(
    unit: UnitOfWork,
    services: Services,
    dispute: Dispute,
    admin: Viewer,
    outcome: DisputeOutcome,
    note: str,
) -> None:
    """The disputed task or booking, completed or cancelled as decided; a task in
    milestones may go back to work instead."""
    completed = outcome is not DisputeOutcome.REFUND
    if dispute.task_id is not None:
        task_to = TaskStatus.COMPLETED if completed else TaskStatus.CANCELLED
        if dispute.milestone is not None:
            task_to = await milestone_disputes.decided(
                unit, services, admin, dispute, outcome, note
            )
            completed = task_to is TaskStatus.COMPLETED
        task = await tasks.get_task(dispute.task_id, unit)
        await transition(
            unit,
            services,
            TASK,
            _DECISIONS[task_to],
            task,
            Party.ADMIN,
            TASK_SUBJECT,
            actor_id=admin.user_id,
            note=note,
        )
        to, kind = task_to.value, EventKind.TASK_STATUS_CHANGED
    else:
        assert dispute.booking_id is not None
        booking = await Booking.get(dispute.booking_id, session=unit.session)
        assert booking is not None  # bookings are never deleted
        await transition(
            unit,
            services,
            BOOKING,
            "decide_completed" if completed else "decide_cancelled",
            booking,
            Party.ADMIN,
            BOOKING_SUBJECT,
            actor_id=admin.user_id,
            note=note,
        )
        to = (BookingStatus.COMPLETED if completed else BookingStatus.CANCELLED).value
        kind = EventKind.BOOKING_STATUS_CHANGED
    if completed:
        await count_completed_job(dispute.provider_id, unit.session)
    unit.emit(
        kind,
        actor_id=admin.user_id,
        audience=dispute.participants,
        title=f"The disputed {'task' if dispute.task_id else 'booking'} is {to.replace('_', ' ')}",
        task_id=dispute.task_id,
        booking_id=dispute.booking_id,
        status=to,
        previous="disputed",
        note=note,
    )


async def disputes(status: DisputeStatus | None, request: PageRequest) -> Page[Dispute]:
    """For admins: disputes oldest first, the open ones being the queue to work through."""
    query: dict[str, Any] = {} if status is None else {"status": status.value}
    return await paginate(Dispute, query, [("created_at", 1), ("_id", 1)], request)


async def latest_disputes(escrow_ids: Sequence[ObjectId]) -> list[Dispute | None]:
    """For a DataLoader: each escrow's open dispute, else its last one, in order."""
    found: dict[ObjectId, Dispute] = {}
    listed = Dispute.find({"escrow_id": {"$in": list(escrow_ids)}}).sort("created_at")
    for dispute in await listed.to_list():
        found[dispute.escrow_id] = dispute  # the latest wins: at most one is open
    return [found.get(escrow_id) for escrow_id in escrow_ids]
