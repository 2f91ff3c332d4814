"""Leaf fields read and completed without graphql-core's per-field machinery.

Most fields of a page are leaves read straight off their source: a task's title, a
money's amount, a node's id. For each, graphql-core's `execute_field` builds a
`GraphQLResolveInfo` (a named tuple of 15 fields and a list of the field's nodes), checks
for arguments, calls the resolver, asks twice whether something is awaitable, then
`complete_value` walks the type (non-null, then list, leaf, abstract or object checks)
down to the scalar's serialiser: about half of the executor's own time on the feed,
where the resolver itself is one `getattr`.

A field whose resolver is marked here (`mark_leaf`: the plain attribute reads of
schema/direct_resolvers.py and the node ids of schema/node_ids.py) and whose type is a
scalar or enum, nullable or not, is read with the marked reader and completed in line:
the same value, the same errors (the executor's `handle_field_error` with the same
exception, the non-null message word for word), and graphql-core's own path for an
awaitable value. The reader may decline (`DECLINED`, before doing anything) for a source
it does not know; the field then takes graphql-core's path, resolver and all. Lists of
leaves, fields with arguments and executions with middleware keep graphql-core's path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from graphql import (
    GraphQLField,
    GraphQLLeafType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    Undefined,
    is_leaf_type,
)
from graphql.execution import Executor
from graphql.execution.collect_fields import FieldDetailsList
from graphql.execution.executor import to_nodes
from graphql.pyutils import Path

DECLINED: Any = object()
"""What a reader returns for a source it leaves to the field's resolver."""

LEAF_READ = "gigql_leaf_read"
"""The attribute of a resolver function that holds its `LeafRead`."""


@dataclass(frozen=True, slots=True)
class LeafRead:
    read: Callable[[Any, Path], Any]
    """The field's value for a source, as its resolver gives it, or DECLINED."""
    leaf_type: GraphQLLeafType
    non_null: bool


def mark_leaf(
    resolve: Callable[..., Any], field_type: GraphQLOutputType, read: Callable[[Any, Path], Any]
) -> bool:
    """Let `resolve`'s field be read with `read` when its type is a leaf (or a non-null
    leaf); whether it was marked."""
    non_null = isinstance(field_type, GraphQLNonNull)
    leaf_type = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
    if not is_leaf_type(leaf_type):
        return False
    setattr(resolve, LEAF_READ, LeafRead(read, leaf_type, non_null))
    return True


def leaf_read(resolve: object) -> LeafRead | None:
    return getattr(resolve, LEAF_READ, None)


def execute_leaf(
    executor: Executor[Any],
    leaf: LeafRead,
    field_def: GraphQLField,
    parent_type: GraphQLObjectType,
    source: Any,
    field_details_list: FieldDetailsList,
    path: Path,
    position_context: Any,
) -> Any:
    """What `execute_field` answers for a marked leaf field, step for step as
    graphql-core's `execute_field` and `complete_value`; or DECLINED, nothing done."""
    return_type = field_def.type
    try:
        result = leaf.read(source, path)
        if result is DECLINED:
            return DECLINED
        if executor.is_awaitable(result):
            info = executor.build_resolve_info(
                field_def, to_nodes(field_details_list), parent_type, path
            )
            return executor.complete_awaitable_value(
                return_type, field_details_list, info, path, result, position_context
            )
        if isinstance(result, Exception):
            raise result
        if result is None or result is Undefined:
            if leaf.non_null:
                field_name = field_details_list[0].node.name.value
                msg = f"Cannot return null for non-nullable field {parent_type}.{field_name}."
                raise TypeError(msg)
            return None
        completed = executor.complete_leaf_value(leaf.leaf_type, result)
        if executor.is_awaitable(completed):  # a serialiser's awaitable: awaited as there
            return _await_completed(executor, completed, return_type, field_details_list, path)
    except Exception as raw_error:
        executor.handle_field_error(raw_error, return_type, field_details_list, path)
        return None
    return completed


async def _await_completed(
    executor: Executor[Any],
    completed: Awaitable[Any],
    return_type: GraphQLOutputType,
    field_details_list: FieldDetailsList,
    path: Path,
) -> Any:
    try:
        return await completed
    except Exception as raw_error:
        executor.handle_field_error(raw_error, return_type, field_details_list, path)
        return None
