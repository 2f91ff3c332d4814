"""Ledger accounts: what kinds there are, how they are named, and the rules of each.

An account name is its kind, and for accounts that belong to someone, a colon and the
owner's id: `wallet:65f0c1...`, `escrow:65f0c2...`, `platform_revenue`. Names are built
only by the functions below, so every part of the code spells them the same way.

Sign convention: a ledger entry's amount is what flows *into* its account, so money
held somewhere is positive, and the outside world, which money comes from and goes
to, is represented by accounts that run negative (`funding`) or grow (`paid_out`).
A payment of 110 of which 10 is the customer's service fee is

    funding:<payer> -110,  escrow:<deal> +100,  platform_revenue +10

and a refund moves it back to `funding:<payer>` (there is no separate "refunded"
account: what a payer has paid in net is minus their funding balance).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from bson import ObjectId

_SEPARATOR = ":"


class AccountKind(StrEnum):
    FUNDING = "funding"
    """Per payer: money paid in from outside (cards); negative, by what came in net."""
    ESCROW = "escrow"
    """Per escrow (deal): paid by the customer, held until released or refunded."""
    WALLET = "wallet"
    """Per provider: earned and available to withdraw."""
    PAYOUT_IN_FLIGHT = "payout_in_flight"
    """Per provider: withdrawn from the wallet, not yet confirmed paid by the gateway."""
    PAID_OUT = "paid_out"
    """Per provider: money that has left for their bank; grows with every payout."""
    PLATFORM_REVENUE = "platform_revenue"
    """The platform's fees and commissions, less what it bears (gateway fees, losses)."""
    GATEWAY_FEES = "gateway_fees"
    """What the payment gateway has charged (processing, payout and dispute fees)."""
    CHARGEBACK = "chargeback"
    """Per escrow: what card networks took back from the platform in chargebacks still
    open; negative while one is, back to zero when it is won or its loss recognised."""
    PARTNER_WALLET = "partner_wallet"
    """Per partner wallet: what a partner's user holds (documents/partners/wallets.py)."""
    PARTNER_FUNDING = "partner_funding"
    """Per partner: card money paid into its wallets from outside; negative."""
    PARTNER_PAYOUT_IN_FLIGHT = "partner_payout_in_flight"
    """Per partner: withdrawn from its wallets, not yet confirmed paid to its bank."""
    PARTNER_PAID_OUT = "partner_paid_out"
    """Per partner: what has reached its bank account; grows with every payout."""
    PARTNER_CHARGEBACK = "partner_chargeback"
    """Per partner card credit: what a chargeback on its payment took back and the wallet
    did not cover; negative while the chargeback is open, zero once it is closed."""


@dataclass(frozen=True, slots=True)
class AccountRule:
    owned: bool
    """Whether names of this kind carry an owner id."""
    never_negative: bool
    """Holds real money for someone: a posting that would overdraw it is refused."""
    shards: int = 1
    """Balance documents the account's balance is spread over. Platform-wide accounts
    take part in most postings; one document would make every concurrent posting
    conflict on it (bench/README.md, Payments). Guarded accounts keep one, because the
    guard reads the balance. Changing the number is safe for stored data: a balance is
    the sum of every shard document of its account."""


RULES: dict[AccountKind, AccountRule] = {
    AccountKind.FUNDING: AccountRule(owned=True, never_negative=False),
    AccountKind.ESCROW: AccountRule(owned=True, never_negative=True),
    AccountKind.WALLET: AccountRule(owned=True, never_negative=True),
    AccountKind.PAYOUT_IN_FLIGHT: AccountRule(owned=True, never_negative=True),
    AccountKind.PAID_OUT: AccountRule(owned=True, never_negative=False),
    # 256, not 64: each payment transaction that meets another on its shard is retried
    # whole; at 16 concurrent payment webhooks that was 0.28 to 0.43 retries per event
    # with 64 shards, 0 to 0.23 with 256 (bench/README.md, Issue 16).
    AccountKind.PLATFORM_REVENUE: AccountRule(owned=False, never_negative=False, shards=256),
    AccountKind.GATEWAY_FEES: AccountRule(owned=False, never_negative=False, shards=8),
    AccountKind.CHARGEBACK: AccountRule(owned=True, never_negative=False),
    AccountKind.PARTNER_WALLET: AccountRule(owned=True, never_negative=True),
    AccountKind.PARTNER_FUNDING: AccountRule(owned=True, never_negative=False),
    AccountKind.PARTNER_PAYOUT_IN_FLIGHT: AccountRule(owned=True, never_negative=True),
    AccountKind.PARTNER_PAID_OUT: AccountRule(owned=True, never_negative=False),
    AccountKind.PARTNER_CHARGEBACK: AccountRule(owned=True, never_negative=False),
}


class Account(NamedTuple):
    kind: AccountKind
    owner: ObjectId | None

    @property
    def rule(self) -> AccountRule:
        return RULES[self.kind]


def _owned(kind: AccountKind, owner: ObjectId) -> str:
    return f"{kind.value}{_SEPARATOR}{owner}"


def funding(payer_id: ObjectId) -> str:
    return _owned(AccountKind.FUNDING, payer_id)


def escrow(escrow_id: ObjectId) -> str:
    return _owned(AccountKind.ESCROW, escrow_id)


def wallet(provider_id: ObjectId) -> str:
    return _owned(AccountKind.WALLET, provider_id)


def payout_in_flight(provider_id: ObjectId) -> str:
    return _owned(AccountKind.PAYOUT_IN_FLIGHT, provider_id)


def paid_out(provider_id: ObjectId) -> str:
    return _owned(AccountKind.PAID_OUT, provider_id)


def platform_revenue() -> str:
    return AccountKind.PLATFORM_REVENUE.value


def gateway_fees() -> str:
    return AccountKind.GATEWAY_FEES.value


def chargeback(escrow_id: ObjectId) -> str:
    return _owned(AccountKind.CHARGEBACK, escrow_id)


def partner_wallet(wallet_id: ObjectId) -> str:
    return _owned(AccountKind.PARTNER_WALLET, wallet_id)


def partner_funding(partner_id: ObjectId) -> str:
    return _owned(AccountKind.PARTNER_FUNDING, partner_id)


def partner_payout_in_flight(partner_id: ObjectId) -> str:
    return _owned(AccountKind.PARTNER_PAYOUT_IN_FLIGHT, partner_id)


def partner_paid_out(partner_id: ObjectId) -> str:
    return _owned(AccountKind.PARTNER_PAID_OUT, partner_id)


def partner_chargeback(transaction_id: ObjectId) -> str:
    return _owned(AccountKind.PARTNER_CHARGEBACK, transaction_id)


def parse_account(name: str) -> Account:
    """The kind and owner of an account name; ValueError if it is not one."""
    kind_name, separator, owner = name.partition(_SEPARATOR)
    try:
        kind = AccountKind(kind_name)
    except ValueError:
        raise ValueError(f"unknown account kind in {name!r}") from None
    if not RULES[kind].owned:
        if separator:
            raise ValueError(f"{kind.value} has no owner: {name!r}")
        return Account(kind, None)
    # str(ObjectId) is lowercase hex: anything else would name a second account.
    if not ObjectId.is_valid(owner) or str(ObjectId(owner)) != owner:
        raise ValueError(f"{kind.value} needs an owner id: {name!r}")
    return Account(kind, ObjectId(owner))
