"""The whole money loop on `gigql serve` with nothing configured: the sandbox gateway,
its pages and its bank, driven through GraphQL and the pages only, as a new marketplace
builder would (a browser for the pages, `sandboxPay` for the payer's card).

A task is posted, paid, onboarded for, done, released to the provider's wallet and
withdrawn to their bank; the sandbox's state is in the database, so it outlives a
restart and `gigql reconcile` compares against it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from resolvers.payments.connect import ONBOARDING_RETURN_PATH
from tests.support.bookings import act, booked, create_package, midday_zone, provider, soonest_slot
from tests.support.gigql_process import GigqlServer, gigql_env, graphql, run_gigql, running_server
from tests.support.graphql_client import GraphQLClient
from tests.support.payments.sandbox import (
    Deal,
    available,
    choose,
    escrow_status,
    finish_task,
    onboarding_link,
    paid_task,
    payouts_enabled,
    settled_withdrawal,
    until,
    wallet_of,
    withdraw,
)
from tests.support.payments.wallets import figures

APP_URL = "http://localhost:3000"
"""GIGQL_APP_URL's default: where the pages send the provider back to."""
PRICE = 11000
SHARE = 9900
"""The provider's share of PRICE after the default 10 % commission on release."""


@pytest.fixture(autouse=True)
def clean_state() -> None:
    """Overrides the autouse fixture of conftest: these tests run their own servers on
    their own embedded databases."""


