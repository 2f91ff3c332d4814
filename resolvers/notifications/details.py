"""What a message says beyond its title: the amounts of a receipt, the refund of a
cancelled booking, when a booking starts. Read when the message is sent, from the records
themselves (the event carries ids, not amounts)."""

from __future__ import annotations

from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId

from documents.marketplace.bookings import Booking
from documents.money import Money
from documents.notifications.catalogue import NotificationKind as K
from documents.notifications.deliveries import Delivery
from documents.payments.escrow import Escrow

_BOOKING_KINDS = {
    K.BOOKING_REQUESTED,
    K.BOOKING_CONFIRMED,
    K.BOOKING_REMINDER_DAY,
    K.BOOKING_REMINDER_HOUR,
    K.BOOKING_REMINDER_SOON,
}


async def details(delivery: Delivery) -> list[str]:
    context = delivery.context
    if delivery.kind is K.PAYMENT_RECEIPT:
        escrow = await _get(Escrow, context.get("escrow_id"))
        if escrow is None:
            return []
        fees = escrow.fees
        return [
            f"Price: {fees.price}",
            f"Service fee: {fees.customer_fee}",
            f"Total charged: {fees.charged}",
        ]
    if delivery.kind is K.DEAL_FUNDED:
        escrow = await _get(Escrow, context.get("escrow_id"))
        if escrow is None:
            return []
        # The title names what the payer was charged; the provider's part is less.
        return [f"Price: {escrow.fees.price}", f"Yours once released: {escrow.fees.provider_share}"]
    if delivery.kind is K.PAYMENT_REFUNDED:
        amount = _money(context.get("amount"))
        return [f"Refunded: {amount}"] if amount is not None else []
    if delivery.kind in (K.PAYOUT_PAID, K.PAYOUT_FAILED):
        amount = _money(context.get("amount"))
        return [f"Amount: {amount}"] if amount is not None else []
    booking = await _get(Booking, context.get("booking_id"))
    if booking is None:
        return []
    if delivery.kind is K.BOOKING_CANCELLED and booking.cancellation is not None:
        return [
            f"Reason: {booking.cancellation.reason}",
            f"Refund to the customer: {booking.cancellation.refundable}",
        ]
    if delivery.kind in _BOOKING_KINDS:
        return [f"Starts: {booking.start_at:%Y-%m-%d %H:%M} UTC", f"Total: {booking.price.total}"]
    return []


async def _get(document: Any, raw_id: object) -> Any:
    if not isinstance(raw_id, str) or not ObjectId.is_valid(raw_id):
        return None
    return await document.get(PydanticObjectId(raw_id))


def _money(raw: object) -> Money | None:
    try:
        return Money.model_validate(raw)
    except ValueError:
        return None
