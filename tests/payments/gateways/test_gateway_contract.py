"""The contract both gateways keep, run against the Stripe adapter (on localstripe and the
stub) and against the sandbox: the same states, the same errors, the same events."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from integrations.payments.errors import CardDeclined, IdempotencyConflict, InvalidRequest
from integrations.payments.gateway import PaymentIntent
from tests.payments.gateways.harness import Harness, new_key


async def _intent(
    harness: Harness, amount: int = 1000, *, capture_manually: bool = False
) -> PaymentIntent:
    return await harness.gateway.create_payment_intent(
        amount=amount,
        currency="EUR",
        transfer_group="deal-42",
        metadata={"deal": "42", "kind": "task"},
        idempotency_key=new_key("intent"),
        capture_manually=capture_manually,
    )


async def _paid(harness: Harness, amount: int = 1000) -> PaymentIntent:
    intent = await _intent(harness, amount)
    await harness.pay(intent)
    return intent


async def _onboarded_account(harness: Harness) -> str:
    account = await harness.gateway.create_connected_account(
        email="provider@example.com", country="FR", idempotency_key=new_key("account")
    )
    await harness.complete_onboarding(account.id)
    return account.id


# -- payment intents -------------------------------------------------------------------


async def test_a_new_intent_waits_for_the_payer_with_a_client_secret(harness: Harness) -> None:
    intent = await _intent(harness)

    assert intent.id.startswith("pi_")
    assert intent.status == "requires_payment_method"
    assert (intent.amount, intent.currency) == (1000, "EUR")
    assert intent.client_secret is not None and intent.client_secret.startswith(intent.id)
    assert intent.transfer_group == "deal-42"
    assert intent.metadata == {"deal": "42", "kind": "task"}
    assert not intent.capture_manually
    assert intent == await harness.gateway.retrieve_payment_intent(intent.id)


async def test_a_paid_intent_succeeds_and_a_signed_webhook_says_so(harness: Harness) -> None:
    intent = await _intent(harness)

    await harness.pay(intent)

    paid = await harness.gateway.retrieve_payment_intent(intent.id)
    assert paid.status == "succeeded"
    assert paid.latest_charge_id is not None
    event = await harness.event("payment_intent.succeeded", intent.id)
    assert event.id.startswith("evt_") and event.account is None
    assert event.data_object["amount"] == 1000
    assert abs(event.created - datetime.now(UTC)) < timedelta(minutes=1)


async def test_a_declined_card_leaves_the_intent_waiting_for_another(harness: Harness) -> None:
    intent = await _intent(harness)

    await harness.pay(intent, "declined")

    declined = await harness.gateway.retrieve_payment_intent(intent.id)
    assert declined.status == "requires_payment_method"
    assert declined.failure_code == "card_declined"
    event = await harness.event("payment_intent.payment_failed", intent.id)
    assert event.data_object["last_payment_error"]["code"] == "card_declined"


@pytest.mark.parametrize(
    ("passes", "status", "failure"),
    [
        (True, "succeeded", None),
        (False, "requires_payment_method", "payment_intent_authentication_failure"),
    ],
)
async def test_a_card_asking_for_3d_secure_waits_for_the_payer_to_authenticate(
    harness: Harness, passes: bool, status: str, failure: str | None
) -> None:
    intent = await _intent(harness)

    await harness.pay(intent, "requires_action")
    assert (await harness.gateway.retrieve_payment_intent(intent.id)).status == "requires_action"
    await harness.authenticate(intent, passes)

    after = await harness.gateway.retrieve_payment_intent(intent.id)
    assert (after.status, after.failure_code) == (status, failure)


async def test_manual_capture_holds_the_funds_until_captured(harness: Harness) -> None:
    intent = await _intent(harness, capture_manually=True)
    assert intent.capture_manually

    await harness.pay(intent)
    held = await harness.gateway.retrieve_payment_intent(intent.id)
    assert held.status == "requires_capture"
    captured = await harness.gateway.capture_payment_intent(
        intent.id, amount=600, idempotency_key=new_key("capture")
    )

    assert captured.status == "succeeded"


async def test_cancelling_releases_an_unpaid_intent_or_a_held_authorisation(
    harness: Harness,
) -> None:
    unpaid = await _intent(harness)
    held = await _intent(harness, capture_manually=True)
    await harness.pay(held)

    for intent in (unpaid, held):
        canceled = await harness.gateway.cancel_payment_intent(
            intent.id, idempotency_key=new_key("cancel")
        )
        assert canceled.status == "canceled"


async def test_capturing_an_intent_not_held_for_capture_is_an_invalid_request(
    harness: Harness,
) -> None:
    intent = await _paid(harness)  # captured at once

    with pytest.raises(InvalidRequest):
        await harness.gateway.capture_payment_intent(intent.id, idempotency_key=new_key("c"))


async def test_an_unknown_intent_is_an_invalid_request(harness: Harness) -> None:
    with pytest.raises(InvalidRequest):
        await harness.gateway.retrieve_payment_intent("pi_doesnotexist")


async def test_a_card_given_at_creation_is_charged_at_once(harness: Harness) -> None:
    intent = await harness.gateway.create_payment_intent(
        amount=2500,
        currency="EUR",
        transfer_group="deal-7",
        metadata={"deal": "7"},
        idempotency_key=new_key("saved-card"),
        payment_method="pm_card_visa",
    )

    assert intent.status == "succeeded"


async def test_a_declined_card_given_at_creation_raises_card_declined_every_retry(
    harness: Harness,
) -> None:
    key = new_key("declined-card")
    for _attempt in range(2):
        with pytest.raises(CardDeclined) as declined:
            await harness.gateway.create_payment_intent(
                amount=2500,
                currency="EUR",
                transfer_group="deal-8",
                metadata={"deal": "8"},
                idempotency_key=key,
                payment_method="pm_card_chargeCustomerFail",
            )
        assert declined.value.code == "card_declined"
        assert not declined.value.retryable


# -- idempotency -----------------------------------------------------------------------


async def test_the_same_key_returns_the_first_intent_instead_of_a_second(
    harness: Harness,
) -> None:
    key = new_key("same")
    started = datetime.now(UTC) - timedelta(seconds=1)

    first, again = [
        await harness.gateway.create_payment_intent(
            amount=1500,
            currency="EUR",
            transfer_group="deal-9",
            metadata={"deal": "9"},
            idempotency_key=key,
        )
        for _attempt in range(2)
    ]

    assert again == first
    listed = [
        intent
        async for intent in harness.gateway.list_payment_intents(
            started, datetime.now(UTC) + timedelta(seconds=2)
        )
        if intent.transfer_group == "deal-9"
    ]
    assert [intent.id for intent in listed] == [first.id]


async def test_the_same_key_with_other_parameters_is_refused(harness: Harness) -> None:
    key = new_key("reused")
    await harness.gateway.create_payment_intent(
        amount=1500, currency="EUR", transfer_group="deal-10", metadata={}, idempotency_key=key
    )

    with pytest.raises(IdempotencyConflict):
        await harness.gateway.create_payment_intent(
            amount=1600, currency="EUR", transfer_group="deal-10", metadata={}, idempotency_key=key
        )


# -- refunds ---------------------------------------------------------------------------


async def test_a_full_refund(harness: Harness) -> None:
    intent = await _paid(harness, 1200)

    refund = await harness.gateway.refund(
        intent.id, amount=None, metadata={"deal": "42"}, idempotency_key=new_key("refund")
    )

    assert refund.id.startswith("re_")
    assert (refund.amount, refund.currency, refund.status) == (1200, "EUR", "succeeded")
    assert refund.payment_intent_id == intent.id
    assert refund.metadata == {"deal": "42"}


async def test_a_partial_refund_is_idempotent(harness: Harness) -> None:
    intent = await _paid(harness, 1200)
    key = new_key("partial")

    refund = await harness.gateway.refund(intent.id, amount=300, metadata={}, idempotency_key=key)
    again = await harness.gateway.refund(intent.id, amount=300, metadata={}, idempotency_key=key)

    assert refund.amount == 300
    assert again == refund


# -- Connect ---------------------------------------------------------------------------


async def test_a_provider_onboards_to_an_express_account(harness: Harness) -> None:
    gateway = harness.gateway
    account = await gateway.create_connected_account(
        email="provider@example.com", country="FR", idempotency_key=new_key("account")
    )
    assert account.id.startswith("acct_")
    assert not (account.payouts_enabled or account.details_submitted)

    link = await gateway.create_onboarding_link(
        account.id,
        refresh_url="https://app.example/payouts/refresh",
        return_url="https://app.example/payouts/done",
    )
    assert link.url.startswith(("http://", "https://"))
    assert link.expires_at > datetime.now(UTC)

    await harness.complete_onboarding(account.id)
    onboarded = await gateway.retrieve_account(account.id)
    assert onboarded.payouts_enabled and onboarded.details_submitted


async def test_transfers_to_a_provider_and_their_reversal(harness: Harness) -> None:
    account_id = await _onboarded_account(harness)
    intent = await _paid(harness, 1000)
    charge = (await harness.gateway.retrieve_payment_intent(intent.id)).latest_charge_id

    transfer = await harness.gateway.create_transfer(
        amount=800,
        currency="EUR",
        destination_account_id=account_id,
        transfer_group="deal-42",
        metadata={"deal": "42"},
        idempotency_key=new_key("transfer"),
        source_charge_id=charge,
    )
    reversal = await harness.gateway.reverse_transfer(
        transfer.id, amount=300, idempotency_key=new_key("reversal")
    )

    assert transfer.id.startswith("tr_")
    assert (transfer.amount, transfer.currency, transfer.amount_reversed) == (800, "EUR", 0)
    assert transfer.destination_account_id == account_id
    assert (transfer.transfer_group, transfer.metadata) == ("deal-42", {"deal": "42"})
    assert (reversal.transfer_id, reversal.amount, reversal.currency) == (transfer.id, 300, "EUR")
    with pytest.raises(InvalidRequest):
        await harness.gateway.reverse_transfer(
            transfer.id, amount=600, idempotency_key=new_key("too-much")
        )


async def test_a_transfer_to_an_unknown_account_is_an_invalid_request(harness: Harness) -> None:
    with pytest.raises(InvalidRequest):
        await harness.gateway.create_transfer(
            amount=800,
            currency="EUR",
            destination_account_id="acct_nobody",
            transfer_group="deal-42",
            metadata={},
            idempotency_key=new_key("nowhere"),
        )


async def test_payouts_wait_for_onboarding_and_keys_belong_to_each_account(
    harness: Harness,
) -> None:
    gateway = harness.gateway
    pending = await gateway.create_connected_account(
        email="new@example.com", country="FR", idempotency_key=new_key("account")
    )
    with pytest.raises(InvalidRequest) as refused:
        await gateway.create_payout(
            account_id=pending.id,
            amount=500,
            currency="EUR",
            metadata={},
            idempotency_key=new_key("early"),
        )
    assert refused.value.code == "payouts_not_allowed"

    first, second = await _onboarded_account(harness), await _onboarded_account(harness)
    key = new_key("payout")
    payouts = [
        await gateway.create_payout(
            account_id=account,
            amount=500,
            currency="EUR",
            metadata={"wallet": account},
            idempotency_key=key,
        )
        for account in (first, second, first)
    ]

    assert payouts[0] == payouts[2]
    assert payouts[1].id != payouts[0].id
    assert [payout.account_id for payout in payouts[:2]] == [first, second]
    assert (payouts[0].status, payouts[0].amount, payouts[0].currency) == ("pending", 500, "EUR")


# -- identity --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("passes", "status", "error"),
    [(True, "verified", None), (False, "requires_input", "document_unverified_other")],
)
async def test_identity_verification(
    harness: Harness, passes: bool, status: str, error: str | None
) -> None:
    session = await harness.gateway.create_verification_session(
        metadata={"user": "u1"}, idempotency_key=new_key("identity")
    )
    assert session.id.startswith("vs_")
    assert (session.status, session.metadata) == ("requires_input", {"user": "u1"})
    assert session.client_secret

    await harness.verify_identity(session.id, passes)

    checked = await harness.gateway.retrieve_verification_session(session.id)
    assert (checked.status, checked.last_error_code) == (status, error)


# -- reconciliation --------------------------------------------------------------------


async def test_listing_gives_everything_created_in_a_period_across_pages(
    harness: Harness,
) -> None:
    gateway = harness.gateway
    before = await _paid(harness)
    await asyncio.sleep(1.1)  # Stripe's times are whole seconds
    start = datetime.now(UTC)
    account_id = await _onboarded_account(harness)
    intents = [await _paid(harness, amount) for amount in (1000, 2000, 3000)]
    refunds = [
        await gateway.refund(intent.id, amount=100, metadata={}, idempotency_key=new_key("r"))
        for intent in intents
    ]
    transfers = [
        await gateway.create_transfer(
            amount=amount,
            currency="EUR",
            destination_account_id=account_id,
            transfer_group="deal-42",
            metadata={},
            idempotency_key=new_key("t"),
        )
        for amount in (10, 20, 30)
    ]
    end = datetime.now(UTC) + timedelta(seconds=2)

    listed_intents = [intent.id async for intent in gateway.list_payment_intents(start, end)]
    listed_refunds = [refund async for refund in gateway.list_refunds(start, end)]
    listed_transfers = [transfer async for transfer in gateway.list_transfers(start, end)]

    assert sorted(listed_intents) == sorted(intent.id for intent in intents)
    assert before.id not in listed_intents
    assert sorted(listed_refunds, key=lambda r: r.id) == sorted(refunds, key=lambda r: r.id)
    assert sorted(t.id for t in listed_transfers) == sorted(t.id for t in transfers)
    nothing = [
        intent
        async for intent in gateway.list_payment_intents(
            start - timedelta(hours=2), start - timedelta(hours=1)
        )
    ]
    assert nothing == []
