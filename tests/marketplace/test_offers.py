"""Offers: the rules for making them, deciding on them, and the race to accept."""

from __future__ import annotations

import asyncio

from documents.events import DomainEvent, EventKind, Notification
from documents.marketplace.offers import Offer, OfferStatus
from documents.marketplace.tasks import Task, TaskStatus
from tests.support.graphql_client import GraphQLClient, error_codes
from tests.support.marketplace import (
    OFFER_FIELDS,
    aud,
    make_offer,
    object_id,
    post_task,
    poster,
    tasker,
)

OFFERS = """query($id: ID!) { node(id: $id) { ... on Task { offerCount
  offers { edges { node { id status tasker { id } amount { amount } } } }
  myOffer { id status } } } }"""


async def test_a_tasker_makes_one_live_offer_per_task(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    task = await post_task(client, ann)
    offer = await make_offer(client, tom, task["id"])
    assert offer["status"] == "PENDING" and offer["amount"] == {"amount": 11000, "currency": "AUD"}

    again = await client.mutate(
        "makeOffer",
        {"taskId": task["id"], "amount": aud(9000), "message": "cheaper"},
        OFFER_FIELDS,
        token=tom.access,
    )
    assert error_codes(again) == ["ALREADY_EXISTS"]
    # Withdrawn, a new offer may be made.
    await client.mutate("withdrawOffer", {"offerId": offer["id"]}, token=tom.access)
    await make_offer(client, tom, task["id"], amount=9000)
    stored = await Task.find_one()
    assert stored is not None and stored.offer_count == 1
    assert await Notification.find(Notification.kind == EventKind.OFFER_RECEIVED).count() == 2


async def test_concurrent_duplicate_offers_leave_one(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    task = await post_task(client, ann)
    payloads = await asyncio.gather(
        *(
            client.mutate(
                "makeOffer",
                {"taskId": task["id"], "amount": aud(100 + i), "message": "me"},
                token=tom.access,
            )
            for i in range(8)
        )
    )
    assert sum(1 for p in payloads if not p["errors"]) == 1
    assert {code for p in payloads for code in error_codes(p)} == {"ALREADY_EXISTS"}
    assert await Offer.count() == 1
    stored = await Task.find_one()
    assert stored is not None and stored.offer_count == 1


async def test_offer_rules(client: GraphQLClient) -> None:
    ann = await client.member("ann@example.com", roles=("POSTER", "TASKER"))
    bob = await poster(client, "bob@example.com")
    tom = await tasker(client, "tom@example.com")
    task = await post_task(client, ann)

    def offer_input(**changes: object) -> dict[str, object]:
        return {"taskId": task["id"], "amount": aud(5000), "message": "Happy to help", **changes}

    assert error_codes(await client.mutate("makeOffer", offer_input(), token=ann.access)) == [
        "FORBIDDEN"
    ]  # own task
    assert error_codes(await client.mutate("makeOffer", offer_input(), token=bob.access)) == [
        "FORBIDDEN"
    ]  # no tasker role
    usd = await client.mutate(
        "makeOffer", offer_input(amount={"amount": 5000, "currency": "USD"}), token=tom.access
    )
    assert error_codes(usd) == ["INVALID_INPUT"] and usd["errors"][0]["field"] == "amount"
    assert error_codes(
        await client.mutate("makeOffer", offer_input(amount=aud(0)), token=tom.access)
    ) == ["INVALID_INPUT"]
    assert error_codes(
        await client.mutate("makeOffer", offer_input(message=" " * 3), token=tom.access)
    ) == ["INVALID_INPUT"]
    assert error_codes(
        await client.mutate("makeOffer", offer_input(message="x" * 2001), token=tom.access)
    ) == ["INVALID_INPUT"]
    await client.mutate(
        "cancelTask", {"taskId": task["id"], "reason": "not needed"}, token=ann.access
    )
    assert error_codes(await client.mutate("makeOffer", offer_input(), token=tom.access)) == [
        "INVALID_STATE"
    ]
    assert await Offer.count() == 0


async def test_accepting_assigns_the_task_and_rejects_the_rest(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    taskers = [await tasker(client, f"t{i}@example.com") for i in range(3)]
    task = await post_task(client, ann)
    offers = [
        await make_offer(client, t, task["id"], amount=10000 + i) for i, t in enumerate(taskers)
    ]

    wrong = await client.mutate(
        "acceptOffer", {"offerId": offers[1]["id"]}, token=taskers[1].access
    )
    assert error_codes(wrong) == ["FORBIDDEN"]
    payload = await client.mutate(
        "acceptOffer",
        {"offerId": offers[1]["id"]},
        f"{OFFER_FIELDS} task {{ status assignedTasker {{ id }} }}",
        token=ann.access,
    )
    assert payload["offer"]["status"] == "ACCEPTED"
    assert payload["task"] == {"status": "ASSIGNED", "assignedTasker": {"id": taskers[1].user_id}}
    statuses = {o.tasker_id: o.status for o in await Offer.find_all().to_list()}
    assert sorted(statuses.values()) == [
        OfferStatus.ACCEPTED,
        OfferStatus.REJECTED,
        OfferStatus.REJECTED,
    ]
    kinds = [e.kind for e in await DomainEvent.find(DomainEvent.task_id != None).to_list()]  # noqa: E711
    assert kinds.count(EventKind.OFFER_ACCEPTED) == 1 and kinds.count(EventKind.OFFER_REJECTED) == 2
    assert kinds.count(EventKind.TASK_STATUS_CHANGED) == 1
    told = {
        n.user_id
        for n in await Notification.find(Notification.kind == EventKind.OFFER_REJECTED).to_list()
    }
    assert told == {object_id(taskers[0].user_id), object_id(taskers[2].user_id)}
    again = await client.mutate("acceptOffer", {"offerId": offers[0]["id"]}, token=ann.access)
    assert error_codes(again) == ["INVALID_STATE"]


async def test_concurrent_accepts_on_one_task_have_exactly_one_winner(
    client: GraphQLClient,
) -> None:
    ann = await poster(client, "ann@example.com")
    taskers = [await tasker(client, f"racer{i}@example.com") for i in range(10)]
    task = await post_task(client, ann)
    offers = [await make_offer(client, t, task["id"]) for t in taskers]

    payloads = await asyncio.gather(
        *(
            client.mutate("acceptOffer", {"offerId": o["id"]}, OFFER_FIELDS, token=ann.access)
            for o in offers
        )
    )
    winners = [p for p in payloads if not p["errors"]]
    assert len(winners) == 1
    assert all(error_codes(p) == ["INVALID_STATE"] for p in payloads if p["errors"])

    stored = await Task.find_one()
    assert stored is not None and stored.status is TaskStatus.ASSIGNED
    accepted = await Offer.find(Offer.status == OfferStatus.ACCEPTED).to_list()
    assert len(accepted) == 1 and accepted[0].id == stored.accepted_offer_id
    assert str(accepted[0].tasker_id) == str(stored.assigned_tasker_id)
    assert await Offer.find(Offer.status == OfferStatus.REJECTED).count() == 9
    assert await DomainEvent.find(DomainEvent.kind == EventKind.OFFER_ACCEPTED).count() == 1


async def test_update_withdraw_and_reject(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    sue = await tasker(client, "sue@example.com")
    task = await post_task(client, ann)
    offer = await make_offer(client, tom, task["id"])

    changed = await client.mutate(
        "updateOffer", {"offerId": offer["id"], "amount": aud(9500)}, OFFER_FIELDS, token=tom.access
    )
    assert changed["offer"]["amount"]["amount"] == 9500
    # Someone who is neither side does not even learn that the offer exists.
    assert error_codes(
        await client.mutate("withdrawOffer", {"offerId": offer["id"]}, token=sue.access)
    ) == ["NOT_FOUND"]
    assert error_codes(
        await client.mutate("withdrawOffer", {"offerId": offer["id"]}, token=ann.access)
    ) == ["FORBIDDEN"]
    rejected = await client.mutate(
        "rejectOffer",
        {"offerId": offer["id"], "reason": "Too far away"},
        OFFER_FIELDS,
        token=ann.access,
    )
    assert rejected["offer"]["status"] == "REJECTED"
    assert error_codes(
        await client.mutate("withdrawOffer", {"offerId": offer["id"]}, token=tom.access)
    ) == ["INVALID_STATE"]
    assert error_codes(
        await client.mutate(
            "updateOffer", {"offerId": offer["id"], "message": "pls"}, token=tom.access
        )
    ) == ["INVALID_STATE"]


async def test_direct_hire(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    bob = await poster(client, "bob@example.com")
    task = await post_task(client, ann)
    send = {
        "taskId": task["id"],
        "taskerId": tom.user_id,
        "amount": aud(15000),
        "message": "Would you do this?",
    }

    assert error_codes(
        await client.mutate("sendDirectOffer", {**send, "taskerId": bob.user_id}, token=ann.access)
    ) == ["NOT_FOUND"]
    assert error_codes(await client.mutate("sendDirectOffer", send, token=bob.access)) == [
        "FORBIDDEN"
    ]
    offer = (await client.mutate("sendDirectOffer", send, OFFER_FIELDS, token=ann.access))["offer"]
    assert offer["direct"] is True

    # The poster cannot accept their own offer; the tasker decides.
    assert error_codes(
        await client.mutate("acceptOffer", {"offerId": offer["id"]}, token=ann.access)
    ) == ["FORBIDDEN"]
    inbox = await client.data("{ myOffers { edges { node { id direct } } } }", token=tom.access)
    assert inbox["myOffers"]["edges"][0]["node"] == {"id": offer["id"], "direct": True}
    accepted = await client.mutate(
        "acceptOffer",
        {"offerId": offer["id"]},
        "task { status assignedTasker { id } }",
        token=tom.access,
    )
    assert accepted["task"] == {"status": "ASSIGNED", "assignedTasker": {"id": tom.user_id}}


async def test_who_sees_which_offers(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    sue = await tasker(client, "sue@example.com")
    task = await post_task(client, ann)
    tom_offer = await make_offer(client, tom, task["id"])
    await make_offer(client, sue, task["id"])

    as_poster = (await client.data(OFFERS, {"id": task["id"]}, token=ann.access))["node"]
    assert (
        as_poster["offerCount"] == 2
        and len(as_poster["offers"]["edges"]) == 2
        and as_poster["myOffer"] is None
    )
    as_tom = (await client.data(OFFERS, {"id": task["id"]}, token=tom.access))["node"]
    assert [e["node"]["id"] for e in as_tom["offers"]["edges"]] == [tom_offer["id"]]
    assert as_tom["myOffer"] == {"id": tom_offer["id"], "status": "PENDING"}
    node = await client.data(
        "query($id: ID!) { node(id: $id) { id } }", {"id": tom_offer["id"]}, token=sue.access
    )
    assert node["node"] is None
