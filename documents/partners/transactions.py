"""Partner transactions: each money operation a partner asks for, under its own
idempotency key.

    credit (by card):  pending -> completed | failed
    debit, transfer:   completed at once (or refused, and nothing is stored)
    withdrawal:        pending -> processing -> completed | failed

The pair (partner, idempotency key) is unique; `request_hash` is a digest of what was
asked, so the same key with the same request returns this transaction, and with a
different one is IDEMPOTENCY_KEY_REUSED.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from beanie import Document, PydanticObjectId
from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow
from documents.partners.partners import StatusChange


class TransactionKind(StrEnum):
    CREDIT = "credit"
    DEBIT = "debit"
    TRANSFER = "transfer"
    WITHDRAWAL = "withdrawal"


class TransactionStatus(StrEnum):
    PENDING = "pending"
    """A credit waiting for the card payment, a withdrawal whose transfer is being made."""
    PROCESSING = "processing"
    """A withdrawal whose payout is on its way to the bank."""
    COMPLETED = "completed"
    FAILED = "failed"


class DisputeStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class PartnerDispute(BaseModel):
    """A chargeback on a card credit's payment: the payer's bank took `amount` back."""

    id: str
    """The gateway's dispute (`dp_...`)."""
    amount: int
    held: int
    """What the wallet still held of it when it opened, taken back from the wallet."""
    status: DisputeStatus = DisputeStatus.OPEN
    opened_at: datetime
    closed_at: datetime | None = None


class PartnerTransaction(Document):
    partner_id: PydanticObjectId
    idempotency_key: str
    request_hash: str
    kind: TransactionKind
    status: TransactionStatus
    amount: int
    """Minor units of `currency`: what was credited, debited, transferred or withdrawn."""
    fee: int = 0
    """The partner's fee on it, posted on its own to platform revenue."""
    currency: str
    description: str = ""
    metadata: dict[str, Any] = Field(default_factory=dict)
    from_wallet_id: PydanticObjectId | None = None
    to_wallet_id: PydanticObjectId | None = None
    payment_intent_id: str | None = None
    transfer_id: str | None = None
    payout_id: str | None = None
    destination_account_id: str | None = None
    """A withdrawal's connected account, fixed when it was asked for."""
    failure_code: str | None = None
    failure_message: str | None = None
    cancel_code: str | None = None
    """A credit whose payment intent we asked the gateway to cancel: the failure code it
    fails with (`canceled` by the partner, `expired`), whichever of our cancel and the
    gateway's `payment_intent.canceled` records it."""
    gateway_attempted_at: datetime | None = None
    """When a job last claimed the credit's gateway step (its intent made, or cancelled
    for expiry): jobs take the least recently tried first, and one instance at a time."""
    refunded: int = 0
    """Of a completed card credit, what was refunded at the gateway since (not by us)."""
    dispute: PartnerDispute | None = None
    """A card credit's chargeback, if its payment was disputed."""
    history: list[StatusChange] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    completed_at: datetime | None = None

    class Settings:
        name = "partner_transactions"
        use_revision = False
        indexes = [
            IndexModel(
                [("partner_id", ASCENDING), ("idempotency_key", ASCENDING)],
                name="one_transaction_per_partner_key",
                unique=True,
            ),
            IndexModel(
                [("partner_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)]
            ),
            IndexModel([("from_wallet_id", ASCENDING), ("created_at", DESCENDING)]),
            IndexModel([("to_wallet_id", ASCENDING), ("created_at", DESCENDING)]),
            IndexModel([("payment_intent_id", ASCENDING)], sparse=True),
            IndexModel([("payout_id", ASCENDING)], sparse=True),
            IndexModel([("status", ASCENDING), ("kind", ASCENDING), ("updated_at", ASCENDING)]),
        ]


class PartnerGatewayObject(Document):
    """A gateway object a partner's money touched (payment intent, refund, transfer,
    payout), with the gateway's latest payload, for reconciliation and records."""

    id: str  # type: ignore[assignment]  # the gateway's id: pi_..., tr_..., po_...
    object: str
    partner_id: PydanticObjectId
    transaction_id: PydanticObjectId
    payload: dict[str, Any]
    last_event_id: str | None = None
    last_event_type: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "partner_gateway_objects"
        use_revision = False
        indexes = [
            IndexModel([("transaction_id", ASCENDING)]),
            IndexModel([("partner_id", ASCENDING), ("created_at", DESCENDING)]),
        ]
