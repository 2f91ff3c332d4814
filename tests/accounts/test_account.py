"""The caller's own account: profile, roles, export, deletion."""

from __future__ import annotations

from documents.accounts.audit import AuditEvent, AuditKind
from documents.accounts.one_time_tokens import OneTimeToken
from documents.accounts.profiles import CustomerProfile, ProviderProfile
from documents.accounts.sessions import RefreshToken, Session
from documents.accounts.users import DELETED_USER_NAME, User, UserStatus
from documents.notifications.preferences import NotificationPreferences, Phone
from tests.support.graphql_client import (
    ME,
    STRONG_PASSWORD,
    GraphQLClient,
    error_codes,
    graphql_error_codes,
)
from tests.support.marketplace import object_id, place

PROFILE = "user { name phone roles }"


async def test_me_requires_a_login(client: GraphQLClient) -> None:
    assert graphql_error_codes(await client.execute(ME)) == ["UNAUTHENTICATED"]


async def test_update_profile_changes_only_what_is_given(client: GraphQLClient) -> None:
    tokens = await client.member("dan@example.com", phone="+14155550123")
    payload = await client.mutate(
        "updateProfile", {"name": "  Dan   Smith "}, PROFILE, token=tokens.access
    )
    assert payload["errors"] == []
    assert payload["user"] == {"name": "Dan Smith", "phone": "+14155550123", "roles": ["POSTER"]}

    payload = await client.mutate("updateProfile", {"phone": None}, PROFILE, token=tokens.access)
    assert payload["user"]["phone"] is None and payload["user"]["name"] == "Dan Smith"
    assert await AuditEvent.find(AuditEvent.kind == AuditKind.PROFILE_UPDATED).count() == 2


async def test_bad_profile_input_changes_nothing(client: GraphQLClient) -> None:
    tokens = await client.member("eve@example.com")
    payload = await client.mutate(
        "updateProfile",
        {"name": "x" * 101, "phone": "call me", "roles": ["ADMIN"]},
        PROFILE,
        token=tokens.access,
    )
    assert sorted(error_codes(payload)) == ["FORBIDDEN", "INVALID_INPUT", "INVALID_INPUT"]
    assert payload["user"] is None
    user = await User.find_one()
    assert user is not None and user.name == "Test User" and user.roles == ["poster"]


async def test_changing_roles_is_audited(client: GraphQLClient) -> None:
    tokens = await client.member("fin@example.com")
    payload = await client.mutate(
        "updateProfile", {"roles": ["POSTER", "TASKER"]}, PROFILE, token=tokens.access
    )
    assert payload["user"]["roles"] == ["POSTER", "TASKER"]
    event = await AuditEvent.find_one(AuditEvent.kind == AuditKind.ROLE_CHANGED)
    assert event is not None and event.details == {
        "before": ["poster"],
        "after": ["poster", "tasker"],
    }


async def test_export_contains_my_data_but_no_secrets(client: GraphQLClient) -> None:
    tokens = await client.member("gil@example.com")
    wrong = await client.mutate(
        "exportMyData", {"password": "Not-It-123"}, "data", token=tokens.access
    )
    assert error_codes(wrong) == ["INVALID_CREDENTIALS"] and wrong["data"] is None

    payload = await client.mutate(
        "exportMyData", {"password": STRONG_PASSWORD}, "data", token=tokens.access
    )
    data = payload["data"]
    assert data["account"]["email"] == "gil@example.com"
    assert "password_hash" not in data["account"]
    assert len(data["sessions"]) == 1
    assert {e["kind"] for e in data["securityEvents"]} >= {"signup", "login_succeeded"}
    assert STRONG_PASSWORD not in str(data)
    assert data["notificationPreferences"] is None  # never chose: the defaults


async def test_export_contains_my_notification_choices_and_phone_but_no_code(
    client: GraphQLClient,
) -> None:
    tokens = await client.member("gil@example.com")
    await NotificationPreferences(
        user_id=object_id(tokens.user_id),
        phone=Phone(number="+14155550123", code_hash="secret-hash"),
    ).insert()
    payload = await client.mutate(
        "exportMyData", {"password": STRONG_PASSWORD}, "data", token=tokens.access
    )
    exported = payload["data"]["notificationPreferences"]
    assert exported["phone"]["number"] == "+14155550123"
    assert "code_hash" not in exported["phone"] and "secret-hash" not in str(payload)


async def test_deleting_an_account_erases_personal_data(client: GraphQLClient) -> None:
    tokens = await client.member("hal@example.com", phone="+14155550123")
    other_session = await client.login("hal@example.com")
    wrong = await client.mutate("deleteMyAccount", {"password": "Not-It-123"}, token=tokens.access)
    assert error_codes(wrong) == ["INVALID_CREDENTIALS"]
    assert await User.find_one(User.status == UserStatus.ACTIVE) is not None

    payload = await client.mutate(
        "deleteMyAccount", {"password": STRONG_PASSWORD}, "deletedUserId", token=tokens.access
    )
    assert payload["errors"] == [] and payload["deletedUserId"] == tokens.user_id

    user = await User.find_one()
    assert user is not None
    assert user.status is UserStatus.DELETED and user.name == DELETED_USER_NAME
    assert user.email is None and user.phone is None and user.password_hash is None
    assert await RefreshToken.count() == 0 and await OneTimeToken.count() == 0
    assert await Session.find(Session.revoked_at == None).count() == 0  # noqa: E711
    assert await Session.find(Session.ip != None).count() == 0  # noqa: E711
    for access in (tokens.access, other_session.access):
        assert graphql_error_codes(await client.execute(ME, token=access)) == ["INVALID_TOKEN"]
    assert error_codes(
        await client.mutate("login", {"email": "hal@example.com", "password": STRONG_PASSWORD})
    ) == ["INVALID_CREDENTIALS"]
    # The security record stays; the address is free for a new account.
    assert await AuditEvent.find(AuditEvent.kind == AuditKind.ACCOUNT_DELETED).count() == 1
    await client.sign_up("hal@example.com")


async def test_deleting_an_account_erases_where_its_profiles_say_they_are(
    client: GraphQLClient,
) -> None:
    tokens = await client.member("ivo@example.com", roles=("POSTER", "TASKER"))
    await client.mutate(
        "updateProviderProfile",
        {"bio": "I live at the lighthouse", "location": place()},
        token=tokens.access,
    )
    await client.mutate("saveAddress", {"label": "Home", "location": place()}, token=tokens.access)
    await client.mutate("deleteMyAccount", {"password": STRONG_PASSWORD}, token=tokens.access)

    provider = await ProviderProfile.find_one()
    customer = await CustomerProfile.find_one()
    assert (
        provider is not None
        and provider.place is None
        and provider.bio == ""
        and not provider.available
    )
    assert customer is not None and customer.addresses == []
