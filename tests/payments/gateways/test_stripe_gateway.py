"""The Stripe adapter on its own: webhook signatures checked against the official SDK's,
the headers it sends, how Stripe's errors reach callers, and its configuration. (What it
shares with the sandbox is in test_gateway_contract.py.)"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import stripe
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from documents.settings import Settings
from integrations.payments.errors import (
    GatewayError,
    GatewayUnavailable,
    InvalidRequest,
    WebhookSignatureError,
)
from integrations.payments.factory import gateway_from_settings
from integrations.payments.sandbox import SandboxGateway
from integrations.payments.stripe_gateway import StripeGateway
from integrations.payments.webhooks import sign_payload, verify_signature
from server.embedded import free_port
from tests.payments.gateways.harness import SECRET_KEY, WEBHOOK_SECRET, new_key
from tests.payments.gateways.stripe_stub import StripeStub

# -- webhook signatures ----------------------------------------------------------------

EVENT = json.dumps(
    {
        "id": "evt_1",
        "object": "event",
        "type": "payout.paid",
        "created": 1_790_000_000,
        "account": "acct_1",
        "data": {"object": {"id": "po_1", "object": "payout", "amount": 500}},
    }
).encode()


def _v1(secret: str, timestamp: int, payload: bytes = EVENT) -> str:
    return sign_payload(payload, secret, timestamp).split(",")[1]


def _headers() -> dict[str, tuple[str, bool]]:
    """Stripe-Signature headers for EVENT, and whether Stripe's SDK accepts each."""
    now = int(time.time())
    ours = sign_payload(EVENT, WEBHOOK_SECRET, now)
    return {
        "signed here": (ours, True),
        "signed by Stripe's SDK": (
            stripe.WebhookSignature.generate_signature_header(EVENT.decode(), WEBHOOK_SECRET, now),
            True,
        ),
        "another secret": (sign_payload(EVENT, "whsec_someone_else", now), False),
        "a rolled secret among several": (
            f"t={now},{_v1('whsec_old', now)},{_v1(WEBHOOK_SECRET, now)}",
            True,
        ),
        "signed 290 s ago": (sign_payload(EVENT, WEBHOOK_SECRET, now - 290), True),
        "signed 301 s ago": (sign_payload(EVENT, WEBHOOK_SECRET, now - 301), False),
        "signed for a later time": (sign_payload(EVENT, WEBHOOK_SECRET, now + 600), True),
        "timestamp changed": (f"t={now - 1},{ours.split(',')[1]}", False),
        "another scheme": (ours.replace("v1=", "v0="), False),
        "no timestamp": (ours.split(",")[1], False),
        "not a header": ("nonsense", False),
        "empty": ("", False),
    }


@pytest.mark.parametrize("case", list(_headers()))
def test_webhook_signatures_are_checked_exactly_as_stripe_checks_them(case: str) -> None:
    header, valid = _headers()[case]

    try:
        stripe.WebhookSignature.verify_header(EVENT, header, WEBHOOK_SECRET, tolerance=300)
        stripe_accepts = True
    except stripe.SignatureVerificationError:
        stripe_accepts = False
    try:
        verify_signature(EVENT, header, WEBHOOK_SECRET)
        we_accept = True
    except WebhookSignatureError:
        we_accept = False

    assert stripe_accepts == we_accept == valid


async def test_a_tampered_body_is_refused(stripe_gateway: StripeGateway) -> None:
    header = sign_payload(EVENT, WEBHOOK_SECRET, int(time.time()))
    tampered = EVENT.replace(b'"amount": 500', b'"amount": 50000')

    with pytest.raises(WebhookSignatureError):
        stripe_gateway.parse_event(tampered, header)


async def test_a_signed_event_is_parsed(stripe_gateway: StripeGateway) -> None:
    event = stripe_gateway.parse_event(EVENT, sign_payload(EVENT, WEBHOOK_SECRET, int(time.time())))

    assert (event.id, event.type, event.account) == ("evt_1", "payout.paid", "acct_1")
    assert event.created.timestamp() == 1_790_000_000
    assert event.data_object == {"id": "po_1", "object": "payout", "amount": 500}


async def test_localstripes_own_webhooks_verify_with_stripes_sdk_too(
    stripe_gateway: StripeGateway, stripe_stub: StripeStub
) -> None:
    intent = await stripe_gateway.create_payment_intent(
        amount=700,
        currency="EUR",
        transfer_group="deal-11",
        metadata={},
        idempotency_key=new_key("hook"),
        payment_method="pm_card_visa",
    )
    body = await stripe_stub.webhook(
        lambda event: (
            event["type"] == "payment_intent.succeeded"
            and event["data"]["object"]["id"] == intent.id
        )
    )

    stripe.Webhook.construct_event(body, stripe_stub.signature_of(body), WEBHOOK_SECRET)


# -- what the adapter sends ------------------------------------------------------------


