"""The world the input-check tests write into, and the tools to see that nothing changed."""

from __future__ import annotations

import base64
import copy
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bson import ObjectId
from graphql import (
    GraphQLInputObjectType,
    GraphQLSchema,
    build_schema,
    get_named_type,
)

from documents import ALL_DOCUMENTS
from server.runtime import Runtime
from tests.support.bookings import create_package, provider
from tests.support.chat import open_conversation, sent
from tests.support.graphql_client import GraphQLClient, Tokens
from tests.support.marketplace import logged_in_admin, make_offer, post_task, poster, tasker


@dataclass(frozen=True)
class World:
    poster: Tokens
    tasker: Tokens
    """Has an offer on the task, a provider profile with hours, and a package."""
    newcomer: Tokens
    """A tasker without an offer on the task."""
    admin: Tokens
    task_id: str
    offer_id: str
    package_id: str
    conversation_id: str
    message_id: str

    def person(self, who: str) -> Tokens | None:
        people = {
            "poster": self.poster,
            "tasker": self.tasker,
            "newcomer": self.newcomer,
            "admin": self.admin,
        }
        return people.get(who)


async def make_world(client: GraphQLClient, runtime: Runtime) -> World:
    ann = await poster(client, "ann@example.com")
    tom = await provider(client, "tom@example.com")
    ned = await tasker(client, "ned@example.com")
    admin = await logged_in_admin(client, runtime)
    task = await post_task(client, ann)
    offer = await make_offer(client, tom, task["id"])
    package = await create_package(client, tom)
    opened = await open_conversation(client, tom, task["id"])
    assert opened["errors"] == [], opened
    conversation_id = opened["conversation"]["id"]
    message = await sent(client, tom, conversation_id, "When would suit you?")
    return World(
        ann, tom, ned, admin, task["id"], offer["id"], package["id"], conversation_id, message["id"]
    )


def unknown_id(type_name: str) -> str:
    """A well-formed global id of nothing: inputs are checked before objects are found."""
    return base64.b64encode(f"{type_name}:{ObjectId()}".encode()).decode()


def in_a_week() -> str:
    return (datetime.now(UTC) + timedelta(days=7)).replace(minute=0, second=0).isoformat()


def with_value(given: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `given` with the field at dotted `path` (list positions as numbers) set."""
    changed = copy.deepcopy(given)
    *parents, last = path.split(".")
    holder: Any = changed
    for step in parents:
        holder = holder[int(step)] if isinstance(holder, list) else holder[step]
    if isinstance(holder, list):
        holder[int(last)] = value
    else:
        holder[last] = value
    return changed


async def snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every stored document."""
    return {
        model.__name__: await model.get_pymongo_collection().find({}, sort=[("_id", 1)]).to_list()
        for model in ALL_DOCUMENTS
    }


def public_schema() -> GraphQLSchema:
    with open("schema.graphql", encoding="utf-8") as sdl:
        return build_schema(sdl.read())


def input_field_of(schema: GraphQLSchema, mutation: str, path: str) -> str:
    """`Type.field` of the input field that a mutation's `input` path ends on."""
    mutation_type = schema.mutation_type
    assert mutation_type is not None
    current = get_named_type(mutation_type.fields[mutation].args["input"].type)
    found = ""
    for step in path.split("."):
        if step.isdigit():
            continue  # a position in a list
        assert isinstance(current, GraphQLInputObjectType), (mutation, path)
        found = f"{current.name}.{step}"
        current = get_named_type(current.fields[step].type)
    return found


def string_input_fields(schema: GraphQLSchema) -> set[str]:
    """`Type.field` of every input field of the schema that takes a String (or a list)."""
    return {
        f"{name}.{field_name}"
        for name, graphql_type in schema.type_map.items()
        if isinstance(graphql_type, GraphQLInputObjectType) and not name.startswith("__")
        for field_name, field in graphql_type.fields.items()
        if get_named_type(field.type).name == "String"
    }
