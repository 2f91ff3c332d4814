"""Deals move only when the money and the clock allow: work waits for the payment, an
unpaid deal lapses, a tasker may step back before work, a booking starts near its time
and leaves the customer a window, and an offer is accepted as it was shown."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from documents.clock import utcnow
from documents.events import DomainEvent, EventKind
from documents.marketplace.bookings import Booking, BookingStatus
from documents.marketplace.offers import Offer, OfferStatus
from documents.marketplace.tasks import Task, TaskStatus
from documents.payments.escrow import Escrow, EscrowStatus
from resolvers.marketplace.lapses import lapse_unpaid_deals
from server.runtime import Runtime
from tests.payments.escrow.test_escrow_bookings import slot_after
from tests.support.bookings import act, booked, create_package, midday_zone, provider
from tests.support.graphql_client import GraphQLClient, Tokens, error_codes
from tests.support.marketplace import aud, make_offer, object_id
from tests.support.payments.escrow import (
    assert_ledger_clean,
    assigned_task,
    booking_escrow,
    pay_booking,
    pay_task,
    sandbox,
    stored_escrow,
    task_escrow,
)

TASK_STATUS = "query($id: ID!) { node(id: $id) { ... on Task { status offerCount } } }"


async def task_status(client: GraphQLClient, who: Tokens, task_id: str) -> str:
    data = await client.data(TASK_STATUS, {"id": task_id}, token=who.access)
    status: str = data["node"]["status"]
    return status


# -- work waits for the money --------------------------------------------------------


async def test_unpaid_work_is_neither_started_handed_in_nor_accepted(
    client: GraphQLClient,
) -> None:
    deal = await assigned_task(client)
    started = await client.mutate("startTask", {"taskId": deal.task_id}, token=deal.tasker.access)
    assert error_codes(started) == ["PAYMENT_REQUIRED"]
    assert started["errors"][0]["field"] == "taskId"
    assert await task_status(client, deal.poster, deal.task_id) == "ASSIGNED"
    # Nothing held: nothing to dispute either.
    disputed = await client.mutate(
        "openDispute",
        {"dealId": deal.task_id, "reason": "Never came", "evidenceUrls": []},
        token=deal.poster.access,
    )
    assert error_codes(disputed) == ["INVALID_STATE"]
    await pay_task(client, deal.poster, deal.task_id)
    for name, who in (("startTask", deal.tasker), ("submitTask", deal.tasker)):
        moved = await client.mutate(name, {"taskId": deal.task_id}, token=who.access)
        assert moved["errors"] == [], moved


# -- payment deadlines ---------------------------------------------------------------


async def test_an_accepted_offer_left_unpaid_lapses_once_and_the_task_reopens(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal = await assigned_task(client)
    escrow = await task_escrow(client, deal.poster, deal.task_id)
    assert escrow is not None
    stored = await stored_escrow(escrow["id"])
    assert stored.pay_by is not None
    deadline = runtime.services.settings.payment_deadline
    assert abs(stored.pay_by - stored.created_at - deadline) < timedelta(seconds=5)
    assert await lapse_unpaid_deals(runtime.services) == 0  # not yet

    # Every instance runs the job: racing runs lapse the deal exactly once.
    later = utcnow() + deadline + timedelta(minutes=1)
    runs = await asyncio.gather(*(lapse_unpaid_deals(runtime.services, later) for _ in range(4)))
    assert sum(runs) == 1
    await sandbox(runtime).drain()

    task = await Task.get(object_id(deal.task_id))
    assert task is not None and task.status is TaskStatus.OPEN and task.deal_round == 2
    assert task.assigned_tasker_id is None and task.accepted_offer_id is None
    offer = await Offer.get(object_id(deal.offer_id))
    assert offer is not None and offer.status is OfferStatus.WITHDRAWN
    lapsed = await stored_escrow(escrow["id"])
    assert lapsed.status is EscrowStatus.FAILED
    intent = await runtime.services.payments.retrieve_payment_intent(lapsed.payment_intent_id or "")
    assert intent.status == "canceled"
    reopened = await DomainEvent.find(
        DomainEvent.kind == EventKind.TASK_STATUS_CHANGED, DomainEvent.task_id == task.id
    ).to_list()
    assert [(e.data.get("status"), set(e.audience)) for e in reopened][-1] == (
        "open",
        {object_id(deal.poster.user_id), object_id(deal.tasker.user_id)},
    )

    # Open again: a new offer is accepted and paid in a deal of its own.
    again = await make_offer(client, deal.tasker, deal.task_id, 9000)
    accepted = await client.mutate(
        "acceptOffer", {"offerId": again["id"]}, token=deal.poster.access
    )
    assert accepted["errors"] == [], accepted
    await pay_task(client, deal.poster, deal.task_id)
    second = await task_escrow(client, deal.poster, deal.task_id)
    assert second is not None and second["id"] != escrow["id"]
    assert second["fees"]["price"]["amount"] == 9000
    await assert_ledger_clean()


async def test_a_confirmed_booking_left_unpaid_lapses_before_its_notice(
    client: GraphQLClient, runtime: Runtime
) -> None:
    worker = await provider(client, "provider@example.com")
    package = await create_package(client, worker)
    customer = await client.member("customer@example.com")
    start = await slot_after(client, worker, package["id"], 5)  # sooner than a day away
    booking = await booked(client, customer, package["id"], start)
    assert (await act(client, "confirmBooking", worker, booking["id"]))["errors"] == []
    escrow = await booking_escrow(client, customer, booking["id"])
    assert escrow is not None
    stored = await stored_escrow(escrow["id"])
    notice = timedelta(minutes=runtime.services.settings.booking_min_notice_minutes)
    begins = (await Booking.get(object_id(booking["id"]))).start_at  # type: ignore[union-attr]
    assert stored.pay_by == begins - notice  # not a full payment deadline away

    assert await lapse_unpaid_deals(runtime.services, begins - notice) == 1
    await sandbox(runtime).drain()
    lapsed = await Booking.get(object_id(booking["id"]))
    assert lapsed is not None and lapsed.status is BookingStatus.CANCELLED
    assert lapsed.cancellation is not None and lapsed.cancellation.by is None
    assert (await stored_escrow(escrow["id"])).status is EscrowStatus.FAILED
    # The time is free again for anyone.
    rebooked = await booked(client, customer, package["id"], start)
    assert rebooked["status"] == "PENDING"


async def test_a_paid_deal_never_lapses(client: GraphQLClient, runtime: Runtime) -> None:
    deal = await assigned_task(client)
    await pay_task(client, deal.poster, deal.task_id)
    far = utcnow() + timedelta(days=30)
    assert await lapse_unpaid_deals(runtime.services, far) == 0
    assert await task_status(client, deal.poster, deal.task_id) == "ASSIGNED"


# -- a tasker steps back -------------------------------------------------------------


async def test_a_tasker_steps_back_before_work_and_the_poster_is_refunded(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal = await assigned_task(client)
    await pay_task(client, deal.poster, deal.task_id)
    escrow = await task_escrow(client, deal.poster, deal.task_id)
    assert escrow is not None
    step_back = {"taskId": deal.task_id, "reason": "I am ill this week."}
    refused = await client.mutate("stepBackFromTask", step_back, token=deal.poster.access)
    assert error_codes(refused) == ["FORBIDDEN"]

    stepped = await client.mutate(
        "stepBackFromTask", step_back, "task { status }", token=deal.tasker.access
    )
    assert stepped["errors"] == [] and stepped["task"]["status"] == "OPEN", stepped
    await sandbox(runtime).drain()
    refunded = await stored_escrow(escrow["id"])
    assert refunded.status is EscrowStatus.REFUNDED
    assert refunded.refunded == refunded.fees.charged
    profile = await client.data(
        "query($id: ID!) { node(id: $id) { ... on User { providerProfile { cancellationCount } } } }",
        {"id": deal.tasker.user_id},
    )
    assert profile["node"]["providerProfile"] == {"cancellationCount": 1}
    await assert_ledger_clean()


async def test_once_work_has_started_the_tasker_cannot_step_back(client: GraphQLClient) -> None:
    deal = await assigned_task(client)
    await pay_task(client, deal.poster, deal.task_id)
    assert (await client.mutate("startTask", {"taskId": deal.task_id}, token=deal.tasker.access))[
        "errors"
    ] == []
    stepped = await client.mutate(
        "stepBackFromTask",
        {"taskId": deal.task_id, "reason": "Too hard after all."},
        token=deal.tasker.access,
    )
    assert error_codes(stepped) == ["INVALID_STATE"]


# -- bookings and the clock ----------------------------------------------------------


async def test_a_booking_starts_near_its_time_and_the_customer_may_object_after(
    client: GraphQLClient, runtime: Runtime
) -> None:
    worker = await provider(client, "provider@example.com", time_zone=midday_zone())
    package = await create_package(client, worker)
    customer = await client.member("customer@example.com")
    later = await booked(
        client, customer, package["id"], await slot_after(client, worker, package["id"], 96)
    )
    soon = await booked(
        client, customer, package["id"], await slot_after(client, worker, package["id"], 1.5)
    )
    for booking in (later, soon):
        assert (await act(client, "confirmBooking", worker, booking["id"]))["errors"] == []
        await pay_booking(client, customer, booking["id"])

    # Paid, four days ahead: it cannot be started (so nor completed) today.
    early = await act(client, "startBooking", worker, later["id"])
    assert error_codes(early) == ["TOO_EARLY"]
    assert error_codes(await act(client, "completeBooking", worker, later["id"])) == [
        "INVALID_STATE"
    ]

    for step in ("startBooking", "completeBooking"):
        assert (await act(client, step, worker, soon["id"]))["errors"] == [], step
    await sandbox(runtime).drain()
    escrow = await booking_escrow(client, customer, soon["id"])
    assert escrow is not None and escrow["status"] == "HELD"  # the customer's window
    disputed = await client.mutate(
        "openDispute",
        {"dealId": soon["id"], "reason": "Half the rooms were not cleaned.", "evidenceUrls": []},
        token=customer.access,
    )
    assert disputed["errors"] == [], disputed
    frozen = await stored_escrow(escrow["id"])
    assert frozen.status is EscrowStatus.DISPUTED


# -- accepting what was shown ----------------------------------------------------------


async def test_an_offer_changed_meanwhile_is_not_accepted(client: GraphQLClient) -> None:
    deal = await assigned_task(client, tag="-first")  # another task, to reuse the helpers
    task = await client.mutate(
        "postTask",
        {
            "title": "Clean the gutters",
            "description": "Two storeys, about thirty metres of gutter.",
            "category": "cleaning",
            "budget": aud(12000),
            "location": {
                "latitude": -33.87,
                "longitude": 151.21,
                "address": {"line1": "1 George St", "city": "Sydney", "country": "AU"},
            },
        },
        "task { id }",
        token=deal.poster.access,
    )
    assert task["errors"] == [], task
    task_id = task["task"]["id"]
    offer = await make_offer(client, deal.tasker, task_id, 9000)
    raised = await client.mutate(
        "updateOffer", {"offerId": offer["id"], "amount": aud(90000)}, token=deal.tasker.access
    )
    assert raised["errors"] == [], raised
    refused = await client.mutate(
        "acceptOffer",
        {"offerId": offer["id"], "expectedAmount": aud(9000)},
        token=deal.poster.access,
    )
    assert error_codes(refused) == ["OFFER_CHANGED"]
    assert await task_status(client, deal.poster, task_id) == "OPEN"


async def test_a_racing_update_never_splits_the_price_from_the_charge(
    client: GraphQLClient,
) -> None:
    """The poster accepts while the tasker raises the price: whichever wins, the task's
    agreed price is what its escrow charges for."""
    for attempt in range(6):
        deal = await assigned_task(client, tag=f"-{attempt}")
        task = await Task.get(object_id(deal.task_id))
        assert task is not None
        # A second task of the same poster, offered on and raced on.
        second = await client.mutate(
            "postTask",
            {
                "title": f"Paint the fence {attempt}",
                "description": "Twenty metres of timber fence, one coat.",
                "category": "painting",
                "budget": aud(12000),
                "location": {
                    "latitude": -33.87,
                    "longitude": 151.21,
                    "address": {"line1": "1 George St", "city": "Sydney", "country": "AU"},
                },
            },
            "task { id }",
            token=deal.poster.access,
        )
        task_id = second["task"]["id"]
        offer = await make_offer(client, deal.tasker, task_id, 9000)
        results: list[Any] = await asyncio.gather(
            client.mutate("acceptOffer", {"offerId": offer["id"]}, token=deal.poster.access),
            client.mutate(
                "updateOffer",
                {"offerId": offer["id"], "amount": aud(90000)},
                token=deal.tasker.access,
            ),
        )
        if results[0]["errors"]:
            continue  # the update won; nothing was agreed
        agreed = await Task.get(object_id(task_id))
        escrow = await Escrow.find_one({"task_id": object_id(task_id)})
        assert agreed is not None and escrow is not None and agreed.agreed_price is not None
        assert agreed.agreed_price == escrow.fees.price, (attempt, agreed.agreed_price)
