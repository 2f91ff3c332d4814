"""The websocket side of /graphql speaks both subscription protocols."""

from __future__ import annotations

import asyncio
import gc
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from websockets.asyncio.client import connect

from documents.settings import Settings
from schema.common.context import Context
from server.runtime import Runtime
from tests.conftest import serve
from tests.support.graphql_client import GraphQLClient, Tokens
from tests.support.marketplace import make_offer, post_task, poster, tasker
from tests.support.ws_client import LEGACY_WS, TRANSPORT_WS, WsClient, ws


def _ws_url(base_url: str) -> str:
    return base_url.replace("http://", "ws://") + "/graphql"


async def test_graphql_transport_ws_handshake_and_ping(
    base_url: str, client: GraphQLClient
) -> None:
    init = {"type": "connection_init", "payload": {"accessToken": (await _member(client)).access}}
    async with connect(_ws_url(base_url), subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "graphql-transport-ws"
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv()) == {"type": "connection_ack"}
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await ws.recv()) == {"type": "pong"}


async def test_legacy_graphql_ws_handshake(base_url: str, client: GraphQLClient) -> None:
    init = {"type": "connection_init", "payload": {"accessToken": (await _member(client)).access}}
    async with connect(_ws_url(base_url), subprotocols=["graphql-ws"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "graphql-ws"
        await ws.send(json.dumps(init))
        assert json.loads(await ws.recv())["type"] == "connection_ack"


async def test_unknown_subprotocols_are_closed_with_4406(base_url: str) -> None:
    async with connect(_ws_url(base_url), subprotocols=["chat"]) as ws:  # type: ignore[list-item]
        await ws.wait_closed()
        assert ws.close_code == 4406


# --- protocol errors and keep-alive -------------------------------------------------
# Close codes are those of graphql-transport-ws (enisdenjo/graphql-ws PROTOCOL.md); the
# legacy protocol has no codes of its own for most of these and answers with messages.

LIVE = "subscription { myEvents { id kind } }"


async def _member(client: GraphQLClient) -> Tokens:
    return await client.member("ws@example.com")


async def test_subscribe_before_connection_init_is_closed_with_4401(base_url: str) -> None:
    for protocol in (TRANSPORT_WS, LEGACY_WS):
        async with ws(base_url, protocol) as socket:
            await socket.subscribe("1", LIVE)
            assert await socket.closed() == (4401, "Unauthorized"), protocol


async def test_a_second_connection_init_is_closed_with_4429(
    base_url: str, client: GraphQLClient
) -> None:
    ann = await _member(client)
    async with ws(base_url) as socket:
        assert await socket.init(ann.access) == {"type": "connection_ack"}
        await socket.send({"type": "connection_init", "payload": {}})
        assert await socket.closed() == (4429, "Too many initialisation requests")


async def test_messages_outside_the_protocol_are_closed_with_4400(
    base_url: str, client: GraphQLClient
) -> None:
    ann = await _member(client)
    async with ws(base_url) as socket:
        await socket.connection.send("not json")
        assert await socket.closed() == (4400, "WebSocket message must be valid JSON")
    async with ws(base_url) as socket:
        await socket.init(ann.access)
        await socket.send({"type": "shout"})
        assert await socket.closed() == (4400, "Unknown message type: shout")


async def test_a_duplicate_subscription_id_is_closed_with_4409(
    base_url: str, client: GraphQLClient
) -> None:
    ann = await _member(client)
    async with ws(base_url) as socket:
        await socket.init(ann.access)
        await socket.subscribe("same", LIVE)
        await socket.subscribe("same", LIVE)
        assert await socket.closed() == (4409, "Subscriber for same already exists")


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_an_invalid_document_is_an_error_for_its_id_only(
    base_url: str, client: GraphQLClient, protocol: str
) -> None:
    """Syntax and validation errors answer the operation; the connection, and the other
    subscriptions on it, go on."""
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    task = await post_task(client, ann)
    async with ws(base_url, protocol) as socket:
        assert (await socket.init(ann.access))["type"] == "connection_ack"
        await socket.subscribe("live", LIVE)
        await socket.subscribe("syntax", "subscription { myEvents { id ")
        await socket.subscribe("invalid", "subscription { myEvents { id nope } }")
        errors = {}
        for _ in range(2):
            message = await _next_message(socket)
            assert message["type"] == "error", message
            payload = message["payload"]
            [error] = payload if isinstance(payload, list) else [payload]
            errors[message["id"]] = (error["message"], error["extensions"]["code"])
        assert errors == {
            "syntax": ("Syntax Error: Expected Name, found <EOF>.", "GRAPHQL_PARSE_FAILED"),
            "invalid": ("Cannot query field 'nope' on type 'Event'.", "GRAPHQL_VALIDATION_FAILED"),
        }
        await make_offer(client, tom, task["id"])
        assert (await socket.next_data("live"))["myEvents"]["kind"] == "OFFER_RECEIVED"
        assert await socket.silent()


async def test_connection_init_must_come_in_time(runtime: Runtime) -> None:
    timeout = timedelta(seconds=0.3)
    async with serve(runtime, ws_connection_init_timeout=timeout, ws_allow_anonymous=True) as url:
        for protocol in (TRANSPORT_WS, LEGACY_WS):
            async with ws(url, protocol) as socket:
                started = time.monotonic()
                assert await socket.closed() == (4408, "Connection initialisation timeout")
                assert 0.3 <= time.monotonic() - started < 3
        async with ws(url) as socket:  # in time: the socket stays open past the timeout
            assert await socket.init() == {"type": "connection_ack"}
            await asyncio.sleep(0.5)
            await socket.send({"type": "ping"})
            assert await socket.receive() == {"type": "pong"}
        async with ws(url, LEGACY_WS) as socket:
            assert (await socket.init())["type"] == "connection_ack"
            await asyncio.sleep(0.5)
            await socket.subscribe("1", "subscription { nope }")  # still answered
            assert (await _next_message(socket))["type"] == "error"


async def test_legacy_protocol_keeps_alive_with_ka(runtime: Runtime) -> None:
    interval = timedelta(seconds=0.1)
    async with (
        serve(runtime, ws_keep_alive_interval=interval, ws_allow_anonymous=True) as url,
        ws(url, LEGACY_WS) as socket,
    ):
        assert (await socket.init())["type"] == "connection_ack"
        started = time.monotonic()
        for _ in range(4):
            assert await socket.receive(timeout=2) == {"type": "ka"}
        assert time.monotonic() - started >= 0.25  # spaced by the interval, not a burst


async def test_legacy_refusals_are_messages(base_url: str, client: GraphQLClient) -> None:
    ann = await _member(client)
    async with ws(base_url, LEGACY_WS) as socket:
        await socket.send({"type": "connection_init", "payload": "not an object"})
        assert await socket.receive() == {"type": "connection_error"}
        assert (await socket.closed())[0] == 1000
    async with ws(base_url, LEGACY_WS) as socket:
        await socket.connection.send("not json")  # ignored, as the protocol says
        assert (await socket.init(ann.access))["type"] == "connection_ack"
        await socket.subscribe("1", "subscription { nope }")
        message = await _next_message(socket)
        assert message["type"] == "error" and message["id"] == "1", message
        assert message["payload"]["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}


async def test_legacy_start_with_a_used_id_replaces_the_subscription(
    base_url: str, client: GraphQLClient
) -> None:
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    task = await post_task(client, ann)
    async with ws(base_url, LEGACY_WS) as socket:
        await socket.init(ann.access)
        await socket.subscribe("1", LIVE)
        await asyncio.sleep(0.2)  # running, not merely queued
        await socket.subscribe("1", LIVE)
        assert await _next_message(socket) == {"type": "complete", "id": "1"}
        await asyncio.sleep(0.2)  # let the new subscription reach the broker
        await make_offer(client, tom, task["id"])
        assert (await socket.next_data("1"))["myEvents"]["kind"] == "OFFER_RECEIVED"
        assert await socket.silent()  # once, not twice


async def _next_message(socket: WsClient) -> dict[str, Any]:
    while (message := await socket.receive())["type"] in ("ka", "ping", "pong"):
        pass
    return message


# --- operations refused before they run ---------------------------------------------

TWO_LIVE = "subscription A { myEvents { id } } subscription B { myEvents { kind } }"
ALIASES = " ".join(f"a{n}: id" for n in range(40))  # over GIGQL_MAX_ALIASES (30)
REFUSED = {
    "unknown-name": ({"query": TWO_LIVE, "operationName": "C"}, "BAD_REQUEST"),
    "no-name": ({"query": TWO_LIVE}, "BAD_REQUEST"),
    "variables": (
        {"query": "subscription($a: ID) { myEvents(after: $a) { id } }", "variables": {"a": 7.5}},
        "BAD_USER_INPUT",
    ),
    "aliases": ({"query": f"subscription {{ myEvents {{ {ALIASES} }} }}"}, "TOO_MANY_ALIASES"),
}


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_an_operation_refused_before_it_runs_leaves_the_socket_running(
    base_url: str, client: GraphQLClient, protocol: str
) -> None:
    """An unknown operation name, a document naming none of several, variables that do
    not coerce and a document over a limit each get an `error` for their id (Strawberry
    closed the socket with 4400 for the first two); the socket stays open and its live
    subscription keeps receiving events."""
    ann = await poster(client, "ann@example.com")
    tom = await tasker(client, "tom@example.com")
    task = await post_task(client, ann)
    kind = "subscribe" if protocol == TRANSPORT_WS else "start"
    async with ws(base_url, protocol) as socket:
        assert (await socket.init(ann.access))["type"] == "connection_ack"
        await socket.subscribe("live", LIVE)
        for operation_id, (payload, _) in REFUSED.items():
            await socket.send({"id": operation_id, "type": kind, "payload": payload})
        errors = {}
        for _ in REFUSED:
            message = await _next_message(socket)
            assert message["type"] == "error", message
            payload = message["payload"]
            [error] = payload if isinstance(payload, list) else [payload]
            errors[message["id"]] = error["extensions"]["code"]
        assert errors == {operation_id: code for operation_id, (_, code) in REFUSED.items()}
        await make_offer(client, tom, task["id"])
        assert (await socket.next_data("live"))["myEvents"]["kind"] == "OFFER_RECEIVED"
        assert await socket.silent()


async def test_unknown_legacy_messages_are_answered(base_url: str, client: GraphQLClient) -> None:
    """With a `connection_error`, or an `error` for the operation id the message names;
    the socket goes on (subscriptions-transport-ws's server answers so; Strawberry's
    said nothing)."""
    ann = await _member(client)
    async with ws(base_url, LEGACY_WS) as socket:
        assert (await socket.init(ann.access))["type"] == "connection_ack"
        await socket.send({"type": "ping"})  # graphql-transport-ws's, not this protocol's
        assert await _next_message(socket) == {
            "type": "connection_error",
            "payload": {
                "message": "Unknown message type: ping",
                "extensions": {"code": "BAD_REQUEST"},
            },
        }
        await socket.send({"type": "resume", "id": "7"})
        message = await _next_message(socket)
        assert message["type"] == "error" and message["id"] == "7", message
        assert message["payload"]["message"] == "Unknown message type: resume"
        await socket.subscribe("1", "subscription { nope }")  # still served
        assert (await _next_message(socket))["type"] == "error"


def test_the_legacy_keep_alive_suits_common_clients() -> None:
    """subscriptions-transport-ws closes a socket without `ka` for its `timeout` (30 s by
    default, often set to 10 s or so): the default interval stays well under either."""
    assert Settings(_env_file=None).ws_keep_alive_interval <= timedelta(seconds=5)


# --- what an idle socket keeps ------------------------------------------------------
# bench/README.md, "Issue 16, third pass: per-connection memory": what an open socket
# holds for its life is what an idle subscriber costs.


@pytest.mark.parametrize(
    ("protocol", "code"), [(TRANSPORT_WS, 4400), (LEGACY_WS, 1002)], ids=["transport", "legacy"]
)
async def test_binary_messages_close_the_socket_as_each_protocol_says(
    base_url: str, client: GraphQLClient, protocol: str, code: int
) -> None:
    """The receive loop is ours (server/request_shape.py): a binary message ends the
    socket as Strawberry's own loop ended it, after `connection_init` as before it."""
    ann = await _member(client)
    async with ws(base_url, protocol) as socket:
        await socket.connection.send(b'{"type": "connection_init"}')
        assert await socket.closed() == (code, "WebSocket message type must be text")
    async with ws(base_url, protocol) as socket:
        await socket.init(ann.access)
        await socket.connection.send(b"\x00")
        assert await socket.closed() == (code, "WebSocket message type must be text")


async def test_the_legacy_protocol_ignores_messages_that_are_not_json(
    base_url: str, client: GraphQLClient
) -> None:
    ann = await _member(client)
    async with ws(base_url, LEGACY_WS) as socket:
        await socket.connection.send("not json")
        assert await socket.init(ann.access) == {"type": "connection_ack"}


def _awaited_by(task: asyncio.Task[Any]) -> list[str]:
    """The qualified names of the coroutines a task is suspended in, outermost first."""
    names = []
    awaited: Any = task.get_coro()
    while awaited is not None and hasattr(awaited, "cr_code"):
        names.append(awaited.cr_code.co_qualname)
        awaited = awaited.cr_await
    return names


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_an_idle_socket_keeps_only_the_calls_it_needs(
    base_url: str, client: GraphQLClient, protocol: str
) -> None:
    """Between the server and the protocol handler's loop an idle socket is suspended in
    the app, the edge layer and the view's socket call alone: not in Starlette's own
    call or its error middleware, the edge's dispatch, the view's `__call__` or
    Strawberry's `run`."""
    ann = await _member(client)
    async with ws(base_url, protocol) as socket:
        await socket.init(ann.access)
        await socket.subscribe("live", LIVE)
        await asyncio.sleep(0.05)
        chains = [
            chain
            for task in asyncio.all_tasks()
            if "GraphQLView._socket" in (chain := _awaited_by(task))
        ]
        assert len(chains) == 1
        chain = chains[0]
        start = chain.index("App.__call__")
        handler = (
            ["BaseGraphQLTransportWSHandler.handle"]
            if protocol == TRANSPORT_WS
            else ["LegacyWSHandler.handle", "BaseGraphQLWSHandler.handle"]
        )
        assert chain[start:] == [
            "App.__call__",
            "EdgeMiddleware.websocket",
            "GraphQLView._socket",
            *handler,
        ]


async def test_connection_init_payload_is_not_kept(base_url: str, client: GraphQLClient) -> None:
    """`connection_init`'s payload is read when the socket is acknowledged and let go;
    the token it carried is kept (operations are admitted with it)."""
    ann = await _member(client)
    async with ws(base_url) as socket:
        await socket.init(ann.access)
        await socket.subscribe("me", "query { me { email } }")
        assert (await socket.next_data("me"))["me"]["email"] == "ws@example.com"
        # The socket's own context and those of its operation, by the token they keep.
        contexts = [
            o
            for o in gc.get_objects()
            if type(o) is Context and o.socket is not None and o.access_token == ann.access
        ]
        assert contexts
        assert all(context.connection_params is None for context in contexts)
