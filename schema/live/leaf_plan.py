"""A framed selection of leaves only, executed without graphql-core's general machinery.

`{ messageAdded(...) { id seq text sentAt } }` cost about 80 µs an event through
graphql-core's executor (collecting fields, coercing the root field's arguments, building
a resolve info per field, completing each value through the general recursion), half of
a delivery's CPU in the chat fan-out with two subscribers a conversation. When the root
field's selection is nothing but leaf fields (scalars or enums, each once, without
arguments, directives or fragments), what the executor does reduces to: the root field's
resolver on the event, its object type's `is_type_of`, then each leaf's own resolver and
its type's `serialize`. This plan does exactly that, with each field's resolve info made
once (the event is the only thing that changes: for the root field it is passed as the
source, as graphql-core passes it).

Anything else about an event (a resolver that awaits or fails, a null where the type
says non-null, a value that does not serialise) makes `run` return None, and the caller
executes that event the general way, which answers as it always did.
"""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple

from graphql import (
    FieldNode,
    GraphQLEnumType,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLResolveInfo,
    GraphQLScalarType,
)
from graphql.execution import Executor
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path, Undefined


class _Leaf(NamedTuple):
    key: str
    resolve: Any
    info: GraphQLResolveInfo[Any]
    serialize: Any
    non_null: bool


class LeafPlan:
    """The plan for one operation, or None from `of` when its selection is not plain."""

    __slots__ = ("_is_type_of", "_leaves", "_resolve", "_root_args", "_root_info", "_root_key")

    def __init__(
        self,
        root_key: str,
        resolve: Any,
        root_info: GraphQLResolveInfo[Any],
        root_args: dict[str, Any],
        is_type_of: Any,
        leaves: list[_Leaf],
    ) -> None:
        self._root_key = root_key
        self._resolve = resolve
        self._root_info = root_info
        self._root_args = root_args
        self._is_type_of = is_type_of
        self._leaves = leaves

    @classmethod
    def of(cls, executor: Executor[Any]) -> LeafPlan | None:
        if executor.middleware_manager is not None:
            return None
        schema = executor.schema
        root_type = schema.subscription_type
        selections = executor.operation.selection_set.selections
        if root_type is None or len(selections) != 1:
            return None
        root = selections[0]
        if not isinstance(root, FieldNode) or root.directives or root.selection_set is None:
            return None
        root_def = root_type.fields.get(root.name.value)
        if root_def is None:
            return None
        root_field_type = root_def.type
        node_type = (
            root_field_type.of_type
            if isinstance(root_field_type, GraphQLNonNull)
            else root_field_type
        )
        if not isinstance(node_type, GraphQLObjectType):
            return None
        root_key = (root.alias or root.name).value
        root_path = Path(None, root_key, root_type.name)
        leaves: list[_Leaf] = []
        for node in root.selection_set.selections:
            leaf = _leaf(executor, node, node_type, root_path)
            if leaf is None or any(known.key == leaf.key for known in leaves):
                return None  # not a plain leaf, or a key twice (merged by the executor)
            leaves.append(leaf)
        root_args = get_argument_values(root_def, root, executor.variable_values)
        return cls(
            root_key,
            root_def.resolve or executor.field_resolver,
            executor.build_resolve_info(root_def, [root], root_type, root_path),
            root_args,
            node_type.is_type_of,
            leaves,
        )

    def run(self, event: object) -> dict[str, Any] | None:
        """The operation's `data` for one event; None when it must be executed the general
        way (see the module's docstring)."""
        try:
            node = self._resolve(event, self._root_info, **self._root_args)
            if node is None or _awaited(node):
                return None
            if self._is_type_of is not None and not self._is_type_of(node, self._root_info):
                return None
            fields: dict[str, Any] = {}
            for key, resolve, info, serialize, non_null in self._leaves:
                value = resolve(node, info)
                if value is None:
                    if non_null:
                        return None
                    fields[key] = None
                    continue
                if _awaited(value):
                    return None
                serialized = serialize(value)
                if serialized is Undefined or serialized is None:
                    return None
                fields[key] = serialized
        except Exception:
            return None
        return {self._root_key: fields}


def _leaf(
    executor: Executor[Any], node: object, parent: GraphQLObjectType, root_path: Path
) -> _Leaf | None:
    if not isinstance(node, FieldNode) or node.directives or node.arguments:
        return None
    if node.selection_set is not None or node.name.value.startswith("__"):
        return None
    field_def: GraphQLField | None = parent.fields.get(node.name.value)
    if field_def is None or field_def.args:
        return None  # arguments with defaults would need coercing: the general way
    field_type = field_def.type
    non_null = isinstance(field_type, GraphQLNonNull)
    named = field_type.of_type if isinstance(field_type, GraphQLNonNull) else field_type
    if not isinstance(named, GraphQLScalarType | GraphQLEnumType):
        return None
    key = (node.alias or node.name).value
    path = Path(root_path, key, parent.name)
    info = executor.build_resolve_info(field_def, [node], parent, path)
    resolve = field_def.resolve or executor.field_resolver
    return _Leaf(key, resolve, info, named.serialize, non_null)


def _awaited(value: object) -> bool:
    """Whether a resolver returned something to await (closed, so that it does not warn
    as never awaited), or an error to report: the general way runs it."""
    if isinstance(value, Exception):
        return True
    if inspect.iscoroutine(value):
        value.close()
        return True
    return inspect.isawaitable(value)
