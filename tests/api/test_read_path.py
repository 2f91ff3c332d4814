"""The task feed's posters: read ahead in the loader's one query when the page selects
them, so that each task's `poster` is complete at once and a page of tasks completes
without a coroutine or an asyncio task per edge; the same answer and the same database
commands as before, and no read when they are not selected."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from graphql.execution import executor

from server.demo_data import seed_demo
from server.runtime import Runtime
from tests.support.command_log import CommandLog
from tests.support.graphql_client import GraphQLClient

FEED = """query { tasks(first: 20) { edges { node { id title budget { amount currency }
  offerCount poster { id name } } } pageInfo { hasNextPage endCursor } } }"""
# The same, the poster asked for through fragments and an alias.
FEED_IN_FRAGMENTS = """query { tasks(first: 20) { ...Page } }
fragment Page on TaskConnection { edges { node { ... on Task { id owner: poster { id name } } } } }"""
NO_POSTERS = "query { tasks(first: 20) { edges { node { id title } } } }"


@contextmanager
def counting_gathers() -> Iterator[list[int]]:
    """The number of awaitables graphql-core gathers at each place it waits for several
    (the items of a list, the fields of an object)."""
    sizes: list[int] = []
    gather = executor.gather_with_cancel  # type: ignore[attr-defined] # what it waits with

    def counted(*awaitables: Any) -> Any:
        sizes.append(len(awaitables))
        return gather(*awaitables)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(executor, "gather_with_cancel", counted)
        yield sizes


async def feed_commands(
    client: GraphQLClient, command_log: CommandLog, query: str, request_id: str
) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    with command_log.recording(request_id) as commands:
        data = await client.data(query, headers={"X-Request-ID": request_id})
    return data, list(commands)


def tasks_then_one_users_read(commands: list[tuple[str, str]]) -> bool:
    """The feed reads tasks (in one or more windows of their creation time), then all
    the page's users in one read."""
    *tasks, last = commands
    return bool(tasks) and set(tasks) == {("find", "tasks")} and last == ("find", "users")


async def test_a_page_of_tasks_completes_its_posters_without_waiting_per_edge(
    runtime: Runtime, client: GraphQLClient, command_log: CommandLog
) -> None:
    await seed_demo(runtime.services, tasks=30, providers=10, posters=8, seed=5)
    with counting_gathers() as gathered:
        data, commands = await feed_commands(client, command_log, FEED, "feed-posters-0001")
    edges = data["tasks"]["edges"]
    assert len(edges) == 20 and all(e["node"]["poster"]["name"] for e in edges)
    assert gathered == []  # none: each edge's poster was there when its task completed
    assert tasks_then_one_users_read(commands), commands

    data, commands = await feed_commands(
        client, command_log, FEED_IN_FRAGMENTS, "feed-posters-0002"
    )
    owners = [e["node"]["owner"]["id"] for e in data["tasks"]["edges"]]
    assert owners == [e["node"]["poster"]["id"] for e in edges]
    assert tasks_then_one_users_read(commands), commands


async def test_posters_and_other_users_of_a_page_still_cost_one_read(
    runtime: Runtime, client: GraphQLClient, command_log: CommandLog
) -> None:
    await seed_demo(runtime.services, tasks=60, providers=10, posters=4, seed=5)
    query = """query { tasks(first: 20, filter: {statuses: [ASSIGNED, IN_PROGRESS, COMPLETED]}) {
      edges { node { poster { name } assignedTasker { name } } } } }"""
    data, commands = await feed_commands(client, command_log, query, "feed-posters-0004")
    assert any(e["node"]["assignedTasker"] for e in data["tasks"]["edges"])
    assert tasks_then_one_users_read(commands), commands


async def test_a_page_of_tasks_reads_no_posters_it_does_not_show(
    runtime: Runtime, client: GraphQLClient, command_log: CommandLog
) -> None:
    await seed_demo(runtime.services, tasks=10, providers=10, posters=4, seed=5)
    _, commands = await feed_commands(client, command_log, NO_POSTERS, "feed-posters-0003")
    assert set(commands) == {("find", "tasks")}, commands
