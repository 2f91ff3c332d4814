"""Refusing operations that would cost too much, before any of them runs.

Each operation's depth, aliases and cost are measured before the standard validation.
Cost counts every field once, times the size of the lists above it: a connection counts
`first` items (at least one; the default page size without it, the maximum page size
when `first` is a variable, since prepared documents are cached independently of
variables), `nodes(ids:)` counts its ids, a list declared `bounded(n)` counts n, any other
list of objects a full page. Introspection subtrees are not measured: introspection has
its own switch. Depth and cost are measured through fragments, where they are spread.

The measurement is linear in the document, whatever its shape: each fragment is measured
once, as a size relative to where it is spread, and its spreads reuse that size (a chain
of fragments that each spread the previous one twice would otherwise double the work
with every link). Sizes saturate just above the limits, so numbers stay small, and the
measurement stops at the first limit an operation crosses.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    ListValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    get_nullable_type,
)

MAX_INT_DIGITS = 11
"""Digits of a 32-bit GraphQL Int, its sign included."""
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


@dataclass(frozen=True)
class Measured:
    costs: dict[str | None, int]
    """The cost of each operation by name (None for an anonymous one); empty when refused."""
    errors: list[GraphQLError]
    """The limit the first operation over one crossed; empty when every one is within."""


def measure(schema: GraphQLSchema, document: DocumentNode, limits: Limits) -> Measured:
    """The cost of each operation of `document`, or why one of them is refused."""
    measurer = _Measurer(schema, document, limits)
    costs: dict[str | None, int] = {}
    for definition in document.definitions:
        if not isinstance(definition, OperationDefinitionNode):
            continue
        name = definition.name.value if definition.name else None
        try:
            costs[name] = measurer.operation(definition)
        except _LimitCrossed as crossed:
            label = name or "anonymous"
            error = GraphQLError(
                f"Operation '{label}' {crossed.message}",
                definition,
                extensions={"code": crossed.code},
            )
            return Measured({}, [error])
    return Measured(costs, [])


@dataclass(frozen=True, slots=True)
class _Size:
    """What a selection set adds to an operation, relative to where it is.

    Its cost is `fixed + per_item * page` times the size of the lists above it, where
    `page` is the page size of the connection it is the selection of (only a connection's
    `edges` and `nodes` count per item). Its depth is the number of levels it adds.
    """

    fixed: int = 0
    per_item: int = 0
    depth: int = 0
    aliases: int = 0


_EMPTY = _Size()
_NO_SELECTIONS = SelectionSetNode(selections=())


class _LimitCrossed(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class _Measurer:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode, limits: Limits) -> None:
        self.schema = schema
        self.limits = limits
        # Above the limit is above the limit: counting on would only grow the numbers.
        self.cost_cap = limits.max_cost + 1
        self.fragments: dict[str, FragmentDefinitionNode] = {}
        for definition in document.definitions:
            if isinstance(definition, FragmentDefinitionNode):
                # A name defined twice is refused by the standard rules; measure the first.
                self.fragments.setdefault(definition.name.value, definition)
        self.fragment_sizes: dict[str, _Size] = {}

    def operation(self, operation: OperationDefinitionNode) -> int:
        root = self.schema.get_root_type(operation.operation)
        self._measure_fragments_under(operation.selection_set)
        size = self._selection_set(operation.selection_set, root)
        return min(size.fixed + size.per_item, self.cost_cap)

    def _measure_fragments_under(self, selection_set: SelectionSetNode) -> None:
        """Measure every fragment reachable from `selection_set`, each after the ones it
        spreads, without recursion (a chain of fragments may be as long as the document).
        A spread that closes a cycle counts as empty: cycles are refused by the standard
        rules."""
        in_progress: set[str] = set()
        stack: list[tuple[str, Iterator[str]]] = []

        def enter(name: str) -> None:
            fragment = self.fragments.get(name)
            if fragment is None or name in self.fragment_sizes or name in in_progress:
                return
            in_progress.add(name)
            stack.append((name, _spread_names(fragment.selection_set)))

        for name in _spread_names(selection_set):
            enter(name)
            while stack:
                current, spreads = stack[-1]
                following = next(spreads, None)
                if following is not None:
                    enter(following)
                    continue
                stack.pop()
                fragment = self.fragments[current]
                condition = self.schema.get_type(fragment.type_condition.name.value)
                self.fragment_sizes[current] = self._selection_set(
                    fragment.selection_set, condition
                )
                in_progress.discard(current)

    def _selection_set(self, selection_set: SelectionSetNode, parent: Any) -> _Size:
        fixed = per_item = depth = aliases = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                size = self._field(selection, parent)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                size = self._selection_set(selection.selection_set, target)
            elif isinstance(selection, FragmentSpreadNode):
                size = self.fragment_sizes.get(selection.name.value, _EMPTY)
            else:  # pragma: no cover - the three kinds of selection
                continue
            fixed = min(fixed + size.fixed, self.cost_cap)
            per_item = min(per_item + size.per_item, self.cost_cap)
            depth = max(depth, size.depth)
            aliases += size.aliases
        # Every size is at most what it adds to the operation it is part of (lists and
        # pages multiply by at least one), so crossing a limit here crosses it there.
        if depth > self.limits.max_depth:
            raise _LimitCrossed(
                f"nests fields more than {self.limits.max_depth} levels deep, the limit.",
                "QUERY_TOO_DEEP",
            )
        if aliases > self.limits.max_aliases:
            raise _LimitCrossed(
                f"uses more than {self.limits.max_aliases} aliases, the limit.",
                "TOO_MANY_ALIASES",
            )
        if fixed + per_item >= self.cost_cap:
            raise _LimitCrossed(
                f"would cost more than {self.limits.max_cost}, the limit. "
                "Ask for fewer items per page or fewer nested lists.",
                "QUERY_TOO_COSTLY",
            )
        return _Size(fixed, per_item, depth, aliases)

    def _field(self, node: FieldNode, parent: Any) -> _Size:
        aliases = 1 if node.alias is not None else 0
        name = node.name.value
        if name in INTROSPECTION_ROOTS or name == "__typename":
            return _Size(aliases=aliases)
        definition = _field_definition(parent, name)
        if definition is None or node.selection_set is None:
            return _Size(fixed=1, depth=1, aliases=aliases)
        child_type = get_named_type(definition.type)
        children = self._selection_set(node.selection_set, child_type)
        if name in CONNECTION_ITEMS and _is_connection(parent):
            # The items of a connection: as many as the page the connection asked for.
            items_cost = children.fixed + children.per_item
            return _Size(1, items_cost, children.depth + 1, children.aliases + aliases)
        if _is_connection(child_type):
            page = _page_size(self.limits, node)
            cost = children.fixed + children.per_item * page
        else:
            cost = _list_size(self.limits, node, definition) * (children.fixed + children.per_item)
        return _Size(
            min(1 + cost, self.cost_cap), 0, children.depth + 1, children.aliases + aliases
        )


def _spread_names(selection_set: SelectionSetNode) -> Iterator[str]:
    """The fragments spread in a selection set, at any depth but inside introspection, in
    order (the parser bounds how deeply one definition nests, so the recursion is too)."""
    for selection in selection_set.selections:
        if isinstance(selection, FragmentSpreadNode):
            yield selection.name.value
        elif isinstance(selection, InlineFragmentNode):
            yield from _spread_names(selection.selection_set)
        elif isinstance(selection, FieldNode) and selection.name.value not in INTROSPECTION_ROOTS:
            yield from _spread_names(selection.selection_set or _NO_SELECTIONS)


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
    if isinstance(first, IntValueNode) and len(first.value) <= MAX_INT_DIGITS:
        # At least one: a page of none costs as much as a page of one to ask for, and
        # a negative size must not subtract from the rest of the operation.
        return max(int(first.value), 1)
    # A variable, or a literal no Int can hold (thousands of digits would not even make
    # a Python int): execution refuses it; until then it counts as a full page.
    return limits.max_page_size


def _list_size(limits: Limits, node: FieldNode, definition: GraphQLField) -> int:
    """How many objects a plain list field may return; 1 for a single object."""
    if not isinstance(get_nullable_type(definition.type), GraphQLList):
        return 1
    declared = getattr((definition.extensions or {}).get(_STRAWBERRY_FIELD), "metadata", None)
    if declared and MAX_ITEMS in declared:
        return max(int(declared[MAX_ITEMS]), 1)
    ids = _arguments(node).get("ids")
    if isinstance(ids, ListValueNode):
        return max(len(ids.values), 1)
    return limits.max_page_size


def _is_connection(graphql_type: Any) -> bool:
    return isinstance(graphql_type, GraphQLObjectType) and "pageInfo" in graphql_type.fields
