"""Bad bytes get a 4xx, never a 500: what cannot be decoded, or decodes to something no
part of the API can hold, is refused where the request is decoded, with a clear error
in GraphQL's shape (HTTP) or a 4400 close (websocket), and nothing changes.

Bodies are built by hand: a client's JSON encoder would not write most of them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from documents.accounts.users import User
from documents.chat.conversations import ChatMessage
from documents.marketplace.tasks import Task
from documents.payments.webhooks import WebhookEvent
from documents.settings import Settings
from server.app import create_app
from server.middleware import EdgeMiddleware
from server.runtime import Runtime
from server.strict_json import MAX_DEPTH
from tests.conftest import serve, serve_asgi
from tests.support.chat import task_chat
from tests.support.gigql_process import sharing_the_test_database
from tests.support.graphql_client import STRONG_PASSWORD, GraphQLClient, graphql_error_codes
from tests.support.marketplace import logged_in_admin, task_input
from tests.support.payments.webhooks import post_event, signature, stripe_event, webhook_secret
from tests.support.ws_client import LEGACY_WS, TRANSPORT_WS, ws

LONE = "\ud800"  # half of a surrogate pair: not a character, and not encodable
JSON = {"content-type": "application/json"}
LOGIN = "mutation($input: LoginInput!) { login(input: $input) { errors { code } } }"
SIGN_UP = "mutation($input: SignUpInput!) { signUp(input: $input) { errors { code } } }"
POST_TASK = "mutation($input: PostTaskInput!) { postTask(input: $input) { errors { code } } }"
SEND = "mutation($input: SendMessageInput!) { sendMessage(input: $input) { errors { code } } }"
TASKS = "query($f: TaskFilter) { tasks(filter: $f) { edges { cursor } } }"
NODE = "query($id: ID!) { node(id: $id) { id } }"
FIRST = "query($n: Int) { tasks(first: $n) { edges { cursor } } }"


def as_ascii_json(value: object) -> bytes:
    """JSON as Python writes it: a lone surrogate becomes the escape `\\ud800`."""
    return json.dumps(value).encode()


async def post_raw(http: httpx.AsyncClient, body: bytes) -> httpx.Response:
    return await http.post("/graphql", content=body, headers=JSON)


def bad_request(response: httpx.Response, *words: str) -> str:
    """The message of a 400 in GraphQL's error shape, which mentions `words`."""
    assert response.status_code == 400, response.text
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_REQUEST", error
    for word in words:
        assert word in error["message"], error
    message: str = error["message"]
    return message


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# --- lone surrogates --------------------------------------------------------------------


async def test_a_lone_surrogate_in_any_string_variable_is_a_bad_request(
    client: GraphQLClient,
) -> None:
    chat = await task_chat(client)
    users, tasks, messages = await User.count(), await Task.count(), await ChatMessage.count()
    cases: list[tuple[str, dict[str, Any], str | None]] = [
        (LOGIN, {"input": {"email": "ann@example.com", "password": LONE}}, None),
        (
            SIGN_UP,
            {
                "input": {
                    "name": f"Ann {LONE}",
                    "email": "new@example.com",
                    "password": STRONG_PASSWORD,
                    "roles": ["POSTER"],
                }
            },
            None,
        ),
        (POST_TASK, {"input": task_input(title=f"Mow {LONE} the lawn")}, chat.poster.access),
        (
            SEND,
            {"input": {"conversationId": chat.conversation_id, "text": f"hi {LONE}"}},
            chat.tasker.access,
        ),
        (TASKS, {"f": {"text": LONE}}, None),
        (NODE, {"id": LONE}, None),
    ]
    for query, variables, token in cases:
        headers = {**JSON, "authorization": f"Bearer {token}"} if token else JSON
        body = as_ascii_json({"query": query, "variables": variables})
        response = await client.http.post("/graphql", content=body, headers=headers)
        bad_request(response, "surrogate")
        # Also as a GET query's variables.
        response = await client.http.get(
            "/graphql", params={"query": query, "variables": json.dumps(variables)}
        )
        bad_request(response, "surrogate")
    assert (await User.count(), await Task.count(), await ChatMessage.count()) == (
        users,
        tasks,
        messages,
    )


