"""Live events over websocket: what each subscriber may see, as it happens."""

from __future__ import annotations

import asyncio
import time
from datetime import date, timedelta

import httpx
import jwt
from bson import ObjectId
from gql import Client, GraphQLRequest
from gql.transport.websockets import WebsocketsTransport
from strawberry import relay

from documents.events import DomainEvent, EventKind
from resolvers.accounts.admin import create_admin
from resolvers.common.services import RequestMeta
from resolvers.common.unit_of_work import publish
from server.runtime import Runtime
from tests.conftest import serve
from tests.support.bookings import act, booked, create_package, provider, utc
from tests.support.graphql_client import STRONG_PASSWORD, GraphQLClient
from tests.support.marketplace import make_offer, object_id, post_task, poster, tasker
from tests.support.ws_client import LEGACY_WS, WsClient, ws, ws_url

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
            "type": "error",
            "payload": [
                {
                    "message": "This account is suspended.",
                    "extensions": {"code": "ACCOUNT_SUSPENDED"},
                }
            ],
        }
        assert await socket.closed() == (4403, "ACCOUNT_SUSPENDED")


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
        assert ended["type"] == "error", ended
        assert ended["payload"][0]["extensions"]["code"] == "SESSION_REVOKED"
        assert await socket.closed() == (4403, "SESSION_REVOKED")


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


BOOKING_EVENTS = "subscription($b: ID!) { bookingEvents(bookingId: $b) { id kind } }"
UNKNOWN_TASK = relay.to_base64("Task", "0" * 24)


async def test_a_subscriber_without_access_gets_one_error_and_nothing_else(
    base_url: str, client: GraphQLClient
) -> None:
    tom = await provider(client, "tom@example.com")
    ann = await poster(client, "ann@example.com")
    eve = await poster(client, "eve@example.com")
    package = await create_package(client, tom)
    booking = await booked(client, ann, package["id"], utc(date.today() + timedelta(days=7), 10))
    variables = {"b": booking["id"]}
    async with ws(base_url) as party, ws(base_url) as stranger:
        await party.init(ann.access)
        await stranger.init(eve.access)
        await party.subscribe("b", BOOKING_EVENTS, variables)
        await stranger.subscribe("b", BOOKING_EVENTS, variables)
        await stranger.subscribe("t", TASK_EVENTS, {"t": UNKNOWN_TASK})
        assert sorted(await _refusals(stranger, 2)) == [
            ("b", "NOT_FOUND", "No such booking."),
            ("t", "NOT_FOUND", "No such task."),
        ]
        await asyncio.sleep(0.2)
        confirmed = await act(client, "confirmBooking", tom, booking["id"])
        assert confirmed["errors"] == [], confirmed
        assert (await party.next_data("b"))["bookingEvents"]["kind"] == "BOOKING_CONFIRMED"
        assert await stranger.silent()


async def _refusals(socket: WsClient, count: int) -> list[tuple[str, str, str]]:
    """(id, code, message) of operations refused at the start: refused before running
    (permissions) with an `error` message, or by the resolver with a `next` carrying only
    the error and then `complete`."""
    refused: list[tuple[str, str, str]] = []
    completing: set[str] = set()
    while len(refused) < count or completing:
        message = await socket.receive()
        if message["type"] == "complete":
            completing.remove(message["id"])
            continue
        assert message["type"] in ("error", "next"), message
        payload = message["payload"]
        if message["type"] == "next":
            assert payload["data"] is None, message
            payload = payload["errors"]
            completing.add(message["id"])
        [error] = payload
        refused.append((message["id"], error["extensions"]["code"], error["message"]))
    return refused


