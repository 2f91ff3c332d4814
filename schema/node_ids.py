"""Relay ids resolved without Strawberry's per-field wrapping.

Every node on a page shows its `id`, and Strawberry resolves `Node.id` like any field
with a resolver: an `Info`, the arguments worked out, the extension chain folded, the
resolver's class binding, `resolve_typename` and `resolve_id`, a `GlobalID`, then the
scalar's `str` encodes it. For a node type that keeps `Node`'s own id resolution (the
`NodeID` attribute, the GraphQL type's name) and puts no extension on `id`, the answer is
`base64("<type name>:<attribute>")`, which this resolver computes directly, with the
same errors for an id that is missing. The `ID` scalar serialises the encoded string as
it is, so the answer is the same text. Anything else (another class as the source, a
type that overrides `resolve_id` or `resolve_typename`, an `id` with extensions or
handlers) keeps Strawberry's resolver.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from graphql import GraphQLObjectType, GraphQLResolveInfo, GraphQLSchema
from graphql.pyutils import Path
from strawberry import relay
from strawberry.types.base import StrawberryObjectDefinition

from schema.leaf_fields import DECLINED, mark_leaf


def _function(resolver: object) -> object:
    """The plain function behind a resolver, a classmethod or a bound method."""
    wrapped = getattr(resolver, "wrapped_func", resolver)
    return getattr(wrapped, "__func__", wrapped)


_NODE_ID_FUNCTION = relay.Node.__dict__["_id"].__func__
"""The function Strawberry's `Node` resolves `id` with (each node type gets a copy of the
field, bound to its class)."""


def speed_up_node_ids(schema: GraphQLSchema) -> int:
    """Give each plain node type's `id` the direct resolver; returns how many."""
    count = 0
    for graphql_type in schema.type_map.values():
        if not isinstance(graphql_type, GraphQLObjectType):
            continue
        definition = graphql_type.extensions.get("strawberry-definition")
        if not isinstance(definition, StrawberryObjectDefinition):
            continue
        origin = definition.origin
        field = graphql_type.fields.get("id")
        if field is None or field.resolve is None or not _keeps_node_resolution(origin, definition):
            continue
        field.resolve = _direct_resolver(origin, origin.resolve_id_attr(), field.resolve)
        mark_leaf(field.resolve, field.type, _id_reader(origin, origin.resolve_id_attr()))
        count += 1
    return count


def _keeps_node_resolution(origin: type, definition: StrawberryObjectDefinition) -> bool:
    """Whether `origin` is a Node whose id is `Node`'s own: the stock field without
    extensions, and `resolve_id` and `resolve_typename` not overridden."""
    if not (isinstance(origin, type) and issubclass(origin, relay.Node)):
        return False
    strawberry_field = next((f for f in definition.fields if f.graphql_name == "id"), None)
    if strawberry_field is None or strawberry_field.extensions:
        return False
    if strawberry_field.base_resolver is None:
        return False
    if _function(strawberry_field.base_resolver) is not _NODE_ID_FUNCTION:
        return False
    return all(
        getattr(origin, name).__func__ is getattr(relay.Node, name).__func__
        for name in ("resolve_id", "resolve_typename")
    )


def _id_reader(origin: type, attribute: str) -> Callable[[Any, Path], Any]:
    """The same id for the executor's leaf path (schema/leaf_fields.py), which has the
    field's path but no info: its type name is the one `info.path` would give. Anything
    the resolver would leave to Strawberry is declined, before anything is read."""

    def read_node_id(root: Any, path: Path) -> Any:
        if type(root) is origin:
            node_id = getattr(root, attribute)
            type_name = path.typename
            if isinstance(node_id, str) and isinstance(type_name, str):
                return base64.b64encode(f"{type_name}:{node_id}".encode()).decode()
        return DECLINED

    return read_node_id


def _direct_resolver(
    origin: type, attribute: str, strawberry_resolver: Callable[..., Any]
) -> Callable[..., Any]:
    def resolve_node_id(root: Any, info: GraphQLResolveInfo[Any], **kwargs: Any) -> Any:
        # Only an instance of the very class (a subclass may override either hook) whose
        # id is a string; anything else, including the errors, is Strawberry's to answer.
        if type(root) is origin and not kwargs:
            node_id = getattr(root, attribute)
            type_name = info.path.typename
            if isinstance(node_id, str) and isinstance(type_name, str):
                return base64.b64encode(f"{type_name}:{node_id}".encode()).decode()
        return strawberry_resolver(root, info, **kwargs)

    resolve_node_id._is_default = False  # type: ignore[attr-defined] # as Strawberry's
    return resolve_node_id
