"""Booking a provider's package for a time slot, and each booking's way through its states.

    pending -> confirmed -> in_progress -> completed
    pending (rejected by the provider) / confirmed / in_progress -> cancelled
    confirmed / in_progress -> disputed (resolvers/disputes.py, which also ends it)

No double booking: a booking is made in one transaction that first bumps the provider's
`schedule_version`, then checks its time against every booking that holds time, then
inserts it. Of two concurrent bookings of one provider, however many API instances they
come through, both write the profile, so one transaction conflicts and is retried, and
its retry sees the other's booking. Confirming needs no such check: a pending booking
already holds its time, so holding bookings never overlap in the first place.

Each move is one conditional update on the booking's current status inside a
transaction, so two racing requests cannot both move it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.bookings import (
    HOLDING_STATUSES,
    Booking,
    BookingStatus,
    BookingStatusChange,
    Cancellation,
    CancellationPolicy,
    CancelledBy,
    PackageSnapshot,
    PriceSnapshot,
    RefundTier,
    sources_of,
)
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.escrow import booking_deal
from documents.events import EventKind
from documents.geo import Place
from documents.money import BASIS_POINTS
from documents.packages import ServicePackage
from documents.profiles import CustomerProfile, ProviderProfile
from documents.users import Role, User, UserStatus
from resolvers import availability, escrow_hooks
from resolvers.auth.viewer import Viewer
from resolvers.availability import Held, Schedule
from resolvers.deals import count_completed_job
from resolvers.escrow_progress import advance_deal
from resolvers.packages import MAX_DURATION, get_package
from resolvers.profiles import MAX_BUFFER_MINUTES
from resolvers.services import Services
from resolvers.tasks import PlaceInput, require_role
from resolvers.unit_of_work import UnitOfWork, transact
from resolvers.validation import MAX_REASON_LENGTH, Checked
from server.settings import Settings

MAX_INSTRUCTIONS = 2000
HORIZON = timedelta(days=366)
"""How far ahead bookings are taken."""
# Far enough around a day to find every booking whose buffer reaches into it.
_REACH = timedelta(minutes=MAX_BUFFER_MINUTES)


def cancellation_policy(settings: Settings) -> CancellationPolicy:
    return CancellationPolicy(
        tiers=[
            RefundTier(
                min_hours_before=settings.cancellation_full_refund_hours, refund_bp=BASIS_POINTS
            ),
            RefundTier(
                min_hours_before=settings.cancellation_partial_refund_hours,
                refund_bp=settings.cancellation_partial_refund_bp,
            ),
        ]
    )


async def _package_of(provider_id: ObjectId, package_id: ObjectId) -> ServicePackage:
    package = await get_package(package_id)
    if package.provider_id != provider_id:
        raise DomainError(ErrorCode.NOT_FOUND, "The provider has no such package.", "packageId")
    return package


async def _takes_bookings(provider_id: ObjectId) -> bool:
    provider = await User.get(PydanticObjectId(provider_id))
    return (
        provider is not None
        and provider.status is UserStatus.ACTIVE
        and provider.has_role(Role.TASKER)
    )


async def _held(
    provider_id: ObjectId, span: availability.Interval, session: AsyncClientSession | None
) -> list[Held]:
    """The bookings of the provider that hold time in or near `span`."""
    bookings = await Booking.find(
        {
            "provider_id": provider_id,
            "status": {"$in": [s.value for s in HOLDING_STATUSES]},
            "start_at": {
                "$gt": span.start - _REACH - timedelta(minutes=MAX_DURATION),
                "$lt": span.end + _REACH,
            },
            "end_at": {"$gt": span.start - _REACH},
        },
        session=session,
    ).to_list()
    return [Held(b.start_at, b.end_at, timedelta(minutes=b.buffer_minutes)) for b in bookings]


async def available_slots(
    services: Services, provider_id: ObjectId, package_id: ObjectId, day: date
) -> list[datetime]:
    """The instants on that local date at which the package can be booked now."""
    today = utcnow().date()
    # The provider's date may be a day behind UTC's.
    if not today - timedelta(days=1) <= day <= today + HORIZON:
        raise DomainError(
            ErrorCode.INVALID_INPUT, "Give a date from today to a year ahead.", "date"
        )
    package = await _package_of(provider_id, package_id)
    profile = await ProviderProfile.get(PydanticObjectId(provider_id))
    if (
        profile is None
        or not profile.available
        or not package.active
        or not await _takes_bookings(provider_id)
    ):
        return []
    settings = services.settings
    schedule = Schedule.of(profile, settings.slot_step_minutes)
    held = await _held(provider_id, availability.day_span(schedule.zone, day), None)
    return availability.open_starts(
        schedule,
        day,
        timedelta(minutes=package.duration_minutes),
        timedelta(minutes=profile.buffer_minutes),
        held,
        utcnow() + timedelta(minutes=settings.booking_min_notice_minutes),
    )


def _start(checked: Checked, start: datetime) -> datetime:
    if start.tzinfo is None:
        checked.fail(ErrorCode.INVALID_INPUT, "Give a time zone offset with the start.", "start")
        return start
    if start <= utcnow():
        checked.fail(ErrorCode.INVALID_INPUT, "The start has passed.", "start")
    elif start > utcnow() + HORIZON:
        checked.fail(ErrorCode.INVALID_INPUT, "Bookings are taken up to a year ahead.", "start")
    return start.astimezone(UTC)


async def _service_place(
    checked: Checked, viewer: Viewer, place: PlaceInput | None, saved_address_id: str | None
) -> Place | None:
    """Exactly one of an address given now or one of the customer's saved addresses."""
    if (place is None) == (saved_address_id is None):
        checked.fail(
            ErrorCode.INVALID_INPUT,
            "Give either a service location or a saved address.",
            "serviceLocation",
        )
        return None
    if place is not None:
        return checked.place(place.latitude, place.longitude, place.address, "serviceLocation")
    profile = await CustomerProfile.get(PydanticObjectId(viewer.user_id))
    saved = [a for a in profile.addresses if a.id == saved_address_id] if profile else []
    if not saved:
        checked.fail(ErrorCode.NOT_FOUND, "No such saved address.", "savedAddressId")
        return None
    return saved[0].place


