"""Helpers for the marketplace tests: people with roles, tasks and offers over GraphQL."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId

from resolvers.accounts.admin import create_admin
from resolvers.common.services import RequestMeta
from server.runtime import Runtime
from tests.support.graphql_client import STRONG_PASSWORD, GraphQLClient, Tokens

SYDNEY = {"latitude": -33.8688, "longitude": 151.2093}
ADDRESS = {
    "line1": "1 George St",
    "city": "Sydney",
    "region": "NSW",
    "postalCode": "2000",
    "country": "AU",
}

TASK_FIELDS = """task { id title status budget { amount currency } offerCount
  poster { id } assignedTasker { id } agreedPrice { amount currency } }"""
OFFER_FIELDS = "offer { id status amount { amount currency } direct }"


def object_id(global_id: str) -> ObjectId:
    """The database id inside a global id."""
    return ObjectId(base64.b64decode(global_id).decode().split(":", 1)[1])


def aud(amount: int) -> dict[str, Any]:
    return {"amount": amount, "currency": "AUD"}


def place(
    latitude: float = SYDNEY["latitude"], longitude: float = SYDNEY["longitude"]
) -> dict[str, Any]:
    return {"latitude": latitude, "longitude": longitude, "address": ADDRESS}


def task_input(**changes: Any) -> dict[str, Any]:
    due = (datetime.now(UTC) + timedelta(days=3)).isoformat()
    return {
        "title": "Mow the back lawn",
        "description": "About 200 square metres, mower provided.",
        "category": "gardening",
        "budget": aud(12000),
        "location": place(),
        "dueAt": due,
        **changes,
    }


async def poster(client: GraphQLClient, email: str) -> Tokens:
    return await client.member(email, roles=("POSTER",))


async def tasker(client: GraphQLClient, email: str) -> Tokens:
    return await client.member(email, roles=("TASKER",))


async def post_task(client: GraphQLClient, who: Tokens, **changes: Any) -> dict[str, Any]:
    payload = await client.mutate("postTask", task_input(**changes), TASK_FIELDS, token=who.access)
    assert payload["errors"] == [], payload
    task: dict[str, Any] = payload["task"]
    return task


async def make_offer(
    client: GraphQLClient, who: Tokens, task_id: str, amount: int = 11000
) -> dict[str, Any]:
    payload = await client.mutate(
        "makeOffer",
        {"taskId": task_id, "amount": aud(amount), "message": "I can do it this week."},
        OFFER_FIELDS,
        token=who.access,
    )
    assert payload["errors"] == [], payload
    offer: dict[str, Any] = payload["offer"]
    return offer


async def logged_in_admin(client: GraphQLClient, runtime: Runtime) -> Tokens:
    """An administrator (made as `gigql create-admin` makes one), logged in."""
    await create_admin(
        runtime.services,
        RequestMeta(),
        name="Root",
        email="root@example.com",
        password=STRONG_PASSWORD,
    )
    return await client.login("root@example.com")
