"""One execution per broker message for all the subscribers who asked the same thing.

When a chat message reaches every member of a conversation, each subscription would run
its selection on the same message and serialise the same result. Where that result
cannot depend on who is asking, the first subscription to deliver the message executes
it and the others reuse its result and its JSON.

A selection is shared only when every field in it, at any depth, is a pure function of
the object it is on: `__typename`, an attribute without resolver, arguments or field
extensions, of a leaf type or of an object type whose selection is shared in turn, and
the `id` of a relay node whose `resolve_id` and `resolve_typename` are relay's own. No
directives (`@include(if: $v)` would make the result depend on variables), no abstract
types. The root field itself resolves to the event (the subscription's arguments chose
the stream, not the event's result), and authorisation stays per subscriber and per
event in the stream that produced the event (realtime/streams.py): only what is
executed once it was let through is shared.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass

from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLField,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    NamedTypeNode,
    OperationDefinitionNode,
    SelectionSetNode,
    get_named_type,
    is_leaf_type,
)
from strawberry import relay
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField


def is_viewer_independent(
    schema: GraphQLSchema,
    operation: OperationDefinitionNode,
    fragments: dict[str, FragmentDefinitionNode],
) -> bool:
    """Whether a subscription's result for an event depends on the event alone."""
    root = schema.subscription_type
    if root is None or operation.directives:
        return False
    return _pure_selection(root, operation.selection_set, fragments, root=True)


def _pure_selection(
    parent: GraphQLObjectType,
    selection_set: SelectionSetNode,
    fragments: dict[str, FragmentDefinitionNode],
    *,
    root: bool = False,
) -> bool:
    for selection in selection_set.selections:
        if selection.directives:
            return False
        if isinstance(selection, FieldNode):
            if not _pure_field(parent, selection, fragments, root):
                return False
            continue
        if isinstance(selection, FragmentSpreadNode):
            fragment = fragments.get(selection.name.value)
            if fragment is None or fragment.directives:
                return False
            condition: NamedTypeNode | None = fragment.type_condition
            inner = fragment.selection_set
        elif isinstance(selection, InlineFragmentNode):
            condition, inner = selection.type_condition, selection.selection_set
        else:
            return False
        if condition is not None and condition.name.value != parent.name:
            return False  # on an abstract or another type: which applies is resolved
        if not _pure_selection(parent, inner, fragments, root=root):
            return False
    return True


def _pure_field(
    parent: GraphQLObjectType,
    node: FieldNode,
    fragments: dict[str, FragmentDefinitionNode],
    root: bool,
) -> bool:
    name = node.name.value
    if name == "__typename":
        return True
    field_def = parent.fields.get(name)
    if field_def is None or (node.arguments and not root):
        return False
    if not root and not _plain(parent, name, field_def):
        return False
    named = get_named_type(field_def.type)
    if is_leaf_type(named):
        return node.selection_set is None
    if not isinstance(named, GraphQLObjectType) or node.selection_set is None:
        return False
    return _pure_selection(named, node.selection_set, fragments)


def _plain(parent: GraphQLObjectType, name: str, field_def: GraphQLField) -> bool:
    definition = field_def.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(definition, StrawberryField) or definition.extensions:
        return False
    if definition.base_resolver is None:
        return not definition.arguments
    return name == "id" and _relay_own_id(parent)


def _relay_own_id(parent: GraphQLObjectType) -> bool:
    """A relay node's `id`, made of its type name and its NodeID attribute alone."""
    origin = getattr(parent.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF), "origin", None)
    return (
        isinstance(origin, type)
        and issubclass(origin, relay.Node)
        and origin.resolve_id.__func__ is relay.Node.resolve_id.__func__  # type: ignore[attr-defined]
        and origin.resolve_typename.__func__ is relay.Node.resolve_typename.__func__  # type: ignore[attr-defined]
    )


@dataclass
class _Shared:
    # Held so that their ids, the key, are not reused while the entry lives.
    payload: object
    operation: OperationDefinitionNode
    result: ExecutionResult
    data_json: str | None = None


class SharedResults:
    """The latest results executed for shareable selections, by event and operation.

    The subscribers of one message deliver it within moments of each other, so a few
    hundred entries are plenty; a subscriber that misses executes again, which is only
    slower."""

    SIZE = 256

    def __init__(self) -> None:
        self._by_key: OrderedDict[tuple[int, int], _Shared] = OrderedDict()
        self._by_data: dict[int, _Shared] = {}

    def get(self, payload: object, operation: OperationDefinitionNode) -> ExecutionResult | None:
        found = self._by_key.get((id(payload), id(operation)))
        return found.result if found else None

    def put(
        self, payload: object, operation: OperationDefinitionNode, result: ExecutionResult
    ) -> None:
        key = (id(payload), id(operation))
        if result.errors or result.extensions or result.data is None or key in self._by_key:
            return  # errors are reported per subscriber, as usual
        shared = self._by_key[key] = _Shared(payload, operation, result)
        self._by_data[id(result.data)] = shared
        if len(self._by_key) > self.SIZE:
            _, oldest = self._by_key.popitem(last=False)
            assert oldest.result.data is not None
            del self._by_data[id(oldest.result.data)]

    def data_json(self, data: object) -> str | None:
        """The JSON of a shared result's data, serialised once; None if not shared."""
        shared = self._by_data.get(id(data))
        if shared is None or shared.result.data is not data:
            return None
        if shared.data_json is None:
            # As Strawberry encodes its messages (strawberry/http/base.py encode_json).
            shared.data_json = json.dumps(data, separators=(",", ":"))
        return shared.data_json


shared_results = SharedResults()
