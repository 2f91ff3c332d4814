"""Milestones: an accepted task split into parts, each funded and paid on its own.

The poster splits the work when accepting an offer (2..MAX_MILESTONES parts adding up
exactly to the offer's amount). Each milestone has its own escrow (deal
`task:<id>:milestone:<n>`), fees computed on its own amount, and its own payment
intent keyed by that escrow: the first is opened on acceptance, each later one when
the poster funds it (`fund_milestone`), as its work is about to start.

    pending -> submitted -> approved      (its escrow released)
                  '-> pending             (changes requested)

The tasker works through them in order: a milestone is handed in once paid for and
once those before it are approved. Handing in the last submits the task, approving it
completes the task (the task's own moves, with their events); a milestone handed in
is released automatically when its time comes, like a submitted task. Cancelling the
task refunds every paid milestone not approved and cancels unpaid intents; a dispute
(about the milestone in work) freezes them (resolvers/payments/escrow/hooks.py) until an admin
decides it (resolvers/payments/disputes/milestones.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.events import EventKind
from documents.lifecycles import Party
from documents.marketplace.offers import Offer
from documents.marketplace.tasks import MAX_MILESTONES, Milestone, MilestoneStatus, Task, TaskStatus
from documents.money import Money
from documents.payments.escrow import HOLDING_STATUSES, milestone_deal
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.inputs import MoneyInput
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.common.validation import MAX_REASON_LENGTH, Checked, PriceRules
from resolvers.marketplace.tasks import MAX_NOTE, MAX_TITLE, apply_move, get_task
from resolvers.payments.escrow.escrows import escrow_of_deal
from resolvers.payments.escrow.milestones import move_milestone, open_milestone_escrow
from resolvers.payments.escrow.progress import advance_deals
from resolvers.payments.escrow.release import claim_release, schedule_release

_REVIEWABLE = (TaskStatus.IN_PROGRESS, TaskStatus.SUBMITTED)
"""A milestone handed in is approved or sent back in these (not once disputed)."""


@dataclass(frozen=True)
class MilestoneInput:
    title: str
    amount: MoneyInput


def split_offer(
    viewer: Viewer, offer: Offer, inputs: Sequence[MilestoneInput], rules: PriceRules
) -> list[Milestone]:
    """The milestones the poster splits the offer's work into; INVALID_INPUT unless
    there are 2..MAX_MILESTONES, each a price the gateway can charge on its own (each
    is paid with a charge of its own), in the offer's currency, adding up to it."""
    if viewer.user_id != offer.poster_id:
        raise DomainError(
            ErrorCode.FORBIDDEN, "Only the poster splits the work into milestones.", "milestones"
        )
    checked = Checked()
    if not 2 <= len(inputs) <= MAX_MILESTONES:
        checked.fail(
            ErrorCode.INVALID_INPUT,
            f"Split the work into 2 to {MAX_MILESTONES} milestones.",
            "milestones",
        )
        checked.raise_if_any()
    milestones = []
    for number, given in enumerate(inputs, start=1):
        field = f"milestones.{number - 1}"
        title = checked.required_text(
            given.title, f"{field}.title", min_length=1, max_length=MAX_TITLE
        )
        amount = checked.price(given.amount.amount, given.amount.currency, f"{field}.amount", rules)
        if amount.currency != offer.amount.currency:
            checked.fail(
                ErrorCode.INVALID_INPUT,
                f"Milestones are in the offer's currency, {offer.amount.currency}.",
                f"{field}.amount",
            )
        milestones.append(Milestone(number=number, title=title, amount=amount))
    checked.raise_if_any()
    check_total(milestones, offer.amount)
    return milestones


def check_total(milestones: Sequence[Milestone], price: Money) -> None:
    total = sum(m.amount.amount for m in milestones)
    if total != price.amount:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"The milestones add up to {Money(amount=total, currency=price.currency)}; "
            f"the offer is {price}.",
            "milestones",
        )


def _milestone(task: Task, number: int) -> Milestone:
    milestone = task.milestone(number)
    if milestone is None:
        raise DomainError(ErrorCode.NOT_FOUND, "The task has no such milestone.", "number")
    return milestone


def _check_actor(viewer: Viewer, person: ObjectId | None, who: str, task: Task) -> None:
    if viewer.user_id != person:
        raise DomainError(ErrorCode.FORBIDDEN, f"Only {who} can do this.", "taskId")
    if not task.milestones:
        raise DomainError(ErrorCode.INVALID_STATE, "The task is not in milestones.", "taskId")


def _in_state(task: Task, allowed: Sequence[TaskStatus], doing: str) -> None:
    if task.status not in allowed:
        raise DomainError(
            ErrorCode.INVALID_STATE,
            f"The task is {task.status.value.replace('_', ' ')}; milestones cannot be {doing}.",
            "taskId",
        )


def _wrong_milestone(milestone: Milestone, doing: str) -> DomainError:
    return DomainError(
        ErrorCode.INVALID_STATE,
        f"Milestone {milestone.number} is {milestone.status.value}; it cannot be {doing}.",
        "number",
    )


def _is_last(task: Task, milestone: Milestone) -> bool:
    return milestone.number == len(task.milestones)


def emit_milestone_event(
    unit: UnitOfWork,
    viewer: Viewer,
    task: Task,
    milestone: Milestone,
    kind: EventKind,
    title: str,
    **data: Any,
) -> None:
    """An event about `milestone`, to the task's poster and tasker."""
    unit.emit(
        kind,
        actor_id=viewer.user_id,
        audience=task.participants,
        title=title,
        task_id=task.id,
        offer_id=task.accepted_offer_id,
        milestone=milestone.number,
        amount=milestone.amount.model_dump(),
        **data,
    )


