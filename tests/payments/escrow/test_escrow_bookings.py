"""A booking's money: its service fee as booked, release on completion, refunds by policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from documents.clock import utcnow
from documents.payments import ledger_accounts
from documents.payments.escrow import Escrow, EscrowStatus
from server.runtime import Runtime
from tests.support.bookings import act, booked, create_package, midday_zone, provider, slots
from tests.support.graphql_client import GraphQLClient, Tokens, error_codes
from tests.support.payments.escrow import (
    assert_ledger_clean,
    balance,
    booking_escrow,
    onboard,
    sandbox,
    sandbox_pay,
    stored_escrow,
)


async def slot_after(client: GraphQLClient, worker: Tokens, package_id: str, hours: float) -> str:
    """The first open slot at least `hours` from now."""
    earliest = datetime.now(UTC) + timedelta(hours=hours)
    for day in (earliest.date(), earliest.date() + timedelta(days=1)):
        for start in await slots(client, worker.user_id, package_id, day):
            if datetime.fromisoformat(start) >= earliest:
                return start
    raise AssertionError("no slot")


async def paid_booking(
    client: GraphQLClient, runtime: Runtime, hours_ahead: float
) -> tuple[Tokens, Tokens, str, str]:
    """A confirmed booking `hours_ahead`, paid: (customer, provider, booking id, escrow id)."""
    worker = await provider(client, "provider@example.com", time_zone=midday_zone())
    await onboard(client, runtime, worker)
    package = await create_package(client, worker)
    customer = await client.member("customer@example.com")
    start = await slot_after(client, worker, package["id"], hours_ahead)
    booking = await booked(client, customer, package["id"], start)
    confirmed = await act(client, "confirmBooking", worker, booking["id"])
    assert confirmed["errors"] == [], confirmed
    escrow = await booking_escrow(client, customer, booking["id"])
    assert escrow is not None
    # The fee agreed when booked, not recomputed.
    assert escrow["fees"]["customerFee"]["amount"] == booking["price"]["platformFee"]["amount"]
    assert escrow["fees"]["charged"]["amount"] == booking["price"]["total"]["amount"] == 9899
    paid = await sandbox_pay(client, customer, escrow["id"])
    assert paid["escrow"]["status"] == "HELD", paid
    return customer, worker, booking["id"], escrow["id"]


async def cancel_paid(
    client: GraphQLClient,
    runtime: Runtime,
    who: Tokens,
    booking_id: str,
    escrow_id: str,
    reason: str,
) -> tuple[dict[str, Any], Escrow]:
    """`who` cancels the paid booking: the mutation's payload, and the escrow once the
    gateway's steps and events are through."""
    cancelled = await act(client, "cancelBooking", who, booking_id, reason=reason)
    assert cancelled["errors"] == [], cancelled
    await sandbox(runtime).drain()
    return cancelled, await stored_escrow(escrow_id)


async def test_a_completed_booking_releases_the_providers_share(
    client: GraphQLClient, runtime: Runtime
) -> None:
    customer, worker, booking_id, escrow_id = await paid_booking(client, runtime, 1.5)
    for name in ("startBooking", "completeBooking"):
        assert (await act(client, name, worker, booking_id))["errors"] == []
    await sandbox(runtime).drain()
    # Completed: the customer's window opens; nothing leaves before they approve it.
    waiting = await stored_escrow(escrow_id)
    assert waiting.status is EscrowStatus.HELD and waiting.auto_release_at is not None
    window = waiting.auto_release_at - utcnow()
    assert timedelta(hours=47) < window <= runtime.services.settings.auto_release_after
    assert error_codes(await act(client, "approveBooking", worker, booking_id)) == ["FORBIDDEN"]
    assert (await act(client, "approveBooking", customer, booking_id))["errors"] == []
    await sandbox(runtime).drain()
    escrow = await stored_escrow(escrow_id)
    assert escrow.status is EscrowStatus.RELEASED
    assert await balance(ledger_accounts.wallet(escrow.provider_id)) == 8999 - 900
    assert await balance(ledger_accounts.platform_revenue()) == 900 + 900
    assert await balance(ledger_accounts.funding(escrow.payer_id)) == -9899
    await assert_ledger_clean()


async def test_a_late_cancellation_refunds_half_and_pays_the_provider_the_rest(
    client: GraphQLClient, runtime: Runtime
) -> None:
    customer, _worker, booking_id, escrow_id = await paid_booking(client, runtime, 12)
    cancelled, escrow = await cancel_paid(
        client, runtime, customer, booking_id, escrow_id, "Sick today."
    )
    refundable = cancelled["booking"]["cancellation"]["refundable"]["amount"]
    assert refundable == 4950  # half of 9899, rounded half up
    assert escrow.refunded.amount == refundable
    assert escrow.status is EscrowStatus.RELEASED  # what was not refunded is the provider's
    assert await balance(ledger_accounts.funding(escrow.payer_id)) == -(9899 - refundable)
    assert await balance(ledger_accounts.escrow(escrow.id)) == 0  # type: ignore[arg-type]
    kept = await balance(ledger_accounts.wallet(escrow.provider_id))
    assert kept + await balance(ledger_accounts.platform_revenue()) == 9899 - refundable
    assert kept > 0
    await assert_ledger_clean()


async def test_a_provider_cancelling_refunds_in_full(
    client: GraphQLClient, runtime: Runtime
) -> None:
    _customer, worker, booking_id, escrow_id = await paid_booking(client, runtime, 30)
    _, escrow = await cancel_paid(client, runtime, worker, booking_id, escrow_id, "Van broke down.")
    assert escrow.status is EscrowStatus.REFUNDED and escrow.refunded.amount == 9899
    assert await balance(ledger_accounts.funding(escrow.payer_id)) == 0
    assert await balance(ledger_accounts.wallet(escrow.provider_id)) == 0
    await assert_ledger_clean()
