"""A provider's wallet, read from the ledger: what they have, and where it is.

Per currency:
- `available`: the wallet account, released earnings not yet withdrawn (the balance
  withdrawals are taken from, so never more than the ledger allows);
- `pending`: the provider's share of escrows paid and not yet released;
- `in_flight`: withdrawn and on its way to the bank;
- `paid_out`: everything that has reached the bank so far.
The history is the wallet account's ledger transactions, newest first.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from bson import ObjectId

from documents.accounts.users import Role
from documents.money import Money
from documents.payments import ledger_accounts
from documents.payments.ledger import LedgerTransaction
from documents.payments.ledger_accounts import AccountKind, parse_account
from resolvers.accounts.auth.viewer import Viewer, require_role
from resolvers.common.pagination import Page, PageRequest
from resolvers.payments import ledger
from resolvers.payments.escrow.release import held_for_provider

_FIGURES = {
    AccountKind.WALLET: "available",
    AccountKind.PAYOUT_IN_FLIGHT: "in_flight",
    AccountKind.PAID_OUT: "paid_out",
}


@dataclass(frozen=True, slots=True)
class WalletBalance:
    currency: str
    available: Money
    pending: Money
    in_flight: Money
    paid_out: Money


async def wallet_of(viewer: Viewer) -> list[WalletBalance]:
    """The provider's figures in every currency they have had money in, by currency."""
    require_role(viewer, Role.TASKER, "have a wallet")
    figures: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for found in await ledger.balances_of(viewer.user_id):
        figure = _FIGURES.get(parse_account(found.account).kind)
        if figure is not None:
            figures[found.money.currency][figure] += found.money.amount
    for held in await held_for_provider(viewer.user_id):
        figures[held.currency]["pending"] += held.amount
    return [
        WalletBalance(
            currency=currency,
            **{
                name: Money(amount=amounts[name], currency=currency)
                for name in ("available", "pending", "in_flight", "paid_out")
            },
        )
        for currency, amounts in sorted(figures.items())
    ]


async def wallet_history(provider_id: ObjectId, request: PageRequest) -> Page[LedgerTransaction]:
    return await ledger.history(ledger_accounts.wallet(provider_id), request)


def wallet_amount(transaction: LedgerTransaction, provider_id: ObjectId) -> Money:
    """What the transaction added to (or, negative, took from) the provider's wallet."""
    wallet = ledger_accounts.wallet(provider_id)
    entry = next(e for e in transaction.entries if e.account == wallet)
    return Money(amount=entry.amount, currency=entry.currency)


async def wallet_transactions(
    provider_id: ObjectId, ids: list[ObjectId]
) -> dict[ObjectId, LedgerTransaction]:
    """Those of the transactions that moved the provider's wallet, by id."""
    found = LedgerTransaction.find(
        {"_id": {"$in": ids}, "entries.account": ledger_accounts.wallet(provider_id)}
    )
    return {t.id: t async for t in found if t.id is not None}
