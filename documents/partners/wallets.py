"""Partner wallets: money a partner keeps for one of its own users, in one currency.

    active <-> frozen
    active | frozen -> closed   (only empty)
    closed -> frozen            (money came back to it: a returned payout, a chargeback won)

The balance is not stored here: it is the ledger's (`partner_wallet:<id>`). Every
posting to a wallet also bumps `version` in the same transaction, conditional on the
wallet being active, so a freeze or close racing a movement leaves one winner, and
`event_sequence` numbers the wallet's webhook events in the order they happened.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from beanie import Document, PydanticObjectId
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow
from documents.partners.partners import StatusChange


class WalletStatus(StrEnum):
    ACTIVE = "active"
    FROZEN = "frozen"
    CLOSED = "closed"


class PartnerWallet(Document):
    partner_id: PydanticObjectId
    external_user_id: str
    external_wallet_id: str
    name: str
    currency: str
    metadata: dict[str, Any] = Field(default_factory=dict)
    status: WalletStatus = WalletStatus.ACTIVE
    clearing: bool = False
    """The partner's clearing wallet in this currency, which debits pay into."""
    version: int = 0
    event_sequence: int = 0
    statement_lines: int = 0
    """The number of the wallet's last statement line (`WalletEntry.line`)."""
    history: list[StatusChange] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "partner_wallets"
        use_revision = False
        indexes = [
            IndexModel(
                [("partner_id", ASCENDING), ("external_wallet_id", ASCENDING)],
                name="one_wallet_per_external_id",
                unique=True,
            ),
            IndexModel(
                [("partner_id", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)]
            ),
            IndexModel(
                [
                    ("partner_id", ASCENDING),
                    ("external_user_id", ASCENDING),
                    ("created_at", DESCENDING),
                    ("_id", DESCENDING),
                ]
            ),
        ]


class WalletEntry(Document):
    """One movement of a wallet's money, with the balance right after it: the wallet's
    statement, written with the ledger posting it mirrors."""

    wallet_id: PydanticObjectId
    partner_id: PydanticObjectId
    transaction_id: PydanticObjectId | None
    """The partner transaction it belongs to."""
    ledger_transaction_id: PydanticObjectId
    kind: str
    """The ledger movement's kind (`partner_credit`, `partner_fee`...)."""
    amount: int
    """Into the wallet; negative out of it, in the wallet's currency's minor units."""
    currency: str
    balance_after: int
    line: int = 0
    """Its number on the wallet's statement, 1 up, in the order the postings committed
    (taken from the wallet in the posting's transaction, so racing postings conflict
    there and come out one after the other; their clocks may not)."""
    created_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "partner_wallet_entries"
        use_revision = False
        indexes = [
            IndexModel(
                [("wallet_id", ASCENDING), ("line", DESCENDING)],
                name="one_line_per_number",
                unique=True,
            ),
            IndexModel(
                [("ledger_transaction_id", ASCENDING), ("wallet_id", ASCENDING)],
                name="one_entry_per_posting_and_wallet",
                unique=True,
            ),
        ]
