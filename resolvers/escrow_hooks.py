"""What each move of a task or booking does to its escrow, inside the move's transaction.

The gateway steps these claim (the payment intent, a refund, the release) follow after
the commit through `escrow_progress.advance_deal`, and again from the sweep if that
fails: the deal's change and the escrow's claim commit together or not at all.
"""

from __future__ import annotations

from documents.bookings import Booking, BookingStatus
from documents.clock import utcnow
from documents.escrow import booking_deal, task_deal
from documents.offers import Offer
from documents.tasks import Task, TaskStatus
from resolvers.escrow import open_escrow
from resolvers.escrow_refunds import cancel_deal
from resolvers.escrow_release import claim_release, freeze, schedule_release
from resolvers.unit_of_work import UnitOfWork
from server.settings import Settings


async def offer_accepted(unit: UnitOfWork, settings: Settings, offer: Offer, task: Task) -> None:
    assert task.id is not None
    await open_escrow(
        unit,
        settings,
        deal=task_deal(task.id),
        payer_id=offer.poster_id,
        provider_id=offer.tasker_id,
        price=offer.amount,
        task_id=task.id,
        offer_id=offer.id,
    )


async def task_moved(
    unit: UnitOfWork, settings: Settings, task: Task, *, changes_requested: bool, note: str | None
) -> None:
    """`task` as it is after the move."""
    assert task.id is not None
    deal = task_deal(task.id)
    if task.status is TaskStatus.COMPLETED:
        await claim_release(unit, {"deal": deal}, "the poster approved the work")
    elif task.status is TaskStatus.CANCELLED:
        await cancel_deal(unit, deal, None, note or "the task was cancelled")
    elif task.status is TaskStatus.SUBMITTED:
        await schedule_release(unit, deal, utcnow() + settings.auto_release_after)
    elif changes_requested:
        await schedule_release(unit, deal, None)
    elif task.status is TaskStatus.DISPUTED:
        await freeze(unit, deal, note or "the task is disputed")


async def booking_moved(unit: UnitOfWork, settings: Settings, booking: Booking) -> None:
    """`booking` as it is after the move."""
    assert booking.id is not None
    deal = booking_deal(booking.id)
    if booking.status is BookingStatus.CONFIRMED:
        await open_escrow(
            unit,
            settings,
            deal=deal,
            payer_id=booking.customer_id,
            provider_id=booking.provider_id,
            price=booking.price.package_price,
            customer_fee=booking.price.platform_fee,
            booking_id=booking.id,
            settles_by=booking.end_at,
        )
    elif booking.status is BookingStatus.COMPLETED:
        await claim_release(unit, {"deal": deal}, "the booking was completed")
    elif booking.status is BookingStatus.CANCELLED and booking.cancellation is not None:
        cancellation = booking.cancellation
        await cancel_deal(unit, deal, cancellation.refundable, cancellation.reason)
