"""Live events over websocket: what each subscriber may see, as it happens."""

from __future__ import annotations

import asyncio

from resolvers.admin import create_admin
from resolvers.services import RequestMeta
from server.runtime import Runtime
from tests.graphql_client import STRONG_PASSWORD, GraphQLClient
from tests.marketplace import make_offer, post_task, poster, tasker
from tests.ws_client import LEGACY_WS, ws

MY_EVENTS = "subscription($after: ID) { myEvents(after: $after) { id kind task { id title } offer { id } actor { id } } }"
TASK_EVENTS = "subscription($t: ID!) { taskEvents(taskId: $t) { id kind data } }"


async def test_my_events_arrive_as_they_happen(base_url: str, client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    task = await post_task(client, ann)
    async with ws(base_url) as socket:
        assert (await socket.init(ann.access))["type"] == "connection_ack"
        await socket.subscribe("1", MY_EVENTS)
        await asyncio.sleep(0.2)  # let the subscription start
        offer = await make_offer(client, tom, task["id"])
        event = (await socket.next_data("1"))["myEvents"]
        assert event["kind"] == "OFFER_RECEIVED"
        assert event["task"] == {"id": task["id"], "title": "Mow the back lawn"}
        assert event["offer"] == {"id": offer["id"]} and event["actor"] == {"id": tom.user_id}


async def test_a_subscriber_gets_only_what_it_may_see(base_url: str, client: GraphQLClient) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    sue = await tasker(client, "sue@example.com")
    task = await post_task(client, ann)
    async with ws(base_url) as socket:
        await socket.init(sue.access)
        await socket.subscribe("t", TASK_EVENTS, {"t": task["id"]})
        await asyncio.sleep(0.2)
        await make_offer(client, tom, task["id"])  # Tom's offer is none of Sue's business
        assert await socket.silent()
        await make_offer(client, sue, task["id"])
        assert (await socket.next_data("t"))["taskEvents"]["kind"] == "OFFER_RECEIVED"


async def test_replay_after_a_reconnect_has_no_gap_and_no_duplicate(
    base_url: str, client: GraphQLClient
) -> None:
    ann = await poster(client, "ann@example.com")
    taskers = [await tasker(client, f"t{i}@example.com") for i in range(4)]
    task = await post_task(client, ann)
    async with ws(base_url) as socket:
        await socket.init(ann.access)
        await socket.subscribe("1", MY_EVENTS)
        await asyncio.sleep(0.2)
        await make_offer(client, taskers[0], task["id"])
        first = (await socket.next_data("1"))["myEvents"]
    for who in taskers[1:3]:  # while disconnected
        await make_offer(client, who, task["id"])
    async with ws(base_url) as socket:
        await socket.init(ann.access)
        await socket.subscribe("2", MY_EVENTS, {"after": first["id"]})
        missed = [(await socket.next_data("2"))["myEvents"] for _ in range(2)]
        await make_offer(client, taskers[3], task["id"])
        live = (await socket.next_data("2"))["myEvents"]
        assert await socket.silent()
    seen = [first["id"], *(e["id"] for e in missed), live["id"]]
    assert len(set(seen)) == 4
    assert [e["actor"]["id"] for e in [*missed, live]] == [t.user_id for t in taskers[1:]]


async def test_subscriptions_end_when_the_account_is_suspended(
    base_url: str, client: GraphQLClient, runtime: Runtime
) -> None:
    ann = await poster(client, "ann@example.com")
    await create_admin(
        runtime.services,
        RequestMeta(),
        name="Root",
        email="root@example.com",
        password=STRONG_PASSWORD,
    )
    admin = await client.login("root@example.com")
    async with ws(base_url) as socket:
        await socket.init(ann.access)
        await socket.subscribe("1", MY_EVENTS)
        await asyncio.sleep(0.2)
        suspended = await client.mutate(
            "suspendUser", {"userId": ann.user_id, "reason": "fraud"}, token=admin.access
        )
        assert suspended["errors"] == []
        assert await socket.receive() == {
            "id": "1",
            "type": "next",
            "payload": {
                "data": None,
                "errors": [
                    {
                        "message": "This account is suspended.",
                        "extensions": {"code": "ACCOUNT_SUSPENDED"},
                    }
                ],
            },
        }
        assert await socket.receive() == {"id": "1", "type": "complete"}


async def test_subscriptions_end_when_the_session_ends(
    base_url: str, client: GraphQLClient
) -> None:
    ann = await poster(client, "ann@example.com")
    async with ws(base_url) as socket:
        await socket.init(ann.access)
        await socket.subscribe("1", MY_EVENTS)
        await asyncio.sleep(0.2)
        await client.mutate("logout", {}, token=ann.access)
        ended = await socket.receive()
        assert ended["payload"]["errors"][0]["extensions"]["code"] == "SESSION_REVOKED"


async def test_a_bad_token_refuses_the_connection(base_url: str) -> None:
    async with ws(base_url) as socket:
        await socket.send(
            {"type": "connection_init", "payload": {"Authorization": "Bearer forged"}}
        )
        assert await socket.closed() == (4403, "Forbidden")
    async with ws(base_url, LEGACY_WS) as socket:
        await socket.send(
            {"type": "connection_init", "payload": {"Authorization": "Bearer forged"}}
        )
        error = await socket.receive()
        assert error["type"] == "connection_error" and error["payload"]["code"] == "INVALID_TOKEN"
