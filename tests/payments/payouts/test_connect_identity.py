"""Identity verification of providers: sessions through GraphQL, status from the gateway's
events (through the sandbox and the webhook inbox)."""

from __future__ import annotations

from typing import Any

from documents.accounts.profiles import IdentityVerification, ProviderProfile
from documents.events import DomainEvent, EventKind
from documents.payments.webhooks import WebhookStatus
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient, Tokens, error_codes
from tests.support.marketplace import poster, tasker
from tests.support.payments.escrow import sandbox
from tests.support.payments.wallets import MY_PAYOUT_ACCOUNT, user_id
from tests.support.payments.webhooks import received, stored, stripe_event

STARTED = "url clientSecret identityVerification"


async def start(client: GraphQLClient, who: Tokens, **input: Any) -> dict[str, Any]:
    return await client.mutate("startIdentityVerification", input, STARTED, token=who.access)


async def verification(client: GraphQLClient, who: Tokens) -> str:
    data = await client.data(MY_PAYOUT_ACCOUNT, token=who.access)
    state: str = data["myPayoutAccount"]["identityVerification"]
    return state


async def session_of(who: Tokens) -> ProviderProfile:
    profile = await ProviderProfile.get(user_id(who))
    assert profile is not None and profile.identity_session_id is not None
    return profile


async def test_a_verified_session_verifies_the_provider(
    client: GraphQLClient, runtime: Runtime
) -> None:
    who = await tasker(client, "verify-me@example.com")

    started = await start(client, who)

    assert started["errors"] == []
    assert started["identityVerification"] == "PENDING"
    profile = await session_of(who)
    assert started["clientSecret"].startswith(profile.identity_session_id)
    assert profile.identity_session_status == "requires_input"

    gateway = sandbox(runtime)
    await gateway.verify_identity(profile.identity_session_id or "", ok=True)
    await gateway.drain()

    assert await verification(client, who) == "VERIFIED"
    assert (await session_of(who)).identity_session_status == "verified"
    events = DomainEvent.find(
        {"kind": EventKind.IDENTITY_VERIFICATION_UPDATED.value, "audience": user_id(who)}
    )
    assert await events.count() == 1
    again = await start(client, who)
    assert error_codes(again) == ["INVALID_STATE"]


async def test_a_failed_check_asks_for_input_and_the_provider_tries_again(
    client: GraphQLClient, runtime: Runtime
) -> None:
    who = await tasker(client, "try-again@example.com")
    await start(client, who)
    first = await session_of(who)
    gateway = sandbox(runtime)

    await gateway.verify_identity(first.identity_session_id or "", ok=False)
    await gateway.drain()

    assert await verification(client, who) == "UNVERIFIED"
    # The open session is handed out again...
    resumed = await start(client, who)
    assert resumed["identityVerification"] == "PENDING"
    assert resumed["clientSecret"].startswith(first.identity_session_id)
    # ...unless the provider starts over, with a session of its own.
    fresh = await start(client, who, startOver=True)
    second = await session_of(who)
    assert second.identity_session_id != first.identity_session_id
    assert second.identity_attempts == 2
    assert fresh["clientSecret"].startswith(second.identity_session_id)

    # The first session's late verdict no longer counts; the current one's does.
    await gateway.verify_identity(first.identity_session_id or "", ok=True)
    await gateway.verify_identity(second.identity_session_id or "", ok=True)
    await gateway.drain()
    assert await verification(client, who) == "VERIFIED"


async def deliver_session_event(
    runtime: Runtime, event_type: str, session: dict[str, Any], created: int | None = None
) -> str:
    return await received(runtime.services, stripe_event(event_type, session, created=created))


async def test_only_a_verified_event_verifies_and_a_canceled_session_unverifies(
    client: GraphQLClient, runtime: Runtime
) -> None:
    who = await tasker(client, "cancelled-check@example.com")
    await start(client, who)
    profile = await session_of(who)
    session = {
        "id": profile.identity_session_id,
        "object": "identity.verification_session",
        "metadata": {"user_id": str(user_id(who))},
        # A payload claiming verified does not count on an event that is not `.verified`.
        "status": "verified",
    }

    processing = await deliver_session_event(
        runtime, "identity.verification_session.processing", session
    )
    assert (await stored(processing)).status is WebhookStatus.PROCESSED
    assert await verification(client, who) == "PENDING"
    assert error_codes(await start(client, who)) == ["INVALID_STATE"]  # being checked

    await deliver_session_event(runtime, "identity.verification_session.canceled", session)
    assert await verification(client, who) == "UNVERIFIED"

    # A canceled session is over: a late verified event of it changes nothing.
    await deliver_session_event(runtime, "identity.verification_session.verified", session)
    after = await session_of(who)
    assert after.identity_verification is IdentityVerification.UNVERIFIED
    assert after.identity_session_status == "canceled"


async def test_only_taskers_verify_their_identity(client: GraphQLClient) -> None:
    customer = await poster(client, "customer-identity@example.com")
    assert error_codes(await start(client, customer)) == ["FORBIDDEN"]
