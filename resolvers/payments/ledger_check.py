"""`gigql ledger verify`: check every invariant of the ledger against the database.

- every transaction is well formed (its entries are ones `post` accepts), its entries
  sum to zero in each currency, and its stored hash is the hash of its content;
- the balances rebuilt from all entries equal the stored balance documents, and no
  balance document exists for an account and currency that has no entries;
- no account that must never go negative is negative;
- idempotency keys are unique (their unique index is in place);
- partner wallets: each wallet's statement lines sum to its ledger balance and the last
  one shows it, and every settled partner credit or withdrawal has its postings (filed
  under the transaction; `gigql reconcile` checks their amounts).

The scan reads no single snapshot (SecantusDB has no snapshot reads outside a
transaction, and one transaction over a large ledger would time out), so a posting
that commits during it can make an account look wrong. Every account that looks wrong
is therefore counted again on its own inside a transaction, which reads one snapshot,
and only what that recount confirms is reported.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any, TypeGuard

from pydantic import ValidationError
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.partners.transactions import (
    PartnerTransaction,
    TransactionKind,
    TransactionStatus,
)
from documents.partners.wallets import PartnerWallet, WalletEntry
from documents.payments.ledger import (
    AccountBalance,
    LedgerTransaction,
    MovementKind,
    Ref,
    balance_id,
    content_hash,
    entry_problems,
    imbalances,
)
from documents.payments.ledger_accounts import parse_account, partner_wallet
from documents.transactions import run_in_transaction
from resolvers.payments.report import Finding, Report

Key = tuple[str, str]
"""An account and a currency."""


class Check(StrEnum):
    MALFORMED_TRANSACTION = "malformed_transaction"
    UNBALANCED = "unbalanced"
    HASH_MISMATCH = "hash_mismatch"
    MALFORMED_BALANCE = "malformed_balance"
    BALANCE_MISMATCH = "balance_mismatch"
    BALANCE_WITHOUT_ENTRIES = "balance_without_entries"
    NEGATIVE_BALANCE = "negative_balance"
    KEYS_NOT_UNIQUE = "keys_not_unique"
    STATEMENT_MISMATCH = "statement_mismatch"
    PARTNER_NOT_POSTED = "partner_not_posted"


@dataclass(slots=True)
class Verification(Report):
    """Findings are failed `Check`s; their subject is the transaction (`id key`) or the
    balance (`account currency`) concerned."""

    name = "ledger"
    findings_called = "problem(s)"

    transactions: int = 0
    balances: int = 0
    """Stored balance documents."""

    def summary(self) -> str:
        return f"{self.transactions} transactions, {self.balances} balances checked"

    def counted(self) -> dict[str, Any]:
        return {"transactions": self.transactions, "balances": self.balances}


async def verify() -> Verification:
    result = Verification()
    if not await _keys_are_unique():
        result.add(Check.KEYS_NOT_UNIQUE, "ledger_transactions", "no unique index on the key")
    rebuilt = await _check_transactions(result)
    stored = await _check_balances(result)
    for key in sorted(rebuilt.keys() | stored.keys()):
        if rebuilt.get(key) != stored.get(key):
            finding = _compare(key, *await _recount(*key))
            if finding:
                result.findings.append(finding)
    await _check_statements(result)
    await _check_partner_postings(result)
    return result


async def _keys_are_unique() -> bool:
    listed = await LedgerTransaction.get_pymongo_collection().list_indexes()
    return any(
        [
            dict(index["key"]) == {"idempotency_key": 1} and bool(index.get("unique"))
            async for index in listed
        ]
    )


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _amounts(raw: Mapping[str, Any], account: str | None = None) -> list[tuple[Key, int]]:
    """The integer amounts of a stored transaction's entries (on one account, if given),
    read from the raw document so that a damaged one is still counted as it stands."""
    found = []
    for entry in raw.get("entries") or []:
        if not isinstance(entry, Mapping):
            continue
        name, currency, amount = entry.get("account"), entry.get("currency"), entry.get("amount")
        if (
            isinstance(name, str)
            and isinstance(currency, str)
            and _is_int(amount)
            and (account is None or name == account)
        ):
            found.append(((name, currency), amount))
    return found


async def _check_transactions(result: Verification) -> dict[Key, int]:
    rebuilt: dict[Key, int] = defaultdict(int)
    async for raw in LedgerTransaction.get_pymongo_collection().find({}):
        result.transactions += 1
        for key, amount in _amounts(raw):
            rebuilt[key] += amount
        subject = f"{raw['_id']} {raw.get('idempotency_key')!r}"
        try:
            transaction = LedgerTransaction.model_validate(raw)
        except ValidationError as error:
            detail = f"{error.error_count()} invalid field(s)"
            result.add(Check.MALFORMED_TRANSACTION, subject, detail)
            continue
        problems = entry_problems(transaction.entries)
        if problems:
            detail = "; ".join(problems)
            result.add(Check.MALFORMED_TRANSACTION, subject, detail)
        for currency, total in imbalances(transaction.entries).items():
            detail = f"the {currency} entries sum to {total}"
            result.add(Check.UNBALANCED, subject, detail)
        digest = content_hash(transaction.kind, transaction.entries, transaction.refs)
        if digest != transaction.content_hash:
            detail = "the content differs from what was posted under this key"
            result.add(Check.HASH_MISMATCH, subject, detail)
    return rebuilt


async def _check_balances(result: Verification) -> dict[Key, int]:
    stored: dict[Key, int] = defaultdict(int)
    async for raw in AccountBalance.get_pymongo_collection().find({}):
        result.balances += 1
        name, currency = raw.get("account"), raw.get("currency")
        shard, amount = raw.get("shard"), raw.get("balance")
        if not (
            isinstance(name, str)
            and isinstance(currency, str)
            and _is_int(shard)
            and _is_int(amount)
            and raw["_id"] == balance_id(name, currency, shard)
        ):
            detail = "its fields do not match its id or are not of their types"
            result.add(Check.MALFORMED_BALANCE, str(raw["_id"]), detail)
            continue
        stored[name, currency] += amount
        try:
            guarded = parse_account(name).rule.never_negative
        except ValueError as error:
            result.add(Check.MALFORMED_BALANCE, str(raw["_id"]), str(error))
            continue
        if guarded and amount < 0:
            detail = f"{amount}, on an account that must never go negative"
            result.add(Check.NEGATIVE_BALANCE, f"{name} {currency}", detail)
    return stored


async def _recount(account: str, currency: str) -> tuple[int | None, int | None]:
    """The account's total from its entries and from its balance documents, in one
    snapshot; None where there are none."""

    async def read(session: AsyncClientSession) -> tuple[int | None, int | None]:
        rebuilt = stored = None
        transactions = LedgerTransaction.get_pymongo_collection().find(
            {"entries.account": account}, {"entries": 1}, session=session
        )
        async for raw in transactions:
            for (_, entry_currency), amount in _amounts(raw, account):
                if entry_currency == currency:
                    rebuilt = (rebuilt or 0) + amount
        shards = AccountBalance.get_pymongo_collection().find(
            {"account": account, "currency": currency}, {"balance": 1}, session=session
        )
        async for shard in shards:
            if _is_int(shard.get("balance")):
                stored = (stored or 0) + shard["balance"]
        return rebuilt, stored

    return await run_in_transaction(read)


def _compare(key: Key, rebuilt: int | None, stored: int | None) -> Finding | None:
    subject = " ".join(key)
    if rebuilt is None and stored is not None:
        return Finding(Check.BALANCE_WITHOUT_ENTRIES, subject, f"stored {stored}, no entries")
    if rebuilt is not None and rebuilt != stored:
        shown = "no balance document" if stored is None else f"stored {stored}"
        return Finding(Check.BALANCE_MISMATCH, subject, f"{shown}, entries sum to {rebuilt}")
    return None


Statement = tuple[int, int | None]
"""What a wallet's statement lines add up to, and the balance its last one shows."""


