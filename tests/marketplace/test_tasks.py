"""Posting, editing and browsing tasks; their lifecycle; who may do what."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from documents.events import DomainEvent, EventKind, Notification
from documents.marketplace.tasks import Task
from tests.support.graphql_client import GraphQLClient, Tokens, error_codes, graphql_error_codes
from tests.support.marketplace import (
    TASK_FIELDS,
    aud,
    make_offer,
    place,
    post_task,
    poster,
    task_input,
    tasker,
)
from tests.support.payments.escrow import pay_task


async def test_posting_a_task_stores_it_open_with_its_words(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    task = await post_task(client, ann)
    assert task["status"] == "OPEN" and task["budget"] == {"amount": 12000, "currency": "AUD"}
    assert task["poster"]["id"] == ann.user_id and task["offerCount"] == 0
    stored = await Task.find_one()
    assert stored is not None and {"mow", "lawn", "gardening"} <= set(stored.keywords)
    assert await DomainEvent.find(DomainEvent.kind == EventKind.TASK_POSTED).count() == 1


async def test_only_posters_post_tasks(client: GraphQLClient) -> None:
    tom = await tasker(client, "tom@example.com")
    payload = await client.mutate("postTask", task_input(), TASK_FIELDS, token=tom.access)
    assert error_codes(payload) == ["FORBIDDEN"]
    assert await Task.count() == 0


async def test_bad_task_input_is_refused_and_nothing_stored(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    cases = {
        "budget": task_input(budget=aud(-5)),
        "budget ": task_input(budget={"amount": 100, "currency": "XYZ"}),
        "dueAt": task_input(dueAt=(datetime.now(UTC) - timedelta(hours=1)).isoformat()),
        "title": task_input(title="x" * 121),
        "description": task_input(description="short"),
        "category": task_input(category="astrology"),
        "imageUrls.0": task_input(imageUrls=["javascript:alert(1)"]),
        "location": task_input(location=place(latitude=95)),
    }
    for field, given in cases.items():
        payload = await client.mutate("postTask", given, TASK_FIELDS, token=ann.access)
        assert [e["field"] for e in payload["errors"]] == [field.strip()], (field, payload)
        assert error_codes(payload) == ["INVALID_INPUT"]
    assert await Task.count() == 0


async def test_editing_is_for_the_poster_while_open(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    bob = await poster(client, "bob@example.com")
    tom = await tasker(client, "tom@example.com")
    task = await post_task(client, ann)
    await make_offer(client, tom, task["id"])

    edited = await client.mutate(
        "updateTask",
        {"taskId": task["id"], "title": "Mow and edge the lawn", "dueAt": None},
        "task { title flexible dueAt }",
        token=ann.access,
    )
    assert edited["task"] == {"title": "Mow and edge the lawn", "flexible": True, "dueAt": None}
    foreign = await client.mutate(
        "updateTask", {"taskId": task["id"], "title": "Mine now"}, token=bob.access
    )
    assert error_codes(foreign) == ["FORBIDDEN"]
    currency = await client.mutate(
        "updateTask",
        {"taskId": task["id"], "budget": {"amount": 100, "currency": "USD"}},
        token=ann.access,
    )
    assert error_codes(currency) == ["INVALID_INPUT"]
    # The tasker with an offer hears about the edit.
    assert await Notification.find(Notification.kind == EventKind.TASK_UPDATED).count() == 1


async def test_the_full_lifecycle_and_its_guards(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    task = await post_task(client, ann)
    offer = await make_offer(client, tom, task["id"])

    async def act(name: str, who: Tokens, **extra: object) -> dict[str, Any]:
        return await client.mutate(
            name, {"taskId": task["id"], **extra}, "task { status }", token=who.access
        )

    assert error_codes(await act("startTask", tom)) == ["FORBIDDEN"]  # not assigned yet
    accepted = await client.mutate(
        "acceptOffer",
        {"offerId": offer["id"]},
        "task { status agreedPrice { amount } }",
        token=ann.access,
    )
    assert accepted["task"] == {"status": "ASSIGNED", "agreedPrice": {"amount": 11000}}
    assert error_codes(await act("completeTask", ann)) == ["INVALID_STATE"]
    assert error_codes(await act("startTask", ann)) == ["FORBIDDEN"]
    # Work waits for the money: nothing is started, handed in or accepted unpaid.
    assert error_codes(await act("startTask", tom)) == ["PAYMENT_REQUIRED"]
    await pay_task(client, ann, task["id"])
    assert (await act("startTask", tom))["task"] == {"status": "IN_PROGRESS"}
    assert (await act("submitTask", tom, note="Done, photos attached"))["task"] == {
        "status": "SUBMITTED"
    }
    assert error_codes(await act("requestChanges", ann, reason=" ")) == ["INVALID_INPUT"]
    assert (await act("requestChanges", ann, reason="Edges not trimmed"))["task"] == {
        "status": "IN_PROGRESS"
    }
    assert (await act("submitTask", tom))["task"] == {"status": "SUBMITTED"}
    assert error_codes(await act("completeTask", tom)) == ["FORBIDDEN"]
    assert (await act("completeTask", ann))["task"] == {"status": "COMPLETED"}
    assert error_codes(await act("cancelTask", ann, reason="changed my mind")) == ["INVALID_STATE"]

    history = (
        await client.data(
            "query($id: ID!) { node(id: $id) { ... on Task { history { status note by { id } } } } }",
            {"id": task["id"]},
            token=ann.access,
        )
    )["node"]["history"]
    assert [h["status"] for h in history] == [
        "OPEN",
        "ASSIGNED",
        "IN_PROGRESS",
        "SUBMITTED",
        "IN_PROGRESS",
        "SUBMITTED",
        "COMPLETED",
    ]
    assert history[4]["note"] == "Edges not trimmed" and history[4]["by"]["id"] == ann.user_id


async def test_disputes_and_cancellations(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    sue = await tasker(client, "sue@example.com")
    open_task = await post_task(client, ann)
    await make_offer(client, sue, open_task["id"])
    cancelled = await client.mutate(
        "cancelTask",
        {"taskId": open_task["id"], "reason": "Did it myself"},
        "task { status }",
        token=ann.access,
    )
    assert cancelled["task"]["status"] == "CANCELLED"
    offers = await client.data(
        "{ myOffers { edges { node { status rejectionReason } } } }", token=sue.access
    )
    assert offers["myOffers"]["edges"][0]["node"] == {
        "status": "REJECTED",
        "rejectionReason": "The task was cancelled.",
    }

    task = await post_task(client, ann)
    offer = await make_offer(client, tom, task["id"])
    await client.mutate("acceptOffer", {"offerId": offer["id"]}, token=ann.access)
    await client.mutate("startTask", {"taskId": task["id"]}, token=tom.access)
    # Nothing paid, nothing to dispute (tests/payments/escrow/test_disputes.py disputes paid work).
    unpaid = await client.mutate(
        "openDispute",
        {"dealId": task["id"], "reason": "Poster will not answer"},
        "dispute { id }",
        token=tom.access,
    )
    assert [e["code"] for e in unpaid["errors"]] == ["INVALID_STATE"]
    assert unpaid["dispute"] is None


async def test_exact_location_only_for_the_people_involved(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    sue = await tasker(client, "sue@example.com")
    task = await post_task(client, ann)
    query = "query($id: ID!) { node(id: $id) { ... on Task { area { point { latitude } city } place { address { line1 } } } } }"
    public = (await client.data(query, {"id": task["id"]}, token=tom.access))["node"]
    assert public["place"] is None and public["area"] == {
        "point": {"latitude": -33.87},
        "city": "Sydney",
    }
    offer = await make_offer(client, tom, task["id"])
    await client.mutate("acceptOffer", {"offerId": offer["id"]}, token=ann.access)
    assigned = (await client.data(query, {"id": task["id"]}, token=tom.access))["node"]
    assert assigned["place"] == {"address": {"line1": "1 George St"}}
    other = (await client.data(query, {"id": task["id"]}, token=sue.access))["node"]
    assert other["place"] is None


async def test_contacts_are_shared_once_an_offer_is_accepted(client: GraphQLClient) -> None:
    ann = await client.member("ann@example.com", roles=("POSTER",), phone="+61412345678")
    tom = await tasker(client, "tom@example.com")
    query = "query($id: ID!) { node(id: $id) { ... on User { email phone } } }"
    assert (await client.data(query, {"id": ann.user_id}, token=tom.access))["node"] == {
        "email": None,
        "phone": None,
    }
    task = await post_task(client, ann)
    offer = await make_offer(client, tom, task["id"])
    await client.mutate("acceptOffer", {"offerId": offer["id"]}, token=ann.access)
    assert (await client.data(query, {"id": ann.user_id}, token=tom.access))["node"] == {
        "email": "ann@example.com",
        "phone": "+61412345678",
    }
    assert (await client.data(query, {"id": tom.user_id}, token=ann.access))["node"][
        "email"
    ] == "tom@example.com"


async def test_ids_of_the_wrong_type_are_typed_errors(client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    payload = await client.mutate(
        "cancelTask", {"taskId": ann.user_id, "reason": "wrong id"}, token=ann.access
    )
    assert error_codes(payload) == ["INVALID_ID"]
    unknown = await client.mutate(
        "cancelTask",
        {"taskId": "VGFzazowMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDA=", "reason": "gone"},
        token=ann.access,
    )
    assert error_codes(unknown) == ["NOT_FOUND"]
    missing_fields = await client.execute(
        'mutation { postTask(input: {title: "x"}) { errors { code } } }'
    )
    assert set(graphql_error_codes(missing_fields)) == {"GRAPHQL_VALIDATION_FAILED"}
