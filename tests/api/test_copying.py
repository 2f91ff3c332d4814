"""Types built from their documents: which fields are copied by name, and what must be given."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from bson import ObjectId

from documents.marketplace.tasks import Milestone, StatusChange, TaskStatus
from documents.money import Money
from schema.common.copying import copied, plain_fields
from schema.common.values import MoneyType
from schema.marketplace.milestones import MilestoneType
from schema.marketplace.tasks import TaskNode, TaskStatusChangeType


def test_only_plain_fields_the_graph_shows_are_copied() -> None:
    copies = plain_fields(TaskNode)
    assert {"title", "status", "due_at", "image_urls", "created_at"} <= set(copies)
    # The Relay id and the private document, a field of another GraphQL type, a resolver.
    assert not {"id", "doc", "budget", "agreed_price", "area", "place"} & set(copies)


def test_copied_values_are_the_sources_and_given_ones_win() -> None:
    change = StatusChange(status=TaskStatus.OPEN, at=datetime.now(UTC), note="posted", by=None)
    built = copied(TaskStatusChangeType, change, note="given", by_id=ObjectId())
    assert (built.status, built.at, built.note) == (change.status, change.at, "given")


def test_a_field_of_another_type_or_a_private_one_must_be_given() -> None:
    milestone = Milestone(number=1, title="Walls", amount=Money(amount=5000, currency="USD"))
    with pytest.raises(TypeError, match="amount"):  # never the Money itself
        copied(MilestoneType, milestone, task_id=ObjectId(), deal="deal")
    with pytest.raises(TypeError, match="by_id"):
        copied(TaskStatusChangeType, StatusChange(status=TaskStatus.OPEN))


def test_a_plain_field_the_source_lacks_must_be_given() -> None:
    with pytest.raises(AttributeError):
        copied(MoneyType, object())
