"""Reading a partner's money: a wallet's statement, and its transactions, each newest first.

Every read is scoped to the partner: another partner's transaction is NOT_FOUND, as an
unknown one is, and a filter on another partner's wallet finds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId

from documents.errors import DomainError, ErrorCode
from documents.partners.transactions import (
    PartnerTransaction,
    TransactionKind,
    TransactionStatus,
)
from documents.partners.wallets import PartnerWallet, WalletEntry
from resolvers.common.pagination import Page, PageRequest, paginate

NEWEST_FIRST = [("created_at", -1), ("_id", -1)]
STATEMENT_ORDER = [("line", -1), ("_id", -1)]
"""Newest line first: the order the postings committed in (`WalletEntry.line`)."""


@dataclass(frozen=True, slots=True)
class TransactionFilter:
    wallet_id: ObjectId | None = None
    """Transactions money left or reached this wallet by."""
    kind: TransactionKind | None = None
    status: TransactionStatus | None = None
    created_from: datetime | None = None
    """Made at or after."""
    created_until: datetime | None = None
    """Made before."""


async def entries_of(wallet: PartnerWallet, request: PageRequest) -> Page[WalletEntry]:
    """The wallet's statement lines, newest first, each with the balance after it."""
    return await paginate(WalletEntry, {"wallet_id": wallet.id}, STATEMENT_ORDER, request)


async def get_transaction(partner_id: ObjectId, transaction_id: ObjectId) -> PartnerTransaction:
    found = await PartnerTransaction.find_one({"_id": transaction_id, "partner_id": partner_id})
    if found is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such transaction.", "id")
    return found


async def list_transactions(
    partner_id: ObjectId, filter: TransactionFilter, request: PageRequest
) -> Page[PartnerTransaction]:
    """The partner's transactions matching `filter`, newest first."""
    query: dict[str, Any] = {"partner_id": partner_id}
    if filter.wallet_id is not None:
        query["$or"] = [{"from_wallet_id": filter.wallet_id}, {"to_wallet_id": filter.wallet_id}]
    if filter.kind is not None:
        query["kind"] = filter.kind.value
    if filter.status is not None:
        query["status"] = filter.status.value
    created: dict[str, datetime] = {}
    if filter.created_from is not None:
        created["$gte"] = filter.created_from
    if filter.created_until is not None:
        created["$lt"] = filter.created_until
    if created:
        query["created_at"] = created
    return await paginate(PartnerTransaction, query, NEWEST_FIRST, request)
