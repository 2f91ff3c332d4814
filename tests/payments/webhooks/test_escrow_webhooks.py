"""The gateway's escrow webhooks not covered elsewhere: an intent cancelled or asking for
3-D Secure, a transfer reversed, authorisations captured on release or let go on a full
refund, and refunds whose `refund.created` and `charge.refunded` arrive in either order
or that were made in Stripe's dashboard."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from documents.events import DomainEvent, EventKind
from documents.payments import ledger_accounts
from documents.payments.escrow import Escrow, EscrowStatus
from documents.payments.ledger import MovementKind
from documents.payments.webhooks import WebhookEvent, WebhookStatus
from integrations.payments.gateway import Transfer
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.payments.escrow.escrows import payment_metadata
from resolvers.payments.escrow.refunds import claim_refund
from server.runtime import Runtime
from tests.conftest import serve
from tests.payments.escrow.test_admin_escrows import release
from tests.payments.escrow.test_escrow_bookings import cancel_paid, paid_booking
from tests.payments.escrow.test_escrow_races import held, postings, succeeded, unpaid
from tests.payments.gateways.harness import new_key
from tests.support.bookings import act
from tests.support.graphql_client import GraphQLClient, error_codes
from tests.support.marketplace import logged_in_admin
from tests.support.payments.escrow import (
    assert_ledger_clean,
    balance,
    global_id,
    sandbox,
    sandbox_pay,
    stored_escrow,
)
from tests.support.payments.webhooks import post_event, signature, stripe_event, webhook_secret


async def deliver(client: GraphQLClient, runtime: Runtime, event_type: str, obj: Any) -> None:
    """A signed event of our own making, as Stripe would post it."""
    body = stripe_event(event_type, obj)
    sent = await post_event(client.http, body, signature(body, webhook_secret(runtime.services)))
    assert sent.status_code == 200, sent.text


async def kinds_told(escrow: Escrow, kind: EventKind) -> list[list[Any]]:
    """The audience of each event of `kind` about the escrow."""
    events = await DomainEvent.find(
        {"kind": kind.value, "data.escrow_id": str(escrow.id)}
    ).to_list()
    return [sorted(event.audience) for event in events]


# -- payment intents -------------------------------------------------------------------


async def test_an_intent_cancelled_at_the_gateway_fails_the_escrow_once(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal, escrow = await unpaid(client)
    intent = await runtime.services.payments.cancel_payment_intent(
        escrow.payment_intent_id or "", idempotency_key=new_key("dashboard")
    )
    await sandbox(runtime).drain()
    cancelled = {**succeeded(escrow), "status": "canceled", "latest_charge": None}
    # Redelivered, and again as another event saying the same.
    await asyncio.gather(
        *(deliver(client, runtime, "payment_intent.canceled", cancelled) for _ in range(3))
    )

    failed = await stored_escrow(global_id(escrow))
    assert intent.status == "canceled" and failed.status is EscrowStatus.FAILED
    assert [c.status for c in failed.history].count(EscrowStatus.FAILED) == 1
    assert await kinds_told(failed, EventKind.PAYMENT_CANCELLED) == [sorted(failed.participants)]
    payment = await sandbox_pay(client, deal.poster, global_id(escrow))
    assert error_codes(payment) == ["INVALID_STATE"]
    assert await postings(failed, MovementKind.PAYMENT_RECEIVED) == 0


async def test_3d_secure_is_asked_of_the_payer_alone_and_a_late_request_changes_nothing(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal, escrow = await unpaid(client)
    asked = await sandbox_pay(client, deal.poster, global_id(escrow), "REQUIRES_ACTION")
    assert asked["escrow"]["requiresAction"] is True
    assert await kinds_told(escrow, EventKind.PAYMENT_ACTION_REQUIRED) == [[escrow.payer_id]]
    paid = await sandbox_pay(client, deal.poster, global_id(escrow))  # authenticated
    assert paid["escrow"]["status"] == "HELD" and paid["escrow"]["requiresAction"] is False
    before = await stored_escrow(global_id(escrow))

    # The request for authentication, delivered again after the payment.
    stale = {**succeeded(escrow), "status": "requires_action", "latest_charge": None}
    await deliver(client, runtime, "payment_intent.requires_action", stale)

    after = await stored_escrow(global_id(escrow))
    assert after.status is EscrowStatus.HELD and not after.requires_action
    assert after.history == before.history
    assert len(await kinds_told(escrow, EventKind.PAYMENT_ACTION_REQUIRED)) == 1


# -- transfer reversals ----------------------------------------------------------------


def reversed_transfer(transfer: Transfer) -> dict[str, Any]:
    """The transfer as `transfer.reversed` shows it."""
    return {
        "id": transfer.id,
        "object": "transfer",
        "amount": transfer.amount,
        "amount_reversed": transfer.amount_reversed,
        "currency": transfer.currency.lower(),
        "destination": transfer.destination_account_id,
        "metadata": dict(transfer.metadata),
        "transfer_group": transfer.transfer_group,
        "created": int(transfer.created.timestamp()),
    }


async def released(client: GraphQLClient, runtime: Runtime) -> Escrow:
    deal, escrow = await held(client, runtime)
    for name, who in (("startTask", deal.tasker), ("submitTask", deal.tasker)):
        assert (await client.mutate(name, {"taskId": deal.task_id}, token=who.access))[
            "errors"
        ] == []
    done = await client.mutate("completeTask", {"taskId": deal.task_id}, token=deal.poster.access)
    assert done["errors"] == [], done
    await sandbox(runtime).drain()
    result = await stored_escrow(global_id(escrow))
    assert result.status is EscrowStatus.RELEASED and result.transfer_id
    return result


async def transfer_of(runtime: Runtime, escrow: Escrow) -> Transfer:
    now = escrow.created_at
    found = [
        t
        async for t in sandbox(runtime).list_transfers(
            now - timedelta(hours=1), now + timedelta(hours=1)
        )
        if t.id == escrow.transfer_id
    ]
    assert len(found) == 1
    return found[0]


async def test_a_transfer_reversal_moves_the_money_back_into_a_frozen_escrow(
    client: GraphQLClient, runtime: Runtime
) -> None:
    escrow = await released(client, runtime)
    assert escrow.id is not None and escrow.transfer_id is not None and escrow.release is not None
    share = escrow.release.to_provider.amount
    wallet = ledger_accounts.wallet(escrow.provider_id)
    assert await balance(wallet) == share

    await runtime.services.payments.reverse_transfer(
        escrow.transfer_id, amount=4000, idempotency_key=new_key("reverse")
    )
    await sandbox(runtime).drain()
    # The same reversal reported again, several times at once.
    again = reversed_transfer(await transfer_of(runtime, escrow))
    await asyncio.gather(*(deliver(client, runtime, "transfer.reversed", again) for _ in range(3)))

    frozen = await stored_escrow(global_id(escrow))
    assert frozen.status is EscrowStatus.DISPUTED and frozen.transfer_reversed.amount == 4000
    assert await balance(wallet) == share - 4000
    assert await balance(ledger_accounts.escrow(escrow.id)) == 4000
    assert await postings(frozen, MovementKind.ADJUSTMENT) == 1
    told = await kinds_told(frozen, EventKind.ESCROW_TRANSFER_REVERSED)
    assert told == [sorted(frozen.participants)]

    await runtime.services.payments.reverse_transfer(
        escrow.transfer_id, amount=None, idempotency_key=new_key("reverse")
    )
    await sandbox(runtime).drain()

    emptied = await stored_escrow(global_id(escrow))
    assert emptied.transfer_reversed.amount == share
    assert await balance(wallet) == 0
    assert await balance(ledger_accounts.escrow(escrow.id)) == share
    assert await postings(emptied, MovementKind.ADJUSTMENT) == 2
    await assert_ledger_clean()


async def test_the_transfer_of_a_second_release_is_reversed_from_zero(
    client: GraphQLClient, runtime: Runtime
) -> None:
    """After a reversal an admin releases the money again, in a transfer of its own: a
    reversal of that one is counted from nothing reversed, not from the first's."""
    escrow = await released(client, runtime)
    assert escrow.id is not None and escrow.transfer_id is not None
    wallet = ledger_accounts.wallet(escrow.provider_id)
    payments = runtime.services.payments
    await payments.reverse_transfer(escrow.transfer_id, amount=4000, idempotency_key=new_key("r"))
    await sandbox(runtime).drain()
    admin = await logged_in_admin(client, runtime)
    again = await release(client, admin, global_id(escrow))
    assert again["errors"] == [], again
    await sandbox(runtime).drain()
    second = await stored_escrow(global_id(escrow))
    assert second.status is EscrowStatus.RELEASED and second.transfer_id != escrow.transfer_id
    before = await balance(wallet)

    await payments.reverse_transfer(
        second.transfer_id or "", amount=2000, idempotency_key=new_key("r")
    )
    await sandbox(runtime).drain()

    frozen = await stored_escrow(global_id(escrow))
    assert frozen.status is EscrowStatus.DISPUTED and frozen.transfer_reversed.amount == 2000
    assert await balance(wallet) == before - 2000
    assert await balance(ledger_accounts.escrow(escrow.id)) == 2000
    assert await postings(frozen, MovementKind.ADJUSTMENT) == 2
    await assert_ledger_clean()