async def test_a_lone_surrogate_in_a_document_is_refused(client: GraphQLClient) -> None:
    literal = (
        'mutation { login(input: {email: "a@example.com", password: "%s"}) { errors { code } } }'
    )
    # Decoded from the JSON body into the document: refused with the body.
    response = await post_raw(client.http, as_ascii_json({"query": literal % LONE}))
    bad_request(response, "surrogate")
    # Written as a GraphQL escape: the GraphQL parser refuses it.
    result = await client.execute(literal % "\\ud800")
    assert result["data"] is None
    assert [e["extensions"]["code"] for e in result["errors"]] == ["GRAPHQL_PARSE_FAILED"]
    assert "Invalid Unicode escape sequence" in result["errors"][0]["message"]


# --- bytes that are not JSON we accept ------------------------------------------------


async def test_invalid_utf8_is_a_bad_request(client: GraphQLClient) -> None:
    body = b'{"query": "{ __typename }", "variables": {"x": "caf\xe9"}}'  # Latin-1, not UTF-8
    bad_request(await post_raw(client.http, body), "UTF-8")
    bad_request(await post_raw(client.http, b'{"query": "{ __typename \xff }"}'), "UTF-8")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 1_000, 100_000])
async def test_deeply_nested_json_is_a_bad_request(client: GraphQLClient, depth: int) -> None:
    bad_request(await post_raw(client.http, nested(depth)), "JSON")
    variables = b'{"query": "%s", "variables": {"f": {"near": %s}}}' % (
        TASKS.encode(),
        nested(depth),
    )
    bad_request(await post_raw(client.http, variables), "JSON")
    in_url = min(depth, 10_000)  # a URL holds less than a body
    response = await client.http.get(
        "/graphql", params={"query": TASKS, "variables": '{"f": ' + nested(in_url).decode() + "}"}
    )
    bad_request(response, "JSON")


async def test_json_as_deep_as_the_limit_is_decoded(client: GraphQLClient) -> None:
    """The limit is on nesting, not on what a request may say: the variable is merely of
    the wrong type, which GraphQL reports as usual."""
    inner = nested(MAX_DEPTH - 2)
    body = b'{"query": "%s", "variables": {"n": %s}}' % (FIRST.encode(), inner)
    result = (await post_raw(client.http, body)).json()
    assert [e["extensions"]["code"] for e in result["errors"]] == ["BAD_USER_INPUT"]


@pytest.mark.parametrize(
    ("query", "number"),
    [
        (FIRST, b"1e400"),
        (FIRST, b"-1e400"),
        (FIRST, b"1" + b"0" * 400),
        (NODE, b"1" + b"0" * 5_000),  # past the digits Python will print
        (NODE, b"NaN"),
        (FIRST, b"Infinity"),
    ],
    ids=["1e400", "-1e400", "10^400", "10^5000", "NaN", "Infinity"],
)
async def test_numbers_no_argument_can_hold_are_bad_requests(
    client: GraphQLClient, query: str, number: bytes
) -> None:
    name = b"n" if query == FIRST else b"id"
    body = b'{"query": "%s", "variables": {"%s": %s}}' % (query.encode(), name, number)
    bad_request(await post_raw(client.http, body), "JSON")


async def test_odd_bytes_in_headers_are_bad_credentials_not_errors(client: GraphQLClient) -> None:
    """Header values arrive as Latin-1, never as lone surrogates: odd bytes there are a
    token or cookie that does not verify, and an id that is not kept."""
    me = {"query": "{ me { id } }"}
    for authorization in (b"Bearer \xe9\xff", b"\xff\xfe", b"Bearer " + b"x" * 4000):
        result = (
            await client.http.post("/graphql", json=me, headers={b"authorization": authorization})
        ).json()
        assert [e["extensions"]["code"] for e in result["errors"]] == ["INVALID_TOKEN"]
    refresh = "mutation { refreshToken(input: {}) { errors { code } } }"
    cookie = b"gigql_refresh=\xff\xfe\x80; other=\xe9"
    result = (
        await client.http.post("/graphql", json={"query": refresh}, headers={b"cookie": cookie})
    ).json()
    assert result["data"]["refreshToken"]["errors"] == [{"code": "INVALID_TOKEN"}]
    response = await client.http.get("/healthz", headers={b"x-request-id": b"\xff" * 20})
    assert response.status_code == 200 and len(response.headers["x-request-id"]) == 32


