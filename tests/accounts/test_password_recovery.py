"""Forgot, reset and change password."""

from __future__ import annotations

from datetime import timedelta

from documents.accounts.audit import AuditEvent, AuditKind
from documents.accounts.one_time_tokens import OneTimeToken
from documents.accounts.users import User
from documents.clock import utcnow
from integrations.mail import MemoryMailer
from server.runtime import Runtime
from tests.support.graphql_client import (
    ME,
    STRONG_PASSWORD,
    GraphQLClient,
    error_codes,
    graphql_error_codes,
)
from tests.support.mail_links import mailed_token

NEW_PASSWORD = "Brand-New-Secret-77"


async def _reset_token(client: GraphQLClient, outbox: MemoryMailer, email: str) -> str:
    payload = await client.mutate("requestPasswordReset", {"email": email})
    assert payload["errors"] == []
    return await mailed_token(outbox, email, "Reset")


async def test_reset_sets_the_password_and_ends_every_session(
    client: GraphQLClient, outbox: MemoryMailer
) -> None:
    tokens = await client.member("yan@example.com")
    token = await _reset_token(client, outbox, "yan@example.com")
    assert "1 hour" in outbox.outbox[-1].text

    payload = await client.mutate(
        "resetPassword", {"token": token, "newPassword": NEW_PASSWORD}, "user { id }"
    )
    assert payload["errors"] == [] and payload["user"]["id"] == tokens.user_id

    assert graphql_error_codes(await client.execute(ME, token=tokens.access)) == ["SESSION_REVOKED"]
    refreshed = await client.mutate("refreshToken", {"refreshToken": tokens.refresh})
    assert error_codes(refreshed) == ["SESSION_REVOKED"]
    failed = await client.mutate("login", {"email": "yan@example.com", "password": STRONG_PASSWORD})
    assert error_codes(failed) == ["INVALID_CREDENTIALS"]
    await client.login("yan@example.com", NEW_PASSWORD)
    assert await AuditEvent.find(AuditEvent.kind == AuditKind.PASSWORD_RESET).count() == 1

    again = await client.mutate(
        "resetPassword", {"token": token, "newPassword": "Another-Secret-88"}
    )
    assert error_codes(again) == ["INVALID_TOKEN"]


async def test_a_weak_new_password_changes_nothing_and_keeps_the_token(
    client: GraphQLClient, outbox: MemoryMailer
) -> None:
    tokens = await client.member("zed@example.com")
    token = await _reset_token(client, outbox, "zed@example.com")
    weak = await client.mutate("resetPassword", {"token": token, "newPassword": "password"})
    assert error_codes(weak) == ["WEAK_PASSWORD"] and weak["errors"][0]["field"] == "newPassword"
    await client.data(ME, token=tokens.access)  # sessions untouched
    assert (await client.mutate("resetPassword", {"token": token, "newPassword": NEW_PASSWORD}))[
        "errors"
    ] == []


async def test_reset_tokens_expire_after_an_hour(
    client: GraphQLClient, outbox: MemoryMailer
) -> None:
    await client.sign_up("abe@example.com")
    token = await _reset_token(client, outbox, "abe@example.com")
    stored = await OneTimeToken.find_one(OneTimeToken.purpose == "reset_password")
    assert stored is not None
    assert timedelta(minutes=59) < stored.expires_at - stored.created_at <= timedelta(hours=1)
    await OneTimeToken.get_pymongo_collection().update_many(
        {}, {"$set": {"expires_at": utcnow() - timedelta(seconds=1)}}
    )
    assert error_codes(
        await client.mutate("resetPassword", {"token": token, "newPassword": NEW_PASSWORD})
    ) == ["TOKEN_EXPIRED"]


async def test_reset_unlocks_a_locked_account(client: GraphQLClient, outbox: MemoryMailer) -> None:
    await client.sign_up("bea@example.com")
    for _ in range(5):
        await client.mutate("login", {"email": "bea@example.com", "password": "Wrong-Pass-1"})
    token = await _reset_token(client, outbox, "bea@example.com")
    await client.mutate("resetPassword", {"token": token, "newPassword": NEW_PASSWORD})
    await client.login("bea@example.com", NEW_PASSWORD)


async def test_unknown_addresses_get_the_same_answer_and_no_mail(
    client: GraphQLClient, outbox: MemoryMailer, runtime: Runtime
) -> None:
    payload = await client.mutate("requestPasswordReset", {"email": "ghost@example.com"})
    assert payload["errors"] == []
    await runtime.services.postman.drain()
    assert outbox.outbox == []
    assert await OneTimeToken.count() == 0


async def test_change_password_keeps_this_session_and_ends_the_others(
    client: GraphQLClient,
) -> None:
    await client.sign_up("cal@example.com")
    this = await client.login("cal@example.com")
    other = await client.login("cal@example.com")

    wrong = await client.mutate(
        "changePassword",
        {"currentPassword": "Not-It-123", "newPassword": NEW_PASSWORD},
        token=this.access,
    )
    assert (
        error_codes(wrong) == ["INVALID_CREDENTIALS"]
        and wrong["errors"][0]["field"] == "currentPassword"
    )
    same = await client.mutate(
        "changePassword",
        {"currentPassword": STRONG_PASSWORD, "newPassword": STRONG_PASSWORD},
        token=this.access,
    )
    assert error_codes(same) == ["INVALID_INPUT"]

    changed = await client.mutate(
        "changePassword",
        {"currentPassword": STRONG_PASSWORD, "newPassword": NEW_PASSWORD},
        "revokedSessions",
        token=this.access,
    )
    assert changed["errors"] == [] and changed["revokedSessions"] == 1
    await client.data(ME, token=this.access)
    assert graphql_error_codes(await client.execute(ME, token=other.access)) == ["SESSION_REVOKED"]
    await client.login("cal@example.com", NEW_PASSWORD)
    user = await User.find_one(User.email_key == "cal@example.com")
    assert user is not None
    assert await AuditEvent.find(AuditEvent.kind == AuditKind.PASSWORD_CHANGED).count() == 1
