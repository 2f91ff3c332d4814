"""The double-entry ledger: every movement of money is one transaction of entries.

A `LedgerTransaction`'s entries sum to zero in each currency
(documents/payments/ledger_accounts.py has
the accounts and the sign convention). It is stored once per idempotency key together
with a hash of its content, so that a retried posting is recognised as the same one and
a key reused for a different movement is refused. `AccountBalance` documents are the
projection of all entries per account and currency, written in the same database
transaction as the entries, so they can always be rebuilt from them and must match.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum

from beanie import Document, PydanticObjectId
from pydantic import BaseModel, ConfigDict, Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow
from documents.money import MAX_AMOUNT, Money, minor_unit_exponent
from documents.payments.ledger_accounts import parse_account

MAX_KEY_LENGTH = 200
MAX_MEMO_LENGTH = 500


class MovementKind(StrEnum):
    """Why money moved; add kinds as the payment flows need them, never rename one."""

    PAYMENT_RECEIVED = "payment_received"
    """A customer paid for a deal: funding -> escrow (and a service fee -> revenue)."""
    FEE_CHARGED = "fee_charged"
    """A customer-side fee charged on its own: funding -> platform revenue."""
    ESCROW_RELEASED = "escrow_released"
    """The work is done: escrow -> provider wallet (and the commission -> revenue)."""
    COMMISSION = "commission"
    """A staged commission taken before release: escrow -> platform revenue."""
    REFUND = "refund"
    """Money back to the customer: escrow (and fees) -> funding."""
    PAYOUT_REQUESTED = "payout_requested"
    """A provider withdraws: wallet -> payout in flight."""
    PAYOUT_PAID = "payout_paid"
    """The gateway paid it: payout in flight -> paid out."""
    PAYOUT_FAILED = "payout_failed"
    """The gateway could not pay it: payout in flight -> wallet."""
    GATEWAY_FEE = "gateway_fee"
    """The gateway's charge, borne by the platform: platform revenue -> gateway fees."""
    DISPUTE_OPENED = "dispute_opened"
    """A chargeback took the disputed amount back to the customer's card."""
    DISPUTE_WON = "dispute_won"
    DISPUTE_LOST = "dispute_lost"
    CHARGEBACK_COVERED = "chargeback_covered"
    """An admin kept what the escrow held to cover a lost chargeback: escrow -> platform
    revenue, up to the loss."""
    PARTNER_CREDIT = "partner_credit"
    """A partner's user paid into a wallet by card: partner funding -> partner wallet."""
    PARTNER_FEE = "partner_fee"
    """The partner's fee on one of its transactions: partner wallet -> platform revenue."""
    PARTNER_DEBIT = "partner_debit"
    """A partner took money from a wallet: partner wallet -> its clearing wallet."""
    PARTNER_TRANSFER = "partner_transfer"
    """Between two wallets of one partner: partner wallet -> partner wallet."""
    PARTNER_WITHDRAWAL = "partner_withdrawal"
    """To the partner's bank: partner wallet -> partner payout in flight."""
    PARTNER_PAYOUT_PAID = "partner_payout_paid"
    """The bank has it: partner payout in flight -> partner paid out."""
    PARTNER_PAYOUT_FAILED = "partner_payout_failed"
    """It came back: partner payout in flight -> partner wallet."""
    PARTNER_REFUNDED = "partner_refunded"
    """A completed card credit refunded at the gateway (not by us): what the wallet still
    holds of it, and platform revenue for the rest, back to the card (partner funding)."""
    PARTNER_DISPUTE_OPENED = "partner_dispute_opened"
    """A chargeback took a card credit's payment back: what the wallet still holds of it
    -> the credit's chargeback account -> partner funding (the card)."""
    PARTNER_DISPUTE_WON = "partner_dispute_won"
    """The chargeback was won: the opening's movement reversed."""
    PARTNER_DISPUTE_LOST = "partner_dispute_lost"
    """The chargeback was lost: what the wallet could not cover, platform revenue -> the
    chargeback account (the platform bears it, to collect from the partner)."""
    ADJUSTMENT = "adjustment"
    """An operator's correction; its memo says why."""


class Ref(StrEnum):
    """What a transaction may be filed under, to find the movements of one thing (each is
    indexed; a person's movements are found by their accounts instead)."""

    ESCROW = "escrow"
    PAYOUT = "payout"
    GATEWAY = "gateway"
    """The gateway's object (a charge, transfer, payout or dispute id)."""
    PARTNER = "partner"
    """The partner whose wallets a movement concerns (fees per partner are found by it)."""
    PARTNER_TRANSACTION = "partner_transaction"


