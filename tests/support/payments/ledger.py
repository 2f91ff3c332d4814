"""Postings as the payment flows make them, each in its own transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.money import Money
from documents.payments import ledger_accounts
from documents.payments.ledger import (
    AccountBalance,
    Entry,
    LedgerTransaction,
    MovementKind,
    Ref,
    transfer,
)
from documents.transactions import run_in_transaction
from resolvers.payments import ledger


def usd(amount: int) -> Money:
    return Money(amount=amount, currency="USD")


async def post(
    key: str,
    kind: MovementKind,
    entries: Sequence[Entry],
    refs: Mapping[Ref, ObjectId | str] | None = None,
    memo: str = "",
) -> LedgerTransaction:
    async def work(session: AsyncClientSession) -> LedgerTransaction:
        return await ledger.post(session, key=key, kind=kind, entries=entries, refs=refs, memo=memo)

    return await run_in_transaction(work)


def payment_entries(payer: ObjectId, escrow: ObjectId, price: Money, fee: Money) -> list[Entry]:
    """The customer pays the price into escrow and the service fee (if any) to the platform."""
    currency = price.currency
    entries = [
        Entry(
            account=ledger_accounts.funding(payer), currency=currency, amount=-(price + fee).amount
        ),
        Entry(account=ledger_accounts.escrow(escrow), currency=currency, amount=price.amount),
    ]
    if fee.amount:
        entries.append(
            Entry(account=ledger_accounts.platform_revenue(), currency=currency, amount=fee.amount)
        )
    return entries


async def pay(payer: ObjectId, escrow: ObjectId, price: Money, fee: Money) -> LedgerTransaction:
    return await post(
        f"escrow:{escrow}:paid",
        MovementKind.PAYMENT_RECEIVED,
        payment_entries(payer, escrow, price, fee),
        {Ref.ESCROW: escrow, Ref.GATEWAY: f"pi_{escrow}"},
    )


async def fund_wallet(provider: ObjectId, amount: Money) -> ObjectId:
    """A paid escrow released in full to the provider's wallet; returns the escrow's id."""
    escrow = ObjectId()
    await pay(ObjectId(), escrow, amount, amount.zero())
    await post(
        f"escrow:{escrow}:released",
        MovementKind.ESCROW_RELEASED,
        transfer(ledger_accounts.escrow(escrow), ledger_accounts.wallet(provider), amount),
        {Ref.ESCROW: escrow},
    )
    return escrow


async def withdraw(provider: ObjectId, key: str, amount: Money) -> LedgerTransaction:
    return await post(
        key,
        MovementKind.PAYOUT_REQUESTED,
        transfer(
            ledger_accounts.wallet(provider), ledger_accounts.payout_in_flight(provider), amount
        ),
        {Ref.PAYOUT: key},
    )


async def ledger_counts() -> tuple[int, int]:
    """Stored transactions and balance documents."""
    return (
        await LedgerTransaction.get_pymongo_collection().count_documents({}),
        await AccountBalance.get_pymongo_collection().count_documents({}),
    )
