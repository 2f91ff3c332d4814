"""Rate limits per client IP and per account: requests and query cost a window, answered
with HTTP 429 and `Retry-After`, or an `error` message for a websocket operation."""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from documents.settings import Settings
from server.runtime import Runtime
from tests.conftest import serve
from tests.support.gigql_process import graphql, sharing_the_test_database
from tests.support.graphql_client import GraphQLClient
from tests.support.payments.webhooks import post_event, signature, stripe_event, webhook_secret
from tests.support.services import OwnRedis
from tests.support.ws_client import LEGACY_WS, TRANSPORT_WS, WsClient, ws

TYPENAME = {"query": "{ __typename }"}
# me, sessions, edges: 1 each; node and id for each of 10 sessions: 3 + 2 * 10.
COSTS_23 = {"query": "{ me { sessions(first: 10) { edges { node { id } } } } }"}


def an_address() -> str:
    """A documentation address of its own, so that no other test (nor another run on the
    same Redis) has spent from its budget."""
    return str(ipaddress.IPv4Address("198.18.0.0") + secrets.randbelow(2**17))


def coming_from(address: str) -> dict[str, str]:
    # The test servers trust 127.0.0.1 as a proxy, as gigql does by default.
    return {"X-Forwarded-For": address}


@asynccontextmanager
async def limited(runtime: Runtime, **limits: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with serve(runtime, **limits) as url, httpx.AsyncClient(base_url=url) as http:
        yield http


def assert_rate_limited(response: httpx.Response, holder: str = "your address") -> int:
    """The refusal's shape; its Retry-After in seconds."""
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    (error,) = response.json()["errors"]
    assert error["extensions"] == {"code": "RATE_LIMITED", "retryAfter": retry_after}
    assert holder in error["message"]
    return retry_after


async def test_an_address_gets_its_requests_a_minute_then_429(runtime: Runtime) -> None:
    address, other = an_address(), an_address()
    async with limited(runtime, rate_limit_ip_requests=3) as http:
        for _ in range(3):
            response = await http.post("/graphql", json=TYPENAME, headers=coming_from(address))
            assert response.json() == {"data": {"__typename": "Query"}}
        refused = await http.post("/graphql", json=TYPENAME, headers=coming_from(address))
        assert_rate_limited(refused)
        assert "at most 3 a minute" in refused.json()["errors"][0]["message"]
        # GET counts the same; another address has a budget of its own.
        get = await http.get("/graphql", params=TYPENAME, headers=coming_from(address))
        assert_rate_limited(get)
        fresh = await http.post("/graphql", json=TYPENAME, headers=coming_from(other))
        assert fresh.status_code == 200
        # The probes are never counted.
        for probe in ("/healthz", "/readyz"):
            assert (await http.get(probe, headers=coming_from(address))).status_code == 200


async def test_ipv6_addresses_count_per_64_block(runtime: Runtime) -> None:
    block = f"2001:db8:{secrets.randbelow(2**16):x}:{secrets.randbelow(2**16):x}"
    async with limited(runtime, rate_limit_ip_requests=2) as http:
        for host in ("::1", ":ffff:1:2:3"):
            response = await http.post("/graphql", json=TYPENAME, headers=coming_from(block + host))
            assert response.status_code == 200
        rotated = await http.post("/graphql", json=TYPENAME, headers=coming_from(block + "::9"))
        assert_rate_limited(rotated)


async def test_a_batch_counts_each_of_its_operations(runtime: Runtime) -> None:
    headers = coming_from(an_address())
    async with limited(runtime, rate_limit_ip_requests=5) as http:
        assert (
            await http.post("/graphql", json=[TYPENAME] * 4, headers=headers)
        ).status_code == 200
        # Two more would make six: refused whole, and not counted.
        assert_rate_limited(await http.post("/graphql", json=[TYPENAME] * 2, headers=headers))
        assert (await http.post("/graphql", json=TYPENAME, headers=headers)).status_code == 200
        assert_rate_limited(await http.post("/graphql", json=TYPENAME, headers=headers))


async def test_query_cost_is_budgeted_too(runtime: Runtime) -> None:
    headers = coming_from(an_address())
    async with limited(
        runtime, rate_limit_ip_cost=50, max_query_cost=50, max_batch_operations=1
    ) as http:
        for _ in range(2):  # 46 of 50
            ran = await http.post("/graphql", json=COSTS_23, headers=headers)
            assert ran.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        refused = await http.post("/graphql", json=COSTS_23, headers=headers)
        assert_rate_limited(refused)
        assert (
            "cost too much: at most 50 cost units a minute"
            in refused.json()["errors"][0]["message"]
        )
        # What costs nothing (only __typename) still runs.
        assert (await http.post("/graphql", json=TYPENAME, headers=headers)).status_code == 200


async def test_an_account_has_its_budget_whichever_address_it_calls_from(
    runtime: Runtime,
) -> None:
    async with limited(runtime, rate_limit_account_requests=3) as http:
        client = GraphQLClient(http)
        tokens = await client.member("limited@example.com")  # sign-up and login: anonymous
        me = {"query": "{ me { id } }"}
        bearer = {"Authorization": f"Bearer {tokens.access}"}
        for _ in range(3):
            headers = {**bearer, **coming_from(an_address())}
            assert (await http.post("/graphql", json=me, headers=headers)).status_code == 200
        moved = await http.post(
            "/graphql", json=me, headers={**bearer, **coming_from(an_address())}
        )
        assert_rate_limited(moved, holder="this account")
        # Without the token the same address is just an address.
        anonymous = await http.post("/graphql", json=TYPENAME, headers=coming_from(an_address()))
        assert anonymous.status_code == 200
        # A forged token names no account: it is refused on its own, not counted against one.
        forged = {"Authorization": f"Bearer {tokens.access[:-4]}AAAA", **coming_from(an_address())}
        answer = (await http.post("/graphql", json=me, headers=forged)).json()
        assert answer["errors"][0]["extensions"]["code"] == "INVALID_TOKEN"


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_websocket_operations_count_against_the_same_budget(
    runtime: Runtime, protocol: str
) -> None:
    # An hour's window: a sliding window counter lets one more request through once its
    # first ones fall into the previous window, and with a minute's this test's half
    # dozen round trips straddled a minute's turn now and then.
    hour = timedelta(hours=1)
    limits = {"rate_limit_ip_requests": 3, "rate_limit_window": hour}
    async with serve(runtime, ws_allow_anonymous=True, **limits) as url:
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.post("/graphql", json=TYPENAME)).status_code == 200
        async with ws(url, protocol) as socket:
            await socket.init()  # the second request of the address: opening a socket
            # The third: run (and refused for what it asks).
            await socket.subscribe("1", "subscription { nope }")
            ran = await next_message(socket)
            assert ran["id"] == "1" and code_of(ran) == "GRAPHQL_VALIDATION_FAILED", ran
            # The fourth: refused for its id, and the socket goes on.
            for operation_id in ("2", "3"):
                await socket.subscribe(operation_id, "subscription { myEvents { id } }")
                refused = await next_message(socket)
                assert refused["type"] == "error" and refused["id"] == operation_id, refused
                assert code_of(refused) == "RATE_LIMITED"
            assert await socket.silent(), "the socket was closed or sent more"
        async with ws(url, protocol) as another:  # nor may it open more sockets
            await another.send({"type": "connection_init", "payload": {}})
            if protocol == LEGACY_WS:
                refused = await next_message(another)
                assert refused["type"] == "connection_error", refused
                assert refused["payload"]["code"] == "RATE_LIMITED"
            else:
                assert await another.closed() == (4403, "Forbidden")


