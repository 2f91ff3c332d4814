"""Operations that would cost too much are refused before anything runs."""

from __future__ import annotations

import httpx
from graphql import get_introspection_query

from server.runtime import Runtime
from tests.conftest import serve
from tests.support.graphql_client import GraphQLClient

DEEP = "{ me { sessions { edges { node { id } } } } }"  # five levels


def _codes(body: dict[str, object]) -> list[str]:
    errors = body.get("errors")
    assert isinstance(errors, list)
    return [e["extensions"]["code"] for e in errors]


async def test_depth_cost_and_aliases_are_limited(runtime: Runtime) -> None:
    async with (
        serve(runtime, max_query_depth=4, max_query_cost=200, max_aliases=2) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        deep = (await http.post("/graphql", json={"query": DEEP})).json()
        assert deep["data"] is None and _codes(deep) == ["QUERY_TOO_DEEP"]
        assert "more than 4 levels deep" in deep["errors"][0]["message"]

        # Page info costs the same whatever the page size: allowed (and refused only for want of a login).
        cheap = "{ me { sessions(first: 100) { pageInfo { hasNextPage } } } }"
        assert _codes((await http.post("/graphql", json={"query": cheap})).json()) == [
            "UNAUTHENTICATED"
        ]

        # me, sessions, edges: 1 each; then cursor and node per item: 3 + 2 * 100 = 203 > 200
        costly = (
            await http.post(
                "/graphql",
                json={
                    "query": "{ me { sessions(first: 100) { edges { cursor node { __typename } } } } }"
                },
            )
        ).json()
        assert costly["data"] is None and _codes(costly) == ["QUERY_TOO_COSTLY"]
        assert "would cost more than 200" in costly["errors"][0]["message"]

        aliases = (
            await http.post(
                "/graphql", json={"query": "{ a: __typename b: __typename c: __typename }"}
            )
        ).json()
        assert aliases["data"] is None and _codes(aliases) == ["TOO_MANY_ALIASES"]
        two = (
            await http.post("/graphql", json={"query": "{ a: __typename b: __typename }"})
        ).json()
        assert two == {"data": {"a": "Query", "b": "Query"}}


async def test_page_sizes_weigh_on_the_cost(runtime: Runtime) -> None:
    async with serve(runtime, max_query_cost=150) as url, httpx.AsyncClient(base_url=url) as http:
        query = "query Q { me { sessions(first: %s) { edges { node { id device } } pageInfo { hasNextPage } } } }"
        # me, sessions, pageInfo, hasNextPage, edges: 1 each; then node, id, device per item
        small = (await http.post("/graphql", json={"query": query % "10"})).json()
        assert _codes(small) == ["UNAUTHENTICATED"]  # allowed to run; no token
        large = (await http.post("/graphql", json={"query": query % "60"})).json()
        assert _codes(large) == ["QUERY_TOO_COSTLY"]
        # A variable page size counts as the largest page, whatever its value.
        with_variable = query.replace("query Q", "query Q($n: Int)") % "$n"
        variable = (
            await http.post("/graphql", json={"query": with_variable, "variables": {"n": 1}})
        ).json()
        assert _codes(variable) == ["QUERY_TOO_COSTLY"]
        # Fragments are counted where they are spread.
        fragment = "query { me { ...S } } fragment S on User { sessions(first: 60) { edges { node { id device } } } }"
        assert _codes((await http.post("/graphql", json={"query": fragment})).json()) == [
            "QUERY_TOO_COSTLY"
        ]


async def test_too_many_tokens_are_refused_while_parsing(client: GraphQLClient) -> None:
    query = "{ " + " ".join(["__typename"] * 6000) + " }"
    body = (await client.http.post("/graphql", json={"query": query})).json()
    assert _codes(body) == ["GRAPHQL_PARSE_FAILED"]
    assert "tokens" in body["errors"][0]["message"]


async def test_introspection_is_not_counted_against_the_limits(client: GraphQLClient) -> None:
    body = (await client.http.post("/graphql", json={"query": get_introspection_query()})).json()
    assert "errors" not in body
    assert body["data"]["__schema"]["queryType"]["name"] == "Query"


async def test_cyclic_fragments_are_refused_without_looping(client: GraphQLClient) -> None:
    query = "query { me { ...A } } fragment A on User { ...B } fragment B on User { ...A }"
    body = (await client.http.post("/graphql", json={"query": query})).json()
    assert body["data"] is None and "GRAPHQL_VALIDATION_FAILED" in _codes(body)
