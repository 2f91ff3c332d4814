"""What a single-page app reads before any deal: the marketplace's terms as configured,
and a fee quote that divides a price exactly as the escrow of a deal at it will."""

from __future__ import annotations

import dataclasses
from typing import Any

import httpx

from documents.payments.currencies import CHARGEABLE_CURRENCIES
from integrations.payments.stripe_gateway import StripeGateway
from server.app import create_app
from server.runtime import Runtime, make_services
from tests.conftest import serve, serve_asgi
from tests.support.graphql_client import GraphQLClient, graphql_error_codes
from tests.support.payments.escrow import assigned_task, task_escrow

SETTINGS = """{ marketplaceSettings {
  categories
  currencies { code exponent minimumCharge { amount currency } minimumPrice { amount currency } }
  fees { customerFeeBp commissionOnHoldBp commissionOnReleaseBp }
  cancellationPolicy { tiers { minHoursBefore refundBp } providerCancelRefundBp }
  deadlines { autoReleaseAfterSeconds bookingMinNoticeSeconds slotStepSeconds
    manualCaptureWithinSeconds paymentDeadlineSeconds bookingRequestExpirySeconds
    bookingStartWindowSeconds maxPendingBookings }
  sandboxPayments } }"""
FEES = """price { amount currency } customerFee { amount } charged { amount }
  commissionOnHold { amount } commissionOnRelease { amount } providerShare { amount }"""
QUOTE = f"query($amount: MoneyInput!) {{ feeQuote(amount: $amount) {{ {FEES} }} }}"


async def terms(client: GraphQLClient) -> dict[str, Any]:
    settings: dict[str, Any] = (await client.data(SETTINGS))["marketplaceSettings"]
    return settings


def currency(settings: dict[str, Any], code: str) -> dict[str, Any]:
    found: dict[str, Any] = next(c for c in settings["currencies"] if c["code"] == code)
    return found


async def quote(client: GraphQLClient, amount: int, code: str = "AUD") -> dict[str, Any]:
    return await client.execute(QUOTE, {"amount": {"amount": amount, "currency": code}})


async def test_anyone_reads_the_terms_as_configured(client: GraphQLClient) -> None:
    settings = await terms(client)  # no login
    assert settings["categories"][:3] == ["cleaning", "gardening", "handyman"]
    assert [c["code"] for c in settings["currencies"]] == list(CHARGEABLE_CURRENCIES)
    assert currency(settings, "AUD") == {
        "code": "AUD",
        "exponent": 2,
        "minimumCharge": {"amount": 50, "currency": "AUD"},
        "minimumPrice": {"amount": 50, "currency": "AUD"},
    }
    assert currency(settings, "JPY")["exponent"] == 0
    assert settings["fees"] == {
        "customerFeeBp": 1000,
        "commissionOnHoldBp": 0,
        "commissionOnReleaseBp": 1000,
    }
    assert settings["cancellationPolicy"] == {
        "tiers": [
            {"minHoursBefore": 24, "refundBp": 10000},
            {"minHoursBefore": 6, "refundBp": 5000},
        ],
        "providerCancelRefundBp": 10000,
    }
    assert settings["deadlines"] == {
        "autoReleaseAfterSeconds": 48 * 3600,
        "bookingMinNoticeSeconds": 3600,
        "slotStepSeconds": 1800,
        "manualCaptureWithinSeconds": 0,
        "paymentDeadlineSeconds": 24 * 3600,
        "bookingRequestExpirySeconds": 24 * 3600,
        "bookingStartWindowSeconds": 2 * 3600,
        "maxPendingBookings": 3,
    }
    assert settings["sandboxPayments"] is True


async def test_the_terms_follow_the_settings(runtime: Runtime) -> None:
    changes: dict[str, Any] = {
        "categories": ["cleaning", "ironing"],
        "currencies": ["EUR", "JPY"],
        "customer_fee_bp": 500,
        "commission_on_hold_bp": 300,
        "commission_on_release_bp": 1200,
        "cancellation_full_refund_hours": 48,
        "booking_min_notice_minutes": 120,
    }
    async with serve(runtime, **changes) as url, httpx.AsyncClient(base_url=url) as http:
        settings = await terms(GraphQLClient(http))
    assert settings["categories"] == ["cleaning", "ironing"]
    assert [c["code"] for c in settings["currencies"]] == ["EUR", "JPY"]
    # At 3 % no fee on less than 34 yen rounds to nothing; the gateway's ¥50 is more.
    assert currency(settings, "JPY")["minimumPrice"] == {"amount": 50, "currency": "JPY"}
    assert settings["fees"] == {
        "customerFeeBp": 500,
        "commissionOnHoldBp": 300,
        "commissionOnReleaseBp": 1200,
    }
    assert settings["cancellationPolicy"]["tiers"][0] == {"minHoursBefore": 48, "refundBp": 10000}
    assert settings["deadlines"]["bookingMinNoticeSeconds"] == 7200


async def test_a_price_that_fees_would_round_away_has_a_higher_minimum(runtime: Runtime) -> None:
    async with serve(runtime, customer_fee_bp=1) as url, httpx.AsyncClient(base_url=url) as http:
        client = GraphQLClient(http)
        settings = await terms(client)
        # One basis point is a whole cent from 100.00 upwards.
        assert currency(settings, "AUD")["minimumPrice"] == {"amount": 10000, "currency": "AUD"}
        assert graphql_error_codes(await quote(client, 9999)) == ["INVALID_INPUT"]
        assert "errors" not in await quote(client, 10000)


async def test_with_stripe_configured_the_terms_say_payments_are_real(runtime: Runtime) -> None:
    stripe = StripeGateway("sk_test_unused", "whsec_unused", api_base="http://127.0.0.1:9")
    services = runtime.services
    with_stripe = dataclasses.replace(
        runtime,
        services=make_services(services.settings, services.postman, services.broker, stripe),
    )
    app = create_app(services.settings, with_stripe)
    async with serve_asgi(app) as url, httpx.AsyncClient(base_url=url) as http:
        settings = await terms(GraphQLClient(http))
    assert settings["sandboxPayments"] is False


async def test_a_fee_quote_divides_a_price_as_the_deals_escrow_does(
    client: GraphQLClient,
) -> None:
    quoted = await quote(client, 11000)
    assert "errors" not in quoted, quoted
    assert quoted["data"]["feeQuote"] == {
        "price": {"amount": 11000, "currency": "AUD"},
        "customerFee": {"amount": 1100},
        "charged": {"amount": 12100},
        "commissionOnHold": {"amount": 0},
        "commissionOnRelease": {"amount": 1100},
        "providerShare": {"amount": 9900},
    }
    deal = await assigned_task(client, amount=11000)
    escrow = await task_escrow(client, deal.poster, deal.task_id)
    assert escrow is not None and escrow["fees"] == quoted["data"]["feeQuote"]


async def test_a_fee_quote_refuses_what_a_price_may_not_be(client: GraphQLClient) -> None:
    for amount, code in ((49, "AUD"), (0, "AUD"), (-100, "AUD"), (5000, "XXX"), (5000, "BHD")):
        refused = await quote(client, amount, code)
        assert graphql_error_codes(refused) == ["INVALID_INPUT"], (amount, code)
        assert refused["errors"][0]["extensions"]["field"] == "amount"
    assert "errors" not in await quote(client, 50)