async def test_every_change_carries_our_idempotency_key_and_payouts_the_account(
    stripe_gateway: StripeGateway, stripe_stub: StripeStub
) -> None:
    account = await stripe_gateway.create_connected_account(
        email="p@example.com", country="FR", idempotency_key=(account_key := new_key("a"))
    )
    stripe_stub.complete_onboarding(account.id)
    intent = await stripe_gateway.create_payment_intent(
        amount=900,
        currency="EUR",
        transfer_group="deal-12",
        metadata={},
        idempotency_key=(intent_key := new_key("pi")),
        capture_manually=True,
        payment_method="pm_card_visa",
    )
    await stripe_gateway.capture_payment_intent(
        intent.id, idempotency_key=(capture_key := new_key("capture"))
    )
    await stripe_gateway.refund(
        intent.id, amount=100, metadata={}, idempotency_key=(refund_key := new_key("re"))
    )
    await stripe_gateway.create_payout(
        account_id=account.id,
        amount=100,
        currency="EUR",
        metadata={},
        idempotency_key=(payout_key := new_key("po")),
    )

    sent = {(seen.path, seen.idempotency_key, seen.stripe_account) for seen in stripe_stub.seen}
    assert {
        ("/v1/accounts", account_key, None),
        ("/v1/payment_intents", intent_key, None),
        (f"/v1/payment_intents/{intent.id}/capture", capture_key, None),
        ("/v1/refunds", refund_key, None),
        ("/v1/payouts", payout_key, account.id),
    } <= sent


# -- errors ----------------------------------------------------------------------------


async def test_an_unreachable_stripe_is_a_retryable_failure() -> None:
    gateway = StripeGateway(
        SECRET_KEY,
        WEBHOOK_SECRET,
        api_base=f"http://127.0.0.1:{free_port()}",
        max_network_retries=0,
    )
    try:
        with pytest.raises(GatewayUnavailable) as failed:
            await gateway.retrieve_payment_intent("pi_1")
    finally:
        await gateway.aclose()

    assert failed.value.retryable


async def test_a_server_error_is_retryable_and_the_retry_pays_once(
    stripe_stub: StripeStub,
) -> None:
    once = StripeGateway(
        SECRET_KEY, WEBHOOK_SECRET, api_base=stripe_stub.url, max_network_retries=0
    )
    retrying = StripeGateway(SECRET_KEY, WEBHOOK_SECRET, api_base=stripe_stub.url)
    try:
        stripe_stub.fail_next(503)
        with pytest.raises(GatewayUnavailable):
            await once.retrieve_payment_intent("pi_1")

        stripe_stub.fail_next(503)
        key = new_key("retried")
        intent = await retrying.create_payment_intent(
            amount=1100, currency="EUR", transfer_group="deal-13", metadata={}, idempotency_key=key
        )
    finally:
        await once.aclose()
        await retrying.aclose()

    attempts = [seen for seen in stripe_stub.seen if seen.idempotency_key == key]
    assert len(attempts) == 2  # the 503, then the SDK's retry with the same key
    assert intent.status == "requires_payment_method"


async def test_a_wrong_api_key_is_a_gateway_error_not_worth_retrying(
    stripe_stub: StripeStub,
) -> None:
    gateway = StripeGateway("pk_not_a_secret_key", WEBHOOK_SECRET, api_base=stripe_stub.url)
    try:
        with pytest.raises(GatewayError) as failed:
            await gateway.retrieve_payment_intent("pi_1")
    finally:
        await gateway.aclose()

    assert type(failed.value) is GatewayError
    assert not failed.value.retryable


# -- configuration ---------------------------------------------------------------------


async def _ignore(_payload: bytes, _signature: str) -> None:
    return None


async def test_without_a_stripe_key_the_sandbox_takes_the_payments(
    sandbox_database: AsyncDatabase[dict[str, Any]],
) -> None:
    gateway = gateway_from_settings(Settings(_env_file=None), _ignore, sandbox_database)

    assert isinstance(gateway, SandboxGateway)
    await gateway.aclose()


async def test_stripe_is_configured_with_its_usual_variables(
    monkeypatch: pytest.MonkeyPatch,
    stripe_stub: StripeStub,
    sandbox_database: AsyncDatabase[dict[str, Any]],
) -> None:
    monkeypatch.setenv("STRIPE_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("GIGQL_STRIPE_API_BASE", stripe_stub.url)

    gateway = gateway_from_settings(Settings(_env_file=None), _ignore, sandbox_database)
    try:
        assert isinstance(gateway, StripeGateway)
        with pytest.raises(InvalidRequest):
            await gateway.retrieve_payment_intent("pi_missing")
        gateway.parse_event(EVENT, sign_payload(EVENT, WEBHOOK_SECRET, int(time.time())))
    finally:
        await gateway.aclose()


def test_a_stripe_key_without_a_webhook_secret_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STRIPE_SECRET_KEY", SECRET_KEY)
    monkeypatch.delenv("STRIPE_WEBHOOK_SECRET", raising=False)

    with pytest.raises(ValidationError, match="STRIPE_WEBHOOK_SECRET"):
        Settings(_env_file=None)
