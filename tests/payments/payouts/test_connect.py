"""Connect onboarding of providers and `account.updated`, through GraphQL and the sandbox."""

from __future__ import annotations

import asyncio
from typing import Any

from documents.accounts.profiles import ProviderProfile
from documents.events import DomainEvent, EventKind
from documents.payments.webhooks import WebhookStatus
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient, error_codes
from tests.support.marketplace import poster, tasker
from tests.support.payments.escrow import sandbox
from tests.support.payments.wallets import (
    MY_PAYOUT_ACCOUNT,
    onboarded_provider,
    start_onboarding,
    stripe_account_of,
    user_id,
)
from tests.support.payments.webhooks import received, stored, stripe_event


def account_object(account_id: str, *, payouts_enabled: bool) -> dict[str, Any]:
    return {
        "id": account_id,
        "object": "account",
        "payouts_enabled": payouts_enabled,
        "charges_enabled": False,
        "details_submitted": payouts_enabled,
    }


async def deliver_account_updated(
    runtime: Runtime, account: dict[str, Any], created: int | None = None
) -> str:
    """A signed `account.updated` as Stripe sends it, through the webhook inbox."""
    body = stripe_event("account.updated", account, account=account["id"], created=created)
    return await received(runtime.services, body)


async def test_onboarding_creates_one_account_and_account_updated_enables_payouts(
    client: GraphQLClient, runtime: Runtime, base_url: str
) -> None:
    who = await tasker(client, "onboard@example.com")

    first = await start_onboarding(client, who)
    assert first["errors"] == []
    # The sandbox's onboarding page, on the server the request came to.
    assert first["onboardingUrl"].startswith(f"{base_url}/sandbox/connect/onboarding/")
    assert first["payoutAccount"] == {
        "connected": True,
        "payoutsEnabled": False,
        "detailsSubmitted": False,
        "identityVerification": "UNVERIFIED",
    }
    account_id = await stripe_account_of(who)
    again = await start_onboarding(client, who, country="DE")
    assert again["errors"] == [] and again["onboardingUrl"]
    assert await stripe_account_of(who) == account_id

    await sandbox(runtime).complete_onboarding(account_id)
    await sandbox(runtime).drain()

    data = await client.data(MY_PAYOUT_ACCOUNT, token=who.access)
    assert data["myPayoutAccount"] == {
        "connected": True,
        "payoutsEnabled": True,
        "chargesEnabled": False,
        "detailsSubmitted": True,
        "identityVerification": "UNVERIFIED",
    }
    events = await DomainEvent.find(
        {"kind": EventKind.PAYOUT_ACCOUNT_UPDATED.value, "audience": user_id(who)}
    ).to_list()
    assert len(events) == 1
    assert events[0].data["flags"]["payouts_enabled"] is True


async def test_concurrent_onboarding_requests_share_one_account(
    client: GraphQLClient, runtime: Runtime
) -> None:
    who = await tasker(client, "racing-onboard@example.com")

    payloads = await asyncio.gather(*(start_onboarding(client, who) for _ in range(5)))

    assert all(p["errors"] == [] for p in payloads)
    account_id = await stripe_account_of(who)
    profiles = await ProviderProfile.find({"stripe_account_id": account_id}).to_list()
    assert [p.id for p in profiles] == [user_id(who)]


async def test_only_taskers_onboard_and_a_bad_country_changes_nothing(
    client: GraphQLClient,
) -> None:
    customer = await poster(client, "customer-onboard@example.com")
    refused = await start_onboarding(client, customer)
    assert error_codes(refused) == ["FORBIDDEN"]

    who = await tasker(client, "bad-country@example.com")
    bad = await start_onboarding(client, who, country="Germany")
    assert error_codes(bad) == ["INVALID_INPUT"]
    assert bad["errors"][0]["field"] == "country"
    assert await ProviderProfile.get(user_id(who)) is None

    data = await client.data(MY_PAYOUT_ACCOUNT, token=who.access)
    assert data["myPayoutAccount"]["connected"] is False


async def test_an_older_account_updated_does_not_undo_a_newer_one(
    client: GraphQLClient, runtime: Runtime
) -> None:
    who = await onboarded_provider(client, runtime, "stale-update@example.com")
    account_id = await stripe_account_of(who)

    stale = await deliver_account_updated(
        runtime, account_object(account_id, payouts_enabled=False), created=1_000_000_000
    )

    assert (await stored(stale)).status is WebhookStatus.PROCESSED
    profile = await ProviderProfile.get(user_id(who))
    assert profile is not None and profile.payouts_enabled is True

    # A newer one applies: the gateway disabled payouts (say, documents expired).
    await deliver_account_updated(runtime, account_object(account_id, payouts_enabled=False))
    data = await client.data(MY_PAYOUT_ACCOUNT, token=who.access)
    assert data["myPayoutAccount"]["payoutsEnabled"] is False


async def test_account_updated_for_an_unknown_account_is_acknowledged_and_ignored(
    runtime: Runtime,
) -> None:
    event_id = await deliver_account_updated(
        runtime, account_object("acct_not_ours", payouts_enabled=True)
    )

    assert (await stored(event_id)).status is WebhookStatus.PROCESSED
    assert await ProviderProfile.find({"payouts_enabled": True}).count() == 0
