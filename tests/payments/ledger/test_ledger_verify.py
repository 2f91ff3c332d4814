"""`gigql ledger verify`: clean after any run of postings, and it finds every kind of damage."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from dataclasses import dataclass, field
from enum import StrEnum

import pytest
from bson import ObjectId

from documents.errors import DomainError, ErrorCode
from documents.money import Money
from documents.payments import ledger_accounts
from documents.payments.ledger import (
    AccountBalance,
    Entry,
    LedgerTransaction,
    MovementKind,
    Ref,
    balance_id,
    transfer,
)
from documents.payments.ledger_accounts import parse_account
from resolvers.payments import ledger, ledger_check
from resolvers.payments.ledger_check import Check, Verification, verify
from resolvers.payments.report import Finding
from tests.support.payments.ledger import fund_wallet, pay, post, usd, withdraw

PROVIDER = ObjectId()
WALLET = ledger_accounts.wallet(PROVIDER)


@dataclass
class Movement:
    key: str
    kind: MovementKind
    entries: list[Entry]
    refs: dict[Ref, ObjectId | str] = field(default_factory=dict)


@dataclass
class Model:
    """What the balances must be, kept alongside the random run."""

    rng: random.Random
    balances: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    escrows: list[tuple[ObjectId, ObjectId, ObjectId, str]] = field(default_factory=list)
    """(escrow, payer, provider, currency)"""
    posted: list[Movement] = field(default_factory=list)

    def held(self, account: str, currency: str) -> int:
        return self.balances[account, currency]

    def fits(self, movement: Movement) -> bool:
        return all(
            not parse_account(e.account).rule.never_negative
            or self.held(e.account, e.currency) + e.amount >= 0
            for e in movement.entries
        )

    def apply(self, movement: Movement) -> None:
        for e in movement.entries:
            self.balances[e.account, e.currency] += e.amount
        self.posted.append(movement)


CURRENCIES = ["USD", "JPY", "EUR"]


def _next_movement(model: Model, step: int) -> Movement | None:
    """A random movement of the payment flows; some ask for more than an account holds."""
    rng = model.rng
    choice = rng.choice(["pay", "pay", "release", "refund", "withdraw", "settle", "fee"])
    key = f"{choice}:{step}"
    if choice == "pay" or not model.escrows:
        escrow, payer, provider = ObjectId(), ObjectId(), ObjectId()
        currency = rng.choice(CURRENCIES)
        price = Money(amount=rng.randint(100, 90_000), currency=currency)
        fee = price.basis_points(rng.choice([0, 500, 1000]))
        model.escrows.append((escrow, payer, provider, currency))
        entries = [
            Entry(
                account=ledger_accounts.funding(payer),
                currency=currency,
                amount=-(price + fee).amount,
            ),
            Entry(account=ledger_accounts.escrow(escrow), currency=currency, amount=price.amount),
        ]
        if fee.amount:
            revenue = ledger_accounts.platform_revenue()
            entries.append(Entry(account=revenue, currency=currency, amount=fee.amount))
        return Movement(key, MovementKind.PAYMENT_RECEIVED, entries, {Ref.ESCROW: escrow})
    escrow, payer, provider, currency = rng.choice(model.escrows)
    held = model.held(ledger_accounts.escrow(escrow), currency)
    wallet, in_flight = ledger_accounts.wallet(provider), ledger_accounts.payout_in_flight(provider)
    if choice == "release" and held:
        commission = Money(amount=held, currency=currency).basis_points(1500).amount
        entries = [
            Entry(account=ledger_accounts.escrow(escrow), currency=currency, amount=-held),
            Entry(account=wallet, currency=currency, amount=held - commission),
        ]
        if commission:
            revenue = ledger_accounts.platform_revenue()
            entries.append(Entry(account=revenue, currency=currency, amount=commission))
        return Movement(key, MovementKind.ESCROW_RELEASED, entries, {Ref.ESCROW: escrow})
    if choice == "refund":
        # Now and then more than the escrow still holds.
        amount = Money(amount=rng.randint(1, held + 50), currency=currency)
        entries = transfer(ledger_accounts.escrow(escrow), ledger_accounts.funding(payer), amount)
        return Movement(key, MovementKind.REFUND, entries, {Ref.ESCROW: escrow})
    if choice == "withdraw":
        amount = Money(amount=rng.randint(1, model.held(wallet, currency) + 100), currency=currency)
        entries = transfer(wallet, in_flight, amount)
        return Movement(key, MovementKind.PAYOUT_REQUESTED, entries, {Ref.PAYOUT: key})
    if choice == "settle" and model.held(in_flight, currency):
        amount = Money(amount=model.held(in_flight, currency), currency=currency)
        paid = rng.random() < 0.7
        target = ledger_accounts.paid_out(provider) if paid else wallet
        kind = MovementKind.PAYOUT_PAID if paid else MovementKind.PAYOUT_FAILED
        return Movement(key, kind, transfer(in_flight, target, amount), {Ref.GATEWAY: f"po_{step}"})
    if choice == "fee":
        amount = Money(amount=rng.randint(1, 400), currency=currency)
        entries = transfer(
            ledger_accounts.platform_revenue(), ledger_accounts.gateway_fees(), amount
        )
        return Movement(key, MovementKind.GATEWAY_FEE, entries, {Ref.GATEWAY: f"ch_{step}"})
    return None


def _guarded(movement: Movement) -> set[str]:
    return {e.account for e in movement.entries if parse_account(e.account).rule.never_negative}


async def _attempt(movement: Movement) -> ErrorCode | None:
    try:
        await post(movement.key, movement.kind, movement.entries, movement.refs)
    except DomainError as error:
        return error.code
    return None


async def test_verify_is_clean_after_a_random_run_of_concurrent_postings() -> None:
    model = Model(random.Random(20260115))  # noqa: S311 - a repeatable run, not secrets
    step, refused = 0, 0
    while step < 240:
        # A batch runs at once; no two of its movements touch the same guarded account,
        # so which of them fit does not depend on the order they commit in.
        batch: list[Movement] = []
        busy: set[str] = set()
        while len(batch) < 8 and step < 240:
            step += 1
            movement = _next_movement(model, step)
            if movement is None or _guarded(movement) & busy:
                continue
            busy |= _guarded(movement)
            batch.append(movement)
        replays = model.rng.sample(model.posted, min(2, len(model.posted)))
        outcomes = await asyncio.gather(*(_attempt(m) for m in [*batch, *replays]))
        assert outcomes[len(batch) :] == [None] * len(replays), "a replay was refused"
        for movement, outcome in zip(batch, outcomes, strict=False):
            refusal = None if model.fits(movement) else ErrorCode.INSUFFICIENT_FUNDS
            assert outcome is refusal, movement
            if outcome is None:
                model.apply(movement)
            else:
                refused += 1

    assert len(model.posted) > 120 and refused > 5  # the run did what it was meant to
    for (account, currency), held in model.balances.items():
        assert await ledger.balance(account, currency) == Money(amount=held, currency=currency)
    for currency in CURRENCIES:
        assert sum(v for (_, c), v in model.balances.items() if c == currency) == 0
    shards = await AccountBalance.find({"account": ledger_accounts.platform_revenue()}).to_list()
    assert len({s.shard for s in shards}) > 1

    result = await verify()
    assert result.findings == []
    assert result.transactions == len(model.posted)
    assert result.balances == await AccountBalance.get_pymongo_collection().count_documents({})


async def _one_payment_and_a_wallet() -> tuple[LedgerTransaction, ObjectId]:
    escrow = ObjectId()
    payment = await pay(ObjectId(), escrow, usd(10_000), usd(1_000))
    await fund_wallet(PROVIDER, usd(3_000))
    await withdraw(PROVIDER, "payout:1", usd(1_000))
    assert (await verify()).ok
    return payment, escrow


def _checks(result: Verification) -> set[tuple[StrEnum, str]]:
    return {(f.check, f.subject) for f in result.findings}


async def test_verify_reports_a_balance_changed_behind_the_ledgers_back() -> None:
    await _one_payment_and_a_wallet()
    balances = AccountBalance.get_pymongo_collection()
    await balances.update_one({"_id": balance_id(WALLET, "USD", 0)}, {"$inc": {"balance": 1}})

    result = await verify()

    assert result.findings == [
        Finding(Check.BALANCE_MISMATCH, f"{WALLET} USD", "stored 2001, entries sum to 2000")
    ]


async def test_verify_reports_a_negative_wallet_and_a_balance_without_entries() -> None:
    await _one_payment_and_a_wallet()
    balances = AccountBalance.get_pymongo_collection()
    await balances.update_one({"_id": balance_id(WALLET, "USD", 0)}, {"$set": {"balance": -5}})
    stray = ledger_accounts.escrow(ObjectId())
    await balances.insert_one(
        {
            "_id": balance_id(stray, "USD", 0),
            "account": stray,
            "currency": "USD",
            "shard": 0,
            "balance": 0,
        }
    )
    await balances.insert_one({"_id": "nonsense", "account": WALLET, "balance": 1})

    assert _checks(await verify()) == {
        (Check.NEGATIVE_BALANCE, f"{WALLET} USD"),
        (Check.BALANCE_MISMATCH, f"{WALLET} USD"),
        (Check.BALANCE_WITHOUT_ENTRIES, f"{stray} USD"),
        (Check.MALFORMED_BALANCE, "nonsense"),
    }


async def test_verify_reports_a_transaction_changed_after_it_was_posted() -> None:
    payment, escrow = await _one_payment_and_a_wallet()
    transactions = LedgerTransaction.get_pymongo_collection()
    escrow_account = ledger_accounts.escrow(escrow)
    await transactions.update_one(
        {"_id": payment.id, "entries.account": escrow_account},
        {"$set": {"entries.$[e].amount": 10_001}},
        array_filters=[{"e.account": escrow_account}],
    )
    subject = f"{payment.id} {payment.idempotency_key!r}"

    result = await verify()

    assert _checks(result) == {
        (Check.UNBALANCED, subject),
        (Check.HASH_MISMATCH, subject),
        (Check.BALANCE_MISMATCH, f"{escrow_account} USD"),
    }
    assert Finding(Check.UNBALANCED, subject, "the USD entries sum to 1") in result.findings


async def test_verify_reports_a_balanced_transaction_whose_content_changed() -> None:
    payment, _ = await _one_payment_and_a_wallet()
    transactions = LedgerTransaction.get_pymongo_collection()
    await transactions.update_one({"_id": payment.id}, {"$set": {"refs.escrow": str(ObjectId())}})
    subject = f"{payment.id} {payment.idempotency_key!r}"

    assert _checks(await verify()) == {(Check.HASH_MISMATCH, subject)}


async def test_verify_reports_a_transaction_that_is_not_one_post_would_accept() -> None:
    payment, escrow = await _one_payment_and_a_wallet()
    transactions = LedgerTransaction.get_pymongo_collection()
    escrow_account = ledger_accounts.escrow(escrow)
    await transactions.update_one(
        {"_id": payment.id},
        {"$set": {"entries.$[e].amount": 10_000.0}},
        array_filters=[{"e.account": escrow_account}],
    )
    subject = f"{payment.id} {payment.idempotency_key!r}"

    assert _checks(await verify()) == {
        (Check.MALFORMED_TRANSACTION, subject),
        # A float is not money: the escrow's one entry no longer counts.
        (Check.BALANCE_WITHOUT_ENTRIES, f"{escrow_account} USD"),
    }


async def test_verify_reports_idempotency_keys_without_their_unique_index() -> None:
    await _one_payment_and_a_wallet()
    transactions = LedgerTransaction.get_pymongo_collection()
    await transactions.drop_index("one_transaction_per_key")
    try:
        assert _checks(await verify()) == {(Check.KEYS_NOT_UNIQUE, "ledger_transactions")}
    finally:
        await transactions.create_index(
            [("idempotency_key", 1)], name="one_transaction_per_key", unique=True
        )
    assert (await verify()).ok


async def test_a_posting_that_commits_during_the_scan_is_not_reported(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The balances are read after the transactions: a posting in between makes its
    accounts look wrong until the recount reads them in one snapshot."""
    await _one_payment_and_a_wallet()
    scan_balances = ledger_check._check_balances

    async def posting_meanwhile(result: Verification) -> dict[tuple[str, str], int]:
        await withdraw(PROVIDER, "payout:2", usd(500))
        return await scan_balances(result)

    monkeypatch.setattr(ledger_check, "_check_balances", posting_meanwhile)

    assert (await verify()).findings == []
    assert await ledger.balance(WALLET, "USD") == usd(1_500)


def test_the_report_has_a_summary_line_and_one_line_per_finding() -> None:
    clean = Verification(transactions=12, balances=30)
    assert clean.as_text() == "ledger ok: 12 transactions, 30 balances checked"
    damaged = Verification(
        transactions=12,
        balances=30,
        findings=[Finding(Check.NEGATIVE_BALANCE, "wallet:x USD", "-5")],
    )
    assert damaged.as_text().splitlines() == [
        "ledger 1 problem(s): 12 transactions, 30 balances checked",
        "negative_balance: wallet:x USD: -5",
    ]