async def test_a_subscription_ends_with_token_expired_when_its_token_does(
    runtime: Runtime,
) -> None:
    ttl = timedelta(seconds=3)
    async with (
        serve(runtime, access_token_ttl=ttl) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        client = GraphQLClient(http)
        await poster(client, "ann@example.com")
        tom = await tasker(client, "tom@example.com")
        task = await post_task(client, await client.login("ann@example.com"))
        ann = await client.login("ann@example.com")
        expires_at = jwt.decode(ann.access, options={"verify_signature": False})["exp"]
        async with ws(url) as socket:
            await socket.init(ann.access)
            await socket.subscribe("1", MY_EVENTS)
            await asyncio.sleep(0.2)
            await make_offer(client, await client.login("tom@example.com"), task["id"])
            assert (await socket.next_data("1"))["myEvents"]["actor"] == {"id": tom.user_id}
            ended = await socket.receive(timeout=ttl.total_seconds() + 5)
            assert time.time() >= expires_at
            assert ended["id"] == "1" and ended["type"] == "next", ended
            assert ended["payload"]["data"] is None
            [error] = ended["payload"]["errors"]
            assert error["extensions"] == {"code": "TOKEN_EXPIRED"}
            assert error["message"] == (
                "The access token has expired; subscribe again with a new one."
            )
            assert await socket.receive() == {"id": "1", "type": "complete"}


async def test_the_gql_client_library_subscribes_and_queries(
    base_url: str, client: GraphQLClient
) -> None:
    """A real third-party client (gql, graphql-transport-ws) against the server."""
    ann = await poster(client, "ann@example.com")
    taskers = [await tasker(client, f"t{i}@example.com") for i in range(3)]
    task = await post_task(client, ann)
    await make_offer(client, taskers[0], task["id"])
    await make_offer(client, taskers[1], task["id"])
    first = await DomainEvent.find_one(DomainEvent.actor_id == object_id(taskers[0].user_id))
    assert first is not None
    transport = WebsocketsTransport(
        url=ws_url(base_url),
        init_payload={"Authorization": f"Bearer {ann.access}"},
        subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
    )
    async with Client(transport=transport) as session:
        me = await session.execute(GraphQLRequest("{ me { id email } }"))
        assert me == {"me": {"id": ann.user_id, "email": "ann@example.com"}}
        after = relay.to_base64("Event", str(first.id))
        request = GraphQLRequest(MY_EVENTS, variable_values={"after": after})
        actors = []
        async with asyncio.timeout(10):
            async for result in session.subscribe(request):
                actors.append(result["myEvents"]["actor"]["id"])
                if len(actors) == 1:  # the one missed, replayed: now live for the next
                    await make_offer(client, taskers[2], task["id"])
                else:
                    break
        assert actors == [taskers[1].user_id, taskers[2].user_id]


async def test_an_event_whose_id_sorts_before_the_last_one_sent_still_arrives(
    base_url: str, client: GraphQLClient, runtime: Runtime
) -> None:
    """Event ids are made by whichever process runs the mutation, before its transaction
    commits: another instance's id from the same second, or a slower transaction's, can
    sort before one already delivered. Such an event is news all the same."""
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    task = await post_task(client, ann)
    async with ws(base_url) as socket:
        await socket.init(ann.access)
        await socket.subscribe("1", MY_EVENTS)
        await asyncio.sleep(0.2)
        offer = await make_offer(client, tom, task["id"])
        delivered = (await socket.next_data("1"))["myEvents"]
        made = await DomainEvent.get(relay.from_base64(delivered["id"])[1])
        assert made is not None and made.id is not None
        # As another instance would: the same second, a process part that sorts lower.
        earlier = made.model_copy(
            update={"id": ObjectId(made.id.binary[:4] + bytes(8)), "kind": EventKind.OFFER_UPDATED}
        )
        await earlier.insert()
        await publish(runtime.services.broker, [earlier])
        event = (await socket.next_data("1"))["myEvents"]
        assert (event["kind"], event["offer"]) == ("OFFER_UPDATED", {"id": offer["id"]})
        assert relay.from_base64(event["id"])[1] == str(earlier.id) < str(made.id)
        assert await socket.silent()
