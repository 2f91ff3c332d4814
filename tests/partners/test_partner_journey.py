"""A partner's whole journey against a real `gigql serve` with its background jobs: from
its application to a funded wallet, a transfer and a withdrawal paid to its bank, with
every webhook received by the partner's own server once, verified, in order per wallet;
the ledger verifies and the gateway reconciles clean afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from documents.partners.api_keys import ApiScope
from documents.settings import Settings
from resolvers.accounts.admin import create_admin
from resolvers.common.services import RequestMeta
from resolvers.payments.ledger_check import verify
from resolvers.payments.reconcile.against_gateway import reconcile
from server.runtime import Runtime
from tests.support.gigql_process import graphql, sharing_the_test_database
from tests.support.graphql_client import STRONG_PASSWORD, GraphQLClient
from tests.support.partners.receiver import Receiver, receiving
from tests.support.partners.steps import APPLICATION, new_key
from tests.support.payments.escrow import sandbox
from tests.support.payments.reconcile import next_second, until_now
from tests.support.payments.sandbox import choose, until

SERVER = {
    # The partner's server runs on this machine, as a partner's app in development would.
    "GIGQL_PARTNER_WEBHOOK_ALLOW_PRIVATE_HOSTS": "true",
    "GIGQL_PARTNER_WEBHOOK_SEND_INTERVAL": "PT0.2S",
    "GIGQL_PARTNER_WEBHOOK_RETRY_BASE": "PT0.5S",
    "GIGQL_SANDBOX_PAYOUT_DELAY": "PT1S",
}
TRANSACTION = "transaction { id kind status amount { amount } fee { amount } payoutId }"


@pytest.fixture
async def api(tmp_path: Path, settings: Settings) -> AsyncIterator[GraphQLClient]:
    """A separate `gigql serve` on the tests' database, running every background job."""
    async with (
        sharing_the_test_database(tmp_path, settings, **SERVER) as server,
        graphql(server) as client,
    ):
        yield client


async def _mutate(api: GraphQLClient, mutation: str, key: str, selection: str, **input: Any) -> Any:
    payload = await api.mutate(mutation, input, selection, token=key)
    assert payload["errors"] == [], payload
    return payload


