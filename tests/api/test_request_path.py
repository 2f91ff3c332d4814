"""What every HTTP request costs: work a request does not need is not done for it
(issue 16, bench/README.md "Issue 16: per-request cost")."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pytest
from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Router, WebSocketRoute
from starlette.types import Message, Receive, Scope, Send
from strawberry.http.async_base_view import AsyncBaseHTTPView

from server.edge import answer_json
from server.edge.headers import HTTPRequest, RequestHeaders
from server.middleware import BodySizeLimitMiddleware, EdgeMiddleware
from server.observability.http_metrics import HttpRoutes
from tests.support.graphql_client import GraphQLClient
from tests.support.ws_client import ws

TYPENAME = {"query": "{ __typename }"}


async def test_http_requests_skip_strawberrys_generic_run(
    client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its `run` tells a stream from a result by a runtime-checked protocol on every
    request; without HTTP stream transports the view knows which it has."""

    async def generic_run(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("an HTTP request went through AsyncBaseHTTPView.run")

    monkeypatch.setattr(AsyncBaseHTTPView, "run", generic_run)
    single = await client.http.post("/graphql", json=TYPENAME)
    assert single.json() == {"data": {"__typename": "Query"}}
    batch = await client.http.post("/graphql", json=[TYPENAME, TYPENAME])
    assert batch.json() == [{"data": {"__typename": "Query"}}] * 2
    fetched = await client.http.get("/graphql", params=TYPENAME)
    assert fetched.json() == {"data": {"__typename": "Query"}}
    malformed = await client.http.get("/graphql", params={**TYPENAME, "variables": "{"})
    assert malformed.status_code == 400
    assert malformed.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"


def _http_scope(headers: list[tuple[bytes, bytes]]) -> Scope:
    return {"type": "http", "method": "POST", "path": "/graphql", "headers": headers}


async def _receive() -> Message:
    return {"type": "http.request", "body": b"{}", "more_body": False}


async def _send(message: Message) -> None:
    pass


async def test_a_body_framed_by_its_content_length_is_not_watched() -> None:
    """The server reads no more than a Content-Length within the limit declares: the app
    gets the server's own receive and send, with no wrapper around every message."""
    seen: list[tuple[Receive, Send]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append((receive, send))

    limited = BodySizeLimitMiddleware(app, max_bytes=100)
    await limited(_http_scope([(b"content-length", b"2")]), _receive, _send)
    assert seen == [(_receive, _send)]
    # Without a length, or with a chunked body as well, the body is counted as it comes.
    for headers in ([], [(b"content-length", b"2"), (b"transfer-encoding", b"chunked")]):
        seen.clear()
        await limited(_http_scope(headers), _receive, _send)
        assert seen[0] != (_receive, _send)


async def test_http_requests_skip_strawberrys_execute_operation_and_response(
    client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without stream transports the view runs a single operation or a batch itself, and
    builds its answer's headers once, with no Starlette Response built for the headers
    resolvers may set (tests/accounts/test_sessions.py: the login's cookie still comes)."""

    async def generic(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("an HTTP request went through AsyncBaseHTTPView.execute_operation")

    def no_init_headers(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a response's headers were worked out by Starlette")

    def no_json_module(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("an answer was encoded by Strawberry's json.dumps")

    monkeypatch.setattr(AsyncBaseHTTPView, "execute_operation", generic)
    monkeypatch.setattr(Response, "init_headers", no_init_headers)
    monkeypatch.setattr(AsyncBaseHTTPView, "encode_json", no_json_module)
    single = await client.http.post("/graphql", json=TYPENAME)
    assert single.json() == {"data": {"__typename": "Query"}}
    assert single.headers["content-type"] in {
        "application/json; charset=utf-8",
        "application/graphql-response+json; charset=utf-8",
    }
    assert single.headers["content-length"] == str(len(single.content))
    batch = await client.http.post("/graphql", json=[TYPENAME, TYPENAME])
    assert batch.json() == [{"data": {"__typename": "Query"}}] * 2


def test_request_headers_answer_as_starlettes_without_raising_for_absent_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scope = _http_scope(
        [(b"accept", b"application/json"), (b"x-twice", b"first"), (b"x-twice", b"second")]
    )
    expected = {
        name: Headers(scope=scope).get(name, "none")
        for name in ("Accept", "accept", "x-twice", "authorization")
    }

    def no_getitem(self: Headers, key: str) -> str:
        raise AssertionError("looked up through __getitem__ and its KeyError")

    monkeypatch.setattr(Headers, "__getitem__", no_getitem)
    headers = RequestHeaders(scope=scope)
    assert {name: headers.get(name, "none") for name in expected} == expected
    assert expected["x-twice"] == "first" and expected["authorization"] == "none"


def _edge(app: Any) -> EdgeMiddleware:
    cors = partial(CORSMiddleware, allow_origins=["https://app.example.com"])
    return EdgeMiddleware(app, max_bytes=100, cors=cors, routes=HttpRoutes(["/graphql"]))


async def _answer(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def _answered(app: Any, scope: Scope) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, _receive, send)
    return sent


async def test_the_edge_wraps_a_request_without_origin_once() -> None:
    """Request id, metrics, CORS and the body limit in one layer: a request without
    Origin reaches the app with the server's own receive and a single send wrapper, and
    its answer carries what CORS adds to one (`Vary: Origin`) and the request id, as the
    separate layers answered it."""
    depths: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        assert receive is _receive
        await _answer(scope, receive, send)

    async def server_send(message: Message) -> None:
        # The frames between the app's code and the server's send: the edge's one wrapper.
        frame, depth = sys._getframe(1), 0
        while frame.f_code is not _answer.__code__:
            frame, depth = frame.f_back, depth + 1  # type: ignore[assignment]
        depths.append(depth)

    scope = _http_scope([(b"content-length", b"2")])
    await _edge(app)(scope, _receive, server_send)
    assert depths == [1, 1]

    [start, _] = await _answered(_edge(_answer), _http_scope([(b"content-length", b"2")]))
    names = [name for name, _ in start["headers"]]
    assert names == [b"vary", b"x-request-id"] and start["headers"][0] == (b"vary", b"Origin")


async def test_the_edge_joins_vary_and_hands_requests_with_origin_to_cors() -> None:
    async def varying(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"vary", b"Accept"), (b"vary", b"Cookie")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"{}"})

    [start, _] = await _answered(_edge(varying), _http_scope([]))
    assert Headers(raw=start["headers"]).getlist("vary") == ["Accept, Cookie, Origin"]

    allowed = [(b"origin", b"https://app.example.com"), (b"content-length", b"2")]
    [start, _] = await _answered(_edge(_answer), _http_scope(allowed))
    headers = Headers(raw=start["headers"])
    assert headers["access-control-allow-origin"] == "https://app.example.com"
    assert headers["vary"] == "Origin" and "x-request-id" in headers
    # Too large a body is refused inside CORS, as the body limit's own layer was.
    large = [(b"origin", b"https://evil.example.com"), (b"content-length", b"101")]
    [start, _] = await _answered(_edge(_answer), _http_scope(large))
    assert start["status"] == 413 and "access-control-allow-origin" not in dict(start["headers"])


async def test_the_edges_own_error_answer_bears_the_request_id_alone() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("a bug")

    [start, body] = await _answered(_edge(broken), _http_scope([(b"content-length", b"2")]))
    assert start["status"] == 500
    assert [name for name, _ in start["headers"]] == [
        b"content-type",
        b"content-length",
        b"x-request-id",
    ]
    assert b"INTERNAL_SERVER_ERROR" in body["body"]


async def test_websocket_frames_pass_one_wrapper_of_the_edge() -> None:
    """After the handshake a frame goes from the app to the server through the edge's one
    gate (size limit and open-socket count), not through a wrapper per layer."""
    depths: list[int] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "frame"})

    async def server_send(message: Message) -> None:
        frame, depth = sys._getframe(1), 0
        while frame.f_code is not app.__code__:
            frame, depth = frame.f_back, depth + 1  # type: ignore[assignment]
        depths.append(depth)

    async def server_receive() -> Message:
        return {"type": "websocket.connect"}

    scope = {"type": "websocket", "path": "/graphql", "headers": []}
    await _edge(app)(scope, server_receive, server_send)
    assert depths == [1, 1]


SAME_BYTES = [
    {"data": {"__typename": "Query"}},
    {"data": None, "errors": [{"message": "x", "path": ["a", 0], "extensions": {"code": "X"}}]},
    [{"data": {"n": -3, "ok": True, "none": None, "list": [1, "two", 3.5]}}],
    {"text": 'quotes " and \\ and \n\t\u0001 controls'},
    {"big": 2**70, "surrogate": "\ud800"},  # to json.dumps: orjson refuses them
    {1: "a key that is not a string"},
]
SAME_VALUE = [
    {"data": {"name": "Zoë 🚲 \u2013 東京", "sep": "\u2028"}},
    {"data": {"float": 1e16, "small": 1.5e-7}},
]


@pytest.mark.parametrize("value", SAME_BYTES + SAME_VALUE)
def test_answers_are_the_json_they_were(value: Any) -> None:
    """orjson writes an HTTP answer: the same JSON value as `json.dumps`, with the same
    keys in the same order, byte for byte in ASCII; other characters as UTF-8, floats in
    their shortest form (README, "GraphQL over HTTP")."""
    before = json.dumps(value, separators=(",", ":"))
    after = answer_json.dumps(value)
    assert json.loads(after) == json.loads(before)
    if value in SAME_BYTES:
        assert after == before.encode()


def test_answers_refuse_what_json_refused() -> None:
    with pytest.raises(TypeError):
        answer_json.dumps({"when": datetime.now(UTC)})


BODIES: list[list[Message]] = [
    [{"type": "http.request", "body": b"{}", "more_body": False}],
    [{"type": "http.request"}],
    [
        {"type": "http.request", "body": b"[1,", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": True},
        {"type": "http.request", "body": b"2]"},
    ],
    [{"type": "http.request", "body": b"[1,", "more_body": True}, {"type": "http.disconnect"}],
]


@pytest.mark.parametrize("messages", BODIES)
async def test_a_requests_body_reads_as_starlettes(
    messages: list[Message], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The view's request reads its body without Starlette's `stream` generator, to the
    same bytes and the same ClientDisconnect."""

    async def outcome(request: Request) -> tuple[object, ...]:
        try:
            first = await request.body()
        except ClientDisconnect:
            return ("disconnected", await request.is_disconnected())
        return (first, await request.body())

    def receiver() -> Receive:
        pending = list(messages)

        async def receive() -> Message:
            return pending.pop(0)

        return receive

    def no_stream(self: Request) -> None:
        raise AssertionError("the body was read through Request.stream")

    scope = _http_scope([])
    with monkeypatch.context() as patched:
        patched.setattr(HTTPRequest, "stream", no_stream)
        ours = await outcome(HTTPRequest(scope, receiver()))
    assert ours == await outcome(Request(scope, receiver()))
    consumed = HTTPRequest(scope, receiver())
    async for _ in consumed.stream():
        break
    if messages[-1]["type"] != "http.disconnect" and len(messages) == 1:
        with pytest.raises(RuntimeError, match="Stream consumed"):
            await consumed.body()


async def test_websockets_of_a_served_path_skip_the_http_layers() -> None:
    """A websocket on one of the edge's socket routes goes to that route's app from the
    edge (with what the router would add to its scope), past Starlette's exception
    middleware and router; any other websocket path goes through the whole stack."""
    reached: list[tuple[str, Any]] = []

    class Endpoint:  # an ASGI app, as the view is (a function would be a session's)
        async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
            reached.append(("endpoint", scope["path_params"]))
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": "frame"})

    endpoint = Endpoint()

    async def whole_stack(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(("stack", scope["path"]))
        await send({"type": "websocket.close", "code": 1000})

    sent: list[Message] = []

    async def server_send(message: Message) -> None:
        sent.append(message)

    async def server_receive() -> Message:
        return {"type": "websocket.connect"}

    cors = partial(CORSMiddleware, allow_origins=["https://app.example.com"])
    edge = EdgeMiddleware(
        whole_stack, max_bytes=100, cors=cors, sockets=[WebSocketRoute("/graphql", endpoint)]
    )
    served: Scope = {"type": "websocket", "path": "/graphql", "root_path": "", "headers": []}
    await edge(served, server_receive, server_send)
    other: Scope = {"type": "websocket", "path": "/elsewhere", "root_path": "", "headers": []}
    await edge(other, server_receive, server_send)
    assert reached == [("endpoint", {}), ("stack", "/elsewhere")]
    assert served["endpoint"] is endpoint
    assert [message["type"] for message in sent] == [
        "websocket.accept",
        "websocket.send",
        "websocket.close",
    ]


async def test_the_apps_graphql_websocket_enters_no_http_only_layer(
    base_url: str, client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's `/graphql` websocket is served from the edge layer: neither Starlette's
    exception middleware nor its router is entered for it, and it still speaks."""

    def refusing(cls: type) -> None:
        through = cls.__call__

        async def call(self: Any, scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "websocket":
                raise AssertionError(f"a websocket went through {cls.__name__}")
            await through(self, scope, receive, send)

        monkeypatch.setattr(cls, "__call__", call)

    tokens = await client.member("edge@example.com")
    refusing(ExceptionMiddleware)
    refusing(Router)
    async with ws(base_url) as socket:
        assert await socket.init(tokens.access) == {"type": "connection_ack"}
        await socket.send({"type": "ping"})
        assert await socket.receive() == {"type": "pong"}