async def fund_milestone(
    services: Services, viewer: Viewer, task_id: ObjectId, number: int
) -> Task:
    """The poster starts paying for a milestone: its escrow and payment intent (the
    client secret is on the milestone's escrow). Repeating it changes nothing more."""

    async def work(unit: UnitOfWork) -> Task:
        task = await get_task(task_id, unit)
        _check_actor(viewer, task.poster_id, "the poster", task)
        milestone = _milestone(task, number)
        _in_state(task, (TaskStatus.ASSIGNED, TaskStatus.IN_PROGRESS), "funded")
        if milestone.status is MilestoneStatus.APPROVED:
            raise _wrong_milestone(milestone, "funded")
        await open_milestone_escrow(unit, services.terms, services.fees, task, number)
        return await get_task(task_id, unit)

    task = await transact(services, work)
    await advance_deals(services, [milestone_deal(task_id, number, task.deal_round)])  # its intent
    return task


async def submit_milestone(
    services: Services, viewer: Viewer, task_id: ObjectId, number: int, note: str | None
) -> Task:
    """The tasker hands in a paid milestone's work, those before it being approved; the
    last one submits the task. Released automatically unless the poster answers."""
    checked = Checked()
    note = checked.text(note or "", "note", MAX_NOTE, multiline=True) or None
    checked.raise_if_any()

    async def work(unit: UnitOfWork) -> Task:
        task = await get_task(task_id, unit)
        _check_actor(viewer, task.assigned_tasker_id, "the assigned tasker", task)
        milestone = _milestone(task, number)
        _in_state(task, (TaskStatus.IN_PROGRESS,), "submitted")
        if milestone.status is not MilestoneStatus.PENDING:
            raise _wrong_milestone(milestone, "submitted")
        earlier = [
            m for m in task.milestones[: number - 1] if m.status is not MilestoneStatus.APPROVED
        ]
        if earlier:
            raise DomainError(
                ErrorCode.INVALID_STATE,
                f"Milestone {earlier[0].number} comes first.",
                "number",
            )
        deal = milestone_deal(task_id, number, task.deal_round)
        escrow = await escrow_of_deal(deal, unit.session)
        if escrow is None or escrow.status not in HOLDING_STATUSES:
            raise DomainError(
                ErrorCode.INVALID_STATE,
                f"Milestone {number} is not paid for yet.",
                "number",
            )
        moved = await move_milestone(
            unit, services, task, number, "submit", Party.TASKER, note=note, submitted_at=utcnow()
        )
        assert moved is not None  # the task was read in this transaction
        if _is_last(task, milestone):
            moved = await apply_move(
                unit, services, viewer, moved, "submit", note=note, by_milestone=True
            )
        else:
            await schedule_release(unit, deal, utcnow() + services.terms.auto_release_after)
        emit_milestone_event(
            unit,
            viewer,
            moved,
            milestone,
            EventKind.MILESTONE_SUBMITTED,
            f"Milestone {number} of “{task.title}” was handed in",
            note=note,
        )
        return moved

    return await transact(services, work)


async def approve_milestone(
    services: Services, viewer: Viewer, task_id: ObjectId, number: int
) -> Task:
    """The poster accepts a milestone handed in: its escrow is released to the tasker;
    the last one completes the task. Of concurrent approvals exactly one does it."""

    async def work(unit: UnitOfWork) -> Task:
        task = await get_task(task_id, unit)
        _check_actor(viewer, task.poster_id, "the poster", task)
        milestone = _milestone(task, number)
        _in_state(task, _REVIEWABLE, "approved")
        moved = await move_milestone(
            unit, services, task, number, "approve", Party.POSTER, approved_at=utcnow()
        )
        if moved is None:
            raise _wrong_milestone(milestone, "approved")
        await claim_release(
            unit,
            {"deal": milestone_deal(task_id, number, task.deal_round)},
            f"milestone {number} approved",
        )
        if _is_last(task, milestone):
            moved = await apply_move(
                unit, services, viewer, moved, "complete", note=None, by_milestone=True
            )
        emit_milestone_event(
            unit,
            viewer,
            moved,
            milestone,
            EventKind.MILESTONE_APPROVED,
            f"Milestone {number} of “{task.title}” was approved",
        )
        return moved

    task = await transact(services, work)
    await advance_deals(services, [milestone_deal(task_id, number, task.deal_round)])  # release
    return task


async def request_milestone_changes(
    services: Services, viewer: Viewer, task_id: ObjectId, number: int, reason: str
) -> Task:
    """The poster sends a milestone back: it is no longer released automatically."""
    checked = Checked()
    reason = checked.required_text(
        reason, "reason", min_length=3, max_length=MAX_REASON_LENGTH, multiline=True
    )
    checked.raise_if_any()

    async def work(unit: UnitOfWork) -> Task:
        task = await get_task(task_id, unit)
        _check_actor(viewer, task.poster_id, "the poster", task)
        milestone = _milestone(task, number)
        _in_state(task, _REVIEWABLE, "sent back")
        moved = await move_milestone(
            unit, services, task, number, "send_back", Party.POSTER, note=reason
        )
        if moved is None:
            raise _wrong_milestone(milestone, "sent back")
        if _is_last(task, milestone):
            moved = await apply_move(
                unit, services, viewer, moved, "send_back", note=reason, by_milestone=True
            )
        else:
            await schedule_release(unit, milestone_deal(task_id, number, task.deal_round), None)
        emit_milestone_event(
            unit,
            viewer,
            moved,
            milestone,
            EventKind.MILESTONE_CHANGES_REQUESTED,
            f"Milestone {number} of “{task.title}” was sent back",
            note=reason,
        )
        return moved

    return await transact(services, work)