@pytest.fixture(scope="module")
async def server(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[GigqlServer]:
    """One `gigql serve` on the embedded defaults, shared by the tests of this module."""
    root = tmp_path_factory.mktemp("sandbox-loop")
    async with running_server(root / "data", root / "logs") as running:
        yield running


async def onboarded_through_the_page(
    client: GraphQLClient, browser: httpx.AsyncClient, deal: Deal
) -> None:
    link = await onboarding_link(client, deal.tasker)
    done = await choose(browser, link, "complete")
    assert done.status_code == 303, done.text
    assert done.headers["location"] == APP_URL + ONBOARDING_RETURN_PATH
    await payouts_enabled(client, deal.tasker)


async def released(client: GraphQLClient, deal: Deal) -> None:
    async def status() -> str | None:
        return "RELEASED" if await escrow_status(client, deal) == "RELEASED" else None

    await until(status)


def reconcile(server: GigqlServer, since: datetime) -> dict[str, object]:
    """`gigql reconcile --json` on the server's data folder (it finds the running server's
    embedded database), from `since` to now; exit status 0 (clean) is asserted."""
    period = ("--from", since.isoformat(), "--to", datetime.now(UTC).isoformat())
    result = run_gigql(
        "reconcile", *period, "--json", env=gigql_env(server.data_dir), cwd=server.data_dir
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    report: dict[str, object] = json.loads(result.stdout)
    return report


async def test_a_task_goes_from_posting_to_a_paid_withdrawal_and_reconciles(
    server: GigqlServer,
) -> None:
    since = datetime.now(UTC) - timedelta(seconds=1)
    async with graphql(server) as client, httpx.AsyncClient(timeout=30) as browser:
        deal = await paid_task(client, "loop", PRICE)
        link = await onboarding_link(client, deal.tasker)
        # The sandbox's own page, on the server the provider's app talks to.
        assert link.startswith(f"{server.base_url}/sandbox/connect/onboarding/")
        done = await choose(browser, link, "complete")
        assert done.status_code == 303 and done.headers["location"] == (
            APP_URL + ONBOARDING_RETURN_PATH
        )
        await payouts_enabled(client, deal.tasker)

        await finish_task(client, deal)
        await released(client, deal)
        assert await available(client, deal.tasker) == SHARE
        withdrawal = await withdraw(client, deal.tasker, SHARE)
        assert withdrawal["status"] == "IN_TRANSIT"
        paid = await settled_withdrawal(client, deal.tasker, withdrawal["id"])

        assert paid["status"] == "PAID" and paid["failureCode"] is None
        wallet = figures(await wallet_of(client, deal.tasker), "AUD")
        assert (wallet["available"], wallet["inFlight"], wallet["paidOut"]) == (0, 0, SHARE)

    report = await asyncio.to_thread(reconcile, server, since)
    assert report["findings"] == []
    compared = report["compared"]
    assert isinstance(compared, dict)
    assert compared["payment"] >= 1 and compared["transfer"] >= 1 and compared["payout"] >= 1


async def test_a_payout_of_a_failing_test_amount_returns_the_money_to_the_wallet(
    server: GigqlServer,
) -> None:
    async with graphql(server) as client, httpx.AsyncClient(timeout=30) as browser:
        deal = await paid_task(client, "returned", PRICE)
        await onboarded_through_the_page(client, browser, deal)
        await finish_task(client, deal)
        await released(client, deal)

        # 11.16: the amount README documents as a payout to an account that does not exist.
        returned = await withdraw(client, deal.tasker, 1116)
        failed = await settled_withdrawal(client, deal.tasker, returned["id"])
        assert (failed["status"], failed["failureCode"]) == ("FAILED", "no_account")
        assert await available(client, deal.tasker) == SHARE

        rest = await withdraw(client, deal.tasker, SHARE)
        paid = await settled_withdrawal(client, deal.tasker, rest["id"])
        assert paid["status"] == "PAID"
        wallet = figures(await wallet_of(client, deal.tasker), "AUD")
        assert (wallet["available"], wallet["paidOut"]) == (0, SHARE)


async def test_the_sandbox_state_survives_a_restart(tmp_path: Path) -> None:
    """A payment, an account and its onboarding link made before a restart are all there
    after it: the link completes onboarding, which releases the escrow that waited."""
    since = datetime.now(UTC) - timedelta(seconds=1)
    data, logs = tmp_path / "data", tmp_path / "logs"
    async with running_server(data, logs, name="before") as before, graphql(before) as client:
        deal = await paid_task(client, "restart", PRICE)
        await finish_task(client, deal)
        assert await escrow_status(client, deal) == "RELEASING"  # no payout account yet
        link = await onboarding_link(client, deal.tasker)
        port = before.port

    async with (
        running_server(data, logs, port=port, name="after") as after,
        graphql(after) as client,
        httpx.AsyncClient(timeout=30) as browser,
    ):
        done = await choose(browser, link, "complete")
        assert done.status_code == 303, done.text
        await payouts_enabled(client, deal.tasker)
        await released(client, deal)
        withdrawal = await withdraw(client, deal.tasker, SHARE)
        paid = await settled_withdrawal(client, deal.tasker, withdrawal["id"])
        assert paid["status"] == "PAID"

        report = await asyncio.to_thread(reconcile, after, since)
        assert report["findings"] == []
        assert report["compared"] == {"payment": 1, "refund": 0, "transfer": 1, "payout": 1}


BOOKING_ESCROW_STATUS = (
    "query($id: ID!) { node(id: $id) { ... on Booking { status escrow { id status } } } }"
)
BOOKING_SHARE = 8999 - 900
"""The provider's share of the package's price after the default 10 % commission."""


async def test_a_booking_goes_from_request_to_a_paid_payout(server: GigqlServer) -> None:
    """With nothing configured: the customer books the earliest slot (the defaults let it
    start at once), the provider confirms, the customer pays, the provider works and
    completes it, the customer approves, and the provider withdraws it to their bank."""
    async with graphql(server) as client, httpx.AsyncClient(timeout=30) as browser:
        worker = await provider(client, "cleaner-loop@example.com", time_zone=midday_zone())
        customer = await client.member("customer-loop@example.com")
        link = await onboarding_link(client, worker)
        assert (await choose(browser, link, "complete")).status_code == 303
        await payouts_enabled(client, worker)

        package = await create_package(client, worker)
        start = await soonest_slot(client, worker, package["id"])
        booking = await booked(client, customer, package["id"], start)
        assert (await act(client, "confirmBooking", worker, booking["id"]))["errors"] == []
        seen = await client.data(
            BOOKING_ESCROW_STATUS, {"id": booking["id"]}, token=customer.access
        )
        escrow_id = seen["node"]["escrow"]["id"]
        paid = await client.mutate(
            "sandboxPay",
            {"escrowId": escrow_id, "outcome": "SUCCEEDED"},
            "escrow { status }",
            token=customer.access,
        )
        assert paid["errors"] == [] and paid["escrow"]["status"] == "HELD", paid

        for step in ("startBooking", "completeBooking"):
            assert (await act(client, step, worker, booking["id"]))["errors"] == [], step
        assert (await act(client, "approveBooking", customer, booking["id"]))["errors"] == []

        async def released() -> bool | None:
            node = (
                await client.data(BOOKING_ESCROW_STATUS, {"id": booking["id"]}, token=worker.access)
            )["node"]
            return True if node["escrow"]["status"] == "RELEASED" else None

        await until(released)
        assert await available(client, worker) == BOOKING_SHARE
        withdrawal = await withdraw(client, worker, BOOKING_SHARE)
        settled = await settled_withdrawal(client, worker, withdrawal["id"])
        assert settled["status"] == "PAID", settled
