"""A query's objects are freed with its answer (schema/released.py): nothing the request
reached waits for the cyclic garbage collector, and the executor's helpers still work."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import pytest
import strawberry
from graphql import parse
from graphql.execution import Executor
from strawberry.types import Info

from schema.released import released_when_complete
from schema.schema import PerEventExecutor
from server.demo_data import seed_demo
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient


class Marker:
    """Stands for what a request reaches: its context, loaders and documents."""


HELD: list[Any] = []


@strawberry.type
class Item:
    name: str


@strawberry.type
class Query:
    @strawberry.field
    def now(self, info: Info) -> str:
        return type(info.context).__name__

    @strawberry.field
    async def later(self, info: Info) -> list[Item]:
        async def one(name: str) -> str:
            await asyncio.sleep(0)
            return name

        # graphql-core's helpers, used during execution, as a resolver may.
        names = await info._raw_info.async_helpers.gather([one("a"), one("b")])
        info._raw_info.async_helpers.track([one("c")])
        return [Item(name=name) for name in names]


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self, info: Info) -> AsyncGenerator[int, None]:
        for tick in range(3):
            yield tick


def _schema() -> strawberry.Schema:
    return strawberry.Schema(
        query=Query, subscription=Subscription, execution_context_class=PerEventExecutor
    )


@pytest.fixture
def no_collector() -> Iterator[None]:
    """Only reference counting frees anything while a test runs."""
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _freed_after(query: str, *, asynchronous: bool) -> tuple[Any, bool]:
    schema = _schema()
    context = Marker()
    reference = weakref.ref(context)
    if asynchronous:
        result = asyncio.run(schema.execute(query, context_value=context))
    else:
        result = schema.execute_sync(query, context_value=context)
    del context
    return (result.data, result.errors), reference() is None


@pytest.mark.usefixtures("no_collector")
def test_a_synchronous_query_frees_what_it_reached() -> None:
    (data, errors), freed = _freed_after("{ now }", asynchronous=False)
    assert errors is None
    assert data == {"now": "Marker"}
    assert freed


@pytest.mark.usefixtures("no_collector")
def test_an_awaited_query_frees_what_it_reached() -> None:
    (data, errors), freed = _freed_after("{ now later { name } }", asynchronous=True)
    assert errors is None
    assert data == {"now": "Marker", "later": [{"name": "a"}, {"name": "b"}]}
    assert freed


@pytest.mark.usefixtures("no_collector")
def test_an_erroring_query_frees_what_it_reached() -> None:
    (data, errors), freed = _freed_after("{ now nope }", asynchronous=True)
    assert data is None
    assert errors
    # Validation refused it: no executor was built, nothing to free but the context.
    assert freed


def test_the_helpers_still_work_after_release() -> None:
    schema = _schema()
    executor = PerEventExecutor.build(schema._schema, parse("{ now }"), context_value=None)
    assert isinstance(executor, Executor)
    original = executor.async_helpers
    result = executor.execute_operation()
    assert executor.async_helpers is not original  # released: a weak self-reference

    async def values() -> list[Any]:
        async def one() -> int:
            return 1

        executor.async_helpers.track([one(), 2])
        gathered: list[Any] = await executor.async_helpers.gather([one(), one()])
        await asyncio.gather(*executor.background_futures)
        return gathered

    assert asyncio.run(values()) == [1, 1]
    assert result.data == {"now": "NoneType"}  # type: ignore[union-attr]


def test_subscriptions_keep_graphql_cores_helpers() -> None:
    schema = _schema()
    executor = PerEventExecutor.build(
        schema._schema, parse("subscription { ticks }"), context_value=None
    )
    assert isinstance(executor, Executor)
    helpers = executor.async_helpers
    assert released_when_complete(executor, "anything") == "anything"
    assert executor.async_helpers is helpers

    async def ticks() -> list[Any]:
        stream = await schema.subscribe("subscription { ticks }")
        return [event.data async for event in stream]

    assert asyncio.run(ticks()) == [{"ticks": 0}, {"ticks": 1}, {"ticks": 2}]


FEED = """query { tasks(first: 20) { edges { node { id title budget { amount currency }
  offerCount poster { id name } } } pageInfo { hasNextPage endCursor } } }"""


async def test_a_page_of_the_feed_leaves_no_cycles_behind(
    runtime: Runtime, client: GraphQLClient
) -> None:
    """Through the whole app: the request's context, loaders, documents and nodes are
    freed by reference counting (about 280 objects were left to the collector before)."""
    await seed_demo(runtime.services, tasks=30, providers=10, posters=8, seed=5)
    await client.data(FEED)  # prepared and cached once, like any repeated document
    gc.collect()
    gc.disable()
    try:
        data = await client.data(FEED)
        left = gc.collect()
    finally:
        gc.enable()
    assert len(data["tasks"]["edges"]) == 20
    # What remains is the test client's own and the runtime's (45 when written).
    assert left < 100, left
