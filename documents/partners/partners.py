"""A partner: a business whose app holds wallets for its own users on gigql's ledger.

    applied -> approved | rejected
    approved <-> suspended
    approved | suspended -> closed

A person applies for their business (they become its owner, who manages its keys); an
admin approves, rejects, suspends, reinstates or closes it, each audited. Only an
approved partner's keys are accepted. Closing is final and needs every wallet empty.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from beanie import Document, PydanticObjectId
from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow


class PartnerStatus(StrEnum):
    APPLIED = "applied"
    APPROVED = "approved"
    REJECTED = "rejected"
    SUSPENDED = "suspended"
    CLOSED = "closed"


class PartnerFees(BaseModel):
    """What the platform takes, in basis points of each operation's amount, as a posting
    of its own from the wallet the operation concerns to platform revenue."""

    credit_bp: int = Field(ge=0, le=5_000)
    """Of a card credit (2.9 % is 290), taken from the credited wallet."""
    debit_bp: int = Field(0, ge=0, le=5_000)
    transfer_bp: int = Field(0, ge=0, le=5_000)
    withdrawal_bp: int = Field(0, ge=0, le=5_000)
    """Of a debit, transfer or withdrawal, taken from the sending wallet on top."""


class StatusChange(BaseModel):
    status: str
    at: datetime
    by: PydanticObjectId | None = None
    note: str | None = None
    move: str | None = None


class Partner(Document):
    owner_id: PydanticObjectId
    """The person who applied: they create and revoke the partner's keys."""
    name: str
    company_name: str
    contact_name: str
    contact_email: str
    business_type: str
    webhook_url: str
    """The address given with the application; its first webhook endpoint on approval."""
    status: PartnerStatus = PartnerStatus.APPLIED
    fees: PartnerFees
    stripe_account_id: str | None = None
    """The partner's Stripe connected account, which withdrawals are paid to."""
    payouts_enabled: bool = False
    account_flags_at: datetime | None = None
    """When the gateway's account flags above were current (older events change nothing)."""
    history: list[StatusChange] = Field(default_factory=list)
    webhook_version: int = 0
    """Bumped first by every change of the partner's webhook endpoints, so that
    concurrent changes serialise (resolvers/partners/webhooks/endpoints.py)."""
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "partners"
        use_revision = False
        indexes = [
            IndexModel([("owner_id", ASCENDING)], name="one_partner_per_owner", unique=True),
            IndexModel([("status", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)]),
            IndexModel([("created_at", DESCENDING), ("_id", DESCENDING)]),
            IndexModel([("stripe_account_id", ASCENDING)], sparse=True),
        ]