async def test_a_reversal_of_an_earlier_release_is_rejected_for_an_admin(
    client: GraphQLClient, runtime: Runtime
) -> None:
    """Released again after a reversal, the first transfer is reversed once more: whose
    that money is now nobody can tell automatically. Nothing moves; the event is rejected
    with what differed (an alert) for an admin to settle."""
    escrow = await released(client, runtime)
    assert escrow.id is not None and escrow.transfer_id is not None
    wallet = ledger_accounts.wallet(escrow.provider_id)
    payments = runtime.services.payments
    await payments.reverse_transfer(escrow.transfer_id, amount=2000, idempotency_key=new_key("r"))
    await sandbox(runtime).drain()
    admin = await logged_in_admin(client, runtime)
    assert (await release(client, admin, global_id(escrow)))["errors"] == []
    await sandbox(runtime).drain()
    before = await balance(wallet)

    await payments.reverse_transfer(escrow.transfer_id, amount=1000, idempotency_key=new_key("r"))
    await sandbox(runtime).drain()

    late = await WebhookEvent.find(
        WebhookEvent.type == "transfer.reversed", WebhookEvent.status == WebhookStatus.REJECTED
    ).to_list()
    assert [(d.field, d.recorded, d.received) for e in late for d in e.differences] == [
        ("release_round", "2", "1")
    ]
    after = await stored_escrow(global_id(escrow))
    assert after.status is EscrowStatus.RELEASED
    assert await balance(wallet) == before
    await assert_ledger_clean()


