"""Resolvers called without Strawberry's generic wrapping (schema/direct_resolvers.py):
the same answers and errors as Strawberry's own call, whatever the resolver asks for, and
Strawberry's path for every field with arguments, extensions or permissions."""

from __future__ import annotations

import asyncio
from typing import Any

import strawberry
from graphql import GraphQLObjectType
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.resolvers import is_default_resolver
from strawberry.types import Info

from documents.settings import Settings
from schema.direct_resolvers import call_resolvers_directly
from schema.partners.schema import build_partner_schema
from schema.schema import build_schema

SEEN: list[tuple[str, Any]] = []
"""What each resolver was given, to compare the two ways of calling it."""


class Never(BasePermission):
    message = "not for you"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return False


class TaggedInfo(Info):
    """A schema's own Info class: the direct call must make this one too."""


@strawberry.type
class Item:
    name: str

    @strawberry.field
    def by_self(self) -> str:
        return f"self {self.name}"

    @strawberry.field
    def by_root(root: Item) -> str:  # Strawberry's name for the source
        return f"root {root.name}"

    @strawberry.field
    def by_parent(self, parent: strawberry.Parent[Item]) -> str:
        return f"parent {parent.name} {self.name}"

    @strawberry.field
    def with_info(self, info: Info) -> str:
        SEEN.append(("info", (type(info), info.field_name, info.path.key, info.python_name)))
        return f"{info.field_name} {len(info.selected_fields)} {self.name}"

    @strawberry.field(name="renamedInfo")  # type: ignore[untyped-decorator]
    def other_info_name(self, whatever: Info) -> str:
        return f"{whatever.field_name} {self.name}"

    @strawberry.field
    async def later(self, info: Info) -> str:
        await asyncio.sleep(0)
        return f"later {info.field_name} {self.name}"

    @strawberry.field
    def awaitable_from_sync(self) -> str:
        async def value() -> str:
            return f"awaited {self.name}"

        return value()  # type: ignore[return-value] # graphql-core awaits it

    @strawberry.field
    def fails(self) -> str | None:
        raise ValueError(f"no {self.name}")

    @strawberry.field
    async def fails_later(self) -> str | None:
        raise ValueError(f"not yet {self.name}")

    @strawberry.field
    def with_argument(self, times: int = 2) -> str:
        return self.name * times

    @strawberry.field(  # type: ignore[untyped-decorator]
        extensions=[PermissionExtension(permissions=[Never()])]
    )
    def guarded(self) -> str | None:
        return f"secret {self.name}"

    @strawberry.field
    def child(self) -> Item:
        return Item(name=f"{self.name}'")


@strawberry.type
class Query:
    @strawberry.field
    def items(self) -> list[Item]:
        return [Item(name="a"), Item(name="b")]


QUERY = """{
  items {
    name bySelf byRoot byParent withInfo renamedInfo later awaitableFromSync
    fails failsLater withArgument twice: withArgument(times: 3) guarded
    child { bySelf withInfo alias: withInfo }
  }
}"""


def _answer(schema: strawberry.Schema) -> tuple[Any, list[Any], list[Any]]:
    SEEN.clear()
    result = asyncio.run(schema.execute(QUERY))
    errors = sorted((e.formatted for e in result.errors or []), key=lambda e: str(e["path"]))
    return result.data, errors, list(SEEN)


def _schema(direct: bool) -> strawberry.Schema:
    schema = strawberry.Schema(
        query=Query, config=strawberry.schema.config.StrawberryConfig(info_class=TaggedInfo)
    )
    if direct:
        call_resolvers_directly(schema.schema_converter)
    return schema


def _resolver_name(schema: strawberry.Schema, field: str) -> str:
    item = schema._schema.type_map["Item"]
    assert isinstance(item, GraphQLObjectType)
    return str(getattr(item.fields[field].resolve, "__name__", ""))


def test_same_answers_errors_and_arguments_as_strawberry() -> None:
    expected = _answer(_schema(direct=False))
    answered = _answer(_schema(direct=True))
    assert answered == expected
    data, errors, seen = answered
    assert data["items"][0]["withInfo"] == "withInfo 1 a"
    assert data["items"][1]["child"] == {
        "bySelf": "self b'",
        "withInfo": "withInfo 1 b'",
        "alias": "withInfo 1 b'",
    }
    assert [e["message"] for e in errors].count("not for you") == 2
    assert ("info", (TaggedInfo, "withInfo", "alias", "with_info")) in seen


