"""What a client needs to know of the marketplace before any deal: its terms as
configured, and what a price costs the payer and leaves the provider.

Both come from the very rules the deals keep to (the price rules, the fee policy, the
deal terms on `Services`), so what a client shows is what a deal will do.
"""

from __future__ import annotations

from dataclasses import dataclass

from documents.money import Money
from documents.payments.currencies import CHARGEABLE_CURRENCIES
from documents.payments.escrow import FeeBreakdown
from integrations.payments.sandbox import SandboxGateway
from resolvers.common.inputs import MoneyInput
from resolvers.common.services import Services
from resolvers.common.validation import Checked
from resolvers.marketplace.deal_terms import DealTerms
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
class MarketplaceTerms:
    categories: list[str]
    currencies: list[CurrencyTerms]
    fees: FeePolicy
    deal_terms: DealTerms
    sandbox_payments: bool
    """Payments go through the sandbox gateway: no real money moves."""


def marketplace_terms(services: Services) -> MarketplaceTerms:
    rules = services.price_rules
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
        categories=list(services.settings.categories),
        currencies=currencies,
        fees=services.fees,
        deal_terms=services.terms,
        sandbox_payments=isinstance(services.payments, SandboxGateway),
    )


def fee_quote(services: Services, amount: MoneyInput) -> FeeBreakdown:
    """How a deal at `amount` would divide if it were made now: what the payer pays,
    the platform keeps and the provider gets. The amount must be a price the
    marketplace accepts (INVALID_INPUT on `amount`)."""
    checked = Checked()
    price = checked.price(amount.amount, amount.currency, "amount", services.price_rules)
    checked.raise_if_any()
    return services.fees.split(price)