class Entry(BaseModel):
    """`amount` minor units of `currency` into `account` (negative: out of it)."""

    # Strict: 1.0 or True must not pass for an amount of money.
    model_config = ConfigDict(frozen=True, strict=True)

    account: str
    currency: str
    amount: int


def transfer(source: str, target: str, money: Money) -> list[Entry]:
    """The two entries that move `money` from one account to another."""
    return [
        Entry(account=source, currency=money.currency, amount=-money.amount),
        Entry(account=target, currency=money.currency, amount=money.amount),
    ]


class InvalidPosting(ValueError):
    """Entries that are not a valid transaction: a bug in the code that built them."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def posting_problems(entries: Sequence[Entry]) -> list[str]:
    """What keeps `entries` from being one transaction; empty when they are one."""
    return entry_problems(entries) + [
        f"the {currency} entries sum to {total}, not 0"
        for currency, total in imbalances(entries).items()
    ]


def entry_problems(entries: Sequence[Entry]) -> list[str]:
    """What is wrong with the entries themselves, whatever they sum to."""
    if not entries:
        return ["a transaction needs entries"]
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    for entry in entries:
        try:
            parse_account(entry.account)
        except ValueError as error:
            problems.append(str(error))
        if minor_unit_exponent(entry.currency) is None:
            problems.append(f"{entry.currency!r} is not an ISO 4217 currency")
        # The type again: Entry.model_construct() skips validation.
        if type(entry.amount) is not int or not 0 < abs(entry.amount) <= MAX_AMOUNT:
            problems.append(f"{entry.account} has an amount of {entry.amount}")
        if (entry.account, entry.currency) in seen:
            # One entry per account and currency keeps history and hashes unambiguous.
            problems.append(f"{entry.account} appears twice in {entry.currency}")
        seen.add((entry.account, entry.currency))
    return problems


def imbalances(entries: Iterable[Entry]) -> dict[str, int]:
    """The currencies whose entries do not sum to zero, with what they sum to."""
    totals: dict[str, int] = defaultdict(int)
    for entry in entries:
        totals[entry.currency] += entry.amount
    return {currency: total for currency, total in totals.items() if total}


def canonical_entries(entries: Iterable[Entry]) -> list[Entry]:
    return sorted(entries, key=lambda entry: (entry.account, entry.currency))


def content_hash(kind: str, entries: Iterable[Entry], refs: Mapping[Ref, str]) -> str:
    """A digest of what a transaction does; the memo and times are not part of it, so a
    retry that words its memo differently is still the same movement."""
    content = [
        str(kind),
        [[e.account, e.currency, e.amount] for e in canonical_entries(entries)],
        sorted((key.value, value) for key, value in refs.items()),
    ]
    canonical = json.dumps(content, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


class LedgerTransaction(Document):
    idempotency_key: str
    content_hash: str
    kind: MovementKind
    entries: list[Entry]
    """In canonical order: by account, then currency."""
    refs: dict[Ref, str] = Field(default_factory=dict)
    memo: str = ""
    created_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "ledger_transactions"
        use_revision = False
        indexes = [
            IndexModel(
                [("idempotency_key", ASCENDING)], name="one_transaction_per_key", unique=True
            ),
            # An account's history, newest first.
            IndexModel(
                [("entries.account", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)]
            ),
            # The admins' lists: everything, or one kind of movement, newest first.
            IndexModel([("created_at", DESCENDING), ("_id", DESCENDING)]),
            IndexModel([("kind", ASCENDING), ("created_at", DESCENDING), ("_id", DESCENDING)]),
            # Not partial: SecantusDB's planner does not use partial indexes.
            *(IndexModel([(f"refs.{ref.value}", ASCENDING), ("_id", ASCENDING)]) for ref in Ref),
        ]


def balance_id(account: str, currency: str, shard: int) -> str:
    return f"{account}|{currency}|{shard}"


class AccountBalance(Document):
    """One shard of the balance of an account in a currency: the sum of its entries
    that were applied to this shard (see `AccountRule.shards`)."""

    id: str  # type: ignore[assignment]  # balance_id(account, currency, shard)
    account: str
    owner: PydanticObjectId | None = None
    """The account's owner; absent on platform-wide accounts."""
    currency: str
    shard: int
    balance: int
    updated_at: datetime

    class Settings:
        name = "ledger_balances"
        use_revision = False
        indexes = [
            IndexModel([("account", ASCENDING), ("currency", ASCENDING)]),
            IndexModel([("owner", ASCENDING)], sparse=True),
        ]