def test_only_plain_fields_are_called_directly() -> None:
    schema = _schema(direct=True)
    direct = {
        "bySelf",
        "byRoot",
        "byParent",
        "withInfo",
        "renamedInfo",
        "later",
        "awaitableFromSync",
        "fails",
        "failsLater",
        "child",
    }
    for name in direct:
        assert _resolver_name(schema, name) == "resolve_directly", name
    for name in ("withArgument", "guarded"):
        assert _resolver_name(schema, name) != "resolve_directly", name


def test_the_graphs_permission_fields_keep_their_extensions() -> None:
    """On the real graphs, no field with extensions (every permission check is one) or
    arguments is called directly, and the task feed's poster is."""
    settings = Settings(environment="development")
    main = build_schema(settings)
    for schema in (main, build_partner_schema(settings)):
        direct = 0
        for concrete in schema.schema_converter.type_map.values():
            implementation = concrete.implementation
            if not isinstance(implementation, GraphQLObjectType):
                continue
            for graphql_field in implementation.fields.values():
                name = getattr(graphql_field.resolve, "__name__", "")
                field = graphql_field.extensions.get("strawberry-definition")
                if name in ("resolve_directly", "read_attribute"):
                    direct += 1
                    assert not field.extensions and not graphql_field.args
        assert direct > 0
    task = main._schema.type_map["Task"]
    assert isinstance(task, GraphQLObjectType)
    assert getattr(task.fields["poster"].resolve, "__name__", "") == "resolve_directly"


@strawberry.type
class Row:
    title: str
    python_named_field: int
    guarded_title: str | None = strawberry.field(
        extensions=[PermissionExtension(permissions=[Never()])]
    )


@strawberry.type
class RowQuery:
    @strawberry.field
    def rows(self) -> list[Row]:
        # Dicts, read by the configured default resolver below.
        return [
            {"title": "a", "python_named_field": 1, "guarded_title": "x"},  # type: ignore[list-item]
            {"title": "b", "python_named_field": 2, "guarded_title": "y"},  # type: ignore[list-item]
        ]


def _row_schema(direct: bool) -> strawberry.Schema:
    schema = strawberry.Schema(
        query=RowQuery,
        config=strawberry.schema.config.StrawberryConfig(
            default_resolver=lambda source, name: source[name]
        ),
    )
    if direct:
        call_resolvers_directly(schema.schema_converter)
    return schema


def test_plain_fields_read_through_the_configured_default_resolver() -> None:
    query = "{ rows { title pythonNamedField guardedTitle } }"
    expected = _row_schema(direct=False).execute_sync(query)
    schema = _row_schema(direct=True)
    answered = schema.execute_sync(query)
    assert answered.data == expected.data
    assert answered.data == {
        "rows": [
            {"title": "a", "pythonNamedField": 1, "guardedTitle": None},
            {"title": "b", "pythonNamedField": 2, "guardedTitle": None},
        ]
    }
    assert [e.message for e in expected.errors or []] == ["not for you"] * 2
    assert [e.formatted for e in answered.errors or []] == [
        e.formatted for e in expected.errors or []
    ]
    row = schema._schema.type_map["Row"]
    assert isinstance(row, GraphQLObjectType)
    assert getattr(row.fields["title"].resolve, "__name__", "") == "read_attribute"
    # A field with a permission extension keeps Strawberry's path, and its check.
    assert getattr(row.fields["guardedTitle"].resolve, "__name__", "") != "read_attribute"


def test_plain_attribute_fields_of_the_item_are_read_directly() -> None:
    assert _resolver_name(_schema(direct=True), "name") == "read_attribute"
    assert _resolver_name(_schema(direct=False), "name") != "read_attribute"


def test_default_resolvers_are_marked_as_strawberrys_are() -> None:
    """Extensions that skip default resolvers (Strawberry's tracing) see the same."""
    stock, direct = _schema(direct=False), _schema(direct=True)
    item_stock, item_direct = stock._schema.type_map["Item"], direct._schema.type_map["Item"]
    assert isinstance(item_stock, GraphQLObjectType)
    assert isinstance(item_direct, GraphQLObjectType)
    for name, field in item_stock.fields.items():
        assert is_default_resolver(item_direct.fields[name].resolve) == is_default_resolver(
            field.resolve
        ), name
