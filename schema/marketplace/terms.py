"""The marketplace's terms, public, for a client to show before anyone makes a deal:
`marketplaceSettings` and `feeQuote`."""

from __future__ import annotations

from datetime import timedelta

import strawberry

from documents.payments.currencies import CHARGEABLE_CURRENCIES
from resolvers.marketplace import terms as marketplace
from resolvers.marketplace.deal_terms import DealTerms
from resolvers.marketplace.terms import CurrencyTerms
from schema.common.context import Info
from schema.common.copying import copied
from schema.common.limits import bounded
from schema.common.values import MoneyInputType, MoneyType
from schema.marketplace.bookings import CancellationPolicyType
from schema.payments.escrow import FeeBreakdownType


def _seconds(duration: timedelta) -> int:
    return int(duration.total_seconds())


@strawberry.type(name="CurrencyTerms", description="A currency prices may be in.")
class CurrencyTermsType:
    code: str = strawberry.field(description="ISO 4217.")
    exponent: int = strawberry.field(description="Digits after the decimal point in amounts.")
    minimum_charge: MoneyType = strawberry.field(
        description="The least the payment gateway charges."
    )
    minimum_price: MoneyType = strawberry.field(
        description="The least price accepted: the minimum charge, or more where a fee on "
        "less would round to nothing."
    )

    @classmethod
    def of(cls, terms: CurrencyTerms) -> CurrencyTermsType:
        return copied(
            cls,
            terms,
            minimum_charge=MoneyType.of(terms.minimum_charge),
            minimum_price=MoneyType.of(terms.minimum_price),
        )


@strawberry.type(description="Fees in basis points of a deal's price (1000 = 10 %).")
class FeeRates:
    customer_fee_bp: int = strawberry.field(description="Paid by the payer on top of the price.")
    commission_on_hold_bp: int = strawberry.field(
        description="Kept from the price once the payment is held."
    )
    commission_on_release_bp: int = strawberry.field(
        description="Kept from the price when it is released to the provider."
    )


@strawberry.type(description="The clocks that govern a deal, in seconds.")
class DealDeadlines:
    auto_release_after_seconds: int = strawberry.field(
        description="After a task is handed in or a booking completed, until its money is "
        "released to the provider unless disputed."
    )
    payment_deadline_seconds: int = strawberry.field(
        description="For the payer to pay an accepted offer or a confirmed booking (a "
        "booking's never past its start less the notice); unpaid then, the deal lapses."
    )
    booking_request_expiry_seconds: int = strawberry.field(
        description="For the provider to answer a booking request (never past its start "
        "less the notice); unanswered then, it expires."
    )
    booking_start_window_seconds: int = strawberry.field(
        description="How long before its start time a booking may be started."
    )
    max_pending_bookings: int = strawberry.field(
        description="Booking requests a customer may have waiting at once."
    )
    booking_min_notice_seconds: int = strawberry.field(
        description="How far ahead a booking must start."
    )
    slot_step_seconds: int = strawberry.field(description="Between bookable start times.")
    manual_capture_within_seconds: int = strawberry.field(
        description="Bookings settling within this long are only authorised, and charged on "
        "release; 0: every deal is charged at once."
    )

    @classmethod
    def of(cls, terms: DealTerms) -> DealDeadlines:
        return cls(
            auto_release_after_seconds=_seconds(terms.auto_release_after),
            payment_deadline_seconds=_seconds(terms.payment_deadline),
            booking_request_expiry_seconds=_seconds(terms.booking_request_expiry),
            booking_start_window_seconds=_seconds(terms.booking_start_window),
            max_pending_bookings=terms.max_pending_bookings,
            booking_min_notice_seconds=_seconds(terms.booking_min_notice),
            slot_step_seconds=_seconds(terms.slot_step),
            manual_capture_within_seconds=_seconds(terms.manual_capture_within),
        )


@strawberry.type(description="The marketplace's terms as configured, the same for everyone.")
class MarketplaceSettings:
    categories: list[str] = strawberry.field(description="Of tasks and providers' skills.")
    currencies: list[CurrencyTermsType] = strawberry.field(
        metadata=bounded(len(CHARGEABLE_CURRENCIES))
    )
    fees: FeeRates
    cancellation_policy: CancellationPolicyType = strawberry.field(
        description="What a new booking is cancelled under (each booking keeps its own)."
    )
    deadlines: DealDeadlines
    sandbox_payments: bool = strawberry.field(
        description="Payments go through the sandbox gateway: no real money moves."
    )


@strawberry.type
class MarketplaceQuery:
    @strawberry.field(description="The marketplace's terms; no login needed.")
    def marketplace_settings(self, info: Info) -> MarketplaceSettings:
        terms = marketplace.marketplace_terms(info.context.services)
        return copied(
            MarketplaceSettings,
            terms,
            currencies=[CurrencyTermsType.of(c) for c in terms.currencies],
            fees=copied(FeeRates, terms.fees),
            cancellation_policy=CancellationPolicyType.of(terms.deal_terms.cancellation_policy),
            deadlines=DealDeadlines.of(terms.deal_terms),
        )

    @strawberry.field(
        description="How a deal at this price would divide if made now: `charged` is what "
        "the payer pays, `providerShare` what the provider gets. The price must be one the "
        "marketplace accepts (INVALID_INPUT on `amount`). No login needed."
    )
    def fee_quote(self, info: Info, amount: MoneyInputType) -> FeeBreakdownType:
        return FeeBreakdownType.of(marketplace.fee_quote(info.context.services, amount.value()))
