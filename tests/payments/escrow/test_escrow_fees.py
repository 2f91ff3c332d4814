"""The fee policy divides every price exactly, however it rounds."""

from __future__ import annotations

import random

import pytest

from documents.money import Money
from resolvers.payments.fees import FeePolicy, escrow_balance, refund_split, release_split


def aud(amount: int) -> Money:
    return Money(amount=amount, currency="AUD")


def test_staged_fees_leave_the_provider_seventy_percent() -> None:
    fees = FeePolicy(0, 1000, 2000).split(aud(10_000))
    assert fees.commission_on_hold == aud(1000)
    assert fees.commission_on_release == aud(2000)
    assert fees.provider_share == aud(7000)
    assert fees.charged == aud(10_000)


def test_a_customer_fee_is_added_on_top_and_an_agreed_one_is_kept() -> None:
    policy = FeePolicy(1000, 0, 1500)
    assert policy.split(aud(8999)).customer_fee == aud(900)
    assert policy.split(aud(8999)).charged == aud(9899)
    assert policy.split(aud(8999), customer_fee=aud(450)).customer_fee == aud(450)


def test_rounding_never_makes_or_loses_a_cent() -> None:
    rng = random.Random(20260521)  # noqa: S311 - a repeatable run, not secrets
    for _ in range(2000):
        policy = FeePolicy(
            rng.randint(0, 3000), hold := rng.randint(0, 5000), rng.randint(0, 10_000 - hold)
        )
        fees = policy.split(aud(rng.randint(1, 10**7)))
        parts = [fees.provider_share, fees.commission_on_hold, fees.commission_on_release]
        assert all(part.amount >= 0 for part in parts)
        assert sum(part.amount for part in parts) == fees.price.amount
        assert fees.price + fees.customer_fee == fees.charged


def test_refunds_in_parts_return_exactly_what_was_taken() -> None:
    rng = random.Random(7)  # noqa: S311 - a repeatable run, not secrets
    for _ in range(500):
        fees = FeePolicy(rng.randint(0, 2000), rng.randint(0, 3000), rng.randint(0, 3000)).split(
            aud(rng.randint(1, 10**6))
        )
        refunded = aud(0)
        from_escrow = aud(0)
        from_platform = aud(0)
        while refunded != fees.charged:
            left = (fees.charged - refunded).amount
            part = aud(rng.randint(1, left))
            split = refund_split(fees, refunded, part)
            assert split.from_escrow.amount >= 0 and split.from_platform.amount >= 0
            assert split.from_escrow + split.from_platform == part
            refunded += part
            from_escrow += split.from_escrow
            from_platform += split.from_platform
            # What is left always divides between the provider and the platform.
            left_in_escrow = escrow_balance(fees, from_escrow)
            release = release_split(fees, refunded, left_in_escrow)
            assert release.to_provider + release.commission == left_in_escrow
            assert min(release.to_provider.amount, release.commission.amount) >= 0
        assert from_platform == fees.customer_fee + fees.commission_on_hold
        assert from_escrow == fees.price - fees.commission_on_hold


def test_a_release_without_refunds_is_the_breakdown() -> None:
    fees = FeePolicy(1000, 700, 1300).split(aud(12_345))
    release = release_split(fees, aud(0), escrow_balance(fees, aud(0)))
    assert release.to_provider == fees.provider_share
    assert release.commission == fees.commission_on_release


def test_refunding_more_than_was_charged_is_refused() -> None:
    fees = FeePolicy(0, 0, 0).split(aud(100))
    with pytest.raises(ValueError, match="cannot refund"):
        refund_split(fees, aud(60), aud(41))