async def book_slot(
    services: Services,
    viewer: Viewer,
    package_id: ObjectId,
    start: datetime,
    *,
    place: PlaceInput | None,
    saved_address_id: str | None,
    instructions: str,
) -> Booking:
    """Request a booking at one of the package's available slots; it starts pending."""
    require_role(viewer, Role.POSTER, "book services")
    package = await get_package(package_id)
    if package.provider_id == viewer.user_id:
        raise DomainError(ErrorCode.FORBIDDEN, "You cannot book your own package.", "packageId")
    if not package.active:
        raise DomainError(ErrorCode.INVALID_STATE, "The package is not offered now.", "packageId")
    checked = Checked()
    start = _start(checked, start)
    where = await _service_place(checked, viewer, place, saved_address_id)
    instructions = checked.text(instructions, "instructions", MAX_INSTRUCTIONS, multiline=True)
    checked.raise_if_any()
    assert where is not None
    settings = services.settings
    notice = timedelta(minutes=settings.booking_min_notice_minutes)
    if start < utcnow() + notice:
        raise DomainError(
            ErrorCode.UNAVAILABLE,
            f"Book at least {notice // timedelta(minutes=1)} minutes ahead.",
            "start",
        )
    if not await _takes_bookings(package.provider_id):
        raise DomainError(ErrorCode.UNAVAILABLE, "The provider takes no bookings.", "packageId")
    duration = timedelta(minutes=package.duration_minutes)

    async def work(unit: UnitOfWork) -> Booking:
        # The bump comes first: it is what serialises concurrent bookings of the provider.
        raw = await ProviderProfile.get_pymongo_collection().find_one_and_update(
            {"_id": package.provider_id},
            {"$inc": {"schedule_version": 1}},
            return_document=ReturnDocument.AFTER,
            session=unit.session,
        )
        profile = ProviderProfile.model_validate(raw) if raw else None
        if profile is None or not profile.available:
            raise DomainError(ErrorCode.UNAVAILABLE, "The provider takes no bookings.", "packageId")
        schedule = Schedule.of(profile, settings.slot_step_minutes)
        day = start.astimezone(schedule.zone).date()
        if start not in availability.schedule_starts(schedule, day, duration):
            raise DomainError(
                ErrorCode.UNAVAILABLE, "Not a start time within the provider's hours.", "start"
            )
        buffer = timedelta(minutes=profile.buffer_minutes)
        held = await _held(
            package.provider_id, availability.day_span(schedule.zone, day), unit.session
        )
        if not availability.is_free(start, duration, buffer, held):
            raise DomainError(ErrorCode.UNAVAILABLE, "That time is taken.", "start")
        booking = Booking(
            customer_id=viewer.user_id,
            provider_id=package.provider_id,
            package_id=package.id,
            package=PackageSnapshot(
                name=package.name, type=package.type, duration_minutes=package.duration_minutes
            ),
            start_at=start,
            end_at=start + duration,
            buffer_minutes=profile.buffer_minutes,
            service_place=where,
            instructions=instructions,
            price=PriceSnapshot.with_fee(package.price, settings.customer_fee_bp),
            policy=cancellation_policy(settings),
            history=[BookingStatusChange(status=BookingStatus.PENDING, by=viewer.user_id)],
        )
        await booking.insert(session=unit.session)
        local = start.astimezone(schedule.zone)
        unit.emit(
            EventKind.BOOKING_REQUESTED,
            actor_id=viewer.user_id,
            audience=booking.participants,
            title=f"{viewer.user.name} asks to book “{package.name}” at "
            f"{local:%a %d %b %Y %H:%M %Z}",
            booking_id=booking.id,
        )
        return booking

    return await transact(services, work)


