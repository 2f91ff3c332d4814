"""The terms every deal is made under: the clocks each side has to keep, the requests a
customer may keep waiting, and what cancelling a booking costs.

The server reads them once from the settings (server/runtime.py) and hands them to the
use cases on `Services.terms`, so a rule takes the few values it keeps to rather than
every setting there is. The fees are terms too, but have their own policy
(resolvers/payments/fees.py, `Services.fees`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from documents.marketplace.bookings import CancellationPolicy, RefundTier
from documents.money import BASIS_POINTS


@dataclass(frozen=True, slots=True)
class DealTerms:
    payment_deadline: timedelta
    """For the payer, from an accepted offer or a confirmed booking; unpaid, it lapses (a
    booking's never runs past its start less the booking notice)."""
    auto_release_after: timedelta
    """After a task is handed in or a booking completed, until its money is released
    unless a dispute is open."""
    manual_capture_within: timedelta
    """Bookings settling within this long are authorised only, and charged on release;
    0 charges every deal at once."""
    booking_min_notice: timedelta
    """How far ahead a booking must start."""
    slot_step: timedelta
    """Between a provider's bookable start times."""
    booking_start_window: timedelta
    """How long before its start time a booking may be started."""
    booking_request_expiry: timedelta
    """For the provider to answer a booking request; unanswered, it expires."""
    max_pending_bookings: int
    """Booking requests a customer may have waiting for an answer at once."""
    cancellation_policy: CancellationPolicy
    """What a new booking is cancelled under; each booking keeps a copy of its own, so a
    change of the settings applies to bookings made after it."""


def cancellation_policy(
    *, full_refund_hours: int, partial_refund_hours: int, partial_refund_bp: int
) -> CancellationPolicy:
    """A customer cancelling at least `full_refund_hours` before the start is refunded in
    full, at least `partial_refund_hours` before it `partial_refund_bp` of the price, and
    later nothing."""
    return CancellationPolicy(
        tiers=[
            RefundTier(min_hours_before=full_refund_hours, refund_bp=BASIS_POINTS),
            RefundTier(min_hours_before=partial_refund_hours, refund_bp=partial_refund_bp),
        ]
    )
