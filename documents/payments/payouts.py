"""Withdrawals: a provider paying part of their wallet out to their bank.

    requested -> in_transit -> paid
    requested | in_transit | paid -> failed

`requested`: the money has left the wallet for `payout_in_flight` (one ledger posting,
in the transaction that inserted the withdrawal) and the gateway payout is being made.
`in_transit`: the gateway has the payout (`payout_id`). The payout's webhook events settle
it: `paid`, or `failed` (also after `paid`: a bank may return a payout later), which
puts the money back in the wallet. A payout the gateway refuses outright fails at once.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from beanie import Document, PydanticObjectId
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow
from documents.money import Money


class WithdrawalStatus(StrEnum):
    REQUESTED = "requested"
    IN_TRANSIT = "in_transit"
    PAID = "paid"
    FAILED = "failed"


class Withdrawal(Document):
    provider_id: PydanticObjectId
    account_id: str
    """The connected account paid out from, fixed at the request so retries use it."""
    amount: Money
    status: WithdrawalStatus = WithdrawalStatus.REQUESTED
    payout_id: str | None = None
    failure_code: str | None = None
    """The gateway's reason when it failed (`account_closed`, `payouts_not_allowed`...)."""
    requested_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "withdrawals"
        use_revision = False
        indexes = [
            # A provider's withdrawals, newest first.
            IndexModel(
                [("provider_id", ASCENDING), ("requested_at", DESCENDING), ("_id", DESCENDING)]
            ),
            # The retry job: requested, still without a payout, oldest first.
            IndexModel(
                [("status", ASCENDING), ("payout_id", ASCENDING), ("requested_at", ASCENDING)]
            ),
        ]
