"""Automatic persisted queries in Apollo's protocol, over real HTTP and websockets: the
round trip Apollo Client's, urql's and graphql-request's links make, the hash check,
GET for cached queries, and what Redis holds for every instance."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import httpx
from redis.asyncio import Redis

from server.runtime import Runtime
from tests.conftest import serve
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import make_offer, post_task, poster, tasker
from tests.support.ws_client import LEGACY_WS, ws

QUERY = "query Settings { marketplaceSettings { categories } }"
MUTATION = 'mutation Out { logout(input: {refreshToken: "nope"}) { errors { code } } }'
NOT_FOUND_BODY = {
    "errors": [
        {"message": "PersistedQueryNotFound", "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}
    ]
}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def hashed(text: str, **fields: Any) -> dict[str, Any]:
    """What an APQ link sends: the hash in `extensions.persistedQuery`, and `fields`."""
    persisted = {"version": 1, "sha256Hash": sha256(text)}
    return {"extensions": {"persistedQuery": persisted}, **fields}


ACCEPT = {"Accept": "application/graphql-response+json, application/json"}
"""What the links send: `*/*` alone, from a browser's address bar, gets GraphiQL."""


def as_get(body: dict[str, Any]) -> dict[str, str]:
    """A body as GET parameters, JSON-encoded as Apollo's link encodes them."""
    return {
        name: value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        for name, value in body.items()
    }


async def test_the_round_trip_of_apollos_link(base_url: str) -> None:
    text = QUERY + " # round trip"
    async with httpx.AsyncClient(base_url=base_url) as http:
        missing = await http.post("/graphql", json=hashed(text, operationName="Settings"))
        assert missing.status_code == 200 and missing.json() == NOT_FOUND_BODY
        assert missing.headers["cache-control"] == "no-store"

        registered = await http.post(
            "/graphql", json=hashed(text, query=text, operationName="Settings")
        )
        assert registered.status_code == 200, registered.text
        settings = registered.json()["data"]["marketplaceSettings"]

        cached = await http.get("/graphql", params=as_get(hashed(text)), headers=ACCEPT)
        assert cached.status_code == 200, cached.text
        assert cached.json() == {"data": {"marketplaceSettings": settings}}
        again = await http.post("/graphql", json=hashed(text))
        assert again.json() == {"data": {"marketplaceSettings": settings}}


async def test_a_hash_that_is_not_the_texts_registers_nothing(base_url: str) -> None:
    text = QUERY + " # mismatch"
    async with httpx.AsyncClient(base_url=base_url) as http:
        forged = hashed(text, query="{ __typename }")
        refused = await http.post("/graphql", json=forged)
        assert refused.status_code == 400
        assert refused.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_HASH_MISMATCH"
        assert (await http.post("/graphql", json=hashed(text))).json() == NOT_FOUND_BODY


async def test_a_cached_mutation_runs_only_over_post(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as http:
        posted = await http.post("/graphql", json=hashed(MUTATION, query=MUTATION))
        assert posted.status_code == 200 and "data" in posted.json(), posted.text
        by_get = await http.get("/graphql", params=as_get(hashed(MUTATION)), headers=ACCEPT)
        assert by_get.status_code == 405, by_get.text


async def test_bad_persisted_query_fields_are_400s(base_url: str) -> None:
    bad_bodies: list[Any] = [
        {"extensions": {"persistedQuery": {"version": 2, "sha256Hash": sha256(QUERY)}}},
        {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "xyz"}}},
        {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": 12}}},
        {"extensions": {"persistedQuery": "yes"}},
        {"documentId": 7},
        {"documentId": "has spaces"},
        {"documentId": "sha256:" + sha256(QUERY), "query": QUERY},
        hashed(QUERY, documentId="sha256:" + sha256("{ __typename }")),
        [{"query": QUERY}, {"documentId": ["a"]}],
    ]
    async with httpx.AsyncClient(base_url=base_url) as http:
        for body in bad_bodies:
            response = await http.post("/graphql", json=body)
            assert response.status_code == 400, (body, response.text)
            assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


