"""Admins: created by command only; suspend and reinstate accounts; read the audit log."""

from __future__ import annotations

from documents.accounts.audit import AuditEvent, AuditKind
from documents.accounts.users import User, UserStatus
from resolvers.accounts.admin import create_admin
from resolvers.common.services import RequestMeta
from server.runtime import Runtime
from tests.support.graphql_client import (
    ME,
    STRONG_PASSWORD,
    GraphQLClient,
    error_codes,
    graphql_error_codes,
)
from tests.support.marketplace import logged_in_admin

AUDIT = """query($first: Int, $after: String, $kind: AuditEventKind, $user: ID) {
  auditEvents(first: $first, after: $after, kind: $kind, userId: $user) {
    edges { cursor node { id kind at ip userAgent requestId details user { id name } actor { id } } }
    pageInfo { hasNextPage hasPreviousPage endCursor }
  }
}"""


async def test_suspension_stops_the_account_at_once(
    runtime: Runtime, client: GraphQLClient
) -> None:
    admin = await logged_in_admin(client, runtime)
    member = await client.member("ida@example.com")

    payload = await client.mutate(
        "suspendUser",
        {"userId": member.user_id, "reason": "fraud report"},
        "user { id status }",
        token=admin.access,
    )
    assert payload["errors"] == [] and payload["user"]["status"] == "SUSPENDED"
    assert graphql_error_codes(await client.execute(ME, token=member.access)) == [
        "ACCOUNT_SUSPENDED"
    ]
    login = await client.mutate("login", {"email": "ida@example.com", "password": STRONG_PASSWORD})
    assert error_codes(login) == ["ACCOUNT_SUSPENDED"]

    again = await client.mutate(
        "suspendUser", {"userId": member.user_id, "reason": "again"}, token=admin.access
    )
    assert error_codes(again) == ["INVALID_STATE"]

    payload = await client.mutate(
        "reinstateUser", {"userId": member.user_id}, "user { status }", token=admin.access
    )
    assert payload["user"]["status"] == "ACTIVE"
    await client.login("ida@example.com")


async def test_only_admins_may_suspend(runtime: Runtime, client: GraphQLClient) -> None:
    member = await client.member("jan@example.com")
    victim = await client.member("kai@example.com")
    result = await client.execute(
        "mutation($i: SuspendUserInput!) { suspendUser(input: $i) { errors { code } } }",
        {"i": {"userId": victim.user_id, "reason": "spite"}},
        token=member.access,
    )
    assert graphql_error_codes(result) == ["FORBIDDEN"]
    user = await User.find_one(User.email_key == "kai@example.com")
    assert user is not None and user.status is UserStatus.ACTIVE


async def test_suspension_input_is_validated(runtime: Runtime, client: GraphQLClient) -> None:
    admin = await logged_in_admin(client, runtime)
    self_suspend = await client.mutate(
        "suspendUser", {"userId": admin.user_id, "reason": " "}, token=admin.access
    )
    assert sorted(error_codes(self_suspend)) == ["FORBIDDEN", "INVALID_INPUT"]
    wrong_kind = await client.mutate(
        "suspendUser",
        {"userId": "U2Vzc2lvbjo2YjAyNGY0ZDRmZTM3NTVmMjM1YWY1M2E=", "reason": "x"},
        token=admin.access,
    )
    assert error_codes(wrong_kind) == ["INVALID_ID"]


async def test_admins_page_through_the_audit_log(runtime: Runtime, client: GraphQLClient) -> None:
    admin = await logged_in_admin(client, runtime)
    member = await client.member("lou@example.com")
    for _ in range(2):
        await client.mutate("login", {"email": "lou@example.com", "password": "Wrong-Pass-1"})

    first = (await client.data(AUDIT, {"first": 3}, token=admin.access))["auditEvents"]
    assert len(first["edges"]) == 3 and first["pageInfo"]["hasNextPage"] is True
    second = (
        await client.data(
            AUDIT, {"first": 50, "after": first["pageInfo"]["endCursor"]}, token=admin.access
        )
    )["auditEvents"]
    assert (
        second["pageInfo"]["hasNextPage"] is False and second["pageInfo"]["hasPreviousPage"] is True
    )
    everything = first["edges"] + second["edges"]
    ids = [e["node"]["id"] for e in everything]
    assert len(ids) == len(set(ids))
    times = [e["node"]["at"] for e in everything]
    assert times == sorted(times, reverse=True)

    failures = (
        await client.data(
            AUDIT, {"kind": "LOGIN_FAILED", "user": member.user_id}, token=admin.access
        )
    )["auditEvents"]["edges"]
    assert len(failures) == 2
    assert all(
        f["node"]["user"]["id"] == member.user_id and f["node"]["ip"] == "127.0.0.1"
        for f in failures
    )
    assert all(f["node"]["details"] == {"reason": "wrong_password"} for f in failures)
    assert all(len(f["node"]["requestId"]) == 32 for f in failures)


async def test_the_audit_log_is_for_admins_only(client: GraphQLClient) -> None:
    member = await client.member("mae@example.com")
    assert graphql_error_codes(await client.execute(AUDIT, token=member.access)) == ["FORBIDDEN"]
    assert graphql_error_codes(await client.execute(AUDIT)) == ["UNAUTHENTICATED"]


async def test_create_admin_promotes_an_existing_account(
    runtime: Runtime, client: GraphQLClient
) -> None:
    member = await client.member("nia@example.com")
    user = await create_admin(
        runtime.services, RequestMeta(), name="ignored", email="NIA@example.com", password=""
    )
    assert user.roles == ["poster", "admin"] and user.name == "Test User"
    me = (await client.data(ME, token=member.access))["me"]
    assert me["roles"] == ["POSTER", "ADMIN"]
    event = await AuditEvent.find_one(AuditEvent.kind == AuditKind.ROLE_CHANGED)
    assert event is not None and event.details["after"] == ["poster", "admin"]