async def _check_statements(result: Verification) -> None:
    async for wallet in PartnerWallet.find_all():
        assert wallet.id is not None
        account = partner_wallet(wallet.id)
        statement, balance = await _statement(wallet), await _balance(account, wallet.currency)
        if _statement_differs(statement, balance):
            # Confirmed in one snapshot: a posting may have committed during the scan.
            statement, balance = await run_in_transaction(
                partial(_statement_and_balance, wallet=wallet, account=account)
            )
            if _statement_differs(statement, balance):
                total, last = statement
                detail = f"lines sum to {total}, the last shows {last}; the ledger holds {balance}"
                result.add(Check.STATEMENT_MISMATCH, f"{account} {wallet.currency}", detail)


def _statement_differs(statement: Statement, balance: int) -> bool:
    total, last = statement
    return total != balance or (last is not None and last != balance)


async def _statement(wallet: PartnerWallet, session: AsyncClientSession | None = None) -> Statement:
    total, last = 0, None
    lines = WalletEntry.find({"wallet_id": wallet.id}, session=session).sort("created_at", "_id")
    async for line in lines:
        total += line.amount
        last = line.balance_after
    return total, last


async def _balance(account: str, currency: str, session: AsyncClientSession | None = None) -> int:
    shards = AccountBalance.get_pymongo_collection().find(
        {"account": account, "currency": currency}, {"balance": 1}, session=session
    )
    return sum([int(shard.get("balance", 0)) async for shard in shards])


async def _statement_and_balance(
    session: AsyncClientSession, *, wallet: PartnerWallet, account: str
) -> tuple[Statement, int]:
    return await _statement(wallet, session), await _balance(account, wallet.currency, session)


def _partner_movements(transaction: PartnerTransaction) -> list[MovementKind]:
    """The postings a settled partner credit or withdrawal must have."""
    fee = [MovementKind.PARTNER_FEE] if transaction.fee else []
    if transaction.kind is TransactionKind.CREDIT:
        completed = transaction.status is TransactionStatus.COMPLETED
        return [MovementKind.PARTNER_CREDIT, *fee] if completed else []
    settled = {
        TransactionStatus.COMPLETED: [MovementKind.PARTNER_PAYOUT_PAID],
        TransactionStatus.FAILED: [MovementKind.PARTNER_PAYOUT_FAILED],
    }
    if transaction.status not in settled:
        return []
    return [MovementKind.PARTNER_WITHDRAWAL, *fee, *settled[transaction.status]]


async def _check_partner_postings(result: Verification) -> None:
    settled = PartnerTransaction.find(
        {
            "kind": {"$in": [TransactionKind.CREDIT.value, TransactionKind.WITHDRAWAL.value]},
            "status": {"$in": [TransactionStatus.COMPLETED.value, TransactionStatus.FAILED.value]},
        }
    )
    async for transaction in settled:
        wanted = _partner_movements(transaction)
        if not wanted:
            continue
        filed = LedgerTransaction.find(
            {f"refs.{Ref.PARTNER_TRANSACTION.value}": str(transaction.id)}
        )
        posted = {posting.kind async for posting in filed}
        missing = [kind.value for kind in wanted if kind not in posted]
        if missing:
            subject = f"partner transaction {transaction.id}"
            detail = f"{transaction.kind.value} {transaction.status.value} without " + ", ".join(
                missing
            )
            result.add(Check.PARTNER_NOT_POSTED, subject, detail)
