"""What a booking agrees to, without a database: its price with the fee, and its refunds."""

from __future__ import annotations

from datetime import timedelta

import pytest

from documents.marketplace.bookings import CancelledBy, PriceSnapshot
from documents.money import Money
from documents.settings import Settings
from server.runtime import deal_terms


@pytest.fixture(autouse=True)
def clean_state() -> None:
    """Overrides the autouse fixture of conftest: nothing here touches the database."""


def test_the_fee_is_rounded_half_up_and_the_total_adds_up() -> None:
    price = PriceSnapshot.with_fee(Money(amount=8999, currency="AUD"), 1000)
    assert price.platform_fee == Money(amount=900, currency="AUD")  # 899.9
    assert price.total == Money(amount=9899, currency="AUD") and price.fee_bp == 1000
    yen = PriceSnapshot.with_fee(Money(amount=12345, currency="JPY"), 250)
    assert (yen.platform_fee.amount, yen.total.amount) == (309, 12654)  # 308.625


@pytest.mark.parametrize(
    ("notice", "refund_bp"),
    [
        (timedelta(days=3), 10_000),
        (timedelta(hours=24), 10_000),
        (timedelta(hours=24) - timedelta(seconds=1), 5000),
        (timedelta(hours=6), 5000),
        (timedelta(hours=6) - timedelta(seconds=1), 0),
        (timedelta(0), 0),
        (-timedelta(hours=1), 0),  # once started
    ],
)
def test_a_customer_is_refunded_by_how_long_before_the_start_they_cancel(
    notice: timedelta, refund_bp: int
) -> None:
    policy = deal_terms(Settings(_env_file=None)).cancellation_policy
    assert policy.refund_bp(CancelledBy.CUSTOMER, notice) == refund_bp


def test_a_provider_cancelling_refunds_in_full_and_the_policy_follows_settings() -> None:
    settings = Settings(
        _env_file=None,
        cancellation_full_refund_hours=48,
        cancellation_partial_refund_hours=12,
        cancellation_partial_refund_bp=2500,
    )
    policy = deal_terms(settings).cancellation_policy
    assert [(t.min_hours_before, t.refund_bp) for t in policy.tiers] == [(48, 10_000), (12, 2500)]
    assert policy.refund_bp(CancelledBy.CUSTOMER, timedelta(hours=47)) == 2500
    assert policy.refund_bp(CancelledBy.PROVIDER, -timedelta(hours=1)) == 10_000
