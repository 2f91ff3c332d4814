"""Booking a provider's package for a time slot, and each booking's way through its states.

    pending -> confirmed -> in_progress -> completed
    pending (declined, or unanswered by its respond_by) / confirmed / in_progress -> cancelled
    confirmed / in_progress -> disputed (resolvers/payments/disputes/disputes.py, which also ends
    it)

No double booking: a booking is made in one transaction that first bumps the provider's
`schedule_version`, then checks its time against every booking that holds time, then
inserts it. Of two concurrent bookings of one provider, however many API instances they
come through, both write the profile, so one transaction conflicts and is retried, and
its retry sees the other's booking. Confirming needs no such check: a pending booking
already holds its time, so holding bookings never overlap in the first place. A request
holds it only briefly, and a customer only a few (resolvers/marketplace/booking_requests.py).

Each move is one conditional update on the booking's current status inside a
transaction, so two racing requests cannot both move it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.accounts.profiles import CustomerProfile, ProviderProfile
from documents.accounts.users import Role, User, UserStatus
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.events import EventKind
from documents.geo import Place
from documents.lifecycles import BOOKING, Party
from documents.marketplace.bookings import (
    HOLDING_STATUSES,
    Booking,
    BookingStatus,
    BookingStatusChange,
    Cancellation,
    CancelledBy,
    PackageSnapshot,
    PriceSnapshot,
)
from documents.marketplace.packages import ServicePackage
from documents.payments.escrow import booking_deal
from resolvers.accounts.auth.viewer import Viewer, require_role
from resolvers.accounts.profiles import MAX_BUFFER_MINUTES
from resolvers.common.deals import count_completed_job
from resolvers.common.inputs import MoneyInput, PlaceInput
from resolvers.common.services import Services
from resolvers.common.transitions import BOOKING_SUBJECT, transition
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.common.validation import MAX_REASON_LENGTH, Checked
from resolvers.marketplace import availability, booking_requests
from resolvers.marketplace.availability import Held, Schedule
from resolvers.marketplace.packages import MAX_DURATION, get_package
from resolvers.payments.escrow import hooks as escrow_hooks
from resolvers.payments.escrow.progress import advance_deal
from resolvers.payments.escrow.release import claim_release

MAX_INSTRUCTIONS = 2000
HORIZON = timedelta(days=366)
"""How far ahead bookings are taken."""
# Far enough around a day to find every booking whose buffer reaches into it.
_REACH = timedelta(minutes=MAX_BUFFER_MINUTES)


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
    terms = services.terms
    schedule = Schedule.of(profile, terms.slot_step)
    held = await _held(provider_id, availability.day_span(schedule.zone, day), None)
    return availability.open_starts(
        schedule,
        day,
        timedelta(minutes=package.duration_minutes),
        timedelta(minutes=profile.buffer_minutes),
        held,
        utcnow() + terms.booking_min_notice,
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
    expected_total: MoneyInput | None = None,
) -> Booking:
    """Request a booking at one of the package's available slots, at the total the
    customer was shown (`expected_total`: else OFFER_CHANGED, and nothing is booked); it
    starts pending. What it records comes from one read of the package inside the
    transaction that books it."""
    require_role(viewer, Role.POSTER, "book services")
    package = await get_package(package_id)
    if package.provider_id == viewer.user_id:
        raise DomainError(ErrorCode.FORBIDDEN, "You cannot book your own package.", "packageId")
    _require_offered(package)
    checked = Checked()
    start = _start(checked, start)
    where = await _service_place(checked, viewer, place, saved_address_id)
    instructions = checked.text(instructions, "instructions", MAX_INSTRUCTIONS, multiline=True)
    checked.raise_if_any()
    assert where is not None
    terms = services.terms
    notice = terms.booking_min_notice
    if start < utcnow() + notice:
        raise DomainError(
            ErrorCode.UNAVAILABLE,
            f"Book at least {notice // timedelta(minutes=1)} minutes ahead.",
            "start",
        )
    if not await _takes_bookings(package.provider_id):
        raise DomainError(ErrorCode.UNAVAILABLE, "The provider takes no bookings.", "packageId")
    await booking_requests.ensure_request_counter(viewer.user_id)

    async def work(unit: UnitOfWork) -> Booking:
        await booking_requests.admit_request(unit, terms, viewer.user_id)
        offered = await ServicePackage.get(package.id, session=unit.session)
        assert offered is not None  # packages are never deleted
        _require_offered(offered)
        price = PriceSnapshot.with_fee(offered.price, services.fees.customer_fee_bp)
        _require_shown_total(price, expected_total)
        duration = timedelta(minutes=offered.duration_minutes)
        # The bump comes first: it is what serialises concurrent bookings of the provider.
        raw = await ProviderProfile.get_pymongo_collection().find_one_and_update(
            {"_id": offered.provider_id},
            {"$inc": {"schedule_version": 1}},
            return_document=ReturnDocument.AFTER,
            session=unit.session,
        )
        profile = ProviderProfile.model_validate(raw) if raw else None
        if profile is None or not profile.available:
            raise DomainError(ErrorCode.UNAVAILABLE, "The provider takes no bookings.", "packageId")
        schedule = Schedule.of(profile, terms.slot_step)
        day = start.astimezone(schedule.zone).date()
        if start not in availability.schedule_starts(schedule, day, duration):
            raise DomainError(
                ErrorCode.UNAVAILABLE, "Not a start time within the provider's hours.", "start"
            )
        buffer = timedelta(minutes=profile.buffer_minutes)
        held = await _held(
            offered.provider_id, availability.day_span(schedule.zone, day), unit.session
        )
        if not availability.is_free(start, duration, buffer, held):
            raise DomainError(ErrorCode.UNAVAILABLE, "That time is taken.", "start")
        booking = Booking(
            customer_id=viewer.user_id,
            provider_id=offered.provider_id,
            package_id=offered.id,
            package=PackageSnapshot(
                name=offered.name, type=offered.type, duration_minutes=offered.duration_minutes
            ),
            start_at=start,
            end_at=start + duration,
            buffer_minutes=profile.buffer_minutes,
            service_place=where,
            instructions=instructions,
            price=price,
            # Its own copy: the terms hold the one policy every new booking starts from.
            policy=terms.cancellation_policy.model_copy(deep=True),
            respond_by=booking_requests.respond_by(terms, utcnow(), start),
            history=[BookingStatusChange(status=BookingStatus.PENDING, by=viewer.user_id)],
        )
        await booking.insert(session=unit.session)
        local = start.astimezone(schedule.zone)
        unit.emit(
            EventKind.BOOKING_REQUESTED,
            actor_id=viewer.user_id,
            audience=booking.participants,
            title=f"{viewer.user.name} asks to book “{offered.name}” at "
            f"{local:%a %d %b %Y %H:%M %Z}",
            booking_id=booking.id,
        )
        return booking

    return await transact(services, work)


def _require_offered(package: ServicePackage) -> None:
    if not package.active:
        raise DomainError(ErrorCode.INVALID_STATE, "The package is not offered now.", "packageId")


def _require_shown_total(price: PriceSnapshot, shown: MoneyInput | None) -> None:
    """The total the customer was shown is the one booked (the provider may have changed
    the package's price since)."""
    if shown is not None and (
        price.total.amount != shown.amount or price.total.currency != shown.currency.upper()
    ):
        raise DomainError(
            ErrorCode.OFFER_CHANGED,
            f"The package now costs {price.total} with the service fee: look at it again "
            "before booking.",
            "expectedTotal",
        )


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


_NEWS = {
    "confirm": EventKind.BOOKING_CONFIRMED,
    "decline": EventKind.BOOKING_REJECTED,
    "cancel": EventKind.BOOKING_CANCELLED,
    "lapse": EventKind.BOOKING_CANCELLED,
    "expire": EventKind.BOOKING_CANCELLED,
}
"""The event a move sends, where it is not BOOKING_STATUS_CHANGED."""


def party_of(viewer: Viewer, booking: Booking) -> Party | None:
    """The side the viewer is on in the booking, if any."""
    if viewer.user_id == booking.provider_id:
        return Party.PROVIDER
    if viewer.user_id == booking.customer_id:
        return Party.CUSTOMER
    return None


async def move_booking(
    services: Services,
    viewer: Viewer,
    booking_id: ObjectId,
    move: str,
    reason: str | None = None,
) -> Booking:
    """Make a move of the booking's lifecycle (documents/lifecycles.py `BOOKING`);
    cancelling (and declining) needs a reason and records the refund due."""
    if BOOKING[move].target is BookingStatus.CANCELLED:
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
    move: str,
    reason: str | None,
) -> Booking:
    """`move_booking` within the caller's transaction, `reason` already checked; the
    caller advances the deal's escrow after the commit."""
    booking = await get_booking(booking_id, viewer, unit)
    party = party_of(viewer, booking)
    if move == "confirm":
        booking_requests.require_answer_in_time(booking, utcnow())
    fields: dict[str, object] = {}
    if BOOKING[move].target is BookingStatus.CANCELLED:
        now = utcnow()
        role = CancelledBy.PROVIDER if party is Party.PROVIDER else CancelledBy.CUSTOMER
        refund_bp = booking.policy.refund_bp(role, booking.start_at - now)
        fields["cancellation"] = Cancellation(
            by=viewer.user_id,
            role=role,
            at=now,
            reason=reason or "",
            rejected=move == "decline",
            refund_bp=refund_bp,
            refundable=booking.price.total.basis_points(refund_bp),
        ).model_dump()
    result = await transition(
        unit,
        services,
        BOOKING,
        move,
        booking,
        party,
        BOOKING_SUBJECT,
        actor_id=viewer.user_id,
        note=reason,
        fields=fields,
    )
    return await after_move(unit, services, booking, result, move, viewer.user_id)


