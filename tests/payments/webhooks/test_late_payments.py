"""A payment that reaches the gateway after its deal was cancelled unpaid: the payer paid
in the moment between the cancellation's commit and the intent's cancellation at the
gateway, which then refuses it ("it was paid"), or an authorisation that the
cancellation lets go. Its late event is recorded and the money goes back in full, once;
an event for an escrow whose intent the gateway itself said was cancelled is rejected."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from documents.events import DomainEvent, EventKind
from documents.payments import ledger_accounts
from documents.payments.escrow import Escrow, EscrowStatus
from documents.payments.ledger import MovementKind
from documents.payments.webhooks import WebhookStatus
from integrations.payments.sandbox import SandboxGateway
from resolvers.payments.escrow.escrows import change_escrow
from server.runtime import Runtime
from tests.conftest import serve
from tests.payments.escrow.test_escrow_bookings import slot_after
from tests.payments.escrow.test_escrow_races import postings, succeeded, unpaid
from tests.payments.gateways.harness import new_key
from tests.support.bookings import act, booked, create_package, provider
from tests.support.graphql_client import GraphQLClient, Tokens
from tests.support.payments.escrow import (
    assert_ledger_clean,
    balance,
    booking_escrow,
    global_id,
    onboard,
    sandbox,
    stored_escrow,
)
from tests.support.payments.webhooks import (
    delivered,
    differing,
    event_id_of,
    post_event,
    signature,
    stored,
    webhook_secret,
)


class LateGateway:
    """The payer's side of the sandbox, as another process on its database whose events
    are held back: what the payer does reaches the gateway at once, and its webhook only
    when the test posts it."""

    def __init__(self, runtime: Runtime) -> None:
        self.secret = webhook_secret(runtime.services)
        self.held: list[bytes] = []
        database = Escrow.get_pymongo_collection().database
        self.gateway = SandboxGateway(self.secret, self._hold, database)

    async def _hold(self, body: bytes, _signature: str) -> None:
        self.held.append(body)

    async def pays(self, runtime: Runtime, escrow: Escrow) -> bytes:
        """The payer confirms the escrow's intent; the event that says so, not delivered."""
        # Nothing else due, so this instance's courier takes no one else's events.
        await sandbox(runtime).drain()
        await self.gateway.confirm(escrow.payment_intent_id or "")
        await self.gateway.aclose()
        (body,) = [b for b in self.held if b"payment_intent.created" not in b]
        return body

    async def deliver(self, client: GraphQLClient, body: bytes) -> str:
        """`body` posted as Stripe posts a (re)delivery of it; its event id."""
        sent = await post_event(client.http, body, signature(body, self.secret))
        assert sent.status_code == 200, sent.text
        return event_id_of(body)


async def told(escrow: Escrow, kind: EventKind) -> list[list[Any]]:
    """The audience of each event of `kind` about the escrow."""
    events = await DomainEvent.find(
        {"kind": kind.value, "data.escrow_id": str(escrow.id)}
    ).to_list()
    return [sorted(event.audience) for event in events]


async def gateway_refunds(runtime: Runtime, escrow: Escrow) -> list[int]:
    """The amounts of the gateway's refunds of the escrow's payment."""
    start = escrow.created_at - timedelta(minutes=1)
    listed = runtime.services.payments.list_refunds(
        start, start + timedelta(hours=1), payment_intent_id=escrow.payment_intent_id
    )
    return [refund.amount async for refund in listed]


async def paid_then_cancelled(
    client: GraphQLClient, runtime: Runtime
) -> tuple[Escrow, LateGateway, bytes]:
    """A task's escrow paid at the gateway, its event held back, then the task cancelled:
    the cancellation commits the escrow failed, and its cancellation at the gateway comes
    too late and is refused (the intent was paid). The escrow, the gateway holding the
    event, and the event's body."""
    deal, escrow = await unpaid(client)
    payer = LateGateway(runtime)
    paid = await payer.pays(runtime, escrow)
    cancelled = await client.mutate(
        "cancelTask", {"taskId": deal.task_id, "reason": "Plans changed."}, token=deal.poster.access
    )
    assert cancelled["errors"] == [], cancelled
    return escrow, payer, paid