def can_see_booking(viewer: Viewer, booking: Booking) -> bool:
    return viewer.user_id in booking.participants or viewer.user.is_admin


async def get_booking(
    booking_id: ObjectId, viewer: Viewer, unit: UnitOfWork | None = None
) -> Booking:
    """The booking, if the viewer is one of its two parties (or an admin); else NOT_FOUND."""
    booking = await Booking.get(
        PydanticObjectId(booking_id), session=unit.session if unit else None
    )
    if booking is None or not can_see_booking(viewer, booking):
        raise DomainError(ErrorCode.NOT_FOUND, "No such booking.", "bookingId")
    return booking


@dataclass(frozen=True)
class Move:
    to: BookingStatus
    sources: tuple[BookingStatus, ...]
    actor: Literal["provider", "either"]
    event: EventKind
    verb: str


CONFIRM = Move(
    BookingStatus.CONFIRMED,
    tuple(sources_of(BookingStatus.CONFIRMED)),
    "provider",
    EventKind.BOOKING_CONFIRMED,
    "confirmed",
)
REJECT = Move(
    BookingStatus.CANCELLED,
    (BookingStatus.PENDING,),
    "provider",
    EventKind.BOOKING_REJECTED,
    "declined",
)
START = Move(
    BookingStatus.IN_PROGRESS,
    tuple(sources_of(BookingStatus.IN_PROGRESS)),
    "provider",
    EventKind.BOOKING_STATUS_CHANGED,
    "started",
)
COMPLETE = Move(
    BookingStatus.COMPLETED,
    tuple(sources_of(BookingStatus.COMPLETED)),
    "provider",
    EventKind.BOOKING_STATUS_CHANGED,
    "completed",
)
CANCEL = Move(
    BookingStatus.CANCELLED,
    tuple(sources_of(BookingStatus.CANCELLED)),
    "either",
    EventKind.BOOKING_CANCELLED,
    "cancelled",
)
DISPUTE = Move(
    BookingStatus.DISPUTED,
    tuple(sources_of(BookingStatus.DISPUTED)),
    "either",
    EventKind.BOOKING_STATUS_CHANGED,
    "disputed",
)


