"""The fee policy: how a deal's price divides between the provider and the platform.

Three settings, all in basis points of the price, combine into every scheme the
marketplace may want:

- `customer_fee_bp`: a service fee the payer pays on top of the price;
- `commission_on_hold_bp`: kept from the price once the payment is held;
- `commission_on_release_bp`: kept from the price on release.

One provider-side commission is `commission_on_release_bp` alone; staged fees ("10 %
when the offer is accepted, 20 % on completion") set both commissions. Rounding is
done once on the total commission, and every other part is a difference, so the parts
always add up to the whole: nothing is made or lost.

Refunds and releases after a partial refund divide what is left the same way:
cumulatively, so that a series of partial refunds rounds no differently from one.
"""

from __future__ import annotations

from dataclasses import dataclass

from documents.money import BASIS_POINTS, Money
from documents.payments.escrow import FeeBreakdown


@dataclass(frozen=True, slots=True)
class FeePolicy:
    """The three rates as configured (server/runtime.py reads them), on `Services.fees`."""

    customer_fee_bp: int
    commission_on_hold_bp: int
    commission_on_release_bp: int

    def smallest_price_with_whole_fees(self) -> int:
        """The smallest price, in minor units, of which every fee that is not zero is at
        least one whole minor unit before rounding, so that no fee is rounded away to
        nothing (at 10 % that is 10 cents, below any currency's minimum charge)."""
        rates = (self.customer_fee_bp, self.commission_on_hold_bp, self.commission_on_release_bp)
        return max((-(-BASIS_POINTS // rate) for rate in rates if rate), default=0)

    def split(self, price: Money, customer_fee: Money | None = None) -> FeeBreakdown:
        """The breakdown of `price`; `customer_fee` when one was already agreed (a
        booking keeps the fee of the day it was made)."""
        if price.amount < 0:
            raise ValueError("a price cannot be negative")
        fee = price.basis_points(self.customer_fee_bp) if customer_fee is None else customer_fee
        on_hold = price.basis_points(self.commission_on_hold_bp)
        commission = price.basis_points(self.commission_on_hold_bp + self.commission_on_release_bp)
        return FeeBreakdown(
            price=price,
            customer_fee=fee,
            commission_on_hold=on_hold,
            commission_on_release=commission - on_hold,
            provider_share=price - commission,
        )


def pro_rata(whole: Money, part: int, total: int) -> Money:
    """`whole` * part / total, rounded half up; exact at part == total."""
    if total <= 0:
        return whole.zero()
    amount = (whole.amount * part * 2 + total) // (2 * total)
    return Money(amount=amount, currency=whole.currency)


@dataclass(frozen=True, slots=True)
class RefundSplit:
    from_escrow: Money
    from_platform: Money


def refund_split(fees: FeeBreakdown, refunded_before: Money, amount: Money) -> RefundSplit:
    """Where a refund of `amount` comes from, after `refunded_before` went back already.

    The platform returns its take when the payment was held (the customer fee and the
    staged commission) in proportion to the share of the charge refunded; the escrow
    the rest. Taken cumulatively, a full refund returns exactly all of both.
    """
    charged = fees.charged.amount
    taken = fees.platform_on_hold
    after = refunded_before + amount
    if amount.amount <= 0 or after.amount > charged:
        raise ValueError(f"cannot refund {amount} of {fees.charged} after {refunded_before}")
    platform = pro_rata(taken, after.amount, charged) - pro_rata(
        taken, refunded_before.amount, charged
    )
    return RefundSplit(from_escrow=amount - platform, from_platform=platform)


@dataclass(frozen=True, slots=True)
class ReleaseSplit:
    to_provider: Money
    commission: Money


def release_split(
    fees: FeeBreakdown, refunded: Money, in_escrow: Money, taken_before: Money | None = None
) -> ReleaseSplit:
    """How the escrow's remaining `in_escrow` divides on release, after `refunded` went
    back to the payer: the release commission in proportion to what was not refunded,
    less what earlier releases of the same escrow took already (`taken_before`: a
    transfer reversed by the provider's bank is released again without a second
    commission), the provider the rest. Without refunds it is exactly the breakdown's."""
    kept = fees.charged.amount - refunded.amount
    due = pro_rata(fees.commission_on_release, kept, fees.charged.amount)
    if taken_before is not None:
        due = Money(amount=max(due.amount - taken_before.amount, 0), currency=due.currency)
    commission = in_escrow if due.amount > in_escrow.amount else due
    return ReleaseSplit(to_provider=in_escrow - commission, commission=commission)


def escrow_balance(fees: FeeBreakdown, refunds_from_escrow: Money) -> Money:
    """What the escrow account holds while held: the price less the staged commission
    and what refunds took from it."""
    return fees.price - fees.commission_on_hold - refunds_from_escrow
