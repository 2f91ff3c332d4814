"""Resolvers without arguments or extensions called without Strawberry's generic wrapping.

A field with no resolver at all (a document's title, say) Strawberry reads through two
calls, `_get_basic_result` then `StrawberryField.get_result` with an empty list and
dict built for nothing; here it is one call of the schema's default resolver (`getattr`
unless configured otherwise) with the field's Python name, as `get_result` makes it.

Strawberry calls every field that has a resolver through the same chain: an `Info`, the
arguments converted, the field extensions folded around the call (`reduce` and a
`partial` per extension, even with none), `get_result`, the resolver object's `__call__`,
and for an `async def` one more coroutine that awaits the first. A field such as a task's
`poster` has no arguments and no extensions, so all of that comes down to calling its
function with the source (as `self`, `root` or `parent`, as it asks) and the `Info`.
This builds that call once per field at schema build time.

Only fields with no arguments, no field extensions (so no permission checks: those are
extensions, and keep Strawberry's path) and no exception handler that applies to them,
that are not subscriptions, and whose resolver is a plain callable; every other field keeps
Strawberry's resolver. The function receives the same objects (the source and an `Info`
of the schema's `info_class` for the same field) and its result, awaitable or not, goes
to graphql-core as before, so answers and errors are the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import GraphQLField, GraphQLObjectType, GraphQLResolveInfo
from graphql.pyutils import Path
from strawberry.schema.schema_converter import GraphQLCoreConverter
from strawberry.types.field import StrawberryField

from schema.leaf_fields import mark_leaf


def call_resolvers_directly(converter: GraphQLCoreConverter) -> int:
    """Give each eligible field of the converted schema a direct resolver; returns how
    many were given one."""
    count = 0
    for concrete in list(converter.type_map.values()):
        graphql_type = concrete.implementation
        if not isinstance(graphql_type, GraphQLObjectType):
            continue
        for graphql_field in graphql_type.fields.values():
            direct = _direct(converter, graphql_field)
            if direct is not None:
                graphql_field.resolve = direct
                count += 1
    return count


def _direct(
    converter: GraphQLCoreConverter, graphql_field: GraphQLField
) -> Callable[..., Any] | None:
    field = graphql_field.extensions.get(GraphQLCoreConverter.DEFINITION_BACKREF)
    if not isinstance(field, StrawberryField) or graphql_field.resolve is None:
        return None
    if (
        field.extensions
        or field.arguments
        or graphql_field.args
        or field.is_subscription
        or converter._get_field_exception_handlers(field)
    ):
        return None
    resolver = field.base_resolver
    if resolver is None:
        return _read_attribute(field, graphql_field)
    if not callable(resolver.wrapped_func):
        return None
    function = resolver.wrapped_func
    pass_self = resolver.self_parameter is not None
    source_names = tuple(
        parameter.name
        for parameter in (resolver.parent_parameter, resolver.root_parameter)
        if parameter is not None
    )
    info_parameter = resolver.info_parameter
    info_name = info_parameter.name if info_parameter is not None else None
    make_info = converter.config.info_class
    strawberry_resolver = graphql_field.resolve

    def resolve_directly(source: Any, info: GraphQLResolveInfo[Any], **kwargs: Any) -> Any:
        if kwargs:  # none are declared; whatever this is, Strawberry answers it
            return strawberry_resolver(source, info, **kwargs)
        named: dict[str, Any] = dict.fromkeys(source_names, source)
        if info_name is not None:
            named[info_name] = make_info(_raw_info=info, _field=field)
        if pass_self:
            return function(source, **named)
        return function(**named)

    # What Strawberry marks its own with, for extensions that skip default resolvers
    # (strawberry.resolvers.is_default_resolver, used by its tracing extensions).
    resolve_directly._is_default = False  # type: ignore[attr-defined]
    return resolve_directly


def _read_attribute(field: StrawberryField, graphql_field: GraphQLField) -> Callable[..., Any]:
    """What Strawberry's basic-field path comes down to: the default resolver (the one
    `from_resolver` gave the field) on the source and the field's Python name. A leaf
    field is also read so by the executor without an info (schema/leaf_fields.py)."""
    default_resolver = field.default_resolver
    name = field.python_name

    def read_attribute(source: Any, info: GraphQLResolveInfo[Any], **kwargs: Any) -> Any:
        return default_resolver(source, name)

    def read_leaf(source: Any, path: Path) -> Any:
        return default_resolver(source, name)

    read_attribute._is_default = True  # type: ignore[attr-defined] # as Strawberry's
    mark_leaf(read_attribute, graphql_field.type, read_leaf)
    return read_attribute
