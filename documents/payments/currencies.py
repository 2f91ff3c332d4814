"""The currencies the payment gateway can charge, and the least it charges in each.

Stripe presents charges in some 135 currencies, but it publishes a minimum charge only
for the currencies it settles in; a charge in any other currency must convert to at
least the minimum of the platform's settlement currency, at the exchange rate of the
day, so no price in it is known to be chargeable. The gateway's currencies are
therefore the ones below: each with Stripe's minor-unit exponent (the digits of
`amount` after the decimal point in its API) and its published minimum charge.

Source: https://docs.stripe.com/currencies#minimum-and-maximum-charge-amounts (and
#zero-decimal for JPY, the only zero-decimal currency here). Stripe refuses smaller
charges with `amount_too_small`; currencies with four decimals (CLF) or three (BHD,
KWD, ...) are not charged at their ISO precision and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChargeableCurrency:
    code: str
    exponent: int
    """Digits after the decimal point in the gateway's amounts (2 for USD, 0 for JPY)."""
    minimum_charge: int
    """The smallest charge the gateway accepts, in minor units."""


def _currency(code: str, minimum_charge: int, exponent: int = 2) -> ChargeableCurrency:
    return ChargeableCurrency(code=code, exponent=exponent, minimum_charge=minimum_charge)


CHARGEABLE_CURRENCIES: dict[str, ChargeableCurrency] = {
    currency.code: currency
    for currency in (
        _currency("USD", 50),  # $0.50
        _currency("AED", 200),  # 2.00 AED
        _currency("AUD", 50),  # A$0.50
        _currency("BGN", 100),  # 1.00 BGN
        _currency("BRL", 50),  # R$0.50
        _currency("CAD", 50),  # CA$0.50
        _currency("CHF", 50),  # 0.50 CHF
        _currency("CZK", 1500),  # 15.00 CZK
        _currency("DKK", 250),  # 2.50 DKK
        _currency("EUR", 50),  # €0.50
        _currency("GBP", 30),  # £0.30
        _currency("HKD", 400),  # HK$4.00
        _currency("HUF", 17500),  # 175.00 HUF
        _currency("INR", 50),  # ₹0.50
        _currency("JPY", 50, exponent=0),  # ¥50
        _currency("MXN", 1000),  # MX$10
        _currency("MYR", 200),  # RM 2
        _currency("NOK", 300),  # 3.00 NOK
        _currency("NZD", 50),  # NZ$0.50
        _currency("PLN", 200),  # 2.00 PLN
        _currency("RON", 200),  # 2.00 RON
        _currency("SEK", 300),  # 3.00 SEK
        _currency("SGD", 50),  # S$0.50
        _currency("THB", 1000),  # ฿10
    )
}


def chargeable_currency(code: str) -> ChargeableCurrency | None:
    """The gateway's terms for `code` (an upper-case ISO 4217 code); None if it cannot
    charge in it."""
    return CHARGEABLE_CURRENCIES.get(code)
