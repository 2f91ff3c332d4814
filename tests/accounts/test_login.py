"""Login: tokens, lockout after repeated failures, per-IP throttling, rehashing."""

from __future__ import annotations

from datetime import timedelta

import jwt

from documents.accounts.audit import AuditEvent, AuditKind
from documents.accounts.throttle import PasswordLock
from documents.accounts.users import User
from documents.clock import utcnow
from resolvers.accounts.auth.tokens import digest
from server.runtime import Runtime
from tests.conftest import TEST_JWT_SECRET, serve
from tests.support.graphql_client import ME, STRONG_PASSWORD, GraphQLClient, error_codes

LOGIN_FIELDS = "user { id } tokens { accessToken refreshToken }"


async def test_login_returns_a_short_lived_access_token_and_a_refresh_token(
    client: GraphQLClient,
) -> None:
    await client.sign_up("bo@example.com")
    tokens = await client.login("BO@example.com", deviceName="Bo's phone")

    claims = jwt.decode(tokens.access, TEST_JWT_SECRET, algorithms=["HS256"], audience="gigql-api")
    assert claims["iss"] == "gigql"
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert {"sub", "jti", "sid"} <= claims.keys()
    assert tokens.refresh and len(tokens.refresh) >= 40

    me = (await client.data(ME, token=tokens.access))["me"]
    assert me["email"] == "bo@example.com" and me["id"] == tokens.user_id
    assert await AuditEvent.find(AuditEvent.kind == AuditKind.LOGIN_SUCCEEDED).count() == 1


async def test_wrong_password_and_unknown_account_fail_alike(client: GraphQLClient) -> None:
    await client.sign_up("cy@example.com")
    wrong = await client.mutate(
        "login", {"email": "cy@example.com", "password": "Wrong-Pass-1"}, LOGIN_FIELDS
    )
    unknown = await client.mutate(
        "login", {"email": "nobody@example.com", "password": "Wrong-Pass-1"}, LOGIN_FIELDS
    )
    assert error_codes(wrong) == error_codes(unknown) == ["INVALID_CREDENTIALS"]
    assert wrong["errors"][0]["message"] == unknown["errors"][0]["message"]
    assert wrong["tokens"] is None and unknown["tokens"] is None
    assert await AuditEvent.find(AuditEvent.kind == AuditKind.LOGIN_FAILED).count() == 2


async def test_five_failures_lock_the_account_for_fifteen_minutes(client: GraphQLClient) -> None:
    await client.sign_up("di@example.com")
    for attempt in range(5):
        payload = await client.mutate(
            "login", {"email": "di@example.com", "password": f"Wrong-{attempt}!aA"}, LOGIN_FIELDS
        )
    assert error_codes(payload) == ["ACCOUNT_LOCKED"]

    # Even the right password is refused while locked.
    payload = await client.mutate(
        "login", {"email": "di@example.com", "password": STRONG_PASSWORD}, LOGIN_FIELDS
    )
    assert error_codes(payload) == ["ACCOUNT_LOCKED"]
    lock = await PasswordLock.find_one()
    assert lock is not None and lock.locked_until is not None
    remaining = lock.locked_until - utcnow()
    assert timedelta(minutes=14) < remaining <= timedelta(minutes=15)
    assert await AuditEvent.find(AuditEvent.kind == AuditKind.ACCOUNT_LOCKED).count() == 1

    # When the lock has run out, the right password works and the count starts afresh.
    await PasswordLock.get_pymongo_collection().update_one(
        {"_id": lock.id}, {"$set": {"locked_until": utcnow() - timedelta(seconds=1)}}
    )
    await client.login("di@example.com")
    assert await PasswordLock.count() == 0


async def test_a_success_resets_the_failure_count(client: GraphQLClient) -> None:
    await client.sign_up("ed@example.com")
    for _ in range(4):
        await client.mutate(
            "login", {"email": "ed@example.com", "password": "Wrong-Pass-1"}, LOGIN_FIELDS
        )
    await client.login("ed@example.com")
    payload = await client.mutate(
        "login", {"email": "ed@example.com", "password": "Wrong-Pass-1"}, LOGIN_FIELDS
    )
    assert error_codes(payload) == ["INVALID_CREDENTIALS"]


async def test_failed_logins_are_throttled_per_client_ip(
    runtime: Runtime, client: GraphQLClient
) -> None:
    async with serve(runtime, login_ip_max_failures=3) as url:
        throttled = GraphQLClient(client.http.__class__(base_url=url))
        async with throttled.http:
            await throttled.sign_up("fay@example.com")
            for i in range(3):
                payload = await throttled.mutate(
                    "login",
                    {"email": f"guess{i}@example.com", "password": "Wrong-Pass-1"},
                    LOGIN_FIELDS,
                )
                assert error_codes(payload) == ["INVALID_CREDENTIALS"]
            # The IP is now refused, whatever the account and even with the right password.
            payload = await throttled.mutate(
                "login", {"email": "fay@example.com", "password": STRONG_PASSWORD}, LOGIN_FIELDS
            )
            assert error_codes(payload) == ["TOO_MANY_ATTEMPTS"]
            # The refused attempt counted nothing against the account.
            assert await PasswordLock.find_one({"key": digest("fay@example.com")}) is None


async def test_login_rehashes_when_the_hash_parameters_change(
    runtime: Runtime, client: GraphQLClient
) -> None:
    await client.sign_up("gus@example.com")
    before = await User.find_one(User.email_key == "gus@example.com")
    assert (
        before is not None and before.password_hash is not None and "m=1024" in before.password_hash
    )
    async with serve(runtime, argon2_memory_cost_kib=2048) as url:
        stronger = GraphQLClient(client.http.__class__(base_url=url))
        async with stronger.http:
            await stronger.login("gus@example.com")
    after = await User.get(before.id)
    assert after is not None and after.password_hash is not None and "m=2048" in after.password_hash
    await client.login("gus@example.com")  # the new hash still verifies


async def test_the_login_payload_carries_the_accounts_own_private_fields(
    client: GraphQLClient,
) -> None:
    """A client that just logged in has no token in that request yet: `user` is the
    public node, whose private fields read null; `account` gives them."""
    await client.sign_up("al@example.com", roles=("POSTER", "TASKER"))
    payload = await client.mutate(
        "login",
        {"email": "al@example.com", "password": STRONG_PASSWORD},
        "user { id email status } account { email emailVerified status roles user { id } }",
    )
    assert payload["errors"] == [], payload
    user_id = payload["user"]["id"]
    assert payload["user"] == {"id": user_id, "email": None, "status": None}
    assert payload["account"] == {
        "email": "al@example.com",
        "emailVerified": False,
        "status": "ACTIVE",
        "roles": ["POSTER", "TASKER"],
        "user": {"id": user_id},
    }
    wrong = await client.mutate(
        "login", {"email": "al@example.com", "password": "Wrong-Pass-1"}, "account { email }"
    )
    assert error_codes(wrong) == ["INVALID_CREDENTIALS"] and wrong["account"] is None
