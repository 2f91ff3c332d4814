"""Domain events and the notifications they leave for people.

An event is written in the same transaction as the state change it reports: it is the
outbox record of everything the change tells people. After the commit the notifications
(one per person it concerns, other than whoever caused it) and their deliveries are
derived from it, idempotently, and it is published through the broker; a job derives
what a crash between the commit and that step left underived
(resolvers/notifications/outbox.py). The stored events are what other parts (payments,
subscriptions replaying what a client missed) read reliably; the broker only makes them
arrive at once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from beanie import Document, PydanticObjectId
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow


class EventKind(StrEnum):
    TASK_POSTED = "task_posted"
    TASK_UPDATED = "task_updated"
    TASK_STATUS_CHANGED = "task_status_changed"
    OFFER_RECEIVED = "offer_received"
    OFFER_UPDATED = "offer_updated"
    OFFER_WITHDRAWN = "offer_withdrawn"
    OFFER_ACCEPTED = "offer_accepted"
    OFFER_REJECTED = "offer_rejected"
    BOOKING_REQUESTED = "booking_requested"
    BOOKING_CONFIRMED = "booking_confirmed"
    BOOKING_REJECTED = "booking_rejected"
    BOOKING_CANCELLED = "booking_cancelled"
    BOOKING_STATUS_CHANGED = "booking_status_changed"
    BOOKING_APPROVED = "booking_approved"
    """The customer accepted the work done: the provider is paid now."""
    REVIEW_POSTED = "review_posted"
    REVIEWS_PUBLISHED = "reviews_published"
    # Milestones (resolvers/marketplace/milestones.py); `data.milestone` is the number. Their
    # payments and releases are the escrow events below, with `data.milestone` too.
    MILESTONE_SUBMITTED = "milestone_submitted"
    MILESTONE_APPROVED = "milestone_approved"
    MILESTONE_CHANGES_REQUESTED = "milestone_changes_requested"
    # Escrow (resolvers/escrow*.py); `data.escrow_id` names the escrow.
    PAYMENT_SUCCEEDED = "payment_succeeded"
    PAYMENT_FAILED = "payment_failed"
    PAYMENT_ACTION_REQUIRED = "payment_action_required"
    PAYMENT_CANCELLED = "payment_cancelled"
    PAYMENT_REFUNDED = "payment_refunded"
    ESCROW_RELEASED = "escrow_released"
    ESCROW_TRANSFER_REVERSED = "escrow_transfer_reversed"
    # Disputes (resolvers/payments/disputes/disputes.py,
    # resolvers/payments/disputes/chargebacks.py); `data.dispute_id`
    # names a dispute, `data.gateway_dispute_id` a chargeback.
    DISPUTE_OPENED = "dispute_opened"
    DISPUTE_EVIDENCE_ADDED = "dispute_evidence_added"
    DISPUTE_RESOLVED = "dispute_resolved"
    CHARGEBACK_OPENED = "chargeback_opened"
    CHARGEBACK_CLOSED = "chargeback_closed"
    CHARGEBACK_SETTLED = "chargeback_settled"
    PAYOUT_ACCOUNT_UPDATED = "payout_account_updated"
    IDENTITY_VERIFICATION_UPDATED = "identity_verification_updated"
    PAYOUT_REQUESTED = "payout_requested"
    PAYOUT_PAID = "payout_paid"
    PAYOUT_FAILED = "payout_failed"


class DomainEvent(Document):
    kind: EventKind
    occurred_at: datetime = Field(default_factory=utcnow)
    actor_id: PydanticObjectId | None = None
    audience: list[PydanticObjectId]
    """Everyone who may see the event (the actor included)."""
    task_id: PydanticObjectId | None = None
    offer_id: PydanticObjectId | None = None
    booking_id: PydanticObjectId | None = None
    review_id: PydanticObjectId | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    title: str = ""
    """The in-app notification's title, stored so that it is derived from the event."""
    published_at: datetime | None = None
    notify_pending_since: datetime | None = None
    """Set, to when it occurred, on an event stored with notifications still to derive;
    removed once they are. Only pending events carry it (events stored before it was
    introduced had theirs made in their transaction), and its index is sparse, so the
    job that finds the pending ones reads only those."""

    class Settings:
        name = "events"
        use_revision = False
        indexes = [
            IndexModel([("audience", ASCENDING), ("_id", ASCENDING)]),
            IndexModel([("task_id", ASCENDING), ("_id", ASCENDING)], sparse=True),
            IndexModel([("booking_id", ASCENDING), ("_id", ASCENDING)], sparse=True),
            IndexModel([("published_at", ASCENDING), ("occurred_at", ASCENDING)]),
            IndexModel([("notify_pending_since", ASCENDING)], sparse=True),
        ]


class Notification(Document):
    user_id: PydanticObjectId
    event_id: PydanticObjectId
    kind: EventKind
    title: str
    created_at: datetime = Field(default_factory=utcnow)
    read_at: datetime | None = None
    task_id: PydanticObjectId | None = None
    offer_id: PydanticObjectId | None = None
    booking_id: PydanticObjectId | None = None
    review_id: PydanticObjectId | None = None

    class Settings:
        name = "notifications"
        use_revision = False
        indexes = [
            IndexModel([("user_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)]),
            IndexModel([("user_id", ASCENDING), ("read_at", ASCENDING)]),
            # One per event and person: deriving an event's notifications twice (a retry,
            # the job beside the request) cannot double them.
            IndexModel([("event_id", ASCENDING), ("user_id", ASCENDING)], unique=True),
        ]
