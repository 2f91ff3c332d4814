"""Relay ids and nodes, connections, payload errors, and masking of unexpected errors."""

from __future__ import annotations

import base64
import logging

import pytest

from resolvers.accounts import own_account as accounts
from tests.support.graphql_client import GraphQLClient, graphql_error_codes

NODE = """query($id: ID!) { node(id: $id) { __typename id
  ... on User { name email phone } ... on Session { device } } }"""
NODES = "query($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }"
SESSIONS = "query($first: Int, $after: String) { me { sessions(first: $first, after: $after) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } } }"


async def test_global_ids_are_opaque_and_resolve_through_node(client: GraphQLClient) -> None:
    ann = await client.member("ann@example.com", phone="+14155550123")
    assert base64.b64decode(ann.user_id).decode().startswith("User:")
    own = (await client.data(NODE, {"id": ann.user_id}, token=ann.access))["node"]
    assert own == {
        "__typename": "User",
        "id": ann.user_id,
        "name": "Test User",
        "email": "ann@example.com",
        "phone": "+14155550123",
    }


async def test_private_fields_read_null_for_other_people(client: GraphQLClient) -> None:
    ann = await client.member("ann2@example.com", phone="+14155550123")
    ben = await client.member("ben@example.com")
    seen = await client.execute(NODE, {"id": ann.user_id}, token=ben.access)
    assert "errors" not in seen
    assert seen["data"]["node"] == {
        "__typename": "User",
        "id": ann.user_id,
        "name": "Test User",
        "email": None,
        "phone": None,
    }
    anonymous = await client.data(NODE, {"id": ann.user_id})
    assert anonymous["node"]["email"] is None


async def test_sessions_are_nodes_only_their_owner_can_fetch(client: GraphQLClient) -> None:
    ann = await client.member("ann3@example.com")
    ben = await client.member("ben3@example.com")
    session_id = (await client.data(SESSIONS, token=ann.access))["me"]["sessions"]["edges"][0][
        "node"
    ]["id"]
    assert (await client.data(NODE, {"id": session_id}, token=ann.access))["node"][
        "__typename"
    ] == "Session"
    assert (await client.data(NODE, {"id": session_id}, token=ben.access))["node"] is None


async def test_nodes_keeps_order_and_nulls_what_is_missing(client: GraphQLClient) -> None:
    ann = await client.member("ann4@example.com")
    ben = await client.member("ben4@example.com")
    missing = base64.b64encode(b"User:000000000000000000000000").decode()
    unknown_type = base64.b64encode(b"Nothing:1").decode()
    nodes = (await client.data(NODES, {"ids": [ben.user_id, missing, ann.user_id, unknown_type]}))[
        "nodes"
    ]
    assert [n and n["id"] for n in nodes] == [ben.user_id, None, ann.user_id, None]


async def test_malformed_ids_are_input_errors(client: GraphQLClient) -> None:
    result = await client.execute(NODE, {"id": "%%% not base64"})
    assert result["data"] == {"node": None}
    assert graphql_error_codes(result) == ["INVALID_ID"]


async def test_connections_page_with_cursors_up_to_the_maximum(client: GraphQLClient) -> None:
    await client.sign_up("cat@example.com")
    tokens = [await client.login("cat@example.com") for _ in range(5)]
    token = tokens[-1].access
    seen: list[str] = []
    after = None
    while True:
        page = (await client.data(SESSIONS, {"first": 2, "after": after}, token=token))["me"][
            "sessions"
        ]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert len(seen) == 5 and len(set(seen)) == 5

    too_many = await client.execute(SESSIONS, {"first": 101}, token=token)
    assert graphql_error_codes(too_many) == ["INVALID_INPUT"]
    bad_cursor = await client.execute(SESSIONS, {"first": 2, "after": "garbage!"}, token=token)
    assert graphql_error_codes(bad_cursor) == ["INVALID_CURSOR"]


async def test_unexpected_errors_are_masked_and_logged_with_the_request_id(
    client: GraphQLClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    tokens = await client.member("dee@example.com")

    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("database password is hunter2")

    monkeypatch.setattr(accounts, "update_profile", broken)
    with caplog.at_level(logging.ERROR, logger="gigql.graphql"):
        response = await client.post(
            'mutation { updateProfile(input: {name: "x"}) { errors { code } } }',
            token=tokens.access,
        )
    request_id = response.headers["x-request-id"]
    error = response.json()["errors"][0]
    assert error["message"] == "Internal server error"
    assert error["extensions"] == {"code": "INTERNAL_SERVER_ERROR", "requestId": request_id}
    assert "hunter2" not in response.text
    logged = [r for r in caplog.records if r.name == "gigql.graphql"]
    assert logged and logged[0].exc_info is not None
    assert getattr(logged[0], "request_id", None) == request_id
