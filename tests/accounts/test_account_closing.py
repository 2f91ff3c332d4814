"""Deleting an account ends what has not become a deal (notifying the other side) and is
refused, changing nothing, while a deal is in progress or money is due to the person."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar

from documents.accounts.users import User, UserStatus
from documents.money import Money, minor_unit_exponent
from documents.payments.currencies import CHARGEABLE_CURRENCIES
from server.runtime import Runtime
from tests.support.bookings import act, book, booked, create_package, provider
from tests.support.graphql_client import STRONG_PASSWORD, GraphQLClient, Tokens, error_codes
from tests.support.marketplace import aud, make_offer, object_id, post_task, poster, tasker
from tests.support.payments.escrow import assigned_task, onboard, sandbox_pay, task_escrow
from tests.support.payments.wallets import fund
from tests.support.reviews import confirmed_booking

T = TypeVar("T")
NOTIFICATIONS = """{ myNotifications { edges { node { kind offer { id } task { id }
  booking { id } } } } }"""
STATUS = """query($id: ID!) { node(id: $id) { ... on Task { taskStatus: status offerCount }
  ... on Offer { offerStatus: status } ... on Booking { bookingStatus: status } } }"""


async def delete(client: GraphQLClient, who: Tokens) -> dict[str, Any]:
    return await client.mutate(
        "deleteMyAccount", {"password": STRONG_PASSWORD}, "deletedUserId", token=who.access
    )


async def deleted(client: GraphQLClient, who: Tokens) -> None:
    payload = await delete(client, who)
    assert payload["errors"] == [] and payload["deletedUserId"] == who.user_id, payload


async def status_of(client: GraphQLClient, who: Tokens, node_id: str) -> dict[str, Any]:
    """{"status": ...} of a task (with its "offerCount"), offer or booking."""
    node = (await client.data(STATUS, {"id": node_id}, token=who.access))["node"]
    return {("status" if key.endswith("Status") else key): value for key, value in node.items()}


async def told(client: GraphQLClient, who: Tokens) -> list[tuple[str, str | None]]:
    """The kinds of the person's notifications, with the offer, task or booking of each."""
    edges = (await client.data(NOTIFICATIONS, token=who.access))["myNotifications"]["edges"]
    return [
        (
            node["kind"],
            next((node[k]["id"] for k in ("offer", "booking", "task") if node[k]), None),
        )
        for node in (edge["node"] for edge in edges)
    ]


async def account_status(who: Tokens) -> UserStatus:
    user = await User.get(object_id(who.user_id))
    assert user is not None
    return user.status


def next_week_at_ten() -> str:
    day = date.today() + timedelta(days=7)
    return datetime(day.year, day.month, day.day, 10, tzinfo=UTC).isoformat()


async def test_a_taskers_offers_are_withdrawn_and_direct_offers_to_them_declined(
    client: GraphQLClient,
) -> None:
    ann = await poster(client, "ann@example.com")
    bob = await poster(client, "bob@example.com")
    tom = await tasker(client, "tom@example.com")
    task = await post_task(client, ann)
    offer = await make_offer(client, tom, task["id"])
    hire_task = await post_task(client, bob)
    direct = await client.mutate(
        "sendDirectOffer",
        {
            "taskId": hire_task["id"],
            "taskerId": tom.user_id,
            "amount": aud(9000),
            "message": "Could you do this one?",
        },
        "offer { id }",
        token=bob.access,
    )
    assert direct["errors"] == [], direct
    direct_id = direct["offer"]["id"]

    await deleted(client, tom)

    assert await status_of(client, ann, offer["id"]) == {"status": "WITHDRAWN"}
    assert await status_of(client, ann, task["id"]) == {"status": "OPEN", "offerCount": 0}
    assert ("OFFER_WITHDRAWN", offer["id"]) in await told(client, ann)
    assert await status_of(client, bob, direct_id) == {"status": "REJECTED"}
    assert ("OFFER_REJECTED", direct_id) in await told(client, bob)
    assert (await status_of(client, bob, hire_task["id"]))["status"] == "OPEN"