async def test_gateway_webhooks_are_never_limited(runtime: Runtime) -> None:
    async with limited(runtime, rate_limit_ip_requests=1) as http:
        assert (await http.post("/graphql", json=TYPENAME)).status_code == 200
        assert_rate_limited(await http.post("/graphql", json=TYPENAME))
        secret = webhook_secret(runtime.services)
        for _ in range(3):
            body = stripe_event()
            response = await post_event(http, body, signature(body, secret))
            assert response.status_code == 200, response.text


async def test_instances_share_the_budgets_through_redis(runtime: Runtime, redis_url: str) -> None:
    headers = coming_from(an_address())
    async with (
        limited(runtime, redis_url=redis_url, rate_limit_ip_requests=3) as a,
        limited(runtime, redis_url=redis_url, rate_limit_ip_requests=3) as b,
    ):
        for instance in (a, b, a):
            assert (
                await instance.post("/graphql", json=TYPENAME, headers=headers)
            ).status_code == 200
        assert_rate_limited(await b.post("/graphql", json=TYPENAME, headers=headers))


async def test_without_redis_each_instance_counts_on_its_own(runtime: Runtime) -> None:
    headers = coming_from(an_address())
    async with (
        limited(runtime, rate_limit_ip_requests=2) as a,
        limited(runtime, rate_limit_ip_requests=2) as b,
    ):
        for instance in (a, a, b, b):
            assert (
                await instance.post("/graphql", json=TYPENAME, headers=headers)
            ).status_code == 200
        assert_rate_limited(await a.post("/graphql", json=TYPENAME, headers=headers))