# --- request fields of the wrong type -------------------------------------------------


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'[{"query": 1}]', ("Operation 1 of the batch", "`query`")),
        (b'[{"query": "{ __typename }"}, {"query": ["{ me { id } }"]}]', ("Operation 2",)),
        (b'[{"query": "{ __typename }", "variables": [1]}]', ("`variables`",)),
        (b'[{"query": "{ __typename }", "extensions": "x"}]', ("`extensions`",)),
        (b'{"query": "{ __typename }", "operationName": 1}', ("`operationName`",)),
        (b'{"query": "{ __typename }", "operationName": ["A"]}', ("`operationName`",)),
        (b'[[{"query": "{ __typename }"}]]', ("JSON object",)),
        (b"[null]", ("JSON object",)),
    ],
)
async def test_request_fields_of_the_wrong_type_are_bad_requests(
    client: GraphQLClient, body: bytes, words: tuple[str, ...]
) -> None:
    bad_request(await post_raw(client.http, body), *words)


# --- the webhook ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        stripe_event().replace(b'"object": "event"', b'"object": "ev\xe9nt"'),
        stripe_event(event_id=f"evt_{LONE}"),
        stripe_event(data_object={"id": "obj_1", "deep": json.loads(nested(40))}),
        b'{"id": "evt_1", "type": "x", "data": ' + nested(100_000) + b"}",
    ],
    ids=["not UTF-8", "lone surrogate", "nested 40 deep", "nested 100000 deep"],
)
async def test_a_signed_webhook_that_is_not_json_we_accept_is_a_bad_request(
    runtime: Runtime, base_url: str, body: bytes
) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        response = await post_event(http, body, signature(body, webhook_secret(runtime.services)))
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "not an event"
    assert await WebhookEvent.count() == 0


# --- websockets -----------------------------------------------------------------------


async def test_a_deeply_nested_connection_init_is_closed_with_4400(base_url: str) -> None:
    init = '{"type": "connection_init", "payload": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}"
    async with ws(base_url) as socket:
        await socket.connection.send(init)
        code, _ = await socket.closed()
        assert code == 4400


async def test_a_lone_surrogate_in_a_websocket_message_is_closed_with_4400(
    base_url: str, client: GraphQLClient
) -> None:
    member = await client.member("ws@example.com")
    async with ws(base_url) as socket:
        await socket.connection.send(
            as_ascii_json({"type": "connection_init", "payload": {"Authorization": LONE}}).decode()
        )
        code, _ = await socket.closed()
        assert code == 4400
    async with ws(base_url) as socket:
        await socket.init(member.access)
        subscribe = {
            "id": "1",
            "type": "subscribe",
            "payload": {"query": NODE, "variables": {"id": LONE}},
        }
        await socket.connection.send(as_ascii_json(subscribe).decode())
        code, _ = await socket.closed()
        assert code == 4400


MALFORMED_MESSAGES: list[tuple[object, str]] = [
    ([1, 2], "must be a JSON object"),
    ("connection_init", "must be a JSON object"),
    ({"id": "1"}, "needs a string `type`"),
    ({"type": ["start"]}, "needs a string `type`"),
    ({"type": "stop", "id": [1]}, "`id` must be a string"),
    ({"type": "complete", "id": {"a": 1}}, "`id` must be a string"),
    ({"type": "start", "id": "1", "payload": "x"}, "needs a payload object"),
    ({"type": "subscribe", "id": "1"}, "needs a payload object"),
    ({"type": "subscribe", "payload": {"query": "{ __typename }"}}, "needs an `id`"),
    ({"type": "start", "id": "1", "payload": {"query": 1}}, "`query` must be a string"),
    (
        {"type": "subscribe", "id": "1", "payload": {"query": "{ me { id } }", "variables": [1]}},
        "`variables` must be an object",
    ),
    (
        {"type": "start", "id": "1", "payload": {"query": "{ me { id } }", "operationName": 1}},
        "`operationName` must be a string",
    ),
]


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_messages_of_the_wrong_shape_are_closed_with_4400(
    base_url: str, client: GraphQLClient, protocol: str
) -> None:
    member = await client.member("ws@example.com")
    for message, reason in MALFORMED_MESSAGES:
        async with ws(base_url, protocol) as socket:
            assert (await socket.init(member.access))["type"] == "connection_ack"
            await socket.connection.send(json.dumps(message))
            code, said = await socket.closed()
            assert code == 4400 and reason in said, (protocol, message, code, said)


