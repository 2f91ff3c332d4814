"""The HTTP side of /graphql and the probes: every bad request gets a clear JSON error."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx

from documents.accounts.users import User
from server.runtime import Runtime
from tests.conftest import serve
from tests.support.graphql_client import GraphQLClient

TYPENAME = {"query": "{ __typename }"}


def _error(response: httpx.Response) -> tuple[str, str]:
    error = response.json()["errors"][0]
    return error["extensions"]["code"], error["message"]


async def test_get_and_post_queries(client: GraphQLClient) -> None:
    posted = await client.http.post("/graphql", json=TYPENAME)
    fetched = await client.http.get("/graphql", params=TYPENAME)
    assert posted.json() == fetched.json() == {"data": {"__typename": "Query"}}


async def test_malformed_json_is_a_bad_request(client: GraphQLClient) -> None:
    response = await client.http.post(
        "/graphql", content=b'{"query": ', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert _error(response) == (
        "BAD_REQUEST",
        "Unable to parse request body as JSON: unexpected end of data.",
    )
    response = await client.http.post(
        "/graphql", content=b'"a string"', headers={"content-type": "application/json"}
    )
    assert response.status_code == 400 and _error(response)[0] == "BAD_REQUEST"


async def test_other_content_types_are_refused(client: GraphQLClient) -> None:
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ):
        response = await client.http.post(
            "/graphql", content=b"query=%7B__typename%7D", headers={"content-type": content_type}
        )
        assert response.status_code == 415, content_type
        assert _error(response)[0] == "UNSUPPORTED_MEDIA_TYPE"


async def test_missing_and_unknown_operations(client: GraphQLClient) -> None:
    response = await client.http.post("/graphql", json={"variables": {}})
    assert response.status_code == 400 and "No GraphQL query" in _error(response)[1]
    two = "query A { __typename } query B { __typename }"
    # A request error that runs nothing: 200 with `data: null` as application/json (the
    # client accepts */*); tests/api/edge/test_media_types.py has the 400 of the newer type.
    response = await client.http.post("/graphql", json={"query": two, "operationName": "C"})
    assert response.status_code == 200 and response.json()["data"] is None
    assert _error(response) == ("BAD_REQUEST", "Unknown operation named 'C'.")
    response = await client.http.post("/graphql", json={"query": two})
    assert response.status_code == 200 and _error(response) == (
        "BAD_REQUEST",
        "Name the operation to run: the document has several.",
    )
    response = await client.http.post("/graphql", json={"query": two, "operationName": "B"})
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_syntax_and_validation_errors(client: GraphQLClient) -> None:
    syntax = (await client.http.post("/graphql", json={"query": "{ me "})).json()
    assert (
        syntax["data"] is None
        and syntax["errors"][0]["extensions"]["code"] == "GRAPHQL_PARSE_FAILED"
    )
    invalid = (await client.http.post("/graphql", json={"query": "{ noSuchField }"})).json()
    assert invalid["errors"][0]["extensions"]["code"] == "GRAPHQL_VALIDATION_FAILED"
    variables = (
        await client.http.post(
            "/graphql", json={"query": "query($id: ID!) { node(id: $id) { id } }", "variables": {}}
        )
    ).json()
    assert variables["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_mutations_need_post(client: GraphQLClient) -> None:
    response = await client.http.get(
        "/graphql", params={"query": "mutation { logout(input: {}) { errors { code } } }"}
    )
    assert response.status_code == 405 and _error(response)[0] == "METHOD_NOT_ALLOWED"


async def test_oversized_bodies_are_refused_before_parsing(client: GraphQLClient) -> None:
    big = b'{"query": "{ __typename }", "pad": "' + b"x" * 1_100_000 + b'"}'
    response = await client.http.post(
        "/graphql", content=big, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413 and _error(response)[0] == "PAYLOAD_TOO_LARGE"

    async def chunks() -> AsyncIterator[bytes]:  # no content-length: counted while streaming
        for _ in range(11):
            yield b"x" * 100_000

    response = await client.http.post(
        "/graphql", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


async def test_batches_are_limited(client: GraphQLClient) -> None:
    response = await client.http.post("/graphql", json=[TYPENAME] * 3)
    assert response.json() == [{"data": {"__typename": "Query"}}] * 3
    response = await client.http.post("/graphql", json=[TYPENAME] * 11)
    assert response.status_code == 400 and _error(response)[0] == "BAD_REQUEST"


async def test_batched_mutations_that_fail_change_nothing(client: GraphQLClient) -> None:
    bad = {
        "query": 'mutation { signUp(input: {name: "A", email: "a@example.com", password: "weak", roles: [POSTER]}) { errors { code } } }'
    }
    response = await client.http.post("/graphql", json=[bad, bad])
    assert [r["data"]["signUp"]["errors"][0]["code"] for r in response.json()] == [
        "WEAK_PASSWORD"
    ] * 2
    assert await User.count() == 0


async def test_every_response_carries_a_request_id(client: GraphQLClient) -> None:
    ours = await client.http.post("/graphql", json=TYPENAME)
    assert len(ours.headers["x-request-id"]) == 32
    other = await client.http.post("/graphql", json=TYPENAME)
    assert other.headers["x-request-id"] != ours.headers["x-request-id"]
    kept = await client.http.get("/healthz", headers={"x-request-id": "proxy-id-12345"})
    assert kept.headers["x-request-id"] == "proxy-id-12345"
    replaced = await client.http.get("/healthz", headers={"x-request-id": "bad id with spaces"})
    assert replaced.headers["x-request-id"] != "bad id with spaces"
    refused = await client.http.post(
        "/graphql", content=b"x" * 2_000_000, headers={"content-type": "application/json"}
    )
    assert "x-request-id" in refused.headers


async def test_probes(client: GraphQLClient) -> None:
    assert (await client.http.get("/healthz")).json() == {"status": "ok"}
    ready = await client.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}


async def test_graphiql_is_served_in_development(client: GraphQLClient) -> None:
    page = await client.http.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and "graphiql" in page.text.lower()


async def test_production_switches_off_graphiql_and_introspection(runtime: Runtime) -> None:
    async with (
        serve(runtime, graphiql=False, introspection=False) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        page = await http.get("/graphql", headers={"accept": "text/html"})
        assert page.status_code == 404
        response = await http.post("/graphql", json={"query": "{ __schema { types { name } } }"})
        errors = response.json()["errors"]
        assert response.status_code == 200 and "introspection" in errors[0]["message"].lower()
        typo = await http.post("/graphql", json={"query": "{ mee { id } }"})
        assert "Did you mean" not in typo.text  # suggestions would leak the schema
        assert (await http.post("/graphql", json=TYPENAME)).json() == {
            "data": {"__typename": "Query"}
        }


async def test_cors_allows_only_configured_origins(runtime: Runtime) -> None:
    async with (
        serve(runtime, cors_origins=["https://app.example.com"]) as url,
        httpx.AsyncClient(base_url=url) as http,
    ):
        preflight = await http.options(
            "/graphql",
            headers={
                "origin": "https://app.example.com",
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"
        assert preflight.headers["access-control-allow-credentials"] == "true"
        foreign = await http.post(
            "/graphql", json=TYPENAME, headers={"origin": "https://evil.example.com"}
        )
        assert "access-control-allow-origin" not in foreign.headers
        denied = await http.options(
            "/graphql",
            headers={"origin": "https://evil.example.com", "access-control-request-method": "POST"},
        )
        assert denied.status_code == 400


async def test_readiness_fails_when_the_broker_is_down(runtime: Runtime) -> None:
    from dataclasses import replace

    from realtime.broker import RedisBroker
    from server.embedded import free_port

    broker = RedisBroker(f"redis://127.0.0.1:{free_port()}/0")
    broken = replace(runtime, services=replace(runtime.services, broker=broker))
    try:
        async with serve(broken) as url, httpx.AsyncClient(base_url=url) as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"] == {"database": "ok", "broker": "unavailable"}
    finally:
        await broker.close()