async def test_with_apq_off_a_hash_is_not_supported(runtime: Runtime) -> None:
    async with (
        serve(runtime, persisted_queries=False) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        for body in (hashed(QUERY), hashed(QUERY, query=QUERY)):
            response = await http.post("/graphql", json=body)
            assert response.status_code == 200
            assert response.json() == {
                "errors": [
                    {
                        "message": "PersistedQueryNotSupported",
                        "extensions": {"code": "PERSISTED_QUERY_NOT_SUPPORTED"},
                    }
                ]
            }
        plain = await http.post("/graphql", json={"query": QUERY})
        assert "data" in plain.json(), plain.text


async def test_registered_texts_reach_every_instance_through_redis(
    runtime: Runtime, redis_url: str
) -> None:
    text = QUERY + " # shared"
    async with (
        serve(runtime, redis_url=redis_url) as first,
        serve(runtime, redis_url=redis_url) as second,
        httpx.AsyncClient() as http,
    ):
        assert (await http.post(f"{second}/graphql", json=hashed(text))).json() == NOT_FOUND_BODY
        registered = await http.post(f"{first}/graphql", json=hashed(text, query=text))
        assert "data" in registered.json(), registered.text
        found = await http.get(f"{second}/graphql", params=as_get(hashed(text)), headers=ACCEPT)
        assert "marketplaceSettings" in found.json()["data"], found.text


async def test_redis_holds_registered_texts_within_their_budget(
    runtime: Runtime, redis_url: str
) -> None:
    budget = 1_000_000
    # Each a valid query of 99,000 characters, nearly all comment: 11 are over the budget.
    texts = [f"#{n:04d}{'x' * 98_970}\n{{ __typename }}" for n in range(11)]
    redis: Redis = Redis.from_url(redis_url, decode_responses=True)
    async for key in redis.scan_iter("gigql:apq:main:*"):  # other tests' registrations
        await redis.delete(key)
    async with (
        serve(runtime, redis_url=redis_url, persisted_queries_shared_bytes=budget) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        for text in texts:
            response = await http.post("/graphql", json=hashed(text, query=text))
            assert response.json() == {"data": {"__typename": "Query"}}, response.text
        total = int(await redis.get("gigql:apq:main:total") or 0)
        kept = [await redis.exists(f"gigql:apq:main:text:{sha256(t)}") for t in texts]
    await redis.aclose()
    assert 0 < total <= budget
    assert kept[0] == 0 and kept[-1] == 1  # the oldest went first


async def test_persisted_queries_over_websockets(base_url: str, client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    text = QUERY + " # socket"
    async with ws(base_url) as socket:
        await socket.init(ann.access)
        await socket.send({"id": "missing", "type": "subscribe", "payload": hashed(text)})
        refused = await _answer(socket)
        assert refused["id"] == "missing" and refused["type"] == "error", refused
        assert refused["payload"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        await socket.send({"id": "text", "type": "subscribe", "payload": hashed(text, query=text)})
        assert "marketplaceSettings" in await socket.next_data("text")
        await _skip_complete(socket, "text")
        await socket.send({"id": "hash", "type": "subscribe", "payload": hashed(text)})
        assert "marketplaceSettings" in await socket.next_data("hash")  # the socket lives on


async def test_persisted_subscriptions_over_the_legacy_protocol(
    base_url: str, client: GraphQLClient
) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    task = await post_task(client, ann)
    text = "subscription { myEvents { kind } } # legacy"
    async with ws(base_url, LEGACY_WS) as socket:
        await socket.init(ann.access)
        await socket.send({"id": "missing", "type": "start", "payload": hashed(text)})
        refused = await _answer(socket)
        assert refused["id"] == "missing" and refused["type"] == "error", refused
        assert refused["payload"]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        await socket.send({"id": "text", "type": "start", "payload": hashed(text, query=text)})
        await asyncio.sleep(0.2)  # prepared (and so registered) as it starts
        await socket.send({"id": "text", "type": "stop"})
        await _skip_complete(socket, "text")
        await socket.send({"id": "hash", "type": "start", "payload": hashed(text)})
        await asyncio.sleep(0.2)  # let the subscription start
        await make_offer(client, tom, task["id"])
        assert (await socket.next_data("hash"))["myEvents"]["kind"] == "OFFER_RECEIVED"


async def _answer(socket: Any) -> dict[str, Any]:
    """The next message but the legacy protocol's keep-alives."""
    while (message := await socket.receive())["type"] == "ka":
        pass
    answer: dict[str, Any] = message
    return answer


async def _skip_complete(socket: Any, operation_id: str) -> None:
    message = await _answer(socket)
    assert message == {"id": operation_id, "type": "complete"}, message
