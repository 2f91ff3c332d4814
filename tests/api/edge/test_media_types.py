"""GraphQL over HTTP's media types, over real HTTP: which one an answer is in, and the
status codes of `application/graphql-response+json` (server/edge/media_types.py)."""

from __future__ import annotations

import httpx
import pytest

from tests.support.graphql_client import GraphQLClient

NEW = "application/graphql-response+json; charset=utf-8"
OLD = "application/json; charset=utf-8"
TYPENAME = {"query": "{ __typename }"}


@pytest.mark.parametrize(
    ("accept", "answered_in"),
    [
        (None, NEW),  # after the specification's legacy watershed
        ("*/*", OLD),
        ("application/*", OLD),
        ("application/json", OLD),
        ("application/graphql-response+json", NEW),
        ("application/graphql-response+json; charset=utf-8, application/json; charset=utf-8", NEW),
        ("application/json, application/graphql-response+json", OLD),  # listed first
        ("application/json;q=0.9, application/graphql-response+json", NEW),
        ("*/*, application/json;q=0", NEW),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", OLD),
    ],
)
async def test_the_answer_is_in_the_type_accept_ranks_highest(
    client: GraphQLClient, accept: str | None, answered_in: str
) -> None:
    headers = {"content-type": "application/json"} | ({"accept": accept} if accept else {})
    request = client.http.build_request("POST", "/graphql", json=TYPENAME, headers=headers)
    if accept is None:
        del request.headers["accept"]  # httpx sends */* unless told
    response = await client.http.send(request)
    assert response.status_code == 200
    assert response.headers["content-type"] == answered_in
    assert response.json() == {"data": {"__typename": "Query"}}


@pytest.mark.parametrize(
    "accept", ["text/html", "application/json;q=0", "application/json; charset=latin1", "nonsense"]
)
async def test_nothing_acceptable_is_406(client: GraphQLClient, accept: str) -> None:
    response = await client.http.post("/graphql", json=TYPENAME, headers={"accept": accept})
    assert response.status_code == 406
    assert response.headers["content-type"] == OLD
    assert response.json()["errors"][0]["extensions"]["code"] == "NOT_ACCEPTABLE"


REQUEST_ERRORS = {
    "parse": ({"query": "{ __typename"}, "GRAPHQL_PARSE_FAILED"),
    "validation": ({"query": "{ noSuchField }"}, "GRAPHQL_VALIDATION_FAILED"),
    "limits": ({"query": "{ " + " ".join(f"a{n}: __typename" for n in range(40)) + " }"}, None),
    "unknown operation": ({"query": "query A { __typename }", "operationName": "B"}, None),
    "variables": (
        {"query": "query($id: ID!) { node(id: $id) { id } }", "variables": {}},
        "BAD_USER_INPUT",
    ),
}


@pytest.mark.parametrize("case", REQUEST_ERRORS)
async def test_a_request_error_is_400_without_data_in_the_new_type_200_in_json(
    client: GraphQLClient, case: str
) -> None:
    body, code = REQUEST_ERRORS[case]
    new = await client.http.post(
        "/graphql", json=body, headers={"accept": "application/graphql-response+json"}
    )
    assert new.status_code == 400 and new.headers["content-type"] == NEW
    assert "data" not in new.json() and new.json()["errors"]
    old = await client.http.post("/graphql", json=body, headers={"accept": "application/json"})
    assert old.status_code == 200 and old.headers["content-type"] == OLD
    assert old.json()["data"] is None and old.json()["errors"] == new.json()["errors"]
    if code is not None:
        assert new.json()["errors"][0]["extensions"]["code"] == code


async def test_an_operation_that_ran_is_200_in_the_new_type(client: GraphQLClient) -> None:
    """Field errors are no request error: `me` needs a login, and being non-null its error
    nulls the whole `data`, which is still there (null) and a 200."""
    response = await client.http.post(
        "/graphql",
        json={"query": "{ __typename me { id } }"},
        headers={"accept": "application/graphql-response+json"},
    )
    assert response.status_code == 200 and response.headers["content-type"] == NEW
    body = response.json()
    assert "data" in body and body["data"] is None
    assert body["errors"][0]["path"] == ["me"]


async def test_our_own_error_answers_are_in_the_negotiated_type(client: GraphQLClient) -> None:
    new = {"accept": "application/graphql-response+json"}
    answers = {
        "bad json": await client.http.post(
            "/graphql", content=b"{", headers=new | {"content-type": "application/json"}
        ),
        "media type": await client.http.post(
            "/graphql", content=b"{}", headers=new | {"content-type": "text/plain"}
        ),
        "no media type": await client.http.post("/graphql", content=b"{}", headers=new),
        "too large": await client.http.post(
            "/graphql",
            content=b"{" + b" " * 2_000_000 + b"}",
            headers=new | {"content-type": "application/json"},
        ),
        "partner key": await client.http.post(
            "/graphql", json=TYPENAME, headers=new | {"authorization": "Bearer gq_nope"}
        ),
    }
    statuses = {name: answer.status_code for name, answer in answers.items()}
    assert statuses == {
        "bad json": 400,
        "media type": 415,
        "no media type": 415,
        "too large": 413,
        "partner key": 401,
    }
    for name, answer in answers.items():
        assert answer.headers["content-type"] == NEW, name
        assert "data" not in answer.json() and answer.json()["errors"], name


async def test_methods_and_mutations_over_get_are_405_with_allow(client: GraphQLClient) -> None:
    for method in ("PUT", "DELETE", "PATCH"):
        response = await client.http.request(method, "/graphql", json=TYPENAME)
        assert response.status_code == 405 and response.headers["allow"] == "GET, POST"
        assert response.headers["content-type"] == OLD
        assert response.json()["errors"][0]["extensions"]["code"] == "METHOD_NOT_ALLOWED"
    mutation = "mutation { logout(input: {}) { errors { code } } }"
    response = await client.http.get(
        "/graphql",
        params={"query": mutation},
        headers={"accept": "application/graphql-response+json"},
    )
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert response.headers["content-type"] == NEW


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        ("application/json", 200),
        ("application/json; charset=utf-8", 200),
        ("Application/JSON; Charset=UTF-8", 200),
        ("application/graphql-response+json", 200),
        ("application/graphql-response+json; charset=utf-8", 200),
        ("application/json; charset=iso-8859-1", 415),
        ("application/jsonx", 415),
    ],
)
async def test_request_bodies_are_json_in_utf_8(
    client: GraphQLClient, content_type: str, status: int
) -> None:
    response = await client.http.post(
        "/graphql", content=b'{"query": "{ __typename }"}', headers={"content-type": content_type}
    )
    assert response.status_code == status, response.text


async def test_an_empty_operation_name_in_a_get_is_none(client: GraphQLClient) -> None:
    response = await client.http.get(
        "/graphql", params={"query": "query A { __typename }", "operationName": ""}
    )
    assert response.json() == {"data": {"__typename": "Query"}}


async def test_graphiql_is_not_refused_as_unacceptable(base_url: str) -> None:
    """A browser's GET asks for text/html: the page, not a 406 (when GraphiQL is on)."""
    async with httpx.AsyncClient(base_url=base_url) as http:
        page = await http.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code in (200, 404) and page.status_code != 406
