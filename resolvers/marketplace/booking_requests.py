"""Booking requests hold a provider's time briefly, and a customer holds only a few.

Request-to-book as the big marketplaces run it, without holding a card authorisation for
days: a request (a PENDING booking) keeps its slot until the provider answers it, at the
latest until its `respond_by` (GIGQL_BOOKING_REQUEST_EXPIRY after it was made, never past
its start less the booking notice). Unanswered then, it expires
(resolvers/marketplace/request_expiry.py) and cannot be confirmed any more. Nothing is paid before
the provider confirms.

A customer has at most GIGQL_MAX_PENDING_BOOKINGS requests waiting at once, across
providers. The count and the insert are atomic as a provider's calendar is: every
request first bumps the customer's `request_version`, so of two concurrent requests of
one customer one transaction conflicts and is retried, and its retry counts the other.
"""

from __future__ import annotations

from contextlib import suppress
from datetime import datetime

from bson import ObjectId
from pymongo.errors import DuplicateKeyError

from documents.accounts.profiles import CustomerProfile
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.marketplace.bookings import Booking, BookingStatus
from resolvers.accounts.profiles import new_profile_fields
from resolvers.common.unit_of_work import UnitOfWork
from resolvers.marketplace.deal_terms import DealTerms


def respond_by(terms: DealTerms, now: datetime, start: datetime) -> datetime:
    """When a request made `now` for `start` expires unanswered: the provider's answer
    comes while the customer can still be told in time."""
    return min(now + terms.booking_request_expiry, start - terms.booking_min_notice)


async def ensure_request_counter(customer_id: ObjectId) -> None:
    """Outside the booking's transaction: the customer's profile, which `admit_request`
    bumps, exists (two first requests at once would otherwise both insert it)."""
    fresh = new_profile_fields(CustomerProfile(updated_at=utcnow()), besides=())
    with suppress(DuplicateKeyError):  # a concurrent request made it
        await CustomerProfile.get_pymongo_collection().update_one(
            {"_id": customer_id}, {"$setOnInsert": fresh}, upsert=True
        )


async def admit_request(unit: UnitOfWork, terms: DealTerms, customer_id: ObjectId) -> None:
    """Within the booking's transaction, before its insert: TOO_MANY_PENDING when the
    customer already has as many requests waiting for an answer as one may."""
    # The bump comes first: it is what serialises concurrent requests of the customer.
    await CustomerProfile.get_pymongo_collection().update_one(
        {"_id": customer_id}, {"$inc": {"request_version": 1}}, session=unit.session
    )
    waiting = await Booking.find(
        {"customer_id": customer_id, "status": BookingStatus.PENDING.value}, session=unit.session
    ).count()
    if waiting >= terms.max_pending_bookings:
        raise DomainError(
            ErrorCode.TOO_MANY_PENDING,
            f"You have {waiting} booking requests waiting for an answer, as many as one may: "
            "wait for an answer, or cancel one, before asking for another.",
        )


def require_answer_in_time(booking: Booking, now: datetime) -> None:
    """A request is confirmed before its `respond_by` or not at all: past it, it has
    expired, whether or not the expiry has been recorded yet."""
    if (
        booking.status is BookingStatus.PENDING
        and booking.respond_by is not None
        and now >= booking.respond_by
    ):
        raise DomainError(
            ErrorCode.INVALID_STATE,
            f"The request expired unanswered at {booking.respond_by:%Y-%m-%d %H:%M} UTC; "
            "the customer may ask again.",
            "bookingId",
        )
