"""Tasks posted by posters; the moves between their states are declared in
documents/lifecycles.py (`TASK`)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from beanie import Document, PydanticObjectId
from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow
from documents.geo import Place
from documents.geo_cells import CELL_FIELDS
from documents.money import Money


class TaskStatus(StrEnum):
    OPEN = "open"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    SUBMITTED = "submitted"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    DISPUTED = "disputed"


class MilestoneStatus(StrEnum):
    PENDING = "pending"
    """Not handed in yet (or sent back for changes)."""
    SUBMITTED = "submitted"
    APPROVED = "approved"
    """Accepted by the poster, or released automatically: its escrow is released."""


MAX_MILESTONES = 20


class Milestone(BaseModel):
    """A part of an accepted task, funded and paid on its own (its own escrow)."""

    number: int
    """1, 2, 3... in the order the work is done; part of its escrow's deal."""
    title: str
    amount: Money
    status: MilestoneStatus = MilestoneStatus.PENDING
    escrow_opened_at: datetime | None = None
    """When the poster started funding it: its escrow exists from then on."""
    note: str | None = None
    """The tasker's note on handing it in, or the poster's on sending it back."""
    submitted_at: datetime | None = None
    approved_at: datetime | None = None


class StatusChange(BaseModel):
    status: TaskStatus
    at: datetime = Field(default_factory=utcnow)
    by: PydanticObjectId | None = None
    note: str | None = None
    move: str | None = None
    """The lifecycle's move that made it (documents/lifecycles.py)."""


class Task(Document):
    poster_id: PydanticObjectId
    title: str
    description: str
    category: str
    budget: Money
    place: Place
    due_at: datetime | None = None
    """None: flexible, whenever suits."""
    image_urls: list[str] = Field(default_factory=list)
    status: TaskStatus = TaskStatus.OPEN
    assigned_tasker_id: PydanticObjectId | None = None
    accepted_offer_id: PydanticObjectId | None = None
    agreed_price: Money | None = None
    milestones: list[Milestone] = Field(default_factory=list)
    """Empty, or 2..MAX_MILESTONES parts adding up to the agreed price, each with its
    own escrow: then the task is submitted and completed with its last milestone."""
    offer_count: int = 0
    deal_round: int = 1
    """Assignments so far: a task reopened for offers deals anew (documents/payments/escrow.py)."""
    """Offers made and not withdrawn."""
    keywords: list[str] = Field(default_factory=list)
    """Words of the title, description and category, for search."""
    history: list[StatusChange] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "tasks"
        use_revision = False
        indexes = [
            # Near a point, by the cells of their areas (documents/geo_cells.py), then status.
            *[IndexModel([(field, ASCENDING), ("status", ASCENDING)]) for field in CELL_FIELDS],
            IndexModel([("status", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)]),
            IndexModel(
                [("status", ASCENDING), ("category", ASCENDING), ("created_at", DESCENDING)]
            ),
            IndexModel(
                [
                    ("status", ASCENDING),
                    ("budget.currency", ASCENDING),
                    ("budget.amount", DESCENDING),
                    ("_id", DESCENDING),
                ]
            ),
            IndexModel([("keywords", ASCENDING)]),
            IndexModel([("poster_id", ASCENDING), ("created_at", DESCENDING)]),
            IndexModel([("assigned_tasker_id", ASCENDING), ("created_at", DESCENDING)]),
        ]

    def milestone(self, number: int) -> Milestone | None:
        return self.milestones[number - 1] if 0 < number <= len(self.milestones) else None

    @property
    def participants(self) -> list[PydanticObjectId]:
        people = [self.poster_id]
        if self.assigned_tasker_id is not None:
            people.append(self.assigned_tasker_id)
        return people
