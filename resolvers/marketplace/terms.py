"""What a client needs to know of the marketplace before any deal: its terms as
configured, and what a price costs the payer and leaves the provider.

Both are read from the settings by the same code the deals use (the price rules, the
fee policy, the cancellation policy), so what a client shows is what a deal will do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from documents.marketplace.bookings import CancellationPolicy
from documents.money import Money
from documents.payments.currencies import CHARGEABLE_CURRENCIES
from documents.payments.escrow import FeeBreakdown
from integrations.payments.sandbox import SandboxGateway
from resolvers.common.inputs import MoneyInput
from resolvers.common.services import Services
from resolvers.common.validation import Checked, PriceRules
from resolvers.marketplace.bookings import cancellation_policy
from resolvers.payments.fees import FeePolicy


@dataclass(frozen=True, slots=True)
class CurrencyTerms:
    code: str
    exponent: int
    """Digits after the decimal point in amounts (2 for AUD, 0 for JPY)."""
    minimum_charge: Money
    """The least the payment gateway charges."""
    minimum_price: Money
    """The least price accepted: the minimum charge, or more where a fee on less would
    round to nothing."""


@dataclass(frozen=True, slots=True)
class Deadlines:
    auto_release_after: timedelta
    """After a task is handed in or a booking completed, until its money is released."""
    payment_deadline: timedelta
    """For the payer, from an accepted offer or a confirmed booking; unpaid, it lapses."""
    booking_request_expiry: timedelta
    """For the provider to answer a booking request; unanswered, it expires."""
    booking_start_window: timedelta
    """How long before its start time a booking may be started."""
    max_pending_bookings: int
    """Requests a customer may have waiting at once."""
    booking_min_notice: timedelta
    slot_step: timedelta
    manual_capture_within: timedelta
    """Bookings settling within this long are authorised only, and charged on release."""


@dataclass(frozen=True, slots=True)
class MarketplaceTerms:
    categories: list[str]
    currencies: list[CurrencyTerms]
    fees: FeePolicy
    cancellation_policy: CancellationPolicy
    deadlines: Deadlines
    sandbox_payments: bool
    """Payments go through the sandbox gateway: no real money moves."""


def marketplace_terms(services: Services) -> MarketplaceTerms:
    settings = services.settings
    rules = PriceRules.of(settings)
    currencies = []
    for code in rules.accepted:
        terms = CHARGEABLE_CURRENCIES[code]
        minimum_price = rules.smallest_price(code)
        assert minimum_price is not None  # every accepted currency has one
        currencies.append(
            CurrencyTerms(
                code=code,
                exponent=terms.exponent,
                minimum_charge=Money(amount=terms.minimum_charge, currency=code),
                minimum_price=minimum_price,
            )
        )
    return MarketplaceTerms(
        categories=list(settings.categories),
        currencies=currencies,
        fees=FeePolicy.of(settings),
        cancellation_policy=cancellation_policy(settings),
        deadlines=Deadlines(
            auto_release_after=settings.auto_release_after,
            payment_deadline=settings.payment_deadline,
            booking_request_expiry=settings.booking_request_expiry,
            booking_start_window=settings.booking_start_window,
            max_pending_bookings=settings.max_pending_bookings,
            booking_min_notice=timedelta(minutes=settings.booking_min_notice_minutes),
            slot_step=timedelta(minutes=settings.slot_step_minutes),
            manual_capture_within=settings.manual_capture_within,
        ),
        sandbox_payments=isinstance(services.payments, SandboxGateway),
    )


def fee_quote(services: Services, amount: MoneyInput) -> FeeBreakdown:
    """How a deal at `amount` would divide if it were made now: what the payer pays,
    the platform keeps and the provider gets. The amount must be a price the
    marketplace accepts (INVALID_INPUT on `amount`)."""
    checked = Checked()
    price = checked.price(
        amount.amount, amount.currency, "amount", PriceRules.of(services.settings)
    )
    checked.raise_if_any()
    return FeePolicy.of(services.settings).split(price)
