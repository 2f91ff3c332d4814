"""Money: an integer amount of a currency's minor unit (cents, pence, yen) and its code.

Never a float. Arithmetic refuses to mix currencies, and percentages are taken in basis
points with integer rounding, so that parts always add up to the whole.
"""

from __future__ import annotations

from iso4217 import Currency
from pydantic import BaseModel, ConfigDict

BASIS_POINTS = 10_000
MAX_AMOUNT = 10**12  # a trillion minor units: far above any marketplace deal


def minor_unit_exponent(code: str) -> int | None:
    """Digits after the decimal point (2 for USD, 0 for JPY); None if not a currency."""
    try:
        return Currency(code).exponent
    except ValueError:
        return None


class Money(BaseModel):
    model_config = ConfigDict(frozen=True)

    amount: int
    currency: str

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(amount=self.amount + other.amount, currency=self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(amount=self.amount - other.amount, currency=self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} and {other.currency}")

    def basis_points(self, points: int) -> Money:
        """`points`/10,000 of this amount, rounded half up to the minor unit."""
        share = (self.amount * points + BASIS_POINTS // 2) // BASIS_POINTS
        return Money(amount=share, currency=self.currency)

    def zero(self) -> Money:
        return Money(amount=0, currency=self.currency)

    def __str__(self) -> str:
        exponent = minor_unit_exponent(self.currency) or 0
        if exponent == 0:
            return f"{self.amount} {self.currency}"
        sign = "-" if self.amount < 0 else ""
        whole, fraction = divmod(abs(self.amount), 10**exponent)
        return f"{sign}{whole}.{fraction:0{exponent}d} {self.currency}"
