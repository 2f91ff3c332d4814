"""Sign-up: validation, case-insensitive unique e-mail, verification mail, audit."""

from __future__ import annotations

import asyncio

from documents.accounts.audit import AuditEvent, AuditKind
from documents.accounts.users import User
from integrations.mail import MemoryMailer
from server.runtime import Runtime
from tests.support.graphql_client import STRONG_PASSWORD, GraphQLClient, error_codes

SIGN_UP_FIELDS = "user { id }"
ADDRESS_TAKEN = "Someone tried to sign up with your address"


def sign_up_input(email: str = "ana@example.com", **changes: object) -> dict[str, object]:
    return {
        "name": "Ana",
        "email": email,
        "password": STRONG_PASSWORD,
        "roles": ["POSTER"],
        **changes,
    }


async def test_sign_up_creates_an_unverified_account_and_mails_a_link(
    client: GraphQLClient, outbox: MemoryMailer
) -> None:
    payload = await client.mutate(
        "signUp", sign_up_input(roles=["POSTER", "TASKER"]), SIGN_UP_FIELDS
    )
    assert payload == {"errors": [], "user": None}

    stored = await User.find_one(User.email_key == "ana@example.com")
    assert stored is not None and stored.email_verified_at is None
    assert stored.name == "Ana" and stored.roles == ["poster", "tasker"]
    assert stored.password_hash is not None and stored.password_hash.startswith("$argon2id$")
    assert STRONG_PASSWORD not in stored.password_hash

    mail = await outbox.wait_for(lambda m: m.to == "ana@example.com")
    assert "verify-email?token=" in mail.text
    assert await AuditEvent.find(AuditEvent.kind == AuditKind.SIGNUP).count() == 1


async def test_email_is_unique_ignoring_case(client: GraphQLClient, outbox: MemoryMailer) -> None:
    await client.sign_up("Ana@Example.com")
    payload = await client.mutate("signUp", sign_up_input("aNA@example.COM"), SIGN_UP_FIELDS)
    assert payload == {"errors": [], "user": None}
    assert await User.count() == 1
    await outbox.wait_for(lambda m: m.subject == ADDRESS_TAKEN)


async def test_concurrent_sign_ups_for_one_address_create_one_account(
    client: GraphQLClient, outbox: MemoryMailer, runtime: Runtime
) -> None:
    addresses = ["race@example.com", "Race@Example.com"] * 2
    results = await asyncio.gather(
        *(client.mutate("signUp", sign_up_input(address), SIGN_UP_FIELDS) for address in addresses)
    )
    assert all(r == {"errors": [], "user": None} for r in results)
    assert await User.count() == 1
    # One confirmation link for the winner, and a note for each sign-up that lost.
    await runtime.services.postman.drain()
    assert sorted(m.subject for m in outbox.outbox) == [
        "Confirm your e-mail address",
        *[ADDRESS_TAKEN] * 3,
    ]


async def test_weak_passwords_are_refused_and_nothing_is_stored(client: GraphQLClient) -> None:
    for password in [
        "Sh0rt!",
        "alllowercase1!",
        "ALLUPPERCASE1!",
        "NoDigitsHere!",
        "NoSymbols123",
        "P@ssw0rd",
        "Password1!",
        "Summer2024!",
    ]:
        payload = await client.mutate("signUp", sign_up_input(password=password), SIGN_UP_FIELDS)
        assert error_codes(payload) == ["WEAK_PASSWORD"], password
        assert payload["errors"][0]["field"] == "password"
    assert await User.count() == 0
    assert await AuditEvent.count() == 0


async def test_every_invalid_field_is_reported_at_once(client: GraphQLClient) -> None:
    payload = await client.mutate(
        "signUp",
        {"name": "  ", "email": "not-an-address", "password": "weak", "roles": [], "phone": "12"},
        SIGN_UP_FIELDS,
    )
    assert {(e["field"], e["code"]) for e in payload["errors"]} == {
        ("name", "INVALID_INPUT"),
        ("email", "INVALID_EMAIL"),
        ("password", "WEAK_PASSWORD"),
        ("roles", "INVALID_INPUT"),
        ("phone", "INVALID_INPUT"),
    }
    assert await User.count() == 0


async def test_admin_role_cannot_be_chosen_at_sign_up(client: GraphQLClient) -> None:
    payload = await client.mutate("signUp", sign_up_input(roles=["ADMIN"]), SIGN_UP_FIELDS)
    assert error_codes(payload) == ["FORBIDDEN"]
    assert await User.count() == 0


async def test_phone_is_normalised_to_e164(client: GraphQLClient) -> None:
    payload = await client.mutate(
        "signUp", sign_up_input(phone="+61 (2) 9876-5432"), SIGN_UP_FIELDS
    )
    assert payload["errors"] == []
    stored = await User.find_one()
    assert stored is not None and stored.phone == "+61298765432"
