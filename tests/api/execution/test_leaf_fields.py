"""Leaf fields completed in line (schema/leaf_fields.py): over many documents, the very
same JSON answer, data and errors (messages, paths, locations), as graphql-core's own
`execute_field` on the same schema with the same resolvers; the fields it takes are the
plain leaf reads and node ids of both real graphs, and nothing with an extension."""

from __future__ import annotations

import asyncio
import enum
import itertools
import json
import random
from datetime import UTC, datetime
from typing import Any

import pytest
import strawberry
from graphql import GraphQLObjectType
from strawberry import relay
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.types import Info

from documents.settings import Settings
from schema.direct_resolvers import call_resolvers_directly
from schema.leaf_fields import LEAF_READ, leaf_read
from schema.node_ids import speed_up_node_ids
from schema.partners.schema import build_partner_schema
from schema.schema import PerEventExecutor, build_schema


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Never(BasePermission):
    message = "not for you"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return False


async def _eventually(value: Any) -> Any:
    await asyncio.sleep(0)
    if isinstance(value, Exception):
        raise value
    return value


class Later:
    """An awaitable value, awaitable again on every read (a coroutine is only once)."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Any:
        return _eventually(self.value).__await__()


class Unreadable:
    """An attribute that raises when read (and ignores what is set)."""

    def __get__(self, instance: object, owner: type) -> Any:
        if instance is None:
            return self
        raise RuntimeError("cannot read this")

    def __set__(self, instance: object, value: Any) -> None:
        pass


@strawberry.type
class Thing(relay.Node):
    id: relay.NodeID[str]
    name: str
    maybe_name: str | None
    count: int
    maybe_count: int | None
    ratio: float
    flag: bool
    colour: Colour
    maybe_colour: Colour | None
    at: datetime
    tags: list[str]
    guarded: str | None = strawberry.field(
        default=None, extensions=[PermissionExtension(permissions=[Never()], fail_silently=True)]
    )

    @strawberry.field
    def computed(self) -> str:
        return f"computed {self.name}"


BASE: dict[str, Any] = {
    "id": "t1",
    "name": "one",
    "maybe_name": None,
    "count": 3,
    "maybe_count": None,
    "ratio": 0.5,
    "flag": True,
    "colour": Colour.RED,
    "maybe_colour": None,
    "at": datetime(2026, 12, 6, 12, 0, tzinfo=UTC),
    "tags": ["a", "b"],
}

# Values each field may hold, good and bad: None where not allowed, values the scalar
# refuses, Exceptions held as values, awaitables of each.
ODD: dict[str, list[Any]] = {
    "name": [None, 7, ValueError("held"), "ok"],
    "maybe_name": ["here", 1.5, KeyError("k")],
    "count": [None, "abc", 1.5, 2**40, True],
    "maybe_count": [4, "x", 10**20],
    "ratio": [None, "nan?", float("inf"), 2],
    "flag": [None, 0, "yes"],
    "colour": [None, "red", Colour.BLUE, 3],
    "maybe_colour": [Colour.BLUE, "purple"],
    "at": [None, "not a date", datetime(2026, 1, 1)],  # a naive one too
    "id": [None, 12, "ünïcode"],
}


def _thing(rng: random.Random, index: int) -> Thing:
    values = dict(BASE, id=f"t{index}", name=f"thing {index}")
    for field, odd in ODD.items():
        if rng.random() < 0.25:
            values[field] = rng.choice(odd)
    for field in ("name", "maybe_count", "colour", "at"):
        if rng.random() < 0.1:
            values[field] = Later(values[field])
    return Thing(**values)


class BrokenThing(Thing):
    """A Thing whose name cannot be read."""

    name = Unreadable()


THINGS: list[Thing] = []


@strawberry.type
class Query:
    @strawberry.field
    def things(self) -> list[Thing]:
        return THINGS

    @strawberry.field
    def one(self) -> Thing:
        return THINGS[0]

    @strawberry.field
    def broken(self) -> Thing | None:
        return BrokenThing(**BASE)


LEAVES = [
    "id",
    "name",
    "maybeName",
    "count",
    "maybeCount",
    "ratio",
    "flag",
    "colour",
    "maybeColour",
    "at",
    "tags",
    "computed",
    "guarded",
    "__typename",
]


def _documents(rng: random.Random) -> list[str]:
    documents = []
    for size in (1, 2, 3, 5, 8, len(LEAVES)):
        for _ in range(12):
            fields = rng.sample(LEAVES, size)
            aliased = [f"a{i}: {f}" if rng.random() < 0.2 else f for i, f in enumerate(fields)]
            selection = " ".join(aliased)
            root = rng.choice(["things", "one", "broken"])
            if rng.random() < 0.3:
                documents.append(
                    f"query {{ {root} {{ ...F }} }} fragment F on Thing {{ {selection} }}"
                )
            else:
                documents.append(f"{{ {root} {{ {selection} }} again: {root} {{ id name }} }}")
    documents += [
        "{ things { id name count colour at } }",
        "{ one { name name n: name } broken { name id } }",
    ]
    return documents


def _schema(fast: bool) -> strawberry.Schema:
    schema = strawberry.Schema(
        query=Query,
        execution_context_class=PerEventExecutor if fast else StrawberryGraphQLCoreExecutionContext,
    )
    call_resolvers_directly(schema.schema_converter)
    speed_up_node_ids(schema._schema)
    return schema


def _json(schema: strawberry.Schema, document: str) -> str:
    result = asyncio.run(schema.execute(document))
    errors = [e.formatted for e in result.errors or []]
    return json.dumps({"data": result.data, "errors": errors}, default=str)


def test_the_same_answers_and_errors_as_graphql_cores_own_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(16)  # noqa: S311 # reproducible test data, not secrets
    THINGS[:] = [_thing(rng, i) for i in range(30)]
    assert any(isinstance(t.colour, Later) for t in THINGS)
    fast, plain = _schema(fast=True), _schema(fast=False)
    documents = _documents(rng)
    infos = {True: 0, False: 0}
    build_resolve_info = StrawberryGraphQLCoreExecutionContext.build_resolve_info
    errors = 0
    for document in documents:
        for is_fast in (False, True):

            def counted(self: Any, *args: Any, is_fast: bool = is_fast) -> Any:
                infos[is_fast] += 1
                return build_resolve_info(self, *args)

            monkeypatch.setattr(
                StrawberryGraphQLCoreExecutionContext, "build_resolve_info", counted
            )
            answer = _json(fast if is_fast else plain, document)
            if not is_fast:
                expected = answer
        assert answer == expected, document
        errors += '"message"' in expected
    assert errors > len(documents) // 3  # the odd values were met
    assert infos[True] * 2 < infos[False]  # and over half of the fields took the leaf path


def _marked(schema: strawberry.Schema) -> dict[str, set[str]]:
    marked: dict[str, set[str]] = {}
    for name, graphql_type in schema._schema.type_map.items():
        if not isinstance(graphql_type, GraphQLObjectType) or name.startswith("__"):
            continue
        for field_name, field in graphql_type.fields.items():
            if leaf_read(field.resolve) is not None:
                marked.setdefault(name, set()).add(field_name)
    return marked


def test_only_plain_leaf_reads_and_node_ids_are_marked() -> None:
    marked = _marked(_schema(fast=True))
    assert marked["Thing"] == {
        "id",
        "name",
        "maybeName",
        "count",
        "maybeCount",
        "ratio",
        "flag",
        "colour",
        "maybeColour",
        "at",
    }


def test_the_graphs_leaf_fields_have_no_extensions_or_arguments() -> None:
    settings = Settings(environment="development")
    main = build_schema(settings)
    for schema in (main, build_partner_schema(settings)):
        marked = 0
        for graphql_type in schema._schema.type_map.values():
            if not isinstance(graphql_type, GraphQLObjectType):
                continue
            for field in graphql_type.fields.values():
                if leaf_read(field.resolve) is None:
                    continue
                marked += 1
                definition = field.extensions.get("strawberry-definition")
                assert not definition.extensions and not field.args
        assert marked > 50
    task = main._schema.type_map["Task"]
    assert isinstance(task, GraphQLObjectType)
    for name in ("id", "title", "offerCount", "createdAt", "status"):
        assert hasattr(task.fields[name].resolve, LEAF_READ), name
    for name in ("poster", "budget", "imageUrls", "place"):
        assert not hasattr(task.fields[name].resolve, LEAF_READ), name


def test_every_combination_of_two_odd_values() -> None:
    """Pairs of odd values in one object: errors in sibling fields, in document order."""
    fast, plain = _schema(fast=True), _schema(fast=False)
    fields = list(ODD)
    for first, second in itertools.combinations(fields, 2):
        for a, b in itertools.product(ODD[first][:2], ODD[second][:2]):
            THINGS[:] = [Thing(**dict(BASE, **{first: a, second: b}))]
            document = "{ things { " + " ".join(LEAVES) + " } }"
            assert _json(fast, document) == _json(plain, document), (first, a, second, b)