async def test_a_payment_after_the_deal_was_cancelled_unpaid_is_recorded_and_refunded_once(
    client: GraphQLClient, runtime: Runtime
) -> None:
    escrow, payer, paid = await paid_then_cancelled(client, runtime)
    failed = await stored_escrow(global_id(escrow))
    assert failed.status is EscrowStatus.FAILED and failed.deal_cancelled
    intent = await runtime.services.payments.retrieve_payment_intent(escrow.payment_intent_id or "")
    assert intent.status == "succeeded"

    # Stripe delivers the payment, and delivers it again (at once, and after it is done).
    first, _ = await asyncio.gather(payer.deliver(client, paid), payer.deliver(client, paid))
    await sandbox(runtime).drain()
    await payer.deliver(client, paid)
    await sandbox(runtime).drain()

    assert (await stored(first)).status is WebhookStatus.PROCESSED
    refunded = await stored_escrow(global_id(escrow))
    assert refunded.status is EscrowStatus.REFUNDED
    assert refunded.refunded == refunded.fees.charged
    assert [r.amount for r in refunded.refunds] == [refunded.fees.charged]
    assert refunded.refunds[0].refund_id is not None
    assert [c.status for c in refunded.history].count(EscrowStatus.HELD) == 1
    assert await gateway_refunds(runtime, refunded) == [refunded.fees.charged.amount]
    assert await postings(refunded, MovementKind.PAYMENT_RECEIVED) == 1
    assert await postings(refunded, MovementKind.REFUND) == 1
    assert await balance(ledger_accounts.funding(refunded.payer_id)) == 0
    assert await balance(ledger_accounts.platform_revenue()) == 0
    assert await told(refunded, EventKind.PAYMENT_REFUNDED) == [sorted(refunded.participants)]
    await assert_ledger_clean()


async def test_the_same_late_payment_from_another_event_is_refunded_once(
    client: GraphQLClient, runtime: Runtime
) -> None:
    """Stripe may say the same twice under two event ids: the second finds it recorded."""
    escrow, payer, paid = await paid_then_cancelled(client, runtime)
    intent = await runtime.services.payments.retrieve_payment_intent(escrow.payment_intent_id or "")
    same = {**succeeded(escrow, intent.latest_charge_id or ""), "amount_received": intent.amount}
    events = await asyncio.gather(
        payer.deliver(client, paid),
        delivered(client, runtime.services, "payment_intent.succeeded", same),
    )
    await sandbox(runtime).drain()

    for event_id in events:
        assert (await stored(event_id)).status is WebhookStatus.PROCESSED
    refunded = await stored_escrow(global_id(escrow))
    assert refunded.status is EscrowStatus.REFUNDED and len(refunded.refunds) == 1
    assert await gateway_refunds(runtime, refunded) == [refunded.fees.charged.amount]
    assert await postings(refunded, MovementKind.PAYMENT_RECEIVED) == 1
    assert await postings(refunded, MovementKind.REFUND) == 1
    await assert_ledger_clean()


async def test_a_payment_for_an_intent_the_gateway_cancelled_is_rejected(
    client: GraphQLClient, runtime: Runtime
) -> None:
    """Failed by the gateway's own `canceled` (no deal cancelled): a payment of that intent
    cannot be, and is not believed; it is left to an admin, and nothing is recorded."""
    _deal, escrow = await unpaid(client)
    await runtime.services.payments.cancel_payment_intent(
        escrow.payment_intent_id or "", idempotency_key=new_key("dashboard")
    )
    await sandbox(runtime).drain()
    failed = await stored_escrow(global_id(escrow))
    assert failed.status is EscrowStatus.FAILED and not failed.deal_cancelled

    event_id = await delivered(
        client, runtime.services, "payment_intent.succeeded", succeeded(escrow)
    )
    assert await differing(event_id) == ["status"]
    assert (await stored_escrow(global_id(escrow))).status is EscrowStatus.FAILED
    assert await postings(failed, MovementKind.PAYMENT_RECEIVED) == 0
    await assert_ledger_clean()


# -- authorisations (captured on release) ----------------------------------------------


