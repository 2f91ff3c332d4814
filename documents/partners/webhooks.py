"""Webhooks to partners: endpoints, the events we owe them, and each delivery.

An event (`PartnerWebhookEvent`) is written in the transaction of the change it reports,
numbered per wallet (`sequence`); each of the partner's enabled endpoints gets a
`PartnerWebhookDelivery` in the same transaction: the outbox. Deliveries of one wallet
to one endpoint go out in sequence order, each retried with backoff until delivered or,
past the retry period, dead.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from beanie import Document, PydanticObjectId
from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow


class PartnerEventType(StrEnum):
    WALLET_FUNDS_ADDED = "wallet.funds_added"
    TRANSACTION_COMPLETED = "transaction.completed"
    TRANSACTION_FAILED = "transaction.failed"
    PAYOUT_PROCESSED = "payout.processed"
    PAYOUT_FAILED = "payout.failed"
    TRANSACTION_REFUNDED = "transaction.refunded"
    """A completed card credit was refunded at the gateway, in part or whole."""
    TRANSACTION_DISPUTED = "transaction.disputed"
    """The payer's bank took a card credit's payment back (a chargeback)."""
    TRANSACTION_DISPUTE_CLOSED = "transaction.dispute_closed"
    """The chargeback was decided: won (the money is back) or lost."""


class SigningSecret(BaseModel):
    secret: str
    """`whsec_...`: signs each delivery (HMAC-SHA256)."""
    created_at: datetime
    expires_at: datetime | None = None
    """Set when the secret was rotated: until then deliveries carry both signatures."""


class PartnerWebhookEndpoint(Document):
    partner_id: PydanticObjectId
    url: str
    enabled: bool = True
    secrets: list[SigningSecret]
    """The newest first."""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    failures_in_row: int = 0
    """Posts in a row that got no answer (no connection, or none in time); an answer of
    any status ends the run."""
    paused_until: datetime | None = None
    """Set when `failures_in_row` reached the limit: the sender leaves the endpoint's
    deliveries waiting until then (the circuit breaker)."""

    class Settings:
        name = "partner_webhook_endpoints"
        use_revision = False
        indexes = [IndexModel([("partner_id", ASCENDING), ("created_at", ASCENDING)])]


class PartnerWebhookEvent(Document):
    partner_id: PydanticObjectId
    type: PartnerEventType
    wallet_id: PydanticObjectId
    sequence: int
    """The wallet's `event_sequence` when it happened: deliveries keep this order."""
    data: dict[str, Any]
    """The `data.object` partners receive (plain JSON)."""
    created_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "partner_webhook_events"
        use_revision = False
        indexes = [
            IndexModel([("wallet_id", ASCENDING), ("sequence", ASCENDING)]),
            IndexModel([("partner_id", ASCENDING), ("created_at", DESCENDING)]),
        ]


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


ATTEMPTS_KEPT = 20
"""A delivery keeps its latest attempts only (about 80 are made over three days)."""


class DeliveryAttempt(BaseModel):
    at: datetime
    status_code: int | None
    """The receiver's HTTP status; None when there was no answer."""
    response_body: str = ""
    """The start of the receiver's answer (at most 1 KB), or what went wrong."""
    duration_ms: int


class PartnerWebhookDelivery(Document):
    partner_id: PydanticObjectId
    endpoint_id: PydanticObjectId
    event_id: PydanticObjectId
    event_type: PartnerEventType
    wallet_id: PydanticObjectId
    sequence: int
    status: DeliveryStatus = DeliveryStatus.PENDING
    attempts: list[DeliveryAttempt] = Field(default_factory=list)
    """The latest ATTEMPTS_KEPT, the oldest first."""
    next_attempt_at: datetime = Field(default_factory=utcnow)
    lease_until: datetime | None = None
    """A sender holds it until then; another takes it over only after."""
    delivered_at: datetime | None = None
    redelivered_at: datetime | None = None
    """When the partner last asked for it again: its retry period runs from then."""
    created_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "partner_webhook_deliveries"
        use_revision = False
        indexes = [
            # The sender: pending, due first.
            IndexModel([("status", ASCENDING), ("next_attempt_at", ASCENDING)]),
            # The sender's share per endpoint: its pending deliveries, due first.
            IndexModel(
                [("endpoint_id", ASCENDING), ("status", ASCENDING), ("next_attempt_at", ASCENDING)]
            ),
            # The order of one wallet's events at one endpoint.
            IndexModel(
                [
                    ("endpoint_id", ASCENDING),
                    ("wallet_id", ASCENDING),
                    ("status", ASCENDING),
                    ("sequence", ASCENDING),
                ]
            ),
            IndexModel(
                [("partner_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)]
            ),
            IndexModel([("event_id", ASCENDING), ("endpoint_id", ASCENDING)], unique=True),
        ]
