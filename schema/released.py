"""A query's objects freed when its answer is ready, not at the next garbage collection.

graphql-core's executor holds `async_helpers`, a tuple of two of its own bound methods
(`gather_async_work`, `track_async_work`): the executor refers to itself. Everything it
reaches (the request's context, the loaders and every document in their caches, the
page, each node, each field's collected selections) is then in or behind a reference
cycle, so reference counting never frees it and the cyclic collector must. A request
of the task feed leaves about 280 such objects, one of nearby providers about 1,100;
they outlive their generation-0 collection (the request is still running then) and are
found by the generation-1 collections, which walk everything still alive from other
requests as well: 6-12 % of gigql's CPU on those reads, in process, against almost
nothing for the raw server.

Once the operation's result is complete, the executor gets helpers that reach it
through a weak reference instead: they do the same while it is alive (a resolver's
`Info` made earlier keeps the original tuple anyway), and the cycle is gone, so the
request's objects go as soon as the last reference to them does. Only queries and
mutations answered with one result: a subscription's executor makes one executor per
event from itself for as long as it lives, and an incremental result still runs after
`execute_operation` returns; both keep graphql-core's helpers.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Sequence
from inspect import isawaitable
from typing import Any

from graphql import ExecutionResult
from graphql.execution import Executor
from graphql.language import OperationType
from graphql.type.definition import GraphQLResolveInfoHelpers


def released_when_complete(executor: Executor[Any], result: Any) -> Any:
    """`result`, with `executor`'s self-reference broken once it is a complete
    ExecutionResult (at once, or after awaiting) for a query or mutation."""
    if executor.operation.operation is OperationType.SUBSCRIPTION:
        return result
    if isawaitable(result):
        return _released_after(executor, result)
    if isinstance(result, ExecutionResult):
        release(executor)
    return result


async def _released_after(executor: Executor[Any], result: Awaitable[Any]) -> Any:
    completed = await result
    if isinstance(completed, ExecutionResult):
        release(executor)
    return completed


def release(executor: Executor[Any]) -> None:
    """Break `executor`'s reference to itself: once its result is complete, or when it
    is dropped unused (a framed subscription's, whose text has an executor already)."""
    reference = weakref.ref(executor)

    def gather(values: Sequence[Awaitable[Any]]) -> Awaitable[list[Any]]:
        return _alive(reference).gather_async_work(values)

    def track(values: Sequence[Any]) -> None:
        _alive(reference).track_async_work(values)

    executor.async_helpers = GraphQLResolveInfoHelpers(gather=gather, track=track)


def _alive(reference: weakref.ref[Executor[Any]]) -> Executor[Any]:
    executor = reference()
    # Only reachable from the executor's own attribute, so only while it is alive.
    assert executor is not None
    return executor
