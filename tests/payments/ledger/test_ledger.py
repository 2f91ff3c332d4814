"""The double-entry ledger: balanced, idempotent, never overdrawn, atomic with its caller."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bson import ObjectId
from pydantic import ValidationError
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import PyMongoError

from documents.errors import DomainError, ErrorCode
from documents.events import DomainEvent, EventKind
from documents.money import Money
from documents.payments import ledger_accounts
from documents.payments.ledger import (
    AccountBalance,
    Entry,
    InvalidPosting,
    LedgerTransaction,
    MovementKind,
    Ref,
    content_hash,
    transfer,
)
from documents.payments.ledger_accounts import RULES, AccountKind, parse_account
from documents.transactions import run_in_transaction
from resolvers.common.cursors import CursorKey
from resolvers.common.pagination import PageRequest
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.payments import ledger
from server.runtime import Runtime
from tests.conftest import TEST_JWT_SECRET
from tests.support.payments.ledger import (
    fund_wallet,
    ledger_counts,
    pay,
    payment_entries,
    post,
    usd,
    withdraw,
)

PAYER = ObjectId()
PROVIDER = ObjectId()


async def test_a_payment_moves_money_from_the_payer_into_escrow_and_revenue() -> None:
    escrow = ObjectId()
    posted = await pay(PAYER, escrow, usd(10_000), usd(1_000))

    assert await ledger.balance(ledger_accounts.funding(PAYER), "USD") == usd(-11_000)
    assert await ledger.balance(ledger_accounts.escrow(escrow), "USD") == usd(10_000)
    assert await ledger.balance(ledger_accounts.platform_revenue(), "USD") == usd(1_000)
    assert await ledger.balance(ledger_accounts.escrow(escrow), "EUR") == Money(
        amount=0, currency="EUR"
    )

    stored = await LedgerTransaction.get(posted.id)
    assert stored is not None
    assert stored.kind is MovementKind.PAYMENT_RECEIVED
    assert stored.refs == {Ref.ESCROW: str(escrow), Ref.GATEWAY: f"pi_{escrow}"}
    assert [e.account for e in stored.entries] == sorted(e.account for e in stored.entries)
    assert stored.content_hash == content_hash(stored.kind, stored.entries, stored.refs)
    assert [(b.account, b.money) for b in await ledger.balances_of(escrow)] == [
        (ledger_accounts.escrow(escrow), usd(10_000))
    ]


async def test_balances_of_an_owner_cover_all_their_accounts_and_currencies() -> None:
    await fund_wallet(PROVIDER, usd(5_000))
    await fund_wallet(PROVIDER, Money(amount=700, currency="JPY"))
    await withdraw(PROVIDER, "payout:1", usd(2_000))

    balances = {
        (b.account, b.money.currency): b.money.amount for b in await ledger.balances_of(PROVIDER)
    }
    assert balances == {
        (ledger_accounts.payout_in_flight(PROVIDER), "USD"): 2_000,
        (ledger_accounts.wallet(PROVIDER), "JPY"): 700,
        (ledger_accounts.wallet(PROVIDER), "USD"): 3_000,
    }


def _entries(*legs: tuple[str, str, int]) -> list[Entry]:
    return [Entry(account=a, currency=c, amount=n) for a, c, n in legs]


WALLET = ledger_accounts.wallet(PROVIDER)
CURSORS = CursorKey(TEST_JWT_SECRET).of("ledger history")
IN_FLIGHT = ledger_accounts.payout_in_flight(PROVIDER)
INVALID: dict[str, tuple[str, list[Entry]]] = {
    "empty": ("needs entries", []),
    "one-sided": ("sum to 100, not 0", _entries((WALLET, "USD", 100))),
    "unbalanced": ("sum to 1, not 0", _entries((WALLET, "USD", -99), (IN_FLIGHT, "USD", 100))),
    "balanced in sum, not per currency": (
        "EUR entries sum to 100",
        _entries((WALLET, "USD", -100), (IN_FLIGHT, "EUR", 100)),
    ),
    "zero": ("amount of 0", _entries((WALLET, "USD", 0), (IN_FLIGHT, "USD", 0))),
    "beyond any deal": (
        "amount of",
        _entries((WALLET, "USD", -(10**13)), (IN_FLIGHT, "USD", 10**13)),
    ),
    "not a currency": ("'usd' is not", _entries((WALLET, "usd", -1), (IN_FLIGHT, "usd", 1))),
    "unknown account kind": (
        "unknown account kind",
        _entries(("bank:x", "USD", -1), (IN_FLIGHT, "USD", 1)),
    ),
    "platform account with an owner": (
        "has no owner",
        _entries((f"platform_revenue:{PROVIDER}", "USD", -1), (IN_FLIGHT, "USD", 1)),
    ),
    "a float past validation": (
        "amount of -100.0",
        [
            Entry.model_construct(account=WALLET, currency="USD", amount=-100.0),  # type: ignore[arg-type]
            Entry(account=IN_FLIGHT, currency="USD", amount=100),
        ],
    ),
    "account twice": (
        "appears twice",
        _entries((WALLET, "USD", -2), (IN_FLIGHT, "USD", 1), (IN_FLIGHT, "USD", 1)),
    ),
}


@pytest.mark.parametrize("case", INVALID)
async def test_an_invalid_posting_is_refused_and_changes_nothing(case: str) -> None:
    await fund_wallet(PROVIDER, usd(1_000))
    before = await ledger_counts()
    expected, entries = INVALID[case]

    with pytest.raises(InvalidPosting, match=expected):
        await post("bad", MovementKind.ADJUSTMENT, entries)

    assert await ledger_counts() == before
    assert await ledger.balance(WALLET, "USD") == usd(1_000)


@pytest.mark.parametrize("amount", [100.0, "100", True, 10**2 + 0.5])
def test_an_amount_must_be_an_integer(amount: Any) -> None:
    with pytest.raises(ValidationError):
        Entry(account=WALLET, currency="USD", amount=amount)


async def test_keys_memos_and_refs_are_checked() -> None:
    entries = transfer(ledger_accounts.funding(PAYER), ledger_accounts.escrow(ObjectId()), usd(5))
    with pytest.raises(InvalidPosting, match="idempotency key"):
        await post("", MovementKind.PAYMENT_RECEIVED, entries)
    with pytest.raises(InvalidPosting, match="idempotency key"):
        await post("k" * 201, MovementKind.PAYMENT_RECEIVED, entries)
    with pytest.raises(InvalidPosting, match="memo"):
        await post("k", MovementKind.PAYMENT_RECEIVED, entries, memo="m" * 501)
    with pytest.raises(InvalidPosting, match="escrow ref is empty"):
        await post("k", MovementKind.PAYMENT_RECEIVED, entries, {Ref.ESCROW: ""})
    assert await ledger_counts() == (0, 0)


async def test_a_posting_outside_a_transaction_is_refused() -> None:
    client = LedgerTransaction.get_pymongo_collection().database.client
    entries = transfer(ledger_accounts.funding(PAYER), ledger_accounts.escrow(ObjectId()), usd(5))
    async with client.start_session() as session:
        with pytest.raises(RuntimeError, match="inside the caller's transaction"):
            await ledger.post(session, key="k", kind=MovementKind.PAYMENT_RECEIVED, entries=entries)
    assert await ledger_counts() == (0, 0)


async def test_replaying_a_key_returns_the_stored_transaction_and_applies_nothing() -> None:
    escrow = ObjectId()
    entries = payment_entries(PAYER, escrow, usd(2_000), usd(200))
    first = await post("pay-1", MovementKind.PAYMENT_RECEIVED, entries, {Ref.ESCROW: escrow})
    # The same movement, its entries in another order and its memo worded differently.
    again = await post(
        "pay-1", MovementKind.PAYMENT_RECEIVED, entries[::-1], {Ref.ESCROW: escrow}, memo="retry"
    )

    assert again.id == first.id
    assert again.memo == ""
    assert await ledger_counts() == (1, 3)
    assert await ledger.balance(ledger_accounts.escrow(escrow), "USD") == usd(2_000)
    assert await ledger.balance(ledger_accounts.funding(PAYER), "USD") == usd(-2_200)


async def test_a_key_reused_for_another_movement_is_a_conflict() -> None:
    escrow = ObjectId()
    entries = payment_entries(PAYER, escrow, usd(2_000), usd(200))
    await post("pay-1", MovementKind.PAYMENT_RECEIVED, entries, {Ref.ESCROW: escrow})
    others = [
        (MovementKind.PAYMENT_RECEIVED, payment_entries(PAYER, escrow, usd(2_001), usd(199))),
        (MovementKind.FEE_CHARGED, entries),
        (MovementKind.PAYMENT_RECEIVED, payment_entries(PAYER, escrow, usd(2_000), usd(200))),
    ]
    refs: list[dict[Ref, ObjectId | str]] = [
        {Ref.ESCROW: escrow},
        {Ref.ESCROW: escrow},
        {Ref.ESCROW: ObjectId()},
    ]

    for (kind, changed), changed_refs in zip(others, refs, strict=True):
        with pytest.raises(DomainError) as raised:
            await post("pay-1", kind, changed, changed_refs)
        assert raised.value.code is ErrorCode.IDEMPOTENCY_CONFLICT

    assert await ledger_counts() == (1, 3)
    assert await ledger.balance(ledger_accounts.escrow(escrow), "USD") == usd(2_000)


async def test_one_key_posted_ten_times_at_once_is_applied_once() -> None:
    escrow = ObjectId()
    entries = payment_entries(PAYER, escrow, usd(3_000), usd(300))

    posted = await asyncio.gather(
        *(post("pay-once", MovementKind.PAYMENT_RECEIVED, entries) for _ in range(10))
    )

    assert len({p.id for p in posted}) == 1
    assert await ledger_counts() == (1, 3)
    assert await ledger.balance(ledger_accounts.escrow(escrow), "USD") == usd(3_000)
    assert await ledger.balance(ledger_accounts.platform_revenue(), "USD") == usd(300)
    assert await ledger.balance(ledger_accounts.funding(PAYER), "USD") == usd(-3_300)


async def test_concurrent_withdrawals_never_overdraw_a_wallet() -> None:
    await fund_wallet(PROVIDER, usd(7_500))

    async def attempt(i: int) -> ErrorCode | None:
        try:
            await withdraw(PROVIDER, f"payout:{i}", usd(1_000))
        except DomainError as error:
            return error.code
        return None

    outcomes = await asyncio.gather(*(attempt(i) for i in range(20)))

    assert outcomes.count(None) == 7
    assert outcomes.count(ErrorCode.INSUFFICIENT_FUNDS) == 13
    assert await ledger.balance(WALLET, "USD") == usd(500)
    assert await ledger.balance(IN_FLIGHT, "USD") == usd(7_000)
    withdrawals = LedgerTransaction.find({"kind": MovementKind.PAYOUT_REQUESTED.value})
    assert await withdrawals.count() == 7


async def test_insufficient_funds_leaves_the_callers_transaction_as_it_was() -> None:
    await fund_wallet(PROVIDER, usd(1_000))
    before = await ledger_counts()

    async def work(session: AsyncClientSession) -> ErrorCode:
        try:
            await ledger.post(
                session,
                key="too-much",
                kind=MovementKind.PAYOUT_REQUESTED,
                entries=transfer(WALLET, IN_FLIGHT, usd(1_001)),
            )
        except DomainError as error:
            # The caller goes on and commits: nothing of the refused posting may remain.
            return error.code
        raise AssertionError("overdrawn")

    assert await run_in_transaction(work) is ErrorCode.INSUFFICIENT_FUNDS
    assert await ledger_counts() == before
    assert await ledger.balance(WALLET, "USD") == usd(1_000)
    assert await ledger.balance(IN_FLIGHT, "USD") == usd(0)


async def test_the_debit_itself_refuses_to_overdraw_whatever_was_checked_before() -> None:
    """The guard in the balance update holds even if the check before it were wrong."""
    await fund_wallet(PROVIDER, usd(1_000))
    unchecked = LedgerTransaction(
        idempotency_key="unchecked",
        content_hash="",
        kind=MovementKind.PAYOUT_REQUESTED,
        entries=transfer(WALLET, IN_FLIGHT, usd(1_001)),
    )

    async def work(session: AsyncClientSession) -> None:
        await ledger._apply(session, unchecked)

    with pytest.raises(DomainError) as raised:
        await run_in_transaction(work)
    assert raised.value.code is ErrorCode.INSUFFICIENT_FUNDS
    assert await ledger.balance(WALLET, "USD") == usd(1_000)
    assert await ledger.balance(IN_FLIGHT, "USD") == usd(0)


async def test_a_posting_commits_or_aborts_with_the_callers_state_change(runtime: Runtime) -> None:
    escrow = ObjectId()
    entries = payment_entries(PAYER, escrow, usd(4_000), usd(400))

    async def work(unit: UnitOfWork) -> LedgerTransaction:
        posted = await ledger.post(
            unit.session, key="pay", kind=MovementKind.PAYMENT_RECEIVED, entries=entries
        )
        unit.emit(EventKind.TASK_UPDATED, actor_id=PAYER, audience=[], title="paid")
        return posted

    async def failing(unit: UnitOfWork) -> LedgerTransaction:
        await work(unit)
        raise RuntimeError("the state change failed after the posting")

    with pytest.raises(RuntimeError, match="state change failed"):
        await transact(runtime.services, failing)
    assert await ledger_counts() == (0, 0)
    assert await DomainEvent.find_all().count() == 0

    posted = await transact(runtime.services, work)
    assert await LedgerTransaction.get(posted.id) is not None
    assert await DomainEvent.find_all().count() == 1
    assert await ledger.balance(ledger_accounts.escrow(escrow), "USD") == usd(4_000)


async def test_a_retried_unit_of_work_posts_once(runtime: Runtime) -> None:
    escrow = ObjectId()
    attempts = 0

    async def work(unit: UnitOfWork) -> LedgerTransaction:
        nonlocal attempts
        attempts += 1
        posted = await ledger.post(
            unit.session,
            key="pay",
            kind=MovementKind.PAYMENT_RECEIVED,
            entries=payment_entries(PAYER, escrow, usd(900), usd(90)),
        )
        if attempts == 1:
            raise PyMongoError("a write conflict", error_labels=["TransientTransactionError"])
        return posted

    await transact(runtime.services, work)

    assert attempts == 2
    assert await ledger_counts() == (1, 3)
    assert await ledger.balance(ledger_accounts.escrow(escrow), "USD") == usd(900)


async def test_history_pages_through_an_accounts_transactions_newest_first() -> None:
    escrow = await fund_wallet(PROVIDER, usd(1_000))
    for i in range(4):
        await withdraw(PROVIDER, f"payout:{i}", usd(100 + i))

    seen: list[str] = []
    after = None
    while True:
        page = await ledger.history(WALLET, PageRequest(first=2, after=after, cursors=CURSORS))
        seen += [t.idempotency_key for _, t in page.edges]
        if not page.has_next_page:
            break
        after = page.edges[-1][0]

    assert seen == ["payout:3", "payout:2", "payout:1", "payout:0", f"escrow:{escrow}:released"]
    filed = await ledger.filed_under(
        Ref.ESCROW, escrow, PageRequest(first=10, after=None, cursors=CURSORS)
    )
    assert [t.kind for _, t in filed.edges] == [
        MovementKind.PAYMENT_RECEIVED,
        MovementKind.ESCROW_RELEASED,
    ]


async def test_a_platform_account_spreads_its_balance_over_shards() -> None:
    for i in range(12):
        await pay(ObjectId(), ObjectId(), usd(1_000), usd(10 + i))

    shards = await AccountBalance.find({"account": ledger_accounts.platform_revenue()}).to_list()
    assert len(shards) > 1
    assert {s.shard for s in shards} <= set(range(RULES[AccountKind.PLATFORM_REVENUE].shards))
    assert await ledger.balance(ledger_accounts.platform_revenue(), "USD") == usd(
        sum(range(10, 22))
    )


async def test_each_read_of_the_ledger_is_served_by_an_index() -> None:
    escrow = await fund_wallet(PROVIDER, usd(100))
    reads: list[tuple[Any, dict[str, Any]]] = [
        (LedgerTransaction, {"idempotency_key": "x"}),
        (LedgerTransaction, {"entries.account": WALLET}),
        *((LedgerTransaction, {f"refs.{ref.value}": str(escrow)}) for ref in Ref),
        (AccountBalance, {"account": WALLET, "currency": "USD"}),
        (AccountBalance, {"owner": PROVIDER}),
    ]
    for model, query in reads:
        plan = await model.get_pymongo_collection().find(query).explain()
        assert "IXSCAN" in str(plan["queryPlanner"]["winningPlan"]), (model.__name__, query)


def test_account_names_round_trip_and_nothing_else_parses() -> None:
    owner = ObjectId()
    for name in [
        ledger_accounts.funding(owner),
        ledger_accounts.escrow(owner),
        ledger_accounts.wallet(owner),
        ledger_accounts.payout_in_flight(owner),
        ledger_accounts.paid_out(owner),
    ]:
        assert parse_account(name).owner == owner
        assert f"{parse_account(name).kind.value}:{owner}" == name
    assert parse_account(ledger_accounts.platform_revenue()) == (AccountKind.PLATFORM_REVENUE, None)
    assert parse_account(ledger_accounts.gateway_fees()) == (AccountKind.GATEWAY_FEES, None)
    for bad in [
        "wallet",
        "wallet:",
        f"wallet:{str(owner).upper()}",
        "wallet:abcdefghijkl",
        f"Wallet:{owner}",
        "gateway_fees:x",
        "treasury",
    ]:
        with pytest.raises(ValueError, match=r"account kind|has no owner|needs an owner id"):
            parse_account(bad)


def test_accounts_that_are_guarded_keep_their_balance_in_one_document() -> None:
    """The overdraw check reads one balance document; a sharded one would be unguarded."""
    assert all(rule.shards == 1 for rule in RULES.values() if rule.never_negative)
    assert {kind for kind, rule in RULES.items() if rule.never_negative} == {
        AccountKind.ESCROW,
        AccountKind.WALLET,
        AccountKind.PAYOUT_IN_FLIGHT,
        AccountKind.PARTNER_WALLET,
        AccountKind.PARTNER_PAYOUT_IN_FLIGHT,
    }
    assert set(RULES) == set(AccountKind)
