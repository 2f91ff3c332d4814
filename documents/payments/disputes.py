"""Disputes: a payer or provider contests a deal, and its escrow is frozen until an admin
decides where the money goes.

    open -> resolved (release to the provider, refund the payer, or split the two)

An escrow has at most one open dispute: a unique index over the open ones makes the
second of two concurrent openings fail, whichever API instance it came through.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from beanie import Document, PydanticObjectId
from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow
from documents.money import Money

MAX_EVIDENCE_URLS = 20
"""Evidence links a dispute keeps, all parties' together."""


class DisputeStatus(StrEnum):
    OPEN = "open"
    RESOLVED = "resolved"


class DisputeOutcome(StrEnum):
    RELEASE = "release"
    """The provider is paid what the escrow holds; the task or booking is completed."""
    REFUND = "refund"
    """The payer gets back everything refundable; the task or booking is cancelled."""
    SPLIT = "split"
    """Part back to the payer, the rest to the provider; the deal is completed."""


class Evidence(BaseModel):
    url: str
    """An https link to a file stored elsewhere (we never take uploads)."""
    by: PydanticObjectId
    at: datetime = Field(default_factory=utcnow)


class Resolution(BaseModel):
    outcome: DisputeOutcome
    refund: Money
    """Back to the payer by this decision (zero for RELEASE); the provider is released
    whatever the escrow holds after it."""
    admin_id: PydanticObjectId
    note: str
    at: datetime = Field(default_factory=utcnow)


class Dispute(Document):
    escrow_id: PydanticObjectId
    deal: str
    """The escrow's deal: `task:<id>`, `task:<id>:milestone:<n>` or `booking:<id>`."""
    milestone: int | None = None
    """The task's milestone disputed, for a task paid in milestones."""
    task_id: PydanticObjectId | None = None
    booking_id: PydanticObjectId | None = None
    payer_id: PydanticObjectId
    provider_id: PydanticObjectId
    opened_by: PydanticObjectId
    reason: str
    evidence: list[Evidence] = Field(default_factory=list)
    status: DisputeStatus = DisputeStatus.OPEN
    resolution: Resolution | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "disputes"
        use_revision = False
        indexes = [
            IndexModel(
                [("escrow_id", ASCENDING)],
                name="one_open_dispute_per_escrow",
                unique=True,
                partialFilterExpression={"status": DisputeStatus.OPEN.value},
            ),
            # An escrow's disputes, latest first (the open one, else the last decided).
            IndexModel([("escrow_id", ASCENDING), ("created_at", DESCENDING)]),
            # The admins' queue: all, or the open ones, oldest first.
            IndexModel([("created_at", ASCENDING), ("_id", ASCENDING)]),
            IndexModel([("status", ASCENDING), ("created_at", ASCENDING), ("_id", ASCENDING)]),
        ]

    @property
    def participants(self) -> list[PydanticObjectId]:
        return [self.payer_id, self.provider_id]
