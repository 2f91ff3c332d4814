"""Partners, keys and funded wallets for the partner money tests.

Wallets are funded here by posting a card credit straight to the ledger, in a transaction,
as the card-credit use case does once Stripe confirms the payment: these tests are about
what happens to money once it is in a wallet.
"""

from __future__ import annotations

import base64
from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId

from documents.money import Money
from documents.partners.api_keys import ApiScope, KeyMode
from documents.partners.partners import Partner, PartnerFees, PartnerStatus
from documents.partners.transactions import (
    PartnerTransaction,
    TransactionKind,
    TransactionStatus,
)
from documents.payments.ledger import MovementKind, transfer
from documents.payments.ledger_accounts import partner_funding, partner_wallet
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.partners import postings
from resolvers.partners.keys import make_key
from resolvers.payments import ledger
from tests.support.graphql_client import GraphQLClient

ALL_SCOPES = [ApiScope.READ_WALLETS, ApiScope.MOVE_MONEY]
WALLET_FIELDS = """id externalUserId externalWalletId name currency metadata status clearing
  balance { amount currency }"""
TRANSACTION_FIELDS = """id idempotencyKey kind status description metadata
  amount { amount currency } fee { amount currency }
  fromWallet { id } toWallet { id }"""


async def approved_partner(name: str = "RoSaBank", fees: PartnerFees | None = None) -> Partner:
    partner = Partner(
        owner_id=ObjectId(),
        name=name,
        company_name=f"{name} Inc",
        contact_name="Jane Smith",
        contact_email="api@partner.example",
        business_type="Financial Services",
        webhook_url="https://api.partner.example/webhooks",
        status=PartnerStatus.APPROVED,
        fees=fees or PartnerFees(credit_bp=290),
    )
    await partner.insert()
    return partner


async def key_of(partner: Partner, scopes: list[ApiScope] | None = None) -> str:
    assert partner.id is not None
    made = make_key(
        partner.id,
        mode=KeyMode.TEST,
        name="server",
        scopes=ALL_SCOPES if scopes is None else scopes,
        expires_at=None,
        created_by=partner.owner_id,
    )
    await made.key.insert()
    return made.secret


def oid(global_id: str) -> ObjectId:
    """The database id inside a global id."""
    return ObjectId(base64.b64decode(global_id).decode().split(":", 1)[1])


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


async def fund(services: Services, partner: Partner, wallet_gid: str, money: Money) -> None:
    """Credit the wallet as a confirmed card payment would (no fee: the credit's own
    fee is the card-credit use case's business)."""
    assert partner.id is not None
    partner_id = partner.id
    wallet_id = oid(wallet_gid)
    credit = PartnerTransaction(
        id=PydanticObjectId(),
        partner_id=partner_id,
        idempotency_key=f"test-funding-{ObjectId()}",
        request_hash="test",
        kind=TransactionKind.CREDIT,
        status=TransactionStatus.COMPLETED,
        amount=money.amount,
        currency=money.currency,
        to_wallet_id=wallet_id,
    )

    async def work(unit: UnitOfWork) -> None:
        await credit.insert(session=unit.session)
        await postings.post(
            unit.session,
            key=f"partner_txn:{credit.id}:credit",
            kind=MovementKind.PARTNER_CREDIT,
            entries=transfer(partner_funding(partner_id), partner_wallet(wallet_id), money),
            partner_id=partner_id,
            transaction=credit,
        )

    await transact(services, work)


async def balance(wallet_gid: str, currency: str = "USD") -> int:
    return (await ledger.balance(partner_wallet(oid(wallet_gid)), currency)).amount


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
