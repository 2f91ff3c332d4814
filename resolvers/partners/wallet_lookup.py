"""Finding a partner's wallet by the id it gave us, or refusing, for every use case that
takes a wallet id (debits, transfers, credits, withdrawals, wallet changes).

A wallet of another partner is refused exactly like a wallet that does not exist:
NOT_FOUND, never FORBIDDEN, so a partner learns nothing of others' ids.

    wallet = await wallet_of(access.partner_id, wallet_id, "walletId", session=unit.session)
    money = in_currency_of(wallet, checked_money, "amount")
"""

from __future__ import annotations

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.errors import DomainError, ErrorCode
from documents.money import Money
from documents.partners.wallets import PartnerWallet


def not_found(field: str) -> DomainError:
    return DomainError(ErrorCode.NOT_FOUND, "No such wallet.", field)


async def wallet_of(
    partner_id: ObjectId,
    wallet_id: ObjectId,
    field: str,
    *,
    session: AsyncClientSession | None = None,
) -> PartnerWallet:
    """The partner's wallet `wallet_id` (read through `session` when given, so that a use
    case sees it as its transaction does); NOT_FOUND on `field` for anything else."""
    wallet = await PartnerWallet.find_one(
        {"_id": wallet_id, "partner_id": partner_id}, session=session
    )
    if wallet is None:
        raise not_found(field)
    return wallet


def in_currency_of(wallet: PartnerWallet, money: Money, field: str) -> Money:
    """`money`, if it is in the wallet's currency; INVALID_INPUT on `field` if not (a
    wallet holds one currency, and nothing converts)."""
    if money.currency != wallet.currency:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"The wallet holds {wallet.currency}; this amount is in {money.currency}.",
            field,
        )
    return money