@pytest.fixture
async def capturing(runtime: Runtime) -> AsyncIterator[GraphQLClient]:
    """Deals that settle within six days are authorised, and captured on release."""
    async with (
        serve(runtime, manual_capture_within=timedelta(days=6)) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        yield GraphQLClient(http)


async def unpaid_booking(client: GraphQLClient, runtime: Runtime) -> tuple[Tokens, str, Escrow]:
    """A confirmed booking soon, not paid: (customer, booking id, its escrow)."""
    worker = await provider(client, "provider@example.com")
    await onboard(client, runtime, worker)
    package = await create_package(client, worker)
    customer = await client.member("customer@example.com")
    booking = await booked(
        client, customer, package["id"], await slot_after(client, worker, package["id"], 30)
    )
    confirmed = await act(client, "confirmBooking", worker, booking["id"])
    assert confirmed["errors"] == [], confirmed
    escrow = await booking_escrow(client, customer, booking["id"])
    assert escrow is not None
    return customer, booking["id"], await stored_escrow(escrow["id"])


async def test_an_authorisation_after_the_deal_was_cancelled_is_let_go_uncaptured(
    capturing: GraphQLClient, runtime: Runtime
) -> None:
    customer, booking_id, escrow = await unpaid_booking(capturing, runtime)
    assert escrow.capture_manually and escrow.payment_intent_id
    payer = LateGateway(runtime)
    authorised = await payer.pays(runtime, escrow)
    assert b"payment_intent.amount_capturable_updated" in authorised
    # The cancellation lets the authorisation go at the gateway (its `canceled` event
    # finds the escrow failed already and changes nothing).
    cancelled = await act(capturing, "cancelBooking", customer, booking_id, reason="Sorry.")
    assert cancelled["errors"] == [], cancelled
    await sandbox(runtime).drain()
    intent = await runtime.services.payments.retrieve_payment_intent(escrow.payment_intent_id)
    assert intent.status == "canceled"

    # The authorisation's event arrives now, twice.
    first = await payer.deliver(capturing, authorised)
    await sandbox(runtime).drain()
    await payer.deliver(capturing, authorised)
    await sandbox(runtime).drain()

    assert (await stored(first)).status is WebhookStatus.PROCESSED
    refunded = await stored_escrow(global_id(escrow))
    assert refunded.status is EscrowStatus.REFUNDED and not refunded.captured
    assert refunded.refunded == refunded.fees.charged and len(refunded.refunds) == 1
    assert refunded.refunds[0].refund_id is None  # nothing was charged, so nothing refunded
    assert await gateway_refunds(runtime, refunded) == []
    intent = await runtime.services.payments.retrieve_payment_intent(escrow.payment_intent_id)
    assert intent.status == "canceled"
    assert await postings(refunded, MovementKind.PAYMENT_RECEIVED) == 1
    assert await postings(refunded, MovementKind.REFUND) == 1
    assert await balance(ledger_accounts.funding(refunded.payer_id)) == 0
    assert await told(refunded, EventKind.PAYMENT_REFUNDED) == [sorted(refunded.participants)]
    await assert_ledger_clean()


async def test_only_a_write_requiring_the_deal_cancelled_makes_a_failed_escrow_held(
    client: GraphQLClient,
) -> None:
    """The guarded move is matched only by a write whose own condition holds its guard."""
    _deal, escrow = await unpaid(client)
    await Escrow.get_pymongo_collection().update_one(
        {"_id": escrow.id}, {"$set": {"status": EscrowStatus.FAILED.value}}
    )
    guarded = {"_id": escrow.id, "deal_cancelled": True}
    assert await change_escrow(None, guarded, EscrowStatus.HELD) is None  # not cancelled
    await Escrow.get_pymongo_collection().update_one(
        {"_id": escrow.id}, {"$set": {"deal_cancelled": True}}
    )
    assert await change_escrow(None, {"_id": escrow.id}, EscrowStatus.HELD) is None
    assert await change_escrow(None, {**guarded, "deal_cancelled": 1}, EscrowStatus.HELD) is None
    held = await change_escrow(None, guarded, EscrowStatus.HELD, note="paid late")
    assert held is not None and held.status is EscrowStatus.HELD
