"""What each move of a task or booking does to its escrow, inside the move's transaction.

The gateway steps these claim (the payment intent, a refund, the release) follow after
the commit through `escrow_progress.advance_deals`, and again from the sweep if that
fails: the deal's change and the escrow's claim commit together or not at all.

A task in milestones has one deal per milestone: a move of the task applies to each
milestone's escrow whose work is not approved yet (approved ones are released).
"""

from __future__ import annotations

from documents.clock import utcnow
from documents.marketplace.bookings import Booking, BookingStatus
from documents.marketplace.offers import Offer
from documents.marketplace.tasks import MilestoneStatus, Task, TaskStatus
from documents.payments.escrow import booking_deal, milestone_deal, task_deal
from resolvers.common.unit_of_work import UnitOfWork
from resolvers.marketplace.deal_terms import DealTerms
from resolvers.payments.escrow.escrows import open_escrow
from resolvers.payments.escrow.milestones import open_milestone_escrow
from resolvers.payments.escrow.refunds import cancel_deal
from resolvers.payments.escrow.release import (
    claim_release,
    freeze,
    mark_unpaid,
    schedule_release,
)
from resolvers.payments.fees import FeePolicy


def task_deals(task: Task) -> list[str]:
    """The task's deals: the accepted offer, or each of its milestones."""
    assert task.id is not None
    if not task.milestones:
        return [task_deal(task.id, task.deal_round)]
    return [milestone_deal(task.id, m.number, task.deal_round) for m in task.milestones]


def _unapproved_deals(task: Task) -> list[str]:
    assert task.id is not None
    if not task.milestones:
        return [task_deal(task.id, task.deal_round)]
    return [
        milestone_deal(task.id, m.number, task.deal_round)
        for m in task.milestones
        if m.status is not MilestoneStatus.APPROVED
    ]


async def offer_accepted(
    unit: UnitOfWork, terms: DealTerms, fees: FeePolicy, offer: Offer, task: Task
) -> None:
    assert task.id is not None
    if task.milestones:
        # The first is due now; each later one when the poster funds it (fundMilestone).
        await open_milestone_escrow(unit, terms, fees, task, 1)
        return
    await open_escrow(
        unit,
        terms,
        fees,
        pay_by=utcnow() + terms.payment_deadline,
        deal=task_deal(task.id, task.deal_round),
        payer_id=offer.poster_id,
        provider_id=offer.tasker_id,
        price=offer.amount,
        task_id=task.id,
        offer_id=offer.id,
    )


async def task_moved(
    unit: UnitOfWork, terms: DealTerms, task: Task, *, changes_requested: bool, note: str | None
) -> None:
    """`task` as it is after the move."""
    deals = _unapproved_deals(task)
    for deal in deals:
        await _deal_moved(unit, terms, task, deal, changes_requested=changes_requested, note=note)
    if task.status is TaskStatus.DISPUTED and task.milestones:
        # A later milestone may be paid ahead while the dispute commits. (A task's one
        # escrow, or a booking's, must hold money to be disputed, and `freeze` writes it.)
        await mark_unpaid(unit, deals)


async def _deal_moved(
    unit: UnitOfWork,
    terms: DealTerms,
    task: Task,
    deal: str,
    *,
    changes_requested: bool,
    note: str | None,
) -> None:
    if task.status is TaskStatus.COMPLETED:
        await claim_release(unit, {"deal": deal}, "the poster approved the work")
    elif task.status is TaskStatus.CANCELLED:
        await cancel_deal(unit, deal, None, note or "the task was cancelled")
    elif task.status is TaskStatus.SUBMITTED:
        await schedule_release(unit, deal, utcnow() + terms.auto_release_after)
    elif changes_requested:
        await schedule_release(unit, deal, None)
    elif task.status is TaskStatus.DISPUTED:
        await freeze(unit, deal, note or "the task is disputed")


async def booking_moved(
    unit: UnitOfWork, terms: DealTerms, fees: FeePolicy, booking: Booking
) -> None:
    """`booking` as it is after the move."""
    assert booking.id is not None
    deal = booking_deal(booking.id)
    if booking.status is BookingStatus.CONFIRMED:
        await open_escrow(
            unit,
            terms,
            fees,
            deal=deal,
            payer_id=booking.customer_id,
            provider_id=booking.provider_id,
            price=booking.price.package_price,
            customer_fee=booking.price.platform_fee,
            booking_id=booking.id,
            settles_by=booking.end_at,
            # Paid in time for the provider to count on it, whenever it was confirmed.
            pay_by=min(
                utcnow() + terms.payment_deadline,
                booking.start_at - terms.booking_min_notice,
            ),
        )
    elif booking.status is BookingStatus.COMPLETED:
        # The customer's window: they approve (released at once) or dispute; else it is
        # released when the window ends.
        await schedule_release(unit, deal, utcnow() + terms.auto_release_after)
    elif booking.status is BookingStatus.CANCELLED and booking.cancellation is not None:
        cancellation = booking.cancellation
        await cancel_deal(unit, deal, cancellation.refundable, cancellation.reason)
    elif booking.status is BookingStatus.DISPUTED:
        await freeze(unit, deal, "the booking is disputed")
