"""What every HTTP request costs: work a request does not need is not done for it
(issue 16, bench/README.md "Issue 16: per-request cost")."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.datastructures import Headers
from starlette.types import Message, Receive, Scope, Send
from strawberry.http.async_base_view import AsyncBaseHTTPView

from server.edge.headers import RequestHeaders
from server.middleware import BodySizeLimitMiddleware
from tests.support.graphql_client import GraphQLClient

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
