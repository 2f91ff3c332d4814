"""Refusing operations that would cost too much, before any of them runs.

One validation rule measures each operation's depth, aliases and cost. Cost counts every
field once, times the size of the lists above it: a connection counts `first` items
(the default page size without it, the maximum page size when `first` is a variable,
since validated documents are cached independently of variables), `nodes(ids:)` counts
its ids, a list declared `bounded(n)` counts n, any other list of objects a full page.
Introspection subtrees are not measured: introspection has its own switch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLObjectType,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    get_nullable_type,
)
from graphql.validation import ValidationRule

INTROSPECTION_ROOTS = frozenset({"__schema", "__type"})
CONNECTION_ITEMS = frozenset({"edges", "nodes"})
MAX_ITEMS = "max_items"
_STRAWBERRY_FIELD = "strawberry-definition"


def bounded(items: int) -> dict[str, int]:
    """Field metadata for a list of objects that never holds more than `items`:
    `strawberry.field(metadata=bounded(7))`. Unbounded lists count as a full page."""
    return {MAX_ITEMS: items}


@dataclass(frozen=True)
class Limits:
    max_depth: int
    max_cost: int
    max_aliases: int
    default_page_size: int
    max_page_size: int


@dataclass
class _Measure:
    cost: int = 0
    depth: int = 0
    aliases: int = 0


def operation_limits(limits: Limits) -> type[ValidationRule]:
    class OperationLimits(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: Any) -> None:
            root = self.context.schema.get_root_type(node.operation)
            if root is None:
                return
            measure = _Measure()
            _walk(self, limits, node.selection_set, root, 1, 1, measure, frozenset())
            name = node.name.value if node.name else "anonymous"
            if measure.depth > limits.max_depth:
                self._refuse(
                    node,
                    f"Operation '{name}' is {measure.depth} levels deep; "
                    f"the limit is {limits.max_depth}.",
                    "QUERY_TOO_DEEP",
                )
            if measure.cost > limits.max_cost:
                self._refuse(
                    node,
                    f"Operation '{name}' would cost {measure.cost}; "
                    f"the limit is {limits.max_cost}. "
                    "Ask for fewer items per page or fewer nested lists.",
                    "QUERY_TOO_COSTLY",
                )
            if measure.aliases > limits.max_aliases:
                self._refuse(
                    node,
                    f"Operation '{name}' uses {measure.aliases} aliases; "
                    f"the limit is {limits.max_aliases}.",
                    "TOO_MANY_ALIASES",
                )

        def _refuse(self, node: OperationDefinitionNode, message: str, code: str) -> None:
            self.report_error(GraphQLError(message, node, extensions={"code": code}))

    return OperationLimits


def _walk(
    rule: ValidationRule,
    limits: Limits,
    selection_set: SelectionSetNode,
    parent: Any,
    depth: int,
    multiplier: int,
    measure: _Measure,
    fragments_seen: frozenset[str],
    page: int = 1,
) -> None:
    """Measure a selection set; `page` is the page size when `parent` is a connection."""
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            _field(
                rule, limits, selection, parent, depth, multiplier, measure, fragments_seen, page
            )
        elif isinstance(selection, InlineFragmentNode):
            condition = selection.type_condition
            target = rule.context.schema.get_type(condition.name.value) if condition else parent
            _walk(
                rule,
                limits,
                selection.selection_set,
                target,
                depth,
                multiplier,
                measure,
                fragments_seen,
                page,
            )
        elif isinstance(selection, FragmentSpreadNode):
            name = selection.name.value
            fragment = rule.context.get_fragment(name)
            if fragment is None or name in fragments_seen:
                continue  # unknown or cyclic fragments are reported by the standard rules
            target = rule.context.schema.get_type(fragment.type_condition.name.value)
            _walk(
                rule,
                limits,
                fragment.selection_set,
                target,
                depth,
                multiplier,
                measure,
                fragments_seen | {name},
                page,
            )


def _field(
    rule: ValidationRule,
    limits: Limits,
    node: FieldNode,
    parent: Any,
    depth: int,
    multiplier: int,
    measure: _Measure,
    fragments_seen: frozenset[str],
    page: int,
) -> None:
    if node.alias is not None:
        measure.aliases += 1
    name = node.name.value
    if name in INTROSPECTION_ROOTS or name == "__typename":
        return
    measure.depth = max(measure.depth, depth)
    measure.cost += multiplier
    definition = _field_definition(parent, name)
    if definition is None or node.selection_set is None:
        return
    child = get_named_type(definition.type)
    if name in CONNECTION_ITEMS and _is_connection(parent):
        # The items of a connection: as many as the page the connection field asked for.
        multiplier *= page
        page = 1
    elif _is_connection(child):
        page = _page_size(limits, node)
    else:
        multiplier *= _list_size(limits, node, definition)
        page = 1
    _walk(
        rule,
        limits,
        node.selection_set,
        child,
        depth + 1,
        multiplier,
        measure,
        fragments_seen,
        page,
    )


def _field_definition(parent: Any, name: str) -> GraphQLField | None:
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        definition: GraphQLField | None = parent.fields.get(name)
        return definition
    return None  # unions have no fields of their own; fragments name the member


def _arguments(node: FieldNode) -> dict[str, Any]:
    return {arg.name.value: arg.value for arg in node.arguments or ()}


def _page_size(limits: Limits, node: FieldNode) -> int:
    first = _arguments(node).get("first")
    if first is None:
        return limits.default_page_size
    return int(first.value) if isinstance(first, IntValueNode) else limits.max_page_size


def _list_size(limits: Limits, node: FieldNode, definition: GraphQLField) -> int:
    """How many objects a plain list field may return; 1 for a single object."""
    if not isinstance(get_nullable_type(definition.type), GraphQLList):
        return 1
    declared = getattr((definition.extensions or {}).get(_STRAWBERRY_FIELD), "metadata", None)
    if declared and MAX_ITEMS in declared:
        return int(declared[MAX_ITEMS])
    ids = _arguments(node).get("ids")
    if isinstance(ids, ListValueNode):
        return max(len(ids.values), 1)
    return limits.max_page_size


def _is_connection(graphql_type: Any) -> bool:
    return isinstance(graphql_type, GraphQLObjectType) and "pageInfo" in graphql_type.fields
