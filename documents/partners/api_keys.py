"""A partner's API keys: shown once, stored as a digest, each with scopes and an expiry.

A key reads `gq_live_<lookup>_<secret>` (`gq_test_` where no real money moves): the
lookup part finds the stored key without revealing anything, and the whole key's
SHA-256 is compared in constant time. Keys are random (256 bits), so a fast digest is
enough: nothing can be guessed from it the way a password could. A partner holds several
at once, so that a new one can be deployed before the old one is revoked.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from beanie import Document, PydanticObjectId
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow


class ApiScope(StrEnum):
    READ_WALLETS = "read_wallets"
    """Read wallets, balances, entries and transactions."""
    MOVE_MONEY = "move_money"
    """Create, change, freeze and close wallets; credit, debit, transfer and withdraw."""
    MANAGE_WEBHOOKS = "manage_webhooks"
    """Webhook endpoints, their secrets, deliveries and redelivery."""


class KeyMode(StrEnum):
    LIVE = "live"
    TEST = "test"


class PartnerApiKey(Document):
    partner_id: PydanticObjectId
    lookup: str
    """The public part of the key, unique: how a presented key is found."""
    digest: str
    """SHA-256 of the whole key, hex."""
    mode: KeyMode
    hint: str
    """How the key is shown after it was created: its start and its last four characters."""
    name: str
    scopes: list[ApiScope]
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    revoked_by: PydanticObjectId | None = None
    created_by: PydanticObjectId
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None

    class Settings:
        name = "partner_api_keys"
        use_revision = False
        indexes = [
            IndexModel([("lookup", ASCENDING)], name="one_key_per_lookup", unique=True),
            IndexModel([("partner_id", ASCENDING), ("created_at", DESCENDING)]),
        ]
