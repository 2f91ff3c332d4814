"""Helpers for the tests of partner money through the gateway: the partner's payout
account, and its mutations over HTTP (partners and wallets: tests/support/partners/
partners.py)."""

from __future__ import annotations

import secrets
from typing import Any

from documents.partners.partners import Partner
from documents.partners.transactions import PartnerTransaction
from documents.partners.wallets import PartnerWallet, WalletStatus
from documents.partners.webhooks import PartnerWebhookEvent
from documents.payments.ledger_accounts import partner_wallet
from resolvers.partners.ids import WALLET_TYPE, global_id
from resolvers.payments import ledger
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient
from tests.support.marketplace import object_id
from tests.support.partners.partners import PartnerKey
from tests.support.payments.escrow import sandbox

TRANSACTION = """transaction { id kind status failureCode paymentIntentId payoutId
  amount { amount currency } fee { amount currency } }"""


async def with_payouts(runtime: Runtime, partner: PartnerKey) -> str:
    """The partner's connected account, made and onboarded in the sandbox, set on the
    partner as its onboarding (not this part's) would; the account id."""
    gateway = sandbox(runtime)
    account = await gateway.create_connected_account(
        email=partner.partner.contact_email,
        country="US",
        idempotency_key=f"test-partner:{partner.id}:account",
    )
    await gateway.complete_onboarding(account.id)
    await Partner.get_pymongo_collection().update_one(
        {"_id": partner.id}, {"$set": {"stripe_account_id": account.id, "payouts_enabled": True}}
    )
    partner.partner.stripe_account_id = account.id
    partner.partner.payouts_enabled = True
    return account.id


def wallet_gid(wallet: PartnerWallet) -> str:
    assert wallet.id is not None
    return global_id(WALLET_TYPE, wallet.id)


async def set_wallet_status(wallet: PartnerWallet, status: WalletStatus) -> None:
    await PartnerWallet.get_pymongo_collection().update_one(
        {"_id": wallet.id}, {"$set": {"status": status.value}}
    )


async def balance(wallet: PartnerWallet) -> int:
    assert wallet.id is not None
    return (await ledger.balance(partner_wallet(wallet.id), wallet.currency)).amount


def move_input(
    wallet: PartnerWallet, amount: int, key: str | None = None, **more: Any
) -> dict[str, Any]:
    return {
        "walletId": wallet_gid(wallet),
        "amount": {"amount": amount, "currency": wallet.currency},
        "idempotencyKey": key or f"key-{secrets.token_hex(6)}",
        **more,
    }


async def credit(
    client: GraphQLClient, partner: PartnerKey, wallet: PartnerWallet, amount: int, **more: Any
) -> dict[str, Any]:
    return await client.mutate(
        "creditWallet",
        move_input(wallet, amount, **more),
        f"clientSecret {TRANSACTION}",
        token=partner.key,
    )


async def pay_credit(
    client: GraphQLClient, partner: PartnerKey, transaction_id: str, outcome: str = "SUCCEEDED"
) -> dict[str, Any]:
    return await client.mutate(
        "sandboxPayCredit",
        {"transactionId": transaction_id, "outcome": outcome},
        TRANSACTION,
        token=partner.key,
    )


async def funded(
    client: GraphQLClient, partner: PartnerKey, wallet: PartnerWallet, amount: int
) -> dict[str, Any]:
    """`amount` credited by card and paid: the completed transaction."""
    made = await credit(client, partner, wallet, amount)
    assert made["errors"] == [], made
    paid = await pay_credit(client, partner, made["transaction"]["id"])
    assert paid["errors"] == [] and paid["transaction"]["status"] == "COMPLETED", paid
    transaction: dict[str, Any] = paid["transaction"]
    return transaction


async def withdraw(
    client: GraphQLClient, partner: PartnerKey, wallet: PartnerWallet, amount: int, **more: Any
) -> dict[str, Any]:
    return await client.mutate(
        "withdrawFromWallet", move_input(wallet, amount, **more), TRANSACTION, token=partner.key
    )


async def events_of(wallet: PartnerWallet) -> list[str]:
    """The wallet's partner webhook events, in order."""
    found = await PartnerWebhookEvent.find({"wallet_id": wallet.id}).sort("sequence").to_list()
    return [event.type.value for event in found]


async def stored_transaction(transaction_gid: str) -> PartnerTransaction:
    found = await PartnerTransaction.get(object_id(transaction_gid))
    assert found is not None
    return found
