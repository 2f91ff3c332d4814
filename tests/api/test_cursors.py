"""Page cursors are signed, bound to where they came from, and type-checked.

A client can read what a cursor holds (the sort keys of the last item, which it could
read on the item anyway) but cannot change it, use it with another connection or order,
or make one: any of that is INVALID_CURSOR, and nothing of such a cursor reaches a query.
Cursors stay valid while data changes, and on every instance sharing the JWT secret.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from bson import ObjectId, Regex, json_util
from pydantic import SecretStr

from resolvers.common.cursors import CursorKey, Cursors
from server.runtime import Runtime
from tests.conftest import TEST_JWT_SECRET, serve
from tests.support.graphql_client import GraphQLClient, Tokens, graphql_error_codes
from tests.support.marketplace import aud, make_offer, post_task, poster, tasker

TASKS = """query($after: String, $sort: TaskSort! = NEWEST) {
  tasks(first: 2, after: $after, sort: $sort) {
    edges { cursor node { id title } } pageInfo { hasNextPage endCursor } } }"""
MY_TASKS = """query($after: String) { myTasks(first: 2, after: $after) {
  edges { cursor node { id } } pageInfo { endCursor } } }"""
OFFERS = """query($id: ID!, $after: String) { node(id: $id) { ... on Task {
  offers(first: 1, after: $after) { edges { cursor node { id } } } } } }"""
MY_OFFERS = """query($after: String) { myOffers(first: 1, after: $after) {
  edges { cursor node { id } } } }"""
NEWEST = "created_at:-1,_id:-1"


def unsigned(values: list[Any]) -> str:
    """A cursor as they were made before signing: the values' JSON in base64."""
    return base64.urlsafe_b64encode(json_util.dumps(values).encode()).decode().rstrip("=")


def rewritten(cursor: str, change: Callable[[list[Any]], list[Any]]) -> str:
    """`cursor` with the JSON list inside it changed, everything else kept as it was."""
    raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    for start in (i for i, byte in enumerate(raw) if byte == ord("[")):
        try:
            values = json_util.loads(raw[start:])
        except ValueError:
            continue
        changed = raw[:start] + json_util.dumps(change(values)).encode()
        return base64.urlsafe_b64encode(changed).decode().rstrip("=")
    raise AssertionError(f"no values in the cursor {cursor!r}")


async def tasks_page(client: GraphQLClient, after: str | None, **variables: Any) -> dict[str, Any]:
    return await client.execute(TASKS, {"after": after, **variables})


def refused(result: dict[str, Any]) -> bool:
    return graphql_error_codes(result) == ["INVALID_CURSOR"] and result["data"] is None


async def three_tasks(client: GraphQLClient) -> tuple[Tokens, list[str]]:
    ann = await poster(client, "ann@example.com")
    titles = [f"Task number {i}" for i in range(3)]
    for title in titles:
        await post_task(client, ann, title=title)
    return ann, titles[::-1]  # newest first


async def test_forged_cursors_never_reach_the_database(client: GraphQLClient) -> None:
    await three_tasks(client)
    forged: dict[str, list[Any]] = {
        "an operator in place of a time": [{"$ne": None}, {"$oid": "f" * 24}],
        "javascript": [{"$where": "sleep(1000) || true"}, ObjectId()],
        "a pattern": [Regex(".*"), ObjectId()],
        "a number no database holds": [10**400, ObjectId()],
        "text in place of a time": ["2030-01-01", ObjectId()],
        "a well-formed cursor nobody signed": [datetime.now(UTC), ObjectId()],
        "too few values": [datetime.now(UTC)],
    }
    for case, values in forged.items():
        assert refused(await tasks_page(client, unsigned(values))), case
    for case, cursor in {
        "not base64": "%%%",
        "not ascii": "é" * 40,
        "far too long": "A" * 100_000,
        "empty": "",
    }.items():
        assert refused(await tasks_page(client, cursor)), case


async def test_even_a_correctly_signed_cursor_is_type_checked(client: GraphQLClient) -> None:
    await three_tasks(client)
    # As if the key had leaked: the values must still be of the sort fields' types.
    ours = CursorKey(TEST_JWT_SECRET).of("Query.tasks")
    moment, oid = datetime.now(UTC), ObjectId()
    assert not refused(await tasks_page(client, ours.encode(NEWEST, [moment, oid])))
    signed: dict[str, list[Any]] = {
        "an operator": [{"$ne": None}, oid],
        "a pattern": [Regex(".*"), oid],
        "a huge number": [10**400, oid],
        "a number for a time": [1_700_000_000, oid],
        "text for an id": [moment, "f" * 24],
        "no id": [moment, None],
        "a list": [[moment], oid],
    }
    for case, values in signed.items():
        assert refused(await tasks_page(client, ours.encode(NEWEST, values))), case
    budget = "budget.amount:-1,_id:-1"
    assert not refused(
        await tasks_page(client, ours.encode(budget, [5000, oid]), sort="BUDGET_HIGH")
    )
    for case, amount in {"a fraction": 12.5, "beyond int64": 2**63, "a boolean": True}.items():
        cursor = ours.encode(budget, [amount, oid])
        assert refused(await tasks_page(client, cursor, sort="BUDGET_HIGH")), case


