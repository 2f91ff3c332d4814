"""E-mail verification: a short-lived, single-use token proves the address."""

from __future__ import annotations

from datetime import timedelta

from documents.accounts.audit import AuditEvent, AuditKind
from documents.accounts.one_time_tokens import OneTimeToken
from documents.clock import utcnow
from integrations.mail import MemoryMailer
from server.runtime import Runtime
from tests.support.graphql_client import ME, GraphQLClient, error_codes
from tests.support.mail_links import mailed_token


async def test_the_mailed_token_verifies_the_address_once(
    client: GraphQLClient, outbox: MemoryMailer
) -> None:
    tokens = await client.member("uma@example.com")
    token = await mailed_token(outbox, "uma@example.com", "Confirm")
    assert (await client.data(ME, token=tokens.access))["me"]["emailVerified"] is False

    payload = await client.mutate("verifyEmail", {"token": token}, "user { id }")
    assert payload["errors"] == [] and payload["user"]["id"] == tokens.user_id
    assert (await client.data(ME, token=tokens.access))["me"]["emailVerified"] is True
    assert await AuditEvent.find(AuditEvent.kind == AuditKind.EMAIL_VERIFIED).count() == 1

    again = await client.mutate("verifyEmail", {"token": token}, "user { id }")
    assert error_codes(again) == ["INVALID_TOKEN"] and again["user"] is None


async def test_an_expired_token_is_refused(client: GraphQLClient, outbox: MemoryMailer) -> None:
    await client.sign_up("vic@example.com")
    token = await mailed_token(outbox, "vic@example.com", "Confirm")
    await OneTimeToken.get_pymongo_collection().update_many(
        {}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}}
    )
    payload = await client.mutate("verifyEmail", {"token": token})
    assert error_codes(payload) == ["TOKEN_EXPIRED"]


async def test_a_resent_link_replaces_the_previous_one(
    client: GraphQLClient, outbox: MemoryMailer
) -> None:
    await client.sign_up("wes@example.com")
    first = await mailed_token(outbox, "wes@example.com", "Confirm")
    outbox.outbox.clear()
    payload = await client.mutate("resendVerificationEmail", {"email": "WES@example.com"})
    assert payload["errors"] == []
    second = await mailed_token(outbox, "wes@example.com", "Confirm")
    assert second != first
    assert error_codes(await client.mutate("verifyEmail", {"token": first})) == ["INVALID_TOKEN"]
    assert (await client.mutate("verifyEmail", {"token": second}))["errors"] == []


async def test_resending_reveals_nothing_about_unknown_addresses(
    client: GraphQLClient, outbox: MemoryMailer, runtime: Runtime
) -> None:
    payload = await client.mutate("resendVerificationEmail", {"email": "nobody@example.com"})
    assert payload["errors"] == []
    await runtime.services.postman.drain()
    assert outbox.outbox == []


async def test_link_mails_per_address_are_limited(
    client: GraphQLClient, outbox: MemoryMailer, runtime: Runtime
) -> None:
    await client.sign_up("xan@example.com")  # the first mail
    for _ in range(6):
        await client.mutate("resendVerificationEmail", {"email": "xan@example.com"})
    await runtime.services.postman.drain()
    assert len([m for m in outbox.outbox if m.to == "xan@example.com"]) == 5


async def test_verifying_answers_with_the_accounts_own_verification_and_status(
    client: GraphQLClient, outbox: MemoryMailer
) -> None:
    tokens = await client.member("ida@example.com", phone="+14155550123")
    token = await mailed_token(outbox, "ida@example.com", "Confirm")
    payload = await client.mutate(
        "verifyEmail", {"token": token}, "account { email emailVerified status user { id } }"
    )
    assert payload["errors"] == [], payload
    assert payload["account"] == {
        "email": "ida@example.com",
        "emailVerified": True,
        "status": "ACTIVE",
        "user": {"id": tokens.user_id},
    }
