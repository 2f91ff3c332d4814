"""Wallets made and funded for the partner money tests, and their moves over HTTP.

Wallets are funded here by posting a card credit straight to the ledger, in a transaction,
as the card-credit use case does once Stripe confirms the payment: these tests are about
what happens to money once it is in a wallet.
"""

from __future__ import annotations

from typing import Any

from documents.money import Money
from documents.payments.ledger import MovementKind, transfer
from documents.payments.ledger_accounts import partner_funding, partner_wallet
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.partners import postings
from resolvers.payments import ledger
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import object_id
from tests.support.partners.partners import PartnerKey, completed_credit

WALLET_FIELDS = """id externalUserId externalWalletId name currency metadata status clearing
  balance { amount currency }"""
TRANSACTION_FIELDS = """id idempotencyKey kind status description metadata
  amount { amount currency } fee { amount currency }
  fromWallet { id } toWallet { id }"""


async def create_wallet(
    client: GraphQLClient,
    key: str,
    external_wallet_id: str,
    *,
    currency: str = "USD",
    user: str = "user-1",
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    payload = await client.mutate(
        "createWallet",
        {
            "externalUserId": user,
            "externalWalletId": external_wallet_id,
            "name": f"Wallet {external_wallet_id}",
            "currency": currency,
            "metadata": metadata,
        },
        f"wallet {{ {WALLET_FIELDS} }}",
        token=key,
    )
    assert payload["errors"] == [], payload
    wallet: dict[str, Any] = payload["wallet"]
    return wallet


async def fund(services: Services, partner: PartnerKey, wallet_gid: str, money: Money) -> None:
    """Credit the wallet as a confirmed card payment would (no fee: the credit's own
    fee is the card-credit use case's business)."""
    credit = completed_credit(partner.id, object_id(wallet_gid), money)

    async def work(unit: UnitOfWork) -> None:
        await credit.insert(session=unit.session)
        await postings.post(
            unit.session,
            key=f"partner_txn:{credit.id}:credit",
            kind=MovementKind.PARTNER_CREDIT,
            entries=transfer(
                partner_funding(partner.id), partner_wallet(object_id(wallet_gid)), money
            ),
            partner_id=partner.id,
            transaction=credit,
        )

    await transact(services, work)


async def balance(wallet_gid: str, currency: str = "USD") -> int:
    return (await ledger.balance(partner_wallet(object_id(wallet_gid)), currency)).amount


async def debit(
    client: GraphQLClient,
    key: str,
    wallet_gid: str,
    amount: int,
    idempotency_key: str,
    *,
    currency: str = "USD",
    **more: Any,
) -> dict[str, Any]:
    return await client.mutate(
        "debitWallet",
        {
            "walletId": wallet_gid,
            "amount": {"amount": amount, "currency": currency},
            "idempotencyKey": idempotency_key,
            **more,
        },
        f"replayed transaction {{ {TRANSACTION_FIELDS} }} wallet {{ id balance {{ amount }} }} "
        "clearingWallet { id externalWalletId clearing balance { amount } }",
        token=key,
    )


async def transfer_money(
    client: GraphQLClient,
    key: str,
    from_gid: str,
    to_gid: str,
    amount: int,
    idempotency_key: str,
    *,
    currency: str = "USD",
    **more: Any,
) -> dict[str, Any]:
    return await client.mutate(
        "transferBetweenWallets",
        {
            "fromWalletId": from_gid,
            "toWalletId": to_gid,
            "amount": {"amount": amount, "currency": currency},
            "idempotencyKey": idempotency_key,
            **more,
        },
        f"replayed transaction {{ {TRANSACTION_FIELDS} }} "
        "fromWallet { id balance { amount } } toWallet { id balance { amount } }",
        token=key,
    )


def codes(payload: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [(e["field"], e["code"]) for e in payload["errors"]]