async def test_a_changed_cursor_is_refused(client: GraphQLClient) -> None:
    _, titles = await three_tasks(client)
    first = (await tasks_page(client, None))["data"]["tasks"]
    cursor = first["pageInfo"]["endCursor"]
    second = (await tasks_page(client, cursor))["data"]["tasks"]
    assert [edge["node"]["title"] for edge in second["edges"]] == titles[2:]
    # Moving the position (an older time, a larger id) or flipping one character.
    assert refused(await tasks_page(client, rewritten(cursor, lambda v: [v[0], ObjectId()])))
    assert refused(
        await tasks_page(client, rewritten(cursor, lambda v: [datetime(2000, 1, 1), v[1]]))
    )
    flipped = ("B" if cursor[5] == "A" else "A").join((cursor[:5], cursor[6:]))
    assert refused(await tasks_page(client, flipped))


async def test_a_cursor_works_only_with_the_connection_and_order_it_came_from(
    client: GraphQLClient,
) -> None:
    ann, _ = await three_tasks(client)
    newest = (await tasks_page(client, None))["data"]["tasks"]["pageInfo"]["endCursor"]
    assert refused(await tasks_page(client, newest, sort="BUDGET_HIGH"))
    mine = (await client.data(MY_TASKS, token=ann.access))["myTasks"]["pageInfo"]["endCursor"]
    assert refused(await tasks_page(client, mine))
    assert refused(await client.execute(MY_TASKS, {"after": newest}, token=ann.access))
    assert "errors" not in await client.execute(MY_TASKS, {"after": mine}, token=ann.access)

    # Two connections of offers, in the same order: one's cursors are not the other's.
    task = await post_task(client, ann, budget=aud(9000))
    tom = await tasker(client, "tom@example.com")
    await make_offer(client, tom, task["id"])
    [on_task] = (await client.data(OFFERS, {"id": task["id"]}, token=tom.access))["node"]["offers"][
        "edges"
    ]
    [of_mine] = (await client.data(MY_OFFERS, token=tom.access))["myOffers"]["edges"]
    assert on_task["node"] == of_mine["node"]
    assert refused(await client.execute(MY_OFFERS, {"after": on_task["cursor"]}, token=tom.access))
    crossed = await client.execute(
        OFFERS, {"id": task["id"], "after": of_mine["cursor"]}, token=tom.access
    )
    assert graphql_error_codes(crossed) == ["INVALID_CURSOR"]


@pytest.mark.parametrize(
    ("query", "values"),
    [
        ("{ me { sessions(first: 1, after: $after) { edges { cursor } } } }", "time"),
        ("{ myNotifications(first: 1, after: $after) { edges { cursor } } }", "time"),
        ("{ myConversations(first: 1, after: $after) { edges { cursor } } }", "time"),
        ("{ myReviews(first: 1, after: $after) { edges { cursor } } }", "time"),
        ("{ searchProviders(first: 1, after: $after) { edges { cursor } } }", "null"),
    ],
)
async def test_every_connection_refuses_cursors_it_did_not_sign(
    client: GraphQLClient, query: str, values: str
) -> None:
    tom = await tasker(client, "tom@example.com")
    first = {"time": datetime.now(UTC), "null": None}[values]
    operation = "query($after: String) " + query
    result = await client.execute(
        operation, {"after": unsigned([first, ObjectId()])}, token=tom.access
    )
    assert graphql_error_codes(result) == ["INVALID_CURSOR"]


async def test_cursors_stay_valid_while_data_changes_and_on_every_instance(
    client: GraphQLClient, runtime: Runtime
) -> None:
    ann, titles = await three_tasks(client)
    cursor = (await tasks_page(client, None))["data"]["tasks"]["pageInfo"]["endCursor"]
    await post_task(client, ann, title="Posted in between")
    async with serve(runtime) as other, httpx.AsyncClient(base_url=other) as http:
        rest = (await tasks_page(GraphQLClient(http), cursor))["data"]["tasks"]
    assert [edge["node"]["title"] for edge in rest["edges"]] == titles[2:]
    rotated = SecretStr("another-secret-long-enough-for-every-hmac-algorithm-0123456789")
    async with (
        serve(runtime, jwt_secret=rotated) as other,
        httpx.AsyncClient(base_url=other) as http,
    ):
        assert refused(await tasks_page(GraphQLClient(http), cursor))


async def test_cursors_are_signed_only_when_selected_and_the_same_when_they_are(
    client: GraphQLClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signing a cursor costs a JSON encoding, an HMAC and base64: a page signs only the
    cursors a query reads, and they are the ones it would have signed for every item."""
    await three_tasks(client)
    signed: list[list[Any]] = []
    sign = Cursors.encode

    def counting(self: Cursors, order: str, values: Sequence[Any]) -> str:
        signed.append(list(values))
        return sign(self, order, values)

    monkeypatch.setattr("resolvers.common.cursors.Cursors.encode", counting)
    nodes_only = "query { tasks(first: 3) { edges { node { id } } pageInfo { hasNextPage } } }"
    assert "errors" not in await client.execute(nodes_only)
    assert signed == []

    end_only = "query { tasks(first: 3) { edges { node { id } } pageInfo { endCursor } } }"
    end = (await client.execute(end_only))["data"]["tasks"]["pageInfo"]["endCursor"]
    assert len(signed) == 1

    signed.clear()
    every = """query { tasks(first: 3) { edges { cursor node { id } }
      pageInfo { startCursor endCursor } } }"""
    tasks = (await client.execute(every))["data"]["tasks"]
    cursors = [edge["cursor"] for edge in tasks["edges"]]
    assert len(signed) == 3  # each once, though the first and last are read twice
    assert tasks["pageInfo"] == {"startCursor": cursors[0], "endCursor": cursors[-1]}
    assert cursors[-1] == end
    ours = CursorKey(TEST_JWT_SECRET).of("Query.tasks")
    assert cursors == [sign(ours, NEWEST, values) for values in signed]
