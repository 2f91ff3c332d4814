"""Messages scheduled for later: booking reminders and review requests.

Made in the transaction that makes them due (a booking confirmed, a deal completed),
moved or cancelled with it, and turned into deliveries by whichever instance claims one
first once it is due (a lease, as the outbox's). A message that no longer means anything
when it comes due (a reminder once the booking has started) is dropped, not sent late.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from beanie import Document, PydanticObjectId
from pydantic import Field
from pymongo import ASCENDING, IndexModel

from documents.clock import utcnow
from documents.notifications.catalogue import NotificationKind


class ScheduledStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    """Its deliveries are in the outbox."""
    CANCELLED = "cancelled"
    DROPPED = "dropped"
    """It came due when it no longer meant anything."""


class ScheduledMessage(Document):
    key: str
    """Unique: the kind, what it is about and for whom."""
    kind: NotificationKind
    user_id: PydanticObjectId
    due_at: datetime
    drop_after: datetime | None = None
    """Not sent once this has passed (a reminder after the booking's start)."""
    booking_id: PydanticObjectId | None = None
    task_id: PydanticObjectId | None = None
    title: str
    context: dict[str, Any] = Field(default_factory=dict)
    status: ScheduledStatus = ScheduledStatus.PENDING
    lease_until: datetime | None = None
    """Set by the instance that claimed it; also the claim's token: a later claim always
    sets a later time, so a claimer whose lease ran out finds it changed."""
    created_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    ended_reason: str | None = None
    """Why it was dropped or cancelled."""

    class Settings:
        name = "scheduled_messages"
        use_revision = False
        indexes = [
            IndexModel([("key", ASCENDING)], unique=True),
            IndexModel([("status", ASCENDING), ("due_at", ASCENDING)]),
            IndexModel([("booking_id", ASCENDING), ("status", ASCENDING)], sparse=True),
        ]
