"""Posting money movements to the ledger, and reading balances and history.

`post` writes through the caller's session, so a movement commits or aborts together
with the state change it belongs to:

    async def work(unit: UnitOfWork) -> Escrow:
        ...move the escrow to `released` with session=unit.session...
        await ledger.post(
            unit.session,
            key=f"escrow:{escrow.id}:release",
            kind=MovementKind.ESCROW_RELEASED,
            entries=[...],
            refs={Ref.ESCROW: escrow.id},
        )
        return escrow

Posting is idempotent per key: the same key with the same content returns the stored
transaction and changes nothing; with other content it is an IDEMPOTENCY_CONFLICT. Of
concurrent postings of one key, the database lets one insert the key; the others hit a
write conflict, and their retried transactions find it. Accounts that must never go
negative are checked before anything is written, so INSUFFICIENT_FUNDS leaves the
caller's transaction as it was; the checked balance is also a condition of the update
that debits it, and any concurrent change to it is a write conflict that retries.
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from pymongo import UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.errors import DomainError, ErrorCode, Problem
from documents.money import Money
from documents.payments.ledger import (
    MAX_KEY_LENGTH,
    MAX_MEMO_LENGTH,
    AccountBalance,
    Entry,
    InvalidPosting,
    LedgerTransaction,
    MovementKind,
    Ref,
    balance_id,
    canonical_entries,
    content_hash,
    posting_problems,
)
from documents.payments.ledger_accounts import parse_account
from resolvers.common.pagination import Page, PageRequest, paginate


@dataclass(frozen=True, slots=True)
class Balance:
    account: str
    money: Money


async def post(
    session: AsyncClientSession,
    *,
    key: str,
    kind: MovementKind,
    entries: Sequence[Entry],
    refs: Mapping[Ref, ObjectId | str] | None = None,
    memo: str = "",
) -> LedgerTransaction:
    """Record one movement of money within the caller's transaction.

    Raises InvalidPosting (a bug in the caller) for entries that are not a balanced
    transaction, and DomainError IDEMPOTENCY_CONFLICT or INSUFFICIENT_FUNDS.
    """
    if not session.in_transaction:
        raise RuntimeError("ledger postings must run inside the caller's transaction")
    stored_refs = {Ref(name): str(value) for name, value in (refs or {}).items()}
    problems = posting_problems(entries) + _label_problems(key, stored_refs, memo)
    if problems:
        raise InvalidPosting(problems)
    digest = content_hash(kind, entries, stored_refs)
    existing = await LedgerTransaction.find_one({"idempotency_key": key}, session=session)
    if existing is not None:
        if existing.content_hash != digest:
            raise DomainError(
                ErrorCode.IDEMPOTENCY_CONFLICT,
                f"The key {key!r} was already used for a different movement.",
                "idempotencyKey",
            )
        return existing
    await _check_funds(session, entries)
    transaction = LedgerTransaction(
        idempotency_key=key,
        content_hash=digest,
        kind=kind,
        entries=canonical_entries(entries),
        refs=stored_refs,
        memo=memo,
    )
    # The key first: a concurrent posting of it conflicts here, before any balance moves.
    await transaction.insert(session=session)
    await _apply(session, transaction)
    return transaction


def _label_problems(key: str, refs: Mapping[Ref, str], memo: str) -> list[str]:
    problems = []
    if not 0 < len(key) <= MAX_KEY_LENGTH:
        problems.append(f"an idempotency key has 1 to {MAX_KEY_LENGTH} characters")
    problems += [f"the {name.value} ref is empty" for name, value in refs.items() if not value]
    if len(memo) > MAX_MEMO_LENGTH:
        problems.append(f"a memo has at most {MAX_MEMO_LENGTH} characters")
    return problems


async def _check_funds(session: AsyncClientSession, entries: Sequence[Entry]) -> None:
    problems = []
    for entry in entries:
        account = parse_account(entry.account)
        if entry.amount > 0 or not account.rule.never_negative:
            continue
        held = await _stored(session, entry.account, entry.currency)
        if held + entry.amount < 0:
            have = Money(amount=held, currency=entry.currency)
            need = Money(amount=-entry.amount, currency=entry.currency)
            label = account.kind.value.replace("_", " ")
            message = f"The {label} holds {have}; {need} is needed."
            problems.append(Problem(ErrorCode.INSUFFICIENT_FUNDS, message))
    if problems:
        raise DomainError.of(problems)


async def _stored(session: AsyncClientSession, account: str, currency: str) -> int:
    """The balance of an account that is kept in one document (every guarded one)."""
    found = await AccountBalance.get_pymongo_collection().find_one(
        {"_id": balance_id(account, currency, 0)}, {"balance": 1}, session=session
    )
    return int(found["balance"]) if found else 0


async def _apply(session: AsyncClientSession, transaction: LedgerTransaction) -> None:
    """Add every entry to its balance, in one round trip."""
    updates = []
    for entry in transaction.entries:
        account = parse_account(entry.account)
        # A stable spread over shards: the same posting always lands on the same one.
        shard = zlib.crc32(transaction.idempotency_key.encode()) % account.rule.shards
        query: dict[str, Any] = {"_id": balance_id(entry.account, entry.currency, shard)}
        guarded = account.rule.never_negative and entry.amount < 0
        if guarded:
            # The overdraw guard in the database itself, whatever was read before.
            query["balance"] = {"$gte": -entry.amount}
        identity: dict[str, Any] = {
            "account": entry.account,
            "currency": entry.currency,
            "shard": shard,
        }
        if account.owner is not None:
            identity["owner"] = account.owner
        change = {
            "$inc": {"balance": entry.amount},
            "$set": {"updated_at": transaction.created_at},
            "$setOnInsert": identity,
        }
        # A guarded debit must find the balance it checked, never create one.
        updates.append(UpdateOne(query, change, upsert=not guarded))
    result = await AccountBalance.get_pymongo_collection().bulk_write(updates, session=session)
    if result.matched_count + result.upserted_count < len(updates):
        raise DomainError(ErrorCode.INSUFFICIENT_FUNDS, "An account cannot cover this movement.")


async def balance(account: str, currency: str, session: AsyncClientSession | None = None) -> Money:
    """What the account holds in the currency (zero if it never held any)."""
    shards = AccountBalance.get_pymongo_collection().find(
        {"account": account, "currency": currency}, {"balance": 1}, session=session
    )
    total = sum([int(shard["balance"]) async for shard in shards])
    return Money(amount=total, currency=currency)


async def balances_of(owner: ObjectId, session: AsyncClientSession | None = None) -> list[Balance]:
    """Every balance of every account of `owner` (a user, an escrow), by account name."""
    totals: dict[tuple[str, str], int] = defaultdict(int)
    shards = AccountBalance.get_pymongo_collection().find({"owner": owner}, session=session)
    async for shard in shards:
        totals[shard["account"], shard["currency"]] += int(shard["balance"])
    return [
        Balance(account, Money(amount=total, currency=currency))
        for (account, currency), total in sorted(totals.items())
    ]


async def history(account: str, request: PageRequest) -> Page[LedgerTransaction]:
    """The transactions with an entry on the account, newest first."""
    order = [("created_at", -1), ("_id", -1)]
    return await paginate(LedgerTransaction, {"entries.account": account}, order, request)


async def filed_under(
    ref: Ref, value: ObjectId | str, request: PageRequest
) -> Page[LedgerTransaction]:
    """The transactions filed under one escrow, payout or gateway object, oldest first."""
    query = {f"refs.{ref.value}": str(value)}
    return await paginate(LedgerTransaction, query, [("_id", 1)], request)
