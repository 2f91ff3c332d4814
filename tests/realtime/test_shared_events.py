"""Which subscription results are executed once for every subscriber of an event: only
those that cannot depend on who is asking (schema/common/shared_events.py)."""

from __future__ import annotations

import pytest
from graphql import FragmentDefinitionNode, OperationDefinitionNode, parse

from documents.settings import Settings
from schema.common.shared_events import is_viewer_independent
from schema.schema import build_schema

SCHEMA = build_schema(Settings(environment="development"))


def shared(document: str) -> bool:
    ast = parse(document)
    [operation] = [d for d in ast.definitions if isinstance(d, OperationDefinitionNode)]
    fragments = {d.name.value: d for d in ast.definitions if isinstance(d, FragmentDefinitionNode)}
    return is_viewer_independent(SCHEMA._schema, operation, fragments)


@pytest.mark.parametrize(
    "selection",
    [
        "id seq text sentAt",
        "__typename id seq attachmentUrls editedAt deletedAt",
        "number: seq body: text",
        "...fields",
        "... on Message { seq text }",
    ],
)
def test_attributes_of_the_event_are_shared(selection: str) -> None:
    assert shared(
        f"subscription($c: ID!) {{ messageAdded(conversationId: $c) {{ {selection} }} }}"
        "fragment fields on Message { id seq }"
    )


@pytest.mark.parametrize(
    "selection",
    [
        "id sender { id }",  # read with the subscriber's loaders: a resolver
        "id deleted",  # a resolver of its own
        "id text @include(if: $t)",  # what is selected depends on variables
        "...fields",
    ],
)
def test_what_may_depend_on_the_subscriber_is_not(selection: str) -> None:
    assert not shared(
        f"subscription($c: ID!, $t: Boolean!) {{ messageAdded(conversationId: $c) "
        f"{{ {selection} }} }} fragment fields on Message {{ seq sender {{ name }} }}"
    )


def test_event_fields_with_resolvers_are_not_shared() -> None:
    assert shared("subscription { myEvents { id kind occurredAt } }")
    assert not shared("subscription { myEvents { id kind actor { id } } }")
