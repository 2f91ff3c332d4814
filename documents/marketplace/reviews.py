"""Reviews both sides leave each other once a task or booking is completed.

A review stays hidden until the other side has posted theirs or the reveal period has
passed, so that neither can answer the other's. `published_at` is when it shows: set a
reveal period ahead when posted, brought forward to now when the second one arrives.
`counted` records that its rating is in the target's average, which happens exactly
once, when it is published.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from beanie import Document, PydanticObjectId
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow


class ReviewSubject(StrEnum):
    TASK = "task"
    BOOKING = "booking"


class ReviewedAs(StrEnum):
    PROVIDER = "provider"
    """The tasker of a task, the provider of a booking."""
    CUSTOMER = "customer"
    """The poster of a task, the customer of a booking."""


class Review(Document):
    subject: ReviewSubject
    subject_id: PydanticObjectId
    author_id: PydanticObjectId
    target_id: PydanticObjectId
    target_role: ReviewedAs
    rating: int
    comment: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    published_at: datetime
    counted: bool = False

    class Settings:
        name = "reviews"
        use_revision = False
        indexes = [
            IndexModel([("subject_id", ASCENDING), ("author_id", ASCENDING)], unique=True),
            IndexModel(
                [("target_id", ASCENDING), ("published_at", DESCENDING), ("_id", DESCENDING)]
            ),
            IndexModel(
                [
                    ("target_id", ASCENDING),
                    ("target_role", ASCENDING),
                    ("published_at", DESCENDING),
                    ("_id", DESCENDING),
                ]
            ),
            IndexModel([("author_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)]),
            IndexModel([("counted", ASCENDING), ("published_at", ASCENDING)]),
        ]
