"""A framed selection of leaves only is executed by a plan of its own
(schema/live/leaf_plan.py): it must give exactly what graphql-core's executor gives, and
step aside for anything else."""

from __future__ import annotations

from datetime import timedelta

import pytest
from beanie import PydanticObjectId
from graphql import parse
from graphql.execution import Executor
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from documents.chat.conversations import ChatMessage
from documents.clock import utcnow
from documents.settings import Settings
from schema.chat.conversations import MessageNode
from schema.live.framed import FramedSelection
from schema.live.leaf_plan import LeafPlan
from schema.schema import build_schema

CONVERSATION = "Q29udmVyc2F0aW9uOjE="
PLAIN = [
    "id seq text sentAt",
    "a: id b: seq text editedAt deletedAt sentAt",
    "seq deleted",
]
NOT_PLAIN = [
    "attachmentUrls",  # a list
    "__typename seq",  # a meta field
    "seq seq",  # one key twice, merged by the executor
    "seq sender { id }",  # an object
    "... on MessageNode { seq }",  # a fragment
    "seq @include(if: true)",  # a directive
]


def _executor(selection: str) -> Executor[object]:
    schema = build_schema(Settings(environment="development"))
    document = parse(
        f"subscription($c: ID!) {{ messageAdded(conversationId: $c) {{ {selection} }} }}"
    )
    executor = StrawberryGraphQLCoreExecutionContext.build(
        schema._schema, document, raw_variable_values={"c": CONVERSATION}
    )
    assert isinstance(executor, Executor)
    return executor


def _messages() -> list[MessageNode]:
    someone = PydanticObjectId()
    now = utcnow()
    return [
        MessageNode.of(
            ChatMessage(
                id=PydanticObjectId(), conversation_id=someone, seq=1, sender_id=someone, text="hi"
            )
        ),
        MessageNode.of(
            ChatMessage(
                id=PydanticObjectId(),
                conversation_id=someone,
                seq=2,
                sender_id=someone,
                text='"quoted" \u00e9',
                sent_at=now - timedelta(hours=1),
                edited_at=now,
                deleted_at=now,
            )
        ),
    ]


@pytest.mark.parametrize("selection", PLAIN)
def test_a_plain_selection_gives_what_the_executor_gives(selection: str) -> None:
    executor = _executor(selection)
    plan = LeafPlan.of(executor)
    assert plan is not None
    framed = FramedSelection(executor)
    for node in _messages():
        assert plan.run(node) == framed.executed(node)


@pytest.mark.parametrize("selection", NOT_PLAIN)
def test_anything_else_goes_the_general_way(selection: str) -> None:
    assert LeafPlan.of(_executor(selection)) is None


def test_an_event_the_plan_cannot_answer_is_executed_the_general_way() -> None:
    """A null where the type says non-null: the plan steps aside, and the executor
    answers as it always did (here: the error that the framed path reports)."""
    executor = _executor("id seq text")
    plan = LeafPlan.of(executor)
    assert plan is not None
    node = _messages()[0]
    node.text = None  # type: ignore[assignment]
    assert plan.run(node) is None
    with pytest.raises(RuntimeError, match="did not execute plainly"):
        FramedSelection(executor).data_json(node)
