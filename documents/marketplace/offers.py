"""Offers to do a task: made by taskers, or sent by the poster as a direct hire."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from beanie import Document, PydanticObjectId
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow
from documents.money import Money


class OfferStatus(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


LIVE_STATUSES = frozenset({OfferStatus.PENDING, OfferStatus.ACCEPTED})


ENDED = {"$unset": {"live": ""}}
"""What ending a pending offer does besides its status (documents/lifecycles.py `OFFER`):
it is no longer the tasker's live offer on the task."""


class Offer(Document):
    task_id: PydanticObjectId
    tasker_id: PydanticObjectId
    poster_id: PydanticObjectId
    amount: Money
    message: str
    status: OfferStatus = OfferStatus.PENDING
    direct: bool = False
    """Sent by the poster to a chosen tasker, who accepts or rejects it."""
    live: bool | None = True
    """True while pending or accepted, else absent: a partial unique index allows one live
    offer per tasker and task, however many requests race."""
    rejection_reason: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    decided_at: datetime | None = None

    class Settings:
        name = "offers"
        use_revision = False
        indexes = [
            IndexModel(
                [("task_id", ASCENDING), ("tasker_id", ASCENDING)],
                name="one_live_offer_per_tasker",
                unique=True,
                partialFilterExpression={"live": True},
            ),
            IndexModel([("task_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)]),
            IndexModel([("tasker_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)]),
            # A tasker's live offers on a page of tasks (`myOffer` on a feed). Beanie keys
            # indexes by their set of fields: (tasker_id, task_id) alone would replace the
            # unique index above.
            IndexModel([("tasker_id", ASCENDING), ("task_id", ASCENDING), ("status", ASCENDING)]),
            IndexModel([("poster_id", ASCENDING), ("status", ASCENDING)]),
        ]

    @property
    def author_id(self) -> PydanticObjectId:
        """Who made the offer; the other side decides on it."""
        return self.poster_id if self.direct else self.tasker_id

    @property
    def decider_id(self) -> PydanticObjectId:
        return self.tasker_id if self.direct else self.poster_id
