"""Booking requests the provider did not answer in time expire.

Every instance looks for pending bookings past their `respond_by`
(resolvers/marketplace/booking_requests.py). Each expiry is one transaction whose move is
conditional (resolvers/common/transitions.py), so however many instances find the same request,
one expires it and the others change nothing. The booking is cancelled by nobody,
nothing refunded (nothing was paid: a request has no escrow yet), its time is free
again, and both sides are told.
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from bson import ObjectId

from documents.clock import utcnow
from documents.lifecycles import BOOKING, Party
from documents.marketplace.bookings import Booking, BookingStatus, Cancellation, CancelledBy
from resolvers.common.services import Services
from resolvers.common.transitions import BOOKING_SUBJECT, transition
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.marketplace.bookings import after_move

EXPIRY_BATCH = 100
REASON = "The provider did not answer the request in time."


async def expire_unanswered_requests(services: Services, now: datetime | None = None) -> int:
    """Expire the requests unanswered past their `respond_by`; how many this run expired."""
    now = now or utcnow()
    due = (
        await Booking.find({"status": BookingStatus.PENDING.value, "respond_by": {"$lte": now}})
        .sort("respond_by")
        .limit(EXPIRY_BATCH)
        .to_list()
    )
    expired = 0
    for booking in due:
        if await transact(services, partial(_expire, services, booking.id, now)) is not None:
            expired += 1
    return expired


async def _expire(
    services: Services, booking_id: ObjectId | None, now: datetime, unit: UnitOfWork
) -> Booking | None:
    """The request, expired; None if it was answered, cancelled or expired meanwhile."""
    booking = await Booking.get(booking_id, session=unit.session)
    if (
        booking is None
        or booking.status is not BookingStatus.PENDING
        or booking.respond_by is None
        or booking.respond_by > now
    ):
        return None
    cancellation = Cancellation(
        by=None,
        role=CancelledBy.SYSTEM,
        at=now,
        reason=REASON,
        refund_bp=0,
        refundable=booking.price.total.zero(),
    )
    expired = await transition(
        unit,
        services,
        BOOKING,
        "expire",
        booking,
        Party.SYSTEM,
        BOOKING_SUBJECT,
        note=REASON,
        fields={"cancellation": cancellation.model_dump()},
    )
    return await after_move(unit, services, booking, expired, "expire", None)
