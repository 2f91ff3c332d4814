"""Helpers for the wallet, withdrawal and Connect tests: providers with payout accounts
onboarded through GraphQL and the sandbox gateway, and wallets funded directly."""

from __future__ import annotations

from typing import Any

from bson import ObjectId

from documents.accounts.profiles import ProviderProfile
from documents.money import Money
from documents.payments.payouts import Withdrawal
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient, Tokens
from tests.support.marketplace import object_id, tasker
from tests.support.payments.escrow import onboard
from tests.support.payments.ledger import fund_wallet

PAYOUT_ACCOUNT = "payoutAccount { connected payoutsEnabled detailsSubmitted identityVerification }"
WITHDRAWAL = "withdrawal { id status amount { amount currency } failureCode }"
MY_PAYOUT_ACCOUNT = """{ myPayoutAccount {
  connected payoutsEnabled chargesEnabled detailsSubmitted identityVerification } }"""
MY_WALLET = """{ myWallet {
  balances { currency balance { amount } available { amount } pending { amount }
             inFlight { amount } paidOut { amount } }
  transactions(first: 50) { edges { node { kind amount { amount currency } memo } } } } }"""


def user_id(who: Tokens) -> ObjectId:
    return object_id(who.user_id)


async def start_onboarding(client: GraphQLClient, who: Tokens, **input: Any) -> dict[str, Any]:
    return await client.mutate(
        "startPayoutOnboarding",
        input,
        f"onboardingUrl expiresAt {PAYOUT_ACCOUNT}",
        token=who.access,
    )


async def stripe_account_of(who: Tokens) -> str:
    profile = await ProviderProfile.get(user_id(who))
    assert profile is not None and profile.stripe_account_id is not None
    return profile.stripe_account_id


async def onboarded_provider(client: GraphQLClient, runtime: Runtime, email: str) -> Tokens:
    """A tasker whose payout account the gateway has enabled (through `account.updated`)."""
    who = await tasker(client, email)
    await onboard(client, runtime, who)
    return who


async def fund(who: Tokens, amount: Money) -> None:
    """Test fixture: released earnings in the provider's wallet, posted straight to the
    ledger (a paid escrow released in full), without going through the escrow flow."""
    await fund_wallet(user_id(who), amount)


async def request_withdrawal(
    client: GraphQLClient, who: Tokens, amount: int, currency: str = "USD"
) -> dict[str, Any]:
    return await client.mutate(
        "requestWithdrawal",
        {"amount": {"amount": amount, "currency": currency}},
        WITHDRAWAL,
        token=who.access,
    )


async def wallet(client: GraphQLClient, who: Tokens) -> dict[str, Any]:
    data = await client.data(MY_WALLET, token=who.access)
    result: dict[str, Any] = data["myWallet"]
    return result


def figures(wallet_data: dict[str, Any], currency: str = "USD") -> dict[str, int]:
    """The wallet's figures in one currency, as plain amounts."""
    (found,) = [b for b in wallet_data["balances"] if b["currency"] == currency]
    return {name: value["amount"] for name, value in found.items() if name != "currency"}


async def payout_id_of(withdrawal_global_id: str) -> str:
    withdrawal = await Withdrawal.get(object_id(withdrawal_global_id))
    assert withdrawal is not None and withdrawal.payout_id is not None
    return withdrawal.payout_id
