"""Taking each escrow to its next step, after a commit and again in the background.

`advance` looks at what an escrow still needs from the gateway (a payment intent, a
pending refund, a claimed release, a cancelled intent) and does it. Every step it takes
is keyed by the escrow's ids and recorded conditionally, so it is safe to repeat and to
run on many instances at once: this is how a crash between a gateway call and its
database write is recovered. Use cases call `after_commit`; the `sweep` job calls it
for every escrow left unfinished, and releases those whose automatic release is due.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from functools import partial

from bson import ObjectId

from documents.clock import utcnow
from documents.events import EventKind
from documents.lifecycles import TASK, Party
from documents.marketplace.tasks import Task, TaskStatus
from documents.payments.escrow import HOLDING_STATUSES, Escrow, EscrowStatus, RefundStatus
from integrations.payments.errors import GatewayError
from resolvers.common.deals import count_completed_job
from resolvers.common.services import Services
from resolvers.common.transitions import TASK_SUBJECT, transition
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.payments.escrow.escrows import ensure_intent, escrow_by_id
from resolvers.payments.escrow.milestones import move_milestone
from resolvers.payments.escrow.refunds import cancel_unpaid, settle_refund
from resolvers.payments.escrow.release import claim_release, settle_release

log = logging.getLogger(__name__)

SWEEP_BATCH = 100
_HOLDING = {"$in": [s.value for s in HOLDING_STATUSES]}


def _needs_intent(escrow: Escrow) -> bool:
    return escrow.status is EscrowStatus.AWAITING_PAYMENT and not escrow.payment_intent_id


def _unpaid_and_cancelled(escrow: Escrow) -> bool:
    return escrow.status is EscrowStatus.FAILED and escrow.deal_cancelled


def _due_to_provider(escrow: Escrow) -> bool:
    return escrow.status in HOLDING_STATUSES and (escrow.deal_cancelled or escrow.release_requested)


def awaits_next_step(escrow: Escrow) -> bool:
    """Whether `advance` would find something to do for the escrow as it is: a caller
    that has just committed it so can skip reading it again. What changes it later is
    advanced by whoever changes it, and by the sweep."""
    return (
        _needs_intent(escrow)
        or _unpaid_and_cancelled(escrow)
        or escrow.pending_refund is not None
        or _due_to_provider(escrow)
        or escrow.status is EscrowStatus.RELEASING
    )


async def advance(services: Services, escrow_id: ObjectId) -> Escrow | None:
    """Do whatever the escrow waits for next (each step as `awaits_next_step` sees it);
    raises GatewayError if the gateway fails."""
    escrow = await escrow_by_id(escrow_id)
    if escrow is None:
        return None
    if _needs_intent(escrow):
        await ensure_intent(services, escrow)
    elif _unpaid_and_cancelled(escrow):
        await cancel_unpaid(services, escrow)
    if escrow.pending_refund is not None:
        escrow = await settle_refund(services, escrow)
    if _due_to_provider(escrow):
        # What a cancellation did not refund is the provider's; approved work is too.
        note = "kept by the provider on cancellation" if escrow.deal_cancelled else "approved"
        escrow = await transact(services, partial(_claim, escrow.id, note)) or escrow
    if escrow.status is EscrowStatus.RELEASING:
        escrow = await settle_release(services, escrow)
    return await escrow_by_id(escrow_id)


async def _claim(escrow_id: ObjectId | None, note: str, unit: UnitOfWork) -> Escrow | None:
    return await claim_release(unit, {"_id": escrow_id}, note)


async def after_commit(services: Services, escrow_id: ObjectId | None) -> None:
    """`advance`, for use cases whose own change is already committed: a gateway failure
    is logged and left to the sweep, never undoes it."""
    if escrow_id is None:
        return
    try:
        await advance(services, escrow_id)
    except GatewayError:
        log.warning("escrow %s: the gateway failed; the sweep retries", escrow_id, exc_info=True)


async def sweep(services: Services, now: datetime | None = None) -> int:
    """Release what is due, then advance every unfinished escrow; returns how many."""
    now = now or utcnow()
    due = (
        await Escrow.find({"status": _HOLDING, "auto_release_at": {"$lte": now}})
        .limit(SWEEP_BATCH)
        .to_list()
    )
    for escrow in due:
        await transact(services, partial(_auto_release, services, escrow, now))
    unfinished = (
        await Escrow.find(
            {
                "$or": [
                    {"status": EscrowStatus.AWAITING_PAYMENT.value, "payment_intent_id": None},
                    {"status": EscrowStatus.RELEASING.value},
                    {"refunds.status": RefundStatus.PENDING.value},
                    {"status": _HOLDING, "deal_cancelled": True},
                    {"status": _HOLDING, "release_requested": True},
                ]
            }
        )
        .limit(SWEEP_BATCH)
        .to_list()
    )
    for escrow in unfinished:
        await after_commit(services, escrow.id)
    return len(due) + len(unfinished)


async def _auto_release(
    services: Services, escrow: Escrow, now: datetime, unit: UnitOfWork
) -> None:
    claimed = await claim_release(
        unit,
        {"_id": escrow.id, "status": _HOLDING, "auto_release_at": {"$lte": now}},
        "released automatically",
    )
    if claimed is not None and claimed.task_id is not None:
        task = await Task.get(claimed.task_id, session=unit.session)
        if claimed.milestone is not None and task is not None:
            await move_milestone(
                unit, services, task, claimed.milestone, "approve", Party.SYSTEM, approved_at=now
            )
        await _complete_submitted_task(unit, services, claimed.task_id)  # the last milestone's too


async def _complete_submitted_task(unit: UnitOfWork, services: Services, task_id: ObjectId) -> None:
    """Submitted work nobody objected to in time counts as accepted."""
    task = await Task.get(task_id, session=unit.session)
    if task is None or task.status is not TaskStatus.SUBMITTED:
        return
    task = await transition(
        unit, services, TASK, "complete", task, Party.SYSTEM, TASK_SUBJECT, note="automatically"
    )
    if task.assigned_tasker_id is not None:
        await count_completed_job(task.assigned_tasker_id, unit.session)
    unit.emit(
        EventKind.TASK_STATUS_CHANGED,
        actor_id=None,
        audience=task.participants,
        title=f"“{task.title}” was completed automatically",
        task_id=task.id,
        status=TaskStatus.COMPLETED.value,
        previous=TaskStatus.SUBMITTED.value,
    )


async def advance_deal(services: Services, deal: str) -> None:
    """`after_commit` for the escrow of a deal, if it has one."""
    await advance_deals(services, [deal])


async def advance_deals(services: Services, deals: Sequence[str]) -> None:
    """`after_commit` for the escrow of each deal that has one (a task's milestones)."""
    for escrow in await Escrow.find({"deal": {"$in": list(deals)}}).sort("deal").to_list():
        await after_commit(services, escrow.id)