def _party(viewer: Viewer, booking: Booking, move: Move) -> CancelledBy:
    """The side the viewer acts for; FORBIDDEN if that side may not make the move."""
    if viewer.user_id == booking.provider_id:
        return CancelledBy.PROVIDER
    if move.actor == "either" and viewer.user_id == booking.customer_id:
        return CancelledBy.CUSTOMER
    who = "its provider" if move.actor == "provider" else "its customer or provider"
    raise DomainError(ErrorCode.FORBIDDEN, f"Only {who} can do this.", "bookingId")


async def move_booking(
    services: Services,
    viewer: Viewer,
    booking_id: ObjectId,
    move: Move,
    reason: str | None = None,
) -> Booking:
    """Make `move`; cancelling (and rejecting) needs a reason and records the refund due."""
    if move.to is BookingStatus.CANCELLED:
        checked = Checked()
        reason = checked.required_text(
            reason or "", "reason", min_length=3, max_length=MAX_REASON_LENGTH, multiline=True
        )
        checked.raise_if_any()

    async def work(unit: UnitOfWork) -> Booking:
        return await apply_move(unit, services, viewer, booking_id, move, reason)

    moved_booking = await transact(services, work)
    await advance_deal(services, booking_deal(booking_id))  # its payment, refund or release
    return moved_booking


async def apply_move(
    unit: UnitOfWork,
    services: Services,
    viewer: Viewer,
    booking_id: ObjectId,
    move: Move,
    reason: str | None,
) -> Booking:
    """`move_booking` within the caller's transaction, `reason` already checked; the
    caller advances the deal's escrow after the commit."""
    booking = await get_booking(booking_id, viewer, unit)
    party = _party(viewer, booking, move)
    now = utcnow()
    changes: dict[str, object] = {"status": move.to.value, "updated_at": now}
    if move.to is BookingStatus.CANCELLED:
        refund_bp = booking.policy.refund_bp(party, booking.start_at - now)
        changes["cancellation"] = Cancellation(
            by=viewer.user_id,
            role=party,
            at=now,
            reason=reason or "",
            rejected=move is REJECT,
            refund_bp=refund_bp,
            refundable=booking.price.total.basis_points(refund_bp),
        ).model_dump()
    change = BookingStatusChange(status=move.to, at=now, by=viewer.user_id)
    moved = await Booking.get_pymongo_collection().find_one_and_update(
        {"_id": booking.id, "status": {"$in": [s.value for s in move.sources]}},
        {"$set": changes, "$push": {"history": change.model_dump()}},
        return_document=ReturnDocument.AFTER,
        session=unit.session,
    )
    if moved is None:
        expected = " or ".join(s.value.replace("_", " ") for s in move.sources)
        raise DomainError(
            ErrorCode.INVALID_STATE,
            f"The booking is {booking.status.value.replace('_', ' ')}; "
            f"it can be {move.verb} only when {expected}.",
            "bookingId",
        )
    result: Booking = Booking.model_validate(moved)
    await escrow_hooks.booking_moved(unit, services.settings, result)
    if move.to is BookingStatus.COMPLETED:
        await count_completed_job(result.provider_id, unit.session)
    unit.emit(
        move.event,
        actor_id=viewer.user_id,
        audience=result.participants,
        title=f"The booking of “{result.package.name}” was {move.verb}",
        booking_id=result.id,
        status=move.to.value,
        previous=booking.status.value,
    )
    return result
