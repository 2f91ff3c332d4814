"""Relay ids resolved directly (schema/node_ids.py): the same answers and errors as
Strawberry's own `Node.id`, and Strawberry's resolver wherever a type changes how its id
is resolved or guards it."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLObjectType
from strawberry import relay
from strawberry.permission import BasePermission, PermissionExtension
from strawberry.resolvers import is_default_resolver
from strawberry.types import Info
from strawberry.types.base import get_object_definition

from documents.settings import Settings
from schema.node_ids import speed_up_node_ids
from schema.partners.schema import build_partner_schema
from schema.schema import build_schema


@strawberry.type
class Plain(relay.Node):
    id: relay.NodeID[str]
    name: str


@strawberry.type
class OwnId(relay.Node):
    """Overrides how its id is read."""

    id: relay.NodeID[str]

    @classmethod
    def resolve_id(cls, root: OwnId, *, info: Info) -> str:
        return f"own-{root.id}"


@strawberry.type
class OwnTypename(relay.Node):
    """Overrides the type name its id carries."""

    id: relay.NodeID[str]

    @classmethod
    def resolve_typename(cls, root: OwnTypename, info: Info) -> str:
        return "Renamed"


@strawberry.type
class SubPlain(Plain):
    """Returned where a `Plain` is expected: not the very class of the type."""

    @classmethod
    def resolve_id(cls, root: Plain, *, info: Info) -> str:
        return f"sub-{root.id}"


class Never(BasePermission):
    message = "not for you"

    def has_permission(self, source: Any, info: Info, **kwargs: Any) -> bool:
        return False


@strawberry.type
class Query:
    @strawberry.field
    def plains(self) -> list[Plain]:
        return [Plain(id="1", name="a"), Plain(id="tâche 2", name="b"), SubPlain(id="3", name="c")]

    @strawberry.field
    def missing(self) -> Plain:
        return Plain(id=None, name="none")  # type: ignore[arg-type] # the error path

    @strawberry.field
    def not_a_string(self) -> Plain:
        return Plain(id=7, name="seven")  # type: ignore[arg-type] # Strawberry str()s it

    @strawberry.field
    def own_id(self) -> OwnId:
        return OwnId(id="9")

    @strawberry.field
    def own_typename(self) -> OwnTypename:
        return OwnTypename(id="10")


QUERY = """{
  plains { id name ... on Node { aliased: id } }
  notAString { id }
  ownId { id }
  ownTypename { id }
}"""


def _id_resolver(schema: strawberry.Schema, type_name: str) -> Any:
    node = schema._schema.type_map[type_name]
    assert isinstance(node, GraphQLObjectType)
    return node.fields["id"].resolve


def _schemas() -> tuple[strawberry.Schema, strawberry.Schema]:
    return strawberry.Schema(query=Query), strawberry.Schema(query=Query)


def test_same_answers_as_strawberry() -> None:
    stock, direct = _schemas()
    assert speed_up_node_ids(direct._schema) == 1  # Plain alone: the others override
    expected = stock.execute_sync(QUERY)
    answered = direct.execute_sync(QUERY)
    assert expected.errors is None
    assert answered.errors is None
    assert answered.data == expected.data
    assert expected.data is not None
    first = expected.data["plains"][0]["id"]
    assert relay.GlobalID.from_id(first) == relay.GlobalID("Plain", "1")


def test_types_that_change_their_id_keep_strawberrys_resolver() -> None:
    stock, direct = _schemas()
    speed_up_node_ids(direct._schema)
    names = ("Plain", "OwnId", "OwnTypename")
    resolvers = {name: _id_resolver(direct, name) for name in names}
    originals = {name: _id_resolver(stock, name) for name in names}
    assert resolvers["Plain"].__name__ == "resolve_node_id"
    assert is_default_resolver(resolvers["Plain"]) == is_default_resolver(originals["Plain"])
    for name in ("OwnId", "OwnTypename"):
        assert resolvers[name] is not None
        assert resolvers[name].__name__ == originals[name].__name__
    answered = direct.execute_sync("{ ownId { id } ownTypename { id } plains { id } }")
    assert answered.data is not None
    assert relay.GlobalID.from_id(answered.data["ownId"]["id"]) == relay.GlobalID("OwnId", "own-9")
    assert relay.GlobalID.from_id(answered.data["ownTypename"]["id"]) == relay.GlobalID(
        "Renamed", "10"
    )
    # The subclass's own resolve_id is honoured where it stands for a Plain.
    assert relay.GlobalID.from_id(answered.data["plains"][2]["id"]) == relay.GlobalID(
        "Plain", "sub-3"
    )


def test_same_error_for_a_missing_id() -> None:
    stock, direct = _schemas()
    speed_up_node_ids(direct._schema)
    expected = stock.execute_sync("{ missing { id } }")
    answered = direct.execute_sync("{ missing { id } }")
    assert expected.errors and answered.errors
    assert [e.formatted for e in answered.errors] == [e.formatted for e in expected.errors]
    assert answered.data == expected.data


@strawberry.type
class Secret(relay.Node):
    id: relay.NodeID[str]


# The type's own copy of Node's id field, guarded as a resolver field would be.
_secret_id = next(
    f for f in get_object_definition(Secret, strict=True).fields if f.graphql_name == "id"
)
_secret_id.extensions = [PermissionExtension(permissions=[Never()])]


@strawberry.type
class SecretQuery:
    @strawberry.field
    def secret(self) -> Secret | None:
        return Secret(id="s")


def test_an_id_with_a_permission_keeps_it() -> None:
    schema = strawberry.Schema(query=SecretQuery)
    assert speed_up_node_ids(schema._schema) == 0
    answered = schema.execute_sync("{ secret { id } }")
    assert answered.errors is not None
    assert [e.message for e in answered.errors] == ["not for you"]


def test_every_node_type_of_both_graphs_is_resolved_directly() -> None:
    """Ours keep Node's own id resolution: each node type's id is the direct one, so
    every page of nodes benefits; a new type that overrides it would show here."""
    for schema in (
        build_schema(Settings(environment="development")),
        build_partner_schema(Settings(environment="development")),
    ):
        graph = schema._schema
        nodes = [
            t
            for t in graph.type_map.values()
            if "Node" in [i.name for i in getattr(t, "interfaces", [])]
        ]
        assert nodes
        for node in nodes:
            assert isinstance(node, GraphQLObjectType)
            resolver = node.fields["id"].resolve
            assert getattr(resolver, "__name__", "") == "resolve_node_id", node.name
