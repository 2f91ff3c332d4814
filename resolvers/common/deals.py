"""What tasks and bookings share as deals, whichever of the two a record belongs to."""

from __future__ import annotations

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.accounts.profiles import ProviderProfile
from documents.marketplace.bookings import Booking, BookingStatus
from documents.marketplace.tasks import Task, TaskStatus


async def deal_disputed(
    task_id: ObjectId | None,
    booking_id: ObjectId | None,
    session: AsyncClientSession | None = None,
) -> bool:
    """Whether the task, else the booking, is disputed."""
    if task_id is not None:
        task = await Task.get(task_id, session=session)
        return task is not None and task.status is TaskStatus.DISPUTED
    if booking_id is not None:
        booking = await Booking.get(booking_id, session=session)
        return booking is not None and booking.status is BookingStatus.DISPUTED
    return False


async def count_cancellation(provider_id: ObjectId, session: AsyncClientSession) -> None:
    """The provider stepped back from a deal they had accepted: shown on their provider
    profile, made for it if they had none (not taking bookings: nothing else is set)."""
    await ProviderProfile.get_pymongo_collection().update_one(
        {"_id": provider_id},
        {"$inc": {"cancellations": 1}, "$setOnInsert": {"available": False}},
        upsert=True,
        session=session,
    )


async def count_completed_job(provider_id: ObjectId, session: AsyncClientSession) -> None:
    """A deal completed: one more job on the provider's profile."""
    await ProviderProfile.get_pymongo_collection().update_one(
        {"_id": provider_id}, {"$inc": {"completed_jobs": 1}}, session=session
    )