async def test_a_posters_open_tasks_are_cancelled_declining_every_offer_on_them(
    client: GraphQLClient,
) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    una = await tasker(client, "una@example.com")
    zed = await tasker(client, "zed@example.com")
    task = await post_task(client, ann)
    offers = [await make_offer(client, who, task["id"]) for who in (tom, una)]
    hire_task = await post_task(client, ann, title="Paint the fence")
    direct = await client.mutate(
        "sendDirectOffer",
        {
            "taskId": hire_task["id"],
            "taskerId": zed.user_id,
            "amount": aud(9000),
            "message": "Could you do this one?",
        },
        "offer { id }",
        token=ann.access,
    )
    direct_id = direct["offer"]["id"]

    await deleted(client, ann)

    for who, offer in zip((tom, una), offers, strict=True):
        assert await status_of(client, who, offer["id"]) == {"status": "REJECTED"}
        assert ("OFFER_REJECTED", offer["id"]) in await told(client, who)
        assert ("TASK_STATUS_CHANGED", task["id"]) in await told(client, who)
    assert await status_of(client, zed, direct_id) == {"status": "WITHDRAWN"}
    assert ("OFFER_WITHDRAWN", direct_id) in await told(client, zed)
    searched = await client.data("{ tasks { edges { node { id } } } }")
    assert searched["tasks"]["edges"] == []  # neither task is open any more


async def test_pending_booking_requests_are_cancelled_by_the_customer_or_declined_by_the_provider(
    client: GraphQLClient,
) -> None:
    vic = await provider(client, "vic@example.com")
    wes = await provider(client, "wes@example.com")
    cat = await client.member("cat@example.com", roles=("POSTER",))
    dan = await client.member("dan@example.com", roles=("POSTER",))
    start = next_week_at_ten()
    requested = await booked(client, cat, (await create_package(client, vic))["id"], start)
    wes_package = await create_package(client, wes)
    to_decline = await booked(client, dan, wes_package["id"], start)

    await deleted(client, cat)
    assert await status_of(client, vic, requested["id"]) == {"status": "CANCELLED"}
    assert ("BOOKING_CANCELLED", requested["id"]) in await told(client, vic)

    await deleted(client, wes)
    assert await status_of(client, dan, to_decline["id"]) == {"status": "CANCELLED"}
    assert ("BOOKING_REJECTED", to_decline["id"]) in await told(client, dan)


async def test_deals_in_progress_refuse_the_deletion_and_nothing_changes(
    client: GraphQLClient,
) -> None:
    deal = await assigned_task(client)
    other_task = await post_task(client, deal.poster, title="Paint the fence")
    pending = await make_offer(client, deal.tasker, other_task["id"])
    vic = await provider(client, "vic@example.com")
    cat = await client.member("cat@example.com", roles=("POSTER",))
    await confirmed_booking(client, cat, vic)

    for who in (deal.poster, deal.tasker, vic, cat):
        refused = await delete(client, who)
        assert error_codes(refused) == ["DEALS_IN_PROGRESS"], refused
        assert refused["deletedUserId"] is None
        assert await account_status(who) is UserStatus.ACTIVE
    tasks_message = (await delete(client, deal.tasker))["errors"][0]["message"]
    assert "Mow the back lawn" in tasks_message and "assigned" in tasks_message
    booking_message = (await delete(client, cat))["errors"][0]["message"]
    assert "Deep clean" in booking_message and "confirmed" in booking_message
    # Nothing was wound down either.
    assert await status_of(client, deal.tasker, pending["id"]) == {"status": "PENDING"}
    assert (await status_of(client, deal.poster, other_task["id"]))["status"] == "OPEN"


async def test_money_due_to_a_provider_refuses_the_deletion(
    client: GraphQLClient, runtime: Runtime
) -> None:
    deal = await assigned_task(client)
    escrow = await task_escrow(client, deal.poster, deal.task_id)
    assert escrow is not None
    assert (await sandbox_pay(client, deal.poster, escrow["id"]))["errors"] == []
    for name, who in (
        ("startTask", deal.tasker),
        ("submitTask", deal.tasker),
        ("completeTask", deal.poster),
    ):
        assert (await client.mutate(name, {"taskId": deal.task_id}, token=who.access))[
            "errors"
        ] == []
    # No payout account: the release waits for it.
    refused = await delete(client, deal.tasker)
    assert error_codes(refused) == ["DEALS_IN_PROGRESS"]
    assert "releasing" in refused["errors"][0]["message"]
    await deleted(client, deal.poster)  # the payer owes nothing more

    await onboard(client, runtime, deal.tasker)  # released into the wallet
    refused = await delete(client, deal.tasker)
    assert [e["message"] for e in refused["errors"]] == [
        "Your wallet holds 99.00 AUD: withdraw it first."
    ]
    assert await account_status(deal.tasker) is UserStatus.ACTIVE


