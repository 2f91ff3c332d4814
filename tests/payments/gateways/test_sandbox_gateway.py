"""The sandbox on its own: its events are Stripe's (same types, same envelope, signed so
that Stripe's own SDK accepts them), its idempotency, and the controls that play the
payer, the provider and the bank. (What it shares with Stripe is in
test_gateway_contract.py.)"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import stripe
from pymongo.asynchronous.database import AsyncDatabase

from integrations.payments.errors import InvalidRequest
from integrations.payments.gateway import GatewayEvent
from integrations.payments.sandbox import SandboxGateway
from tests.payments.gateways.harness import WEBHOOK_SECRET


def _events(sandbox: SandboxGateway, deliveries: list[tuple[bytes, str]]) -> list[GatewayEvent]:
    return [sandbox.parse_event(body, signature) for body, signature in deliveries]


async def test_a_whole_deal_emits_stripes_events_in_order(
    sandbox: SandboxGateway, deliveries: list[tuple[bytes, str]]
) -> None:
    intent = await sandbox.create_payment_intent(
        amount=1000, currency="EUR", transfer_group="deal-1", metadata={}, idempotency_key="pi"
    )
    await sandbox.confirm(intent.id)
    await sandbox.refund(intent.id, amount=200, metadata={}, idempotency_key="re")
    account = await sandbox.create_connected_account(
        email="p@example.com", country="FR", idempotency_key="acct"
    )
    await sandbox.complete_onboarding(account.id)
    transfer = await sandbox.create_transfer(
        amount=700,
        currency="EUR",
        destination_account_id=account.id,
        transfer_group="deal-1",
        metadata={},
        idempotency_key="tr",
    )
    await sandbox.reverse_transfer(transfer.id, amount=100, idempotency_key="trr")
    paid = await sandbox.create_payout(
        account_id=account.id, amount=300, currency="EUR", metadata={}, idempotency_key="po1"
    )
    returned = await sandbox.create_payout(
        account_id=account.id, amount=200, currency="EUR", metadata={}, idempotency_key="po2"
    )
    await sandbox.pay_out(paid.id)
    await sandbox.fail_payout(returned.id, "account_closed")
    session = await sandbox.create_verification_session(metadata={}, idempotency_key="vs")
    await sandbox.verify_identity(session.id, ok=False)
    await sandbox.verify_identity(session.id)
    await sandbox.drain()

    events = _events(sandbox, deliveries)
    assert [(event.type, event.account) for event in events] == [
        ("payment_intent.created", None),
        ("payment_intent.succeeded", None),
        ("refund.created", None),
        ("charge.refunded", None),
        ("account.updated", account.id),
        ("transfer.created", None),
        ("transfer.reversed", None),
        ("payout.created", account.id),
        ("payout.created", account.id),
        ("payout.paid", account.id),
        ("payout.failed", account.id),
        ("identity.verification_session.created", None),
        ("identity.verification_session.requires_input", None),
        ("identity.verification_session.verified", None),
    ]
    assert events[4].data_object["payouts_enabled"] is True
    assert events[6].data_object["amount_reversed"] == 100
    assert events[3].data_object["amount_refunded"] == 200
    assert events[10].data_object["failure_code"] == "account_closed"
    assert len({event.id for event in events}) == len(events)


async def test_its_events_are_accepted_by_stripes_own_sdk(
    sandbox: SandboxGateway, deliveries: list[tuple[bytes, str]]
) -> None:
    intent = await sandbox.create_payment_intent(
        amount=1000, currency="EUR", transfer_group="deal-2", metadata={}, idempotency_key="pi"
    )
    await sandbox.confirm(intent.id)
    await sandbox.drain()

    for body, signature in deliveries:
        event = stripe.Webhook.construct_event(body, signature, WEBHOOK_SECRET)
        assert event.object == "event" and not event.livemode
        assert event.api_version == stripe.api_version
        assert event.data.object.object == "payment_intent"
        assert event.data.object.id == intent.id


async def test_an_event_is_a_snapshot_of_the_moment(
    sandbox: SandboxGateway, deliveries: list[tuple[bytes, str]]
) -> None:
    intent = await sandbox.create_payment_intent(
        amount=1000, currency="EUR", transfer_group="deal-3", metadata={}, idempotency_key="pi"
    )
    await sandbox.confirm(intent.id)
    await sandbox.drain()

    created, succeeded = (json.loads(body)["data"]["object"] for body, _ in deliveries)
    assert created["status"] == "requires_payment_method"
    assert succeeded["status"] == "succeeded"
    assert succeeded["amount_received"] == 1000


async def test_a_retried_request_sends_no_second_event(
    sandbox: SandboxGateway, deliveries: list[tuple[bytes, str]]
) -> None:
    for _attempt in range(2):
        await sandbox.create_payment_intent(
            amount=1000, currency="EUR", transfer_group="deal-4", metadata={}, idempotency_key="k"
        )
    await sandbox.drain()

    assert len(deliveries) == 1


async def test_a_request_refused_as_invalid_can_be_corrected_under_the_same_key(
    sandbox: SandboxGateway,
) -> None:
    intent = await sandbox.create_payment_intent(
        amount=1000, currency="EUR", transfer_group="deal-5", metadata={}, idempotency_key="pi"
    )
    await sandbox.confirm(intent.id)

    with pytest.raises(InvalidRequest):
        await sandbox.refund(intent.id, amount=5000, metadata={}, idempotency_key="refund")
    refund = await sandbox.refund(intent.id, amount=500, metadata={}, idempotency_key="refund")

    assert refund.amount == 500


async def test_refunds_never_exceed_what_was_captured(sandbox: SandboxGateway) -> None:
    intent = await sandbox.create_payment_intent(
        amount=1000,
        currency="EUR",
        transfer_group="deal-6",
        metadata={},
        idempotency_key="pi",
        capture_manually=True,
    )
    await sandbox.confirm(intent.id)
    await sandbox.capture_payment_intent(intent.id, amount=800, idempotency_key="capture")

    first = await sandbox.refund(intent.id, amount=300, metadata={}, idempotency_key="r1")
    rest = await sandbox.refund(intent.id, amount=None, metadata={}, idempotency_key="r2")
    with pytest.raises(InvalidRequest):
        await sandbox.refund(intent.id, amount=1, metadata={}, idempotency_key="r3")

    assert (first.amount, rest.amount) == (300, 500)


async def test_the_controls_refuse_what_stripe_would_not_allow(sandbox: SandboxGateway) -> None:
    intent = await sandbox.create_payment_intent(
        amount=1000, currency="EUR", transfer_group="deal-7", metadata={}, idempotency_key="pi"
    )
    await sandbox.confirm(intent.id)
    account = await sandbox.create_connected_account(
        email="p@example.com", country="FR", idempotency_key="acct"
    )
    await sandbox.complete_onboarding(account.id)
    payout = await sandbox.create_payout(
        account_id=account.id, amount=100, currency="EUR", metadata={}, idempotency_key="po"
    )
    await sandbox.pay_out(payout.id)

    with pytest.raises(InvalidRequest):
        await sandbox.confirm(intent.id)  # already paid
    with pytest.raises(InvalidRequest):
        await sandbox.authenticate(intent.id)  # nothing to authenticate
    with pytest.raises(InvalidRequest):
        await sandbox.fail_payout(payout.id)  # already paid out
    with pytest.raises(InvalidRequest):
        await sandbox.create_payment_intent(
            amount=100,
            currency="EUR",
            transfer_group="deal-7",
            metadata={},
            idempotency_key="unknown-card",
            payment_method="pm_card_unheard_of",
        )


async def test_a_failing_webhook_handler_does_not_stop_later_events(
    caplog: pytest.LogCaptureFixture, sandbox_database: AsyncDatabase[dict[str, Any]]
) -> None:
    received: list[str] = []

    async def flaky(payload: bytes, _signature: str) -> None:
        event_type = json.loads(payload)["type"]
        if event_type == "payment_intent.created":
            raise RuntimeError("the handler broke")
        received.append(event_type)

    sandbox = SandboxGateway(WEBHOOK_SECRET, flaky, sandbox_database)
    intent = await sandbox.create_payment_intent(
        amount=1000, currency="EUR", transfer_group="deal-8", metadata={}, idempotency_key="pi"
    )
    await sandbox.confirm(intent.id)
    await sandbox.aclose()

    assert received == ["payment_intent.succeeded"]
    assert "the webhook handler failed" in caplog.text


async def test_lists_come_newest_first_as_stripes_do(sandbox: SandboxGateway) -> None:
    ids = [
        (
            await sandbox.create_payment_intent(
                amount=100 * n,
                currency="EUR",
                transfer_group="deal-9",
                metadata={},
                idempotency_key=f"pi-{n}",
            )
        ).id
        for n in (1, 2, 3)
    ]
    now = datetime.now(UTC)

    listed = [
        intent.id
        async for intent in sandbox.list_payment_intents(
            now - timedelta(minutes=1), now + timedelta(minutes=1)
        )
    ]

    assert listed == ids[::-1]
