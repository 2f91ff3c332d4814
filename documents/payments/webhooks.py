"""Webhook events from the payment gateway, each stored once before it is acknowledged.

The stored event is the work item: processing it may fail (the database away, an event
that arrived before the one it follows) and is then retried in the background with
backoff, until it succeeds or is parked as `dead` for an admin to look at. An event
that contradicts what we recorded is `rejected` at once, with what differed, and never
retried: it would differ again.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from beanie import Document
from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow


class WebhookStatus(StrEnum):
    RECEIVED = "received"
    """Stored; its first processing has not finished (or the process died during it)."""
    PROCESSED = "processed"
    IGNORED = "ignored"
    """A type gigql does not act on: stored and acknowledged, nothing else."""
    FAILED = "failed"
    """Processing raised; retried at `next_attempt_at`."""
    DEAD = "dead"
    """Failed every attempt: parked until an admin retries it."""
    REJECTED = "rejected"
    """Its object contradicts what we recorded (another id, amount, currency or account):
    nothing was changed, and it is not retried. `differences` says what differed."""


PENDING_STATUSES = (WebhookStatus.RECEIVED, WebhookStatus.FAILED)


class EventDifference(BaseModel):
    """One way a rejected event's object differs from our records."""

    field: str
    """What differs: `payment_intent`, `amount`, `currency`, `account`, `metadata.escrow_id`..."""
    recorded: str
    """What we recorded, or the range we allow (`0 to 9900`)."""
    received: str
    """What the event says."""

    def __str__(self) -> str:
        return f"{self.field}: recorded {self.recorded}, event {self.received}"


class WebhookEvent(Document):
    event_id: str
    """The gateway's event id: unique, so a redelivery is recognised."""
    type: str
    account: str | None = None
    """The connected account the event happened on, for Connect events."""
    created: datetime
    """When the gateway says it happened (events arrive in any order)."""
    payload: str
    """The body as it was signed, to process again on a retry."""
    status: WebhookStatus = WebhookStatus.RECEIVED
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    """When a runner may take it next: later while one holds it (a fresh event is stored
    held by the delivery that stores it, for a lease) or after a failure (backoff)."""
    last_error: str | None = None
    differences: list[EventDifference] = Field(default_factory=list)
    """Why it was rejected, if it was."""
    received_at: datetime = Field(default_factory=utcnow)
    processed_at: datetime | None = None

    class Settings:
        name = "webhook_events"
        use_revision = False
        indexes = [
            IndexModel([("event_id", ASCENDING)], unique=True),
            IndexModel([("status", ASCENDING), ("next_attempt_at", ASCENDING)]),
            IndexModel([("type", ASCENDING), ("received_at", ASCENDING)]),
            # The admins' list, newest first.
            IndexModel([("received_at", DESCENDING), ("_id", DESCENDING)]),
        ]
