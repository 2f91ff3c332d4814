"""A partner's payout account: onboarding through the sandbox's page, and
`account.updated` keeping its payouts flag."""

from __future__ import annotations

from typing import Any

import httpx

from documents.partners.partners import Partner
from documents.payments.webhooks import WebhookStatus
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient, Tokens, error_codes
from tests.support.partners.steps import PartnerSetup, applied_partner, approved_partner
from tests.support.payments.escrow import sandbox
from tests.support.payments.sandbox import choose, until
from tests.support.payments.webhooks import received, stored, stripe_event

PAYOUTS = "{ myPartner { payoutsEnabled } }"


async def _onboard(
    client: GraphQLClient, who: Tokens, country: str | None = None
) -> dict[str, Any]:
    return await client.mutate(
        "startPartnerPayoutOnboarding",
        {"country": country},
        "onboardingUrl expiresAt partner { payoutsEnabled }",
        token=who.access,
    )


async def _account_of(setup: PartnerSetup) -> str:
    partner = await Partner.get(setup.oid)
    assert partner is not None and partner.stripe_account_id is not None
    return partner.stripe_account_id


async def _account_updated(
    runtime: Runtime, account_id: str, *, enabled: bool, on: str | None, created: int | None = None
) -> WebhookStatus:
    """A signed `account.updated` through the inbox (`on`: the account it happened on)."""
    account = {
        "id": account_id,
        "object": "account",
        "payouts_enabled": enabled,
        "charges_enabled": False,
        "details_submitted": enabled,
    }
    body = stripe_event("account.updated", account, account=on, created=created)
    return (await stored(await received(runtime.services, body))).status


async def test_onboarding_through_the_sandbox_page_enables_payouts(
    client: GraphQLClient, runtime: Runtime, base_url: str
) -> None:
    setup = await approved_partner(client, runtime)
    first = await _onboard(client, setup.owner)
    assert first["errors"] == [] and first["partner"] == {"payoutsEnabled": False}
    link = first["onboardingUrl"]
    assert link.startswith(f"{base_url}/sandbox/connect/onboarding/")
    account_id = await _account_of(setup)
    again = await _onboard(client, setup.owner, country="DE")
    assert again["errors"] == [] and again["onboardingUrl"] != link
    assert await _account_of(setup) == account_id

    async with httpx.AsyncClient(timeout=30) as browser:
        done = await choose(browser, link, "complete")
    assert done.status_code == 303
    assert done.headers["location"].endswith("/partners/payouts/onboarding/done")
    await sandbox(runtime).drain()

    async def enabled() -> bool | None:
        data = await client.data(PAYOUTS, token=setup.owner.access)
        return True if data["myPartner"]["payoutsEnabled"] else None

    assert await until(enabled)


async def test_only_an_approved_partners_owner_onboards(
    client: GraphQLClient, runtime: Runtime
) -> None:
    setup = await applied_partner(client, runtime)
    assert error_codes(await _onboard(client, setup.owner)) == ["INVALID_STATE"]
    stranger = await client.member("stranger@example.com")
    assert error_codes(await _onboard(client, stranger)) == ["FORBIDDEN"]
    bad = await _onboard(client, setup.owner, country="Germany")
    assert [(e["field"], e["code"]) for e in bad["errors"]] == [("country", "INVALID_INPUT")]
    partner = await Partner.get(setup.oid)
    assert partner is not None and partner.stripe_account_id is None


async def test_account_updated_keeps_the_partners_flag_in_order_and_on_its_account(
    client: GraphQLClient, runtime: Runtime
) -> None:
    setup = await approved_partner(client, runtime)
    assert (await _onboard(client, setup.owner))["errors"] == []
    account_id = await _account_of(setup)

    on = account_id
    assert await _account_updated(runtime, account_id, enabled=True, on=on) is (
        WebhookStatus.PROCESSED
    )
    assert (await client.data(PAYOUTS, token=setup.owner.access))["myPartner"] == {
        "payoutsEnabled": True
    }
    # An older event changes nothing.
    stale = await _account_updated(runtime, account_id, enabled=False, on=on, created=1_000)
    assert stale is WebhookStatus.PROCESSED
    partner = await Partner.get(setup.oid)
    assert partner is not None and partner.payouts_enabled is True
    # One that did not happen on the partner's account is rejected, whatever it says.
    for elsewhere in (None, "acct_someone_else"):
        refused = await _account_updated(runtime, account_id, enabled=False, on=elsewhere)
        assert refused is WebhookStatus.REJECTED
    partner = await Partner.get(setup.oid)
    assert partner is not None and partner.payouts_enabled is True
    # A newer one applies.
    await _account_updated(runtime, account_id, enabled=False, on=on)
    assert (await client.data(PAYOUTS, token=setup.owner.access))["myPartner"] == {
        "payoutsEnabled": False
    }
