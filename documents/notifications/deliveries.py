"""The delivery outbox: one document per message to send on one channel.

A delivery is written in the same transaction as the change that causes it, then sent by
whichever instance claims it first (a lease, so that a crashed sender's work is picked up
again), retried with backoff, and dead after the last attempt, for an admin to see and
retry. Its `key` is unique: the same event never makes the same message twice.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from beanie import Document, PydanticObjectId
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow
from documents.notifications.catalogue import Channel, NotificationKind


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    """Waiting to be sent (again) at `due_at`."""
    SENT = "sent"
    SKIPPED = "skipped"
    """Not sent, by the person's choice or because it no longer means anything (a
    reminder of a booking that started, a chat message read meanwhile)."""
    DEAD = "dead"
    """Every attempt failed; `last_error` says why. An admin may retry it."""


class Delivery(Document):
    key: str
    """Unique: what it is about, for whom, on which channel; also the idempotency key
    given to the provider where it takes one (the mail's Message-ID)."""
    user_id: PydanticObjectId
    kind: NotificationKind
    channel: Channel
    status: DeliveryStatus = DeliveryStatus.PENDING
    title: str
    """The in-app title, the subject and the first line of every channel's message."""
    context: dict[str, Any] = Field(default_factory=dict)
    """The ids and values the message is written from (plain JSON)."""
    event_id: PydanticObjectId | None = None
    due_at: datetime = Field(default_factory=utcnow)
    drop_after: datetime | None = None
    """Not sent once this has passed (a reminder whose booking has started), even when
    quiet hours or retries held it back."""
    pushed_to: list[str] = Field(default_factory=list)
    """The browsers (push endpoints) that have it: a retry after one push service failed
    goes only to the others."""
    attempts: int = 0
    last_error: str | None = None
    lease_until: datetime | None = None
    lease_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    ended_reason: str | None = None
    """Why it was skipped, or what made it dead."""

    class Settings:
        name = "notification_deliveries"
        use_revision = False
        indexes = [
            IndexModel([("key", ASCENDING)], unique=True),
            IndexModel([("status", ASCENDING), ("due_at", ASCENDING)]),
            IndexModel([("user_id", ASCENDING), ("created_at", DESCENDING)]),
            IndexModel([("created_at", DESCENDING), ("_id", DESCENDING)]),
        ]