async def test_a_partner_from_application_to_a_withdrawal_paid(
    api: GraphQLClient, runtime: Runtime
) -> None:
    start = await next_second()
    receiver = Receiver()
    async with receiving(receiver) as hook_url:
        # The business applies; an admin approves; the owner makes a key.
        owner = await api.member("owner@rosabank.example")
        applied = await api.mutate(
            "applyForPartnership",
            {**APPLICATION, "webhookUrl": hook_url},
            "partner { id status }",
            token=owner.access,
        )
        assert applied["errors"] == [] and applied["partner"]["status"] == "APPLIED", applied
        await create_admin(
            runtime.services,
            RequestMeta(),
            name="Ops",
            email="ops@example.com",
            password=STRONG_PASSWORD,
        )
        admin = await api.login("ops@example.com")
        approved = await api.mutate(
            "approvePartner",
            {"partnerId": applied["partner"]["id"], "creditFeeBp": 290},
            "partner { status }",
            token=admin.access,
        )
        assert approved["errors"] == [] and approved["partner"]["status"] == "APPROVED"
        scopes = tuple(scope.name for scope in ApiScope)
        key, _ = await new_key(api, owner, scopes=scopes)

        # The endpoint made from the application: the partner's server learns its secret.
        [endpoint] = (await api.data("{ webhookEndpoints { id url } }", token=key))[
            "webhookEndpoints"
        ]
        assert endpoint["url"] == hook_url
        revealed = await _mutate(
            api, "revealWebhookSecret", key, "secret", endpointId=endpoint["id"]
        )
        receiver.secret = revealed["secret"]

        # Two wallets of the partner's users; the first funded by card.
        wallets = []
        for external in ("alice-savings", "bob-savings"):
            made = await _mutate(
                api,
                "createWallet",
                key,
                "wallet { id }",
                externalUserId=external.split("-")[0],
                externalWalletId=external,
                name=f"{external} circle",
                currency="USD",
                metadata={"round": 3},
            )
            wallets.append(made["wallet"]["id"])
        alice, bob = wallets
        credit = await _mutate(
            api,
            "creditWallet",
            key,
            f"clientSecret {TRANSACTION}",
            walletId=alice,
            amount={"amount": 10_000, "currency": "USD"},
            description="Contribution week 3",
            idempotencyKey="credit-1",
        )
        assert credit["clientSecret"] and credit["transaction"]["status"] == "PENDING"
        await _mutate(
            api,
            "sandboxPayCredit",
            key,
            TRANSACTION,
            transactionId=credit["transaction"]["id"],
            outcome="SUCCEEDED",
        )

        async def balance_of(wallet: str, expected: int) -> int | None:
            data = await api.data(
                "query($id: ID!) { node(id: $id) { ... on PartnerWallet { balance { amount } } } }",
                {"id": wallet},
                token=key,
            )
            found: int = data["node"]["balance"]["amount"]
            return found if found == expected else None

        # The card payment's webhook reaches gigql through the sandbox: 10,000 less 2.9 %.
        await until(lambda: balance_of(alice, 9_710), timeout=30)

        transfer = await _mutate(
            api,
            "transferBetweenWallets",
            key,
            TRANSACTION,
            fromWalletId=alice,
            toWalletId=bob,
            amount={"amount": 2_500, "currency": "USD"},
            idempotencyKey="transfer-1",
        )
        assert transfer["transaction"]["status"] == "COMPLETED"
        assert await balance_of(bob, 2_500) == 2_500

        # The owner sets up the payout account on the sandbox's onboarding page.
        onboarding = await api.mutate(
            "startPartnerPayoutOnboarding",
            {"country": "US"},
            "onboardingUrl",
            token=owner.access,
        )
        assert onboarding["errors"] == [], onboarding
        async with httpx.AsyncClient(timeout=30) as browser:
            done = await choose(browser, onboarding["onboardingUrl"], "complete")
        assert done.status_code == 303

        async def payouts_enabled() -> bool | None:
            data = await api.data("{ partner { payoutsEnabled } }", token=key)
            return True if data["partner"]["payoutsEnabled"] else None

        await until(payouts_enabled, timeout=30)
        withdrawal = await _mutate(
            api,
            "withdrawFromWallet",
            key,
            TRANSACTION,
            walletId=bob,
            amount={"amount": 2_000, "currency": "USD"},
            idempotencyKey="withdraw-1",
        )
        withdrawal_id = withdrawal["transaction"]["id"]

        async def paid() -> str | None:
            data = await api.data(
                "query($id: ID!) { node(id: $id) { ... on PartnerTransaction { status } } }",
                {"id": withdrawal_id},
                token=key,
            )
            status: str = data["node"]["status"]
            return status if status == "COMPLETED" else None

        # The sandbox's bank pays it a second later; payout.paid completes it.
        await until(paid, timeout=30)
        assert await balance_of(bob, 500) == 500

        expected = {
            alice: ["wallet.funds_added", "transaction.completed", "transaction.completed"],
            bob: [
                "wallet.funds_added",
                "transaction.completed",
                "payout.processed",
                "transaction.completed",
            ],
        }

        def received_all() -> bool | None:
            return True if len(receiver.accepted) >= sum(map(len, expected.values())) else None

        async def all_received() -> bool | None:
            return received_all()

        await until(all_received, timeout=30)

    # Every post verified under the endpoint's secret; each event once, in order per wallet.
    assert receiver.unverified == []
    ids = [event["id"] for event in receiver.accepted]
    assert len(ids) == len(set(ids)), ids
    for wallet, types in expected.items():
        events = [e for e in receiver.accepted if e["data"]["object"]["wallet"]["id"] == wallet]
        assert [e["type"] for e in events] == types, (wallet, events)
        assert [e["sequence"] for e in events] == sorted(e["sequence"] for e in events)
    last_of_bob = [e for e in receiver.accepted if e["data"]["object"]["wallet"]["id"] == bob][-1]
    assert last_of_bob["data"]["object"]["wallet"]["balance"] == 500
    assert last_of_bob["data"]["object"]["wallet"]["externalWalletId"] == "bob-savings"

    # The books: the ledger verifies and the gateway reconciles clean.
    report = await verify()
    assert report.ok, report
    reconciled = await reconcile(sandbox(runtime), start, until_now())
    assert reconciled.ok, reconciled
