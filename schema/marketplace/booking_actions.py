"""Mutations on bookings: booking a slot, and each move of its lifecycle."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol, TypeVar

import strawberry
from strawberry import relay

from resolvers.marketplace import bookings
from schema.common.context import Info
from schema.common.payloads import Payload, input_mutation, mutation_payload
from schema.common.permissions import IsAuthenticated, allow
from schema.common.relay import decode_id
from schema.common.values import MoneyInputType, PlaceInputType
from schema.marketplace.bookings import BookingNode
from schema.marketplace.packages import ServicePackageNode


@strawberry.input
class BookSlotInput:
    package_id: relay.GlobalID
    start: datetime = strawberry.field(description="One of availableSlots, with its offset.")
    service_location: PlaceInputType | None = strawberry.field(
        default=None, description="Where the work is done; or give savedAddressId instead."
    )
    saved_address_id: str | None = strawberry.field(
        default=None, description="One of my saved addresses, instead of serviceLocation."
    )
    instructions: str = strawberry.field(default="", description="Notes for the provider.")
    expected_total: MoneyInputType | None = strawberry.field(
        default=None,
        description="The total the customer was shown (the package's price plus the service "
        "fee): if it changed since, OFFER_CHANGED and nothing is booked. Send it: without it, "
        "whatever the package costs when the request commits is booked.",
    )


# Each mutation has an input type of its own, so that each can grow on its own.
@strawberry.input
class ConfirmBookingInput:
    booking_id: relay.GlobalID


@strawberry.input
class StartBookingInput(ConfirmBookingInput):
    pass


@strawberry.input
class CompleteBookingInput(ConfirmBookingInput):
    pass


@strawberry.input
class ApproveBookingInput(ConfirmBookingInput):
    pass


@strawberry.input
class RejectBookingInput:
    booking_id: relay.GlobalID
    reason: str


@strawberry.input
class CancelBookingInput(RejectBookingInput):
    pass


@strawberry.type
class BookingPayload(Payload):
    booking: BookingNode | None = None


@strawberry.type
class BookSlotPayload(BookingPayload):
    pass


@strawberry.type
class ConfirmBookingPayload(BookingPayload):
    pass


@strawberry.type
class RejectBookingPayload(BookingPayload):
    pass


@strawberry.type
class StartBookingPayload(BookingPayload):
    pass


@strawberry.type
class CompleteBookingPayload(BookingPayload):
    pass


@strawberry.type
class CancelBookingPayload(BookingPayload):
    pass


@strawberry.type
class ApproveBookingPayload(BookingPayload):
    pass


class _OnBooking(Protocol):
    @property
    def booking_id(self) -> relay.GlobalID: ...


OnBooking = TypeVar("OnBooking", bound=_OnBooking)
Moved = TypeVar("Moved", bound=BookingPayload)


def _move(
    input_type: type[OnBooking],
    payload_type: type[Moved],
    move: str,
    *,
    reason: Callable[[OnBooking], str | None] = lambda input: None,
    description: str,
) -> Moved:
    """A mutation making one move of the booking's lifecycle (documents/lifecycles.py
    `BOOKING`), for the reason `reason` reads from the input."""

    async def run(info: Info, input: OnBooking) -> Moved:
        viewer = await info.context.require_viewer()
        booking_id = decode_id(input.booking_id, BookingNode, "bookingId")
        booking = await bookings.move_booking(
            info.context.services, viewer, booking_id, move, reason(input)
        )
        return payload_type(booking=BookingNode.of(booking))

    return input_mutation(
        input_type,
        payload_type,
        run,
        extensions=allow(IsAuthenticated()),
        description=description,
    )


@strawberry.type
class BookingMutation:
    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Customers: ask to book a package at one of its available slots. The "
        "provider answers by the booking's respondBy, else the request expires; a customer "
        "has at most GIGQL_MAX_PENDING_BOOKINGS requests waiting (else TOO_MANY_PENDING).",
    )
    @mutation_payload
    async def book_slot(self, info: Info, input: BookSlotInput) -> BookSlotPayload:
        viewer = await info.context.require_viewer()
        booking = await bookings.book_slot(
            info.context.services,
            viewer,
            decode_id(input.package_id, ServicePackageNode, "packageId"),
            input.start,
            place=input.service_location.value() if input.service_location else None,
            saved_address_id=input.saved_address_id,
            instructions=input.instructions,
            expected_total=input.expected_total.value() if input.expected_total else None,
        )
        return BookSlotPayload(booking=BookingNode.of(booking))

    confirm_booking = _move(
        ConfirmBookingInput,
        ConfirmBookingPayload,
        "confirm",
        description="Provider: accept a booking request, by its respondBy.",
    )
    reject_booking = _move(
        RejectBookingInput,
        RejectBookingPayload,
        "decline",
        reason=lambda input: input.reason,
        description="Provider: decline a booking request, with a reason; it is refunded in full.",
    )
    start_booking = _move(
        StartBookingInput,
        StartBookingPayload,
        "start",
        description="Provider: begin a confirmed booking.",
    )
    complete_booking = _move(
        CompleteBookingInput,
        CompleteBookingPayload,
        "finish",
        description="Provider: finish a booking in progress.",
    )

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Customer: the completed work is as agreed; the provider is paid now "
        "(else when GIGQL_AUTO_RELEASE_AFTER has passed since it was completed, unless "
        "disputed).",
    )
    @mutation_payload
    async def approve_booking(
        self, info: Info, input: ApproveBookingInput
    ) -> ApproveBookingPayload:
        viewer = await info.context.require_viewer()
        booking = await bookings.approve_booking(
            info.context.services, viewer, decode_id(input.booking_id, BookingNode, "bookingId")
        )
        return ApproveBookingPayload(booking=BookingNode.of(booking))

    cancel_booking = _move(
        CancelBookingInput,
        CancelBookingPayload,
        "cancel",
        reason=lambda input: input.reason,
        description="Customer or provider: cancel, with a reason. The refund follows the "
        "booking's cancellation policy (in full when the provider cancels).",
    )
