"""Helpers for the review tests: completed tasks and bookings, and reviews of them."""

from __future__ import annotations

from typing import Any

from tests.support.bookings import act, booked, create_package, soonest_slot
from tests.support.graphql_client import GraphQLClient, Tokens
from tests.support.marketplace import make_offer, post_task
from tests.support.payments.escrow import pay_booking, pay_task

REVIEW_FIELDS = """review { id rating comment targetRole createdAt publishedAt published
  author { id } target { id } task { id } booking { id } }"""
RATINGS = """query($id: ID!) { node(id: $id) { ... on User {
  providerProfile { rating { average count } }
  customerProfile { rating { average count } } } } }"""
REVIEWS_OF = """query($id: ID!, $as: ReviewedAs, $first: Int, $after: String) {
  node(id: $id) { ... on User { reviews(as: $as, first: $first, after: $after) {
    edges { cursor node { id rating comment targetRole author { id } } }
    pageInfo { hasNextPage endCursor } } } } }"""


async def completed_task(client: GraphQLClient, poster: Tokens, tasker: Tokens) -> str:
    """A task of `poster` that `tasker` did, taken through every step to completed."""
    task = await post_task(client, poster)
    offer = await make_offer(client, tasker, task["id"])
    accepted = await client.mutate("acceptOffer", {"offerId": offer["id"]}, token=poster.access)
    assert accepted["errors"] == [], accepted
    await pay_task(client, poster, task["id"])
    steps = [
        ("startTask", tasker, {"taskId": task["id"]}),
        ("submitTask", tasker, {"taskId": task["id"]}),
        ("completeTask", poster, {"taskId": task["id"]}),
    ]
    for name, who, given in steps:
        assert (await client.mutate(name, given, token=who.access))["errors"] == [], name
    task_id: str = task["id"]
    return task_id


async def confirmed_booking(client: GraphQLClient, customer: Tokens, provider: Tokens) -> str:
    """A booking of a package of `provider` (who works every day), confirmed."""
    package = await create_package(client, provider)
    start = await soonest_slot(client, provider, package["id"])  # to be started now
    booking = await booked(client, customer, package["id"], start)
    assert (await act(client, "confirmBooking", provider, booking["id"]))["errors"] == []
    await pay_booking(client, customer, booking["id"])
    booking_id: str = booking["id"]
    return booking_id


async def complete_booking(client: GraphQLClient, provider: Tokens, booking_id: str) -> None:
    for step in ("startBooking", "completeBooking"):
        assert (await act(client, step, provider, booking_id))["errors"] == [], step


async def review(
    client: GraphQLClient, who: Tokens, subject_id: str, rating: int, comment: str | None = None
) -> dict[str, Any]:
    """The postReview payload, errors included."""
    return await client.mutate(
        "postReview",
        {"subjectId": subject_id, "rating": rating, "comment": comment},
        REVIEW_FIELDS,
        token=who.access,
    )


async def reviewed(
    client: GraphQLClient, who: Tokens, subject_id: str, rating: int, comment: str | None = None
) -> dict[str, Any]:
    """A review that must be accepted."""
    payload = await review(client, who, subject_id, rating, comment)
    assert payload["errors"] == [], payload
    posted: dict[str, Any] = payload["review"]
    return posted


async def ratings(client: GraphQLClient, user_id: str) -> dict[str, Any]:
    """The user's provider and customer ratings ({average, count}, or None without a profile)."""
    user = (await client.data(RATINGS, {"id": user_id}))["node"]
    return {
        side: user[f"{side}Profile"]["rating"] if user[f"{side}Profile"] else None
        for side in ("provider", "customer")
    }


async def reviews_of(
    client: GraphQLClient, user_id: str, token: str | None = None, **variables: Any
) -> dict[str, Any]:
    data = await client.data(REVIEWS_OF, {"id": user_id, **variables}, token=token)
    connection: dict[str, Any] = data["node"]["reviews"]
    return connection