async def test_a_wallet_balance_is_listed_with_the_deals(client: GraphQLClient) -> None:
    tom = await tasker(client, "tom@example.com")
    await fund(tom, Money(amount=2500, currency="USD"))
    refused = await delete(client, tom)
    assert error_codes(refused) == ["DEALS_IN_PROGRESS"]
    assert refused["errors"][0]["message"] == "Your wallet holds 25.00 USD: withdraw it first."


async def test_a_refusal_lists_a_bounded_number_of_items(client: GraphQLClient) -> None:
    tom = await tasker(client, "tom@example.com")
    codes = [code for code in CHARGEABLE_CURRENCIES if minor_unit_exponent(code) is not None]
    for code in codes[:22]:  # a wallet balance in each
        await fund(tom, Money(amount=5000, currency=code))
    refused = await delete(client, tom)
    assert error_codes(refused) == ["DEALS_IN_PROGRESS"] * 21
    assert refused["errors"][-1]["message"] == "And more besides."


async def later(attempt: int, step: Awaitable[T]) -> T:
    """`step`, a few milliseconds later each attempt: the deletion checks its password
    first, so each attempt meets it at another of its steps."""
    await asyncio.sleep(attempt * 0.008)
    return await step


async def test_an_offer_accepted_while_its_tasker_leaves_is_either_a_deal_or_withdrawn(
    client: GraphQLClient,
) -> None:
    """Accepting races with the tasker's deletion: either the deal is made and the
    deletion refused, or the offer is withdrawn and the acceptance refused; never a
    deleted account with a task assigned to it."""
    ann = await poster(client, "ann@example.com")
    for attempt in range(6):
        tom = await tasker(client, f"tom{attempt}@example.com")
        task = await post_task(client, ann)
        offer = await make_offer(client, tom, task["id"])
        accepted, deletion = await asyncio.gather(
            later(
                attempt,
                client.mutate(
                    "acceptOffer", {"offerId": offer["id"]}, "offer { status }", token=ann.access
                ),
            ),
            delete(client, tom),
        )
        task_status = (await status_of(client, ann, task["id"]))["status"]
        if accepted["errors"] == []:
            assert error_codes(deletion) == ["DEALS_IN_PROGRESS"], deletion
            assert task_status == "ASSIGNED"
            assert await account_status(tom) is UserStatus.ACTIVE
        else:
            assert error_codes(accepted) == ["INVALID_STATE"] and deletion["errors"] == []
            assert task_status == "OPEN"
            assert await account_status(tom) is UserStatus.DELETED


async def test_a_booking_confirmed_while_its_customer_leaves_is_either_a_deal_or_cancelled(
    client: GraphQLClient,
) -> None:
    vic = await provider(client, "vic@example.com")
    package = await create_package(client, vic)
    day = date.today() + timedelta(days=7)
    for attempt in range(6):
        cat = await client.member(f"cat{attempt}@example.com", roles=("POSTER",))
        start = datetime(day.year, day.month, day.day, 2 * attempt + 8, tzinfo=UTC).isoformat()
        requested = await book(client, cat, package["id"], start)
        assert requested["errors"] == [], requested
        booking_id = requested["booking"]["id"]
        confirmed, deletion = await asyncio.gather(
            later(attempt, act(client, "confirmBooking", vic, booking_id)), delete(client, cat)
        )
        status = (await status_of(client, vic, booking_id))["status"]
        if confirmed["errors"] == []:
            assert error_codes(deletion) == ["DEALS_IN_PROGRESS"], deletion
            assert status == "CONFIRMED"
            assert await account_status(cat) is UserStatus.ACTIVE
        else:
            assert error_codes(confirmed) == ["INVALID_STATE"] and deletion["errors"] == []
            assert status == "CANCELLED"
            assert await account_status(cat) is UserStatus.DELETED