async def test_when_redis_fails_the_instance_counts_in_memory(
    runtime: Runtime, tmp_path: Path
) -> None:
    headers = coming_from(an_address())
    with OwnRedis(tmp_path) as redis:
        async with limited(runtime, redis_url=redis.url, rate_limit_ip_requests=3) as http:
            assert (await http.post("/graphql", json=TYPENAME, headers=headers)).status_code == 200
            redis.stop()
            # Answered, not failed; and still limited, now by this instance alone.
            for _ in range(3):
                response = await http.post("/graphql", json=TYPENAME, headers=headers)
                assert response.json() == {"data": {"__typename": "Query"}}
            assert_rate_limited(await http.post("/graphql", json=TYPENAME, headers=headers))


async def test_the_address_is_the_one_gigql_trusts_proxies_to_give(
    settings: Settings, tmp_path: Path
) -> None:
    """`gigql serve` believes X-Forwarded-For only from GIGQL_TRUSTED_PROXIES: from anyone
    else, every address it names is the sender's own."""
    async with (
        sharing_the_test_database(
            tmp_path, settings, GIGQL_TRUSTED_PROXIES="192.0.2.1", GIGQL_RATE_LIMIT_IP_REQUESTS="2"
        ) as server,
        graphql(server) as client,
    ):
        for _ in range(2):
            response = await client.http.post(
                "/graphql", json=TYPENAME, headers=coming_from(an_address())
            )
            assert response.status_code == 200
        assert_rate_limited(
            await client.http.post("/graphql", json=TYPENAME, headers=coming_from(an_address()))
        )


def test_production_defaults_and_a_cost_budget_that_fits_the_dearest_request() -> None:
    defaults = Settings(_env_file=None)
    assert (defaults.rate_limit_ip_requests, defaults.rate_limit_account_requests) == (100, 100)
    assert (defaults.rate_limit_ip_cost, defaults.rate_limit_account_cost) == (100_000, 100_000)
    assert defaults.rate_limit_window.total_seconds() == 60
    # A budget smaller than the dearest request allowed (a full batch of the dearest
    # operations) would refuse it for ever, or have to let it overspend.
    dearest = defaults.max_query_cost * defaults.max_batch_operations
    with pytest.raises(ValidationError, match="GIGQL_MAX_BATCH_OPERATIONS"):
        Settings(_env_file=None, rate_limit_account_cost=dearest - 1)
    assert Settings(_env_file=None, rate_limit_ip_cost=dearest).rate_limit_ip_cost == dearest
    assert Settings(_env_file=None, rate_limit_ip_cost=0).rate_limit_ip_cost == 0  # off


def code_of(message: dict[str, Any]) -> str:
    payload = message["payload"]
    error = payload[0] if isinstance(payload, list) else payload
    code: str = error["extensions"]["code"]
    return code


async def next_message(socket: WsClient) -> dict[str, Any]:
    while True:
        message = await socket.receive()
        if message["type"] not in ("ka", "ping", "pong"):
            return message