async def test_websocket_messages_obey_the_body_limit(
    runtime: Runtime, settings: Settings, tmp_path: Path, client: GraphQLClient
) -> None:
    """`gigql serve` has uvicorn refuse them (1009), and so do the tests' servers; served
    by anything else, the app itself does."""
    limit = 4096
    app = create_app(settings.model_copy(update={"max_body_bytes": limit}), runtime)
    async with (
        sharing_the_test_database(tmp_path, settings, GIGQL_MAX_BODY_BYTES=str(limit)) as cli,
        serve(runtime, max_body_bytes=limit) as tests_server,
        serve_asgi(app) as uvicorn_unlimited,
    ):
        member = await client.member("ws@example.com")
        for url in (cli.base_url, tests_server, uvicorn_unlimited):
            async with ws(url) as socket:
                await socket.init(member.access)
                fits = {"type": "ping", "payload": {"pad": "x" * (limit - 100)}}
                await socket.send(fits)
                assert await socket.receive() == {"type": "pong"}
                # Fewer characters than the limit, more bytes.
                await socket.send({"type": "ping", "payload": {"pad": "é" * (limit // 2)}})
                code, _ = await socket.closed()
                assert code == 1009, url


# --- whatever slips through -------------------------------------------------------------


async def test_an_unexpected_error_is_a_graphql_error_with_the_request_id() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("a bug")

    async with (
        serve_asgi(
            EdgeMiddleware(broken, max_bytes=1 << 20, cors=lambda app: app), lifespan="off"
        ) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        response = await http.post("/graphql", json={"query": "{ __typename }"})
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    assert response.json() == {
        "errors": [
            {
                "message": "Internal server error",
                "extensions": {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id},
            }
        ]
    }


async def test_a_number_no_int_can_hold_is_refused_as_bad_input(
    client: GraphQLClient, base_url: str
) -> None:
    """A page size written with thousands of digits: more than a Python int parses by
    default, and far more than a GraphQL Int holds."""
    huge = "9" * 4500
    query = f"{{ tasks(first: {huge}) {{ edges {{ node {{ id }} }} }} }}"
    response = await client.post(query)
    assert response.status_code == 200, response.text
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED", error
    member = await client.member("ws@example.com")
    async with ws(base_url) as socket:
        await socket.init(member.access)
        await socket.subscribe("1", query)
        refused = await socket.receive()
        assert refused["type"] == "error" and refused["id"] == "1", refused
        assert refused["payload"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"


@pytest.mark.parametrize(
    "moment", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-12:00", "1899-12-31T00:00:00Z"]
)
async def test_a_moment_at_the_edge_of_the_calendar_is_bad_input(
    client: GraphQLClient, runtime: Runtime, moment: str
) -> None:
    """Years anyone can mean only: at the calendar's edges a margin or an offset would
    overflow (a 500 before). As a variable and as a literal."""
    admin = await logged_in_admin(client, runtime)
    by_variable = await client.execute(
        "query($from: DateTime) { escrows(filter: {createdFrom: $from}) { edges { cursor } } }",
        {"from": moment},
        token=admin.access,
    )
    assert graphql_error_codes(by_variable) == ["BAD_USER_INPUT"], by_variable
    literal = f'{{ escrows(filter: {{createdFrom: "{moment}"}}) {{ edges {{ cursor }} }} }}'
    by_literal = await client.execute(literal, token=admin.access)
    assert graphql_error_codes(by_literal) == ["GRAPHQL_VALIDATION_FAILED"], by_literal