async def test_a_reversed_transfer_released_again_pays_no_second_commission(
    client: GraphQLClient, runtime: Runtime
) -> None:
    """The provider's bank returned part of the transfer; released again, the provider
    gets back exactly what was reversed: the commission was taken the first time."""
    escrow = await released(client, runtime)
    assert escrow.id is not None and escrow.transfer_id is not None
    wallet = ledger_accounts.wallet(escrow.provider_id)
    paid_out = await balance(wallet)
    revenue = ledger_accounts.platform_revenue()
    revenue_before = await balance(revenue)
    await runtime.services.payments.reverse_transfer(
        escrow.transfer_id, amount=4000, idempotency_key=new_key("r")
    )
    await sandbox(runtime).drain()
    assert await balance(wallet) == paid_out - 4000

    admin = await logged_in_admin(client, runtime)
    assert (await release(client, admin, global_id(escrow)))["errors"] == []
    await sandbox(runtime).drain()
    again = await stored_escrow(global_id(escrow))
    assert again.status is EscrowStatus.RELEASED and again.release is not None
    assert again.release.commission.amount == 0
    assert await balance(wallet) == paid_out
    assert await balance(revenue) == revenue_before
    await assert_ledger_clean()


# -- manual capture --------------------------------------------------------------------


@pytest.fixture
async def capturing(runtime: Runtime) -> AsyncIterator[GraphQLClient]:
    """A client of the app configured to authorise deals settling within six days and
    capture them on release (GIGQL_MANUAL_CAPTURE_WITHIN)."""
    async with (
        serve(runtime, manual_capture_within=timedelta(days=6)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        yield GraphQLClient(http)


async def test_an_authorisation_is_captured_when_released(
    capturing: GraphQLClient, runtime: Runtime
) -> None:
    customer, worker, booking_id, escrow_id = await paid_booking(capturing, runtime, 1.5)
    authorised = await stored_escrow(escrow_id)
    intent_id = authorised.payment_intent_id or ""
    assert authorised.capture_manually and not authorised.captured
    assert authorised.status is EscrowStatus.HELD
    held_intent = await runtime.services.payments.retrieve_payment_intent(intent_id)
    assert held_intent.status == "requires_capture"

    for name in ("startBooking", "completeBooking"):
        assert (await act(capturing, name, worker, booking_id))["errors"] == []
    assert (await act(capturing, "approveBooking", customer, booking_id))["errors"] == []
    await sandbox(runtime).drain()

    escrow = await stored_escrow(escrow_id)
    assert escrow.status is EscrowStatus.RELEASED and escrow.captured
    captured = await runtime.services.payments.retrieve_payment_intent(intent_id)
    assert captured.status == "succeeded"
    assert await postings(escrow, MovementKind.PAYMENT_RECEIVED) == 1
    assert await balance(ledger_accounts.wallet(escrow.provider_id)) == 8999 - 900
    await assert_ledger_clean()


async def test_a_full_refund_of_an_authorisation_lets_it_go_uncaptured(
    capturing: GraphQLClient, runtime: Runtime
) -> None:
    _customer, worker, booking_id, escrow_id = await paid_booking(capturing, runtime, 30)
    _, escrow = await cancel_paid(
        capturing, runtime, worker, booking_id, escrow_id, "Van broke down."
    )
    assert escrow.status is EscrowStatus.REFUNDED and not escrow.captured
    assert escrow.refunds[0].refund_id is None  # nothing was charged, so nothing refunded
    intent = await runtime.services.payments.retrieve_payment_intent(escrow.payment_intent_id or "")
    assert intent.status == "canceled"  # its payment_intent.canceled changed nothing
    start = escrow.created_at - timedelta(minutes=1)
    listed = runtime.services.payments.list_refunds(
        start, start + timedelta(hours=1), payment_intent_id=intent.id
    )
    refunds = [r async for r in listed]
    assert refunds == []
    assert await balance(ledger_accounts.funding(escrow.payer_id)) == 0
    await assert_ledger_clean()


async def test_a_partial_refund_of_an_authorisation_captures_it_first(
    capturing: GraphQLClient, runtime: Runtime
) -> None:
    customer, _worker, booking_id, escrow_id = await paid_booking(capturing, runtime, 12)
    _, escrow = await cancel_paid(
        capturing, runtime, customer, booking_id, escrow_id, "Sick today."
    )
    assert escrow.captured and escrow.refunded.amount == 4950
    assert escrow.status is EscrowStatus.RELEASED  # the rest is the provider's
    intent = await runtime.services.payments.retrieve_payment_intent(escrow.payment_intent_id or "")
    assert intent.status == "succeeded"
    assert escrow.refunds[0].refund_id is not None
    assert await balance(ledger_accounts.funding(escrow.payer_id)) == -(9899 - 4950)
    await assert_ledger_clean()


# -- refunds ---------------------------------------------------------------------------


async def test_refunds_made_in_the_dashboard_are_recorded_from_charge_refunded(
    client: GraphQLClient, runtime: Runtime
) -> None:
    _deal, escrow = await held(client, runtime)
    charged = escrow.fees.charged.amount
    for amount in (3000, None):  # part, then the rest
        await runtime.services.payments.refund(
            escrow.payment_intent_id or "",
            amount=amount,
            metadata={},
            idempotency_key=new_key("dash"),
        )
        await sandbox(runtime).drain()

    refunded = await stored_escrow(global_id(escrow))
    assert refunded.status is EscrowStatus.REFUNDED and refunded.refunded.amount == charged
    assert [(r.amount.amount, r.external) for r in refunded.refunds] == [
        (3000, True),
        (charged - 3000, True),
    ]
    assert await postings(refunded, MovementKind.REFUND) == 2
    assert await balance(ledger_accounts.funding(refunded.payer_id)) == 0
    await assert_ledger_clean()


def charge(escrow: Escrow, amount_refunded: int) -> dict[str, Any]:
    """The escrow's charge as `charge.refunded` shows it."""
    return {
        "id": escrow.charge_id,
        "object": "charge",
        "amount": escrow.fees.charged.amount,
        "amount_refunded": amount_refunded,
        "currency": escrow.fees.charged.currency.lower(),
        "payment_intent": escrow.payment_intent_id,
        "metadata": payment_metadata(escrow),
        "created": int(time.time()),
    }


def refund_object(escrow: Escrow, refund_id: str, amount: int) -> dict[str, Any]:
    """Our refund number 1 as `refund.created` shows it."""
    return {
        "id": refund_id,
        "object": "refund",
        "amount": amount,
        "currency": escrow.fees.charged.currency.lower(),
        "payment_intent": escrow.payment_intent_id,
        "metadata": {**payment_metadata(escrow), "refund_number": "1"},
        "status": "succeeded",
        "created": int(time.time()),
    }


@pytest.mark.parametrize("first", ["charge.refunded", "refund.created"])
async def test_our_refund_is_recorded_once_with_its_id_whichever_event_comes_first(
    client: GraphQLClient, runtime: Runtime, first: str
) -> None:
    _deal, escrow = await held(client, runtime)
    amount = 2500

    async def claim(unit: UnitOfWork) -> object:
        return await claim_refund(
            unit, escrow, escrow.fees.charged.model_copy(update={"amount": amount}), "goodwill"
        )

    assert await transact(runtime.services, claim) is not None
    # The gateway made it; our process died before recording it. Its events arrive.
    events = {
        "charge.refunded": charge(escrow, amount),
        "refund.created": refund_object(escrow, "re_made", amount),
    }
    for event_type in sorted(events, key=lambda t: t != first):
        await deliver(client, runtime, event_type, events[event_type])

    recorded = await stored_escrow(global_id(escrow))
    assert recorded.status is EscrowStatus.PARTIALLY_REFUNDED and recorded.refunded.amount == amount
    assert [(r.number, r.refund_id, r.external) for r in recorded.refunds] == [
        (1, "re_made", False)
    ]
    assert await postings(recorded, MovementKind.REFUND) == 1
    await assert_ledger_clean()