async def after_move(
    unit: UnitOfWork,
    services: Services,
    before: Booking,
    result: Booking,
    move: str,
    actor_id: ObjectId | None,
) -> Booking:
    """What a move of a booking does besides its status: its escrow, the provider's
    completed jobs, and the news."""
    await escrow_hooks.booking_moved(unit, services.terms, services.fees, result)
    if result.status is BookingStatus.COMPLETED:
        await count_completed_job(result.provider_id, unit.session)
    unit.emit(
        _NEWS.get(move, EventKind.BOOKING_STATUS_CHANGED),
        actor_id=actor_id,
        audience=result.participants,
        title=f"The booking of “{result.package.name}” was {BOOKING[move].verb}",
        booking_id=result.id,
        status=result.status.value,
        previous=before.status.value,
    )
    return result


async def approve_booking(services: Services, viewer: Viewer, booking_id: ObjectId) -> Booking:
    """The customer accepts a completed booking's work: the provider is paid now rather
    than when the customer's window ends. Once."""

    async def work(unit: UnitOfWork) -> Booking:
        booking = await get_booking(booking_id, viewer, unit)
        if viewer.user_id != booking.customer_id:
            raise DomainError(ErrorCode.FORBIDDEN, "Only the customer can approve it.", "bookingId")
        if booking.status is not BookingStatus.COMPLETED:
            raise DomainError(
                ErrorCode.INVALID_STATE,
                f"The booking is {booking.status.value.replace('_', ' ')}; it can be approved "
                "once the provider has completed it.",
                "bookingId",
            )
        assert booking.id is not None
        deal = booking_deal(booking.id)
        if await claim_release(unit, {"deal": deal}, "the customer approved the work") is None:
            raise DomainError(
                ErrorCode.INVALID_STATE,
                "Its payment is not held any more (released, refunded or disputed).",
                "bookingId",
            )
        unit.emit(
            EventKind.BOOKING_APPROVED,
            actor_id=viewer.user_id,
            audience=booking.participants,
            title=f"The booking of “{booking.package.name}” was approved: the provider is paid",
            booking_id=booking.id,
        )
        return booking

    approved = await transact(services, work)
    await advance_deal(services, booking_deal(booking_id))  # the release
    return approved
