"""Disputes over a task paid in milestones: one milestone's escrow at a time.

A dispute names the milestone in work, the first not approved (`openDispute`'s
`milestone`), which must hold money. Opening it moves the task to `disputed`, which
freezes every paid milestone not approved (resolvers/payments/escrow/hooks.py). The decision acts
on the named milestone's escrow as on any other (resolvers/payments/disputes/money.py); then:

    RELEASE, SPLIT  the milestone is approved. The last one completes the task; any other
                    returns it to in_progress: the later milestones the dispute froze
                    hold their money again and the next is funded and handed in as usual.
    REFUND          the payer takes back the milestone, and with it the work left: the
                    task ends, completed if an earlier milestone was paid to the tasker,
                    else cancelled, and the later milestones are refunded in full (unpaid
                    intents cancelled), as cancelling the task does.

Only the milestone in work can be disputed, so a decision never approves one out of
order and no later milestone has been handed in (none waits for an automatic release):
after it every milestone is settled (approved, or refunded with the task ended), or the
task is in progress with the next one due.
"""

from __future__ import annotations

from bson import ObjectId

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.events import EventKind
from documents.lifecycles import Party
from documents.marketplace.tasks import MilestoneStatus, Task, TaskStatus
from documents.payments.disputes import Dispute, DisputeOutcome
from documents.payments.escrow import FROZEN_BY_DEAL, EscrowStatus, milestone_deal, task_deal
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork
from resolvers.marketplace.milestones import emit_milestone_event
from resolvers.payments.disputes import money as dispute_money
from resolvers.payments.escrow import hooks as escrow_hooks
from resolvers.payments.escrow.escrows import escrow_of_deal
from resolvers.payments.escrow.milestones import move_milestone
from resolvers.payments.escrow.progress import advance_deals
from resolvers.payments.escrow.refunds import cancel_deal
from resolvers.payments.escrow.release import mark_unpaid


def disputed_deal(task: Task, number: int | None) -> str:
    """The deal a dispute about `task` covers: the task's own, or milestone `number`'s,
    which must be the milestone in work. Typed errors on the field `milestone`."""
    assert task.id is not None
    if not task.milestones:
        if number is not None:
            raise DomainError(
                ErrorCode.INVALID_INPUT, "The task is not paid in milestones.", "milestone"
            )
        return task_deal(task.id, task.deal_round)
    if number is None:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            "The task is paid in milestones: name the milestone disputed.",
            "milestone",
        )
    milestone = task.milestone(number)
    if milestone is None:
        raise DomainError(ErrorCode.NOT_FOUND, "The task has no such milestone.", "milestone")
    if milestone.status is MilestoneStatus.APPROVED:
        raise DomainError(
            ErrorCode.INVALID_STATE,
            f"Milestone {number} is approved: its payment is the tasker's.",
            "milestone",
        )
    in_work = next(m for m in task.milestones if m.status is not MilestoneStatus.APPROVED)
    if in_work.number != number:
        raise DomainError(
            ErrorCode.INVALID_STATE,
            f"Milestone {in_work.number} is in work; only it can be disputed.",
            "milestone",
        )
    return milestone_deal(task.id, number, task.deal_round)


async def decided(
    unit: UnitOfWork,
    services: Services,
    admin: Viewer,
    dispute: Dispute,
    outcome: DisputeOutcome,
    note: str,
) -> TaskStatus:
    """Within the decision's transaction, its escrow claimed: the milestone and the
    other milestones' escrows as the decision leaves them; returns the task's next
    status (it is still disputed)."""
    task_id, number = dispute.task_id, dispute.milestone
    assert task_id is not None and number is not None
    task = await Task.get(task_id, session=unit.session)
    assert task is not None
    if outcome is not DisputeOutcome.REFUND:
        milestone = task.milestone(number)
        assert milestone is not None
        approved = await move_milestone(
            unit, services, task, number, "decide_approved", Party.ADMIN, approved_at=utcnow()
        )
        assert approved is not None  # read in this transaction
        task = approved
        emit_milestone_event(
            unit,
            admin,
            task,
            milestone,
            EventKind.MILESTONE_APPROVED,
            f"Milestone {number} of “{task.title}” was approved by the dispute's decision",
        )
    later = [
        milestone_deal(task_id, m.number, task.deal_round)
        for m in task.milestones
        if m.status is not MilestoneStatus.APPROVED and m.number != number
    ]
    for deal in later:
        await _thaw(unit, deal, note)
    if outcome is not DisputeOutcome.REFUND and later:
        # The task goes on: a later milestone being paid now must not be frozen as if it
        # were still disputed (a refund fails the unpaid ones instead, writing them).
        await mark_unpaid(unit, later)
        return TaskStatus.IN_PROGRESS
    for deal in later:
        await cancel_deal(unit, deal, None, note)
    paid = any(m.status is MilestoneStatus.APPROVED for m in task.milestones)
    return TaskStatus.COMPLETED if paid else TaskStatus.CANCELLED


async def _thaw(unit: UnitOfWork, deal: str, note: str) -> None:
    """Hold the deal's escrow again if the task's move to disputed froze it: one frozen
    by a chargeback or a reversal stays."""
    escrow = await escrow_of_deal(deal, unit.session)
    if escrow is None or escrow.status is not EscrowStatus.DISPUTED:
        return
    if escrow.frozen_by == FROZEN_BY_DEAL:
        await dispute_money.unfreeze(unit, escrow, note)


async def after_decision(services: Services, task_id: ObjectId) -> None:
    """The gateway steps a decision claimed: the disputed milestone's refund and release,
    and the refunds and cancelled intents of the milestones after it."""
    task = await Task.get(task_id)
    assert task is not None
    await advance_deals(services, escrow_hooks.task_deals(task))
