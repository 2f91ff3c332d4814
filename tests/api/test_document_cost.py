"""Whatever document a client sends, the work done on it before execution is linear in its
size and is never done on the event loop: it is refused or answered while the loop keeps
turning (tests/support/loop_watch.py). Over HTTP, in batches, and over both websocket protocols."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from graphql import Lexer, Source, TokenKind

from server.runtime import Runtime
from tests.conftest import serve
from tests.support.graphql_client import GraphQLClient
from tests.support.loop_watch import watching_the_loop
from tests.support.ws_client import LEGACY_WS, TRANSPORT_WS, WsClient, ws

MAX_TOKENS = 5_000


def tokens(document: str) -> int:
    lexer = Lexer(Source(document))
    count = 0
    while lexer.advance().kind is not TokenKind.EOF:
        count += 1
    return count


def near_the_token_limit(make: Callable[[int], str]) -> str:
    """The largest document `make(n)` makes within the token limit (or at n = 2^16, for
    shapes that stop growing)."""
    low, high = 1, 2
    while high < 2**16 and tokens(make(high)) <= MAX_TOKENS:
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if tokens(make(middle)) <= MAX_TOKENS else (low, middle)
    return make(low)


def doubling(levels: int, leaf: str = "__typename", on: str = "Query") -> list[str]:
    """Fragments that each spread the one before twice: 2^levels leaves when expanded."""
    fragments = [f"fragment F0 on {on} {{ {leaf} }}"]
    fragments += [
        f"fragment F{i} on {on} {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels + 1)
    ]
    return fragments


def fragment_doubling(levels: int) -> str:
    return f"query {{ ...F{levels} }} " + " ".join(doubling(levels))


# Documents of every shape the limits let through the parser, each at the token limit.
SHAPES: dict[str, Callable[[int], str]] = {
    "the same field, repeated": lambda n: "{" + " me { id }" * n + " }",
    "the same leaf, repeated": lambda n: "{ me {" + " id" * n + " } }",
    "the same field in inline fragments": lambda n: "{" + " ... on Query { me { id } }" * n + " }",
    "fragments side by side, each with the same field": lambda n: (
        "{ "
        + " ".join(f"...F{i}" for i in range(n))
        + " } "
        + " ".join(f"fragment F{i} on Query {{ me {{ id }} }}" for i in range(n))
    ),
    "the same field with different arguments": lambda n: (
        "{"
        + "".join(f" tasks(first: {i % 7}) {{ pageInfo {{ hasNextPage }} }}" for i in range(n))
        + " }"
    ),
    "the members of a union, repeated": lambda n: (
        "{" + ' node(id: "x") { ... on User { id } ... on Task { id } }' * n + " }"
    ),
    "subscription fields, repeated": lambda n: "subscription {" + " myEvents { id }" * n + " }",
    "fragments spreading each other in a ring": lambda n: (
        "{ ...F0 } "
        + " ".join(
            f"fragment F{i} on Query {{ ...F{(i + 1) % n} ...F{(i + 2) % n} }}" for i in range(n)
        )
    ),
    "fragments spreading every later one": lambda n: (
        "{ me { ...F0 } } "
        + " ".join(
            f"fragment F{i} on User {{ id " + " ".join(f"...F{j}" for j in range(i + 1, n)) + " }"
            for i in range(n)
        )
    ),
    "fragment doubling under a field": lambda n: (
        f"{{ me {{ ...F{n} }} }} " + " ".join(doubling(n, "id", "User"))
    ),
    "many operations spreading one fragment": lambda n: (
        " ".join(f"query q{i} {{ ...F }}" for i in range(n))
        + " fragment F on Query { me { id } __typename }"
    ),
    "many operations sharing a fragment's variables": lambda n: (
        " ".join(f"query q{i}($v: ID!) {{ ...F }}" for i in range(20))
        + " fragment F on Query { nodes(ids: ["
        + " $v" * n
        + " ]) { id } }"
    ),
    "many variables": lambda n: (
        "query q(" + " ".join(f"$v{i}: Int" for i in range(n)) + ") { __typename }"
    ),
    "many arguments": lambda n: "{ tasks(" + " first: 1" * n + ") { pageInfo { hasNextPage } } }",
    "a large input object": lambda n: (
        "mutation { updateProfile(input: {" + ' name: "x"' * n + " }) { errors { code } } }"
    ),
    "many directives": lambda n: "{ __typename" + " @skip(if: false)" * n + " }",
    "a long list of ids": lambda n: "{ nodes(ids: [" + ' "x"' * n + " ]) { id } }",
    "nested lists": lambda n: (
        "{ nodes(ids: " + "[" * min(n, 190) + '"x"' + "]" * min(n, 190) + ") { id } }"
    ),
    "nested introspection": lambda n: (
        "{ __schema { types { "
        + "fields { type { ofType { " * min(n, 60)
        + "name"
        + " } } }" * min(n, 60)
        + " } } }"
    ),
}
ANSWERED_OR_REFUSED = {200, 400}


def codes(body: dict[str, Any]) -> set[str]:
    return {error["extensions"]["code"] for error in body.get("errors", ())}


async def test_a_chain_of_fragments_doubling_to_40_levels_is_measured_linearly(
    client: GraphQLClient,
) -> None:
    for levels in (18, 40):
        async with watching_the_loop() as loop:
            response = await client.post(fragment_doubling(levels))
        loop.assert_never_held_up(f"fragments doubling {levels} times")
        # Only __typename: nothing to pay for, so it runs, as cheaply as it was measured.
        assert response.json() == {"data": {"__typename": "Query"}}

    costly = "{ me { ...F40 } } " + " ".join(
        doubling(40, "sessions { edges { node { id } } }", "User")
    )
    async with watching_the_loop() as loop:
        body = (await client.post(costly)).json()
    loop.assert_never_held_up("fragments doubling a costly field 40 times")
    assert codes(body) == {"QUERY_TOO_COSTLY"}


async def test_depth_is_measured_through_fragments(runtime: Runtime) -> None:
    # me, sessions, edges, node, id: five levels, four of them in fragments.
    through = (
        "{ me { ...A } } fragment A on User { sessions { edges { node { ...B } } } } "
        "fragment B on Session { id }"
    )
    # Each link of the chain adds four levels: 600 in all, far past any recursion limit.
    chain = (
        "{ me { ...U0 } } "
        + " ".join(
            f"fragment U{i} on User {{ reviews(first: 1) {{ edges {{ node {{ author {{ ...U{i + 1} }} }} }} }} }}"
            for i in range(150)
        )
        + " fragment U150 on User { id }"
    )
    async with serve(runtime, max_query_depth=4) as url, httpx.AsyncClient(base_url=url) as http:
        assert codes((await http.post("/graphql", json={"query": through})).json()) == {
            "QUERY_TOO_DEEP"
        }
        async with watching_the_loop() as loop:
            refused = (await http.post("/graphql", json={"query": chain})).json()
        loop.assert_never_held_up("a chain of 150 fragments")
        assert codes(refused) == {"QUERY_TOO_DEEP"}
        assert "more than 4 levels deep" in refused["errors"][0]["message"]


@pytest.mark.parametrize("shape", sorted(SHAPES))
async def test_a_document_of_any_shape_is_refused_or_answered_without_holding_up_the_loop(
    client: GraphQLClient, shape: str
) -> None:
    document = near_the_token_limit(SHAPES[shape])
    async with watching_the_loop() as loop:
        response = await client.http.post("/graphql", json=request(document))
    loop.assert_never_held_up(shape)
    assert response.status_code == 200, response.text
    assert response.json()["errors"], "every shape is refused for one reason or another"


async def test_the_same_bomb_behind_new_comments_is_refused_as_cheaply_each_time(
    client: GraphQLClient,
) -> None:
    bomb = near_the_token_limit(SHAPES["the same field, repeated"])
    for attempt in range(3):
        async with watching_the_loop() as loop:
            body = (await client.post(f"# attempt {attempt}\n{bomb}")).json()
        loop.assert_never_held_up(f"attempt {attempt}")
        assert codes(body) == {"QUERY_TOO_COMPLEX"}


LONG_TEXTS = {
    "a long comment": ("{ __typename } #" + "x" * 99_000, {"data": {"__typename": "Query"}}),
    "a long string": ('{ node(id: "' + "x" * 99_000 + '") { id } }', None),
    "a text over the length limit": ("{ __typename } #" + "x" * 900_000, None),
}


@pytest.mark.parametrize("text", sorted(LONG_TEXTS))
async def test_long_texts_are_read_off_the_loop_and_bounded(
    client: GraphQLClient, text: str
) -> None:
    document, answer = LONG_TEXTS[text]
    async with watching_the_loop() as loop:
        response = await client.post(document)
    loop.assert_never_held_up(text)
    assert response.status_code == 200, response.text
    if answer is not None:
        assert response.json() == answer
    if len(document) > 100_000:
        body = response.json()
        assert codes(body) == {"GRAPHQL_PARSE_FAILED"}
        assert "the limit is 100000" in body["errors"][0]["message"]


async def test_a_batch_of_documents_at_the_token_limit(client: GraphQLClient) -> None:
    batch = [request(near_the_token_limit(SHAPES[shape])) for shape in sorted(SHAPES)[:10]]
    async with watching_the_loop() as loop:
        response = await client.http.post("/graphql", json=batch)
    loop.assert_never_held_up("a batch of ten")
    assert response.status_code == 200, response.text
    assert len(response.json()) == 10


@pytest.mark.parametrize("protocol", [TRANSPORT_WS, LEGACY_WS])
async def test_over_websocket_documents_are_prepared_off_the_loop_too(
    base_url: str, client: GraphQLClient, protocol: str
) -> None:
    member = await client.member("ws@example.com")
    bombs = {
        "1": near_the_token_limit(SHAPES["subscription fields, repeated"]),
        "2": "subscription { myEvents { id } } #" + "x" * 300_000,
        "3": "subscription { ...F40 } " + " ".join(doubling(40, "myEvents { id }", "Subscription")),
    }
    async with ws(base_url, protocol) as socket:
        await socket.init(member.access)
        for operation_id, bomb in bombs.items():
            async with watching_the_loop() as loop:
                await socket.subscribe(operation_id, bomb)
                refusal = await next_message(socket)
            loop.assert_never_held_up(f"operation {operation_id} over {protocol}")
            assert refusal["type"] == "error" and refusal["id"] == operation_id, refusal
        # Refusals end the operation, not the socket: it still answers.
        await socket.subscribe("4", "subscription { nope }")
        answer = await next_message(socket)
        assert answer["type"] == "error" and answer["id"] == "4", answer


def request(document: str) -> dict[str, Any]:
    # A document of several operations runs the one named.
    return {"query": document, "operationName": "q0" if document.startswith("query q0") else None}


async def next_message(socket: WsClient) -> dict[str, Any]:
    while True:
        message = await socket.receive()
        if message["type"] not in ("ka", "ping", "pong"):
            return message
