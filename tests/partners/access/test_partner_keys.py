"""Partners' API keys: who makes and revokes them, and when a key stops working."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx

from documents.accounts.audit import AuditKind
from documents.partners.api_keys import PartnerApiKey
from server.runtime import Runtime
from tests.conftest import serve
from tests.support.graphql_client import GraphQLClient, error_codes, graphql_error_codes
from tests.support.partners.steps import (
    PARTNER_SELF,
    applied_partner,
    approved_partner,
    audited,
    create_key,
    decide,
    new_key,
    oid,
    revoke,
)

KEYS = "query($id: ID!) { partnerApiKeys(partnerId: $id) { edges { node { id revokedAt } } } }"


def _in(delta: timedelta) -> str:
    return (datetime.now(UTC) + delta).isoformat()


def _refused_code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["errors"][0]["extensions"]["code"]


@asynccontextmanager
async def _instance(runtime: Runtime, **settings: object) -> AsyncIterator[GraphQLClient]:
    """Another app instance on the same database, with its own client."""
    async with serve(runtime, **settings) as url, httpx.AsyncClient(base_url=url) as http:
        yield GraphQLClient(http)


async def test_only_the_owner_of_an_approved_partner_makes_keys(
    client: GraphQLClient, runtime: Runtime
) -> None:
    setup = await applied_partner(client, runtime)
    early = await create_key(client, setup.owner)
    assert error_codes(early) == ["INVALID_STATE"] and early["secret"] is None

    await decide(client, setup.admin, "approvePartner", setup.partner_id)
    stranger = await client.member("stranger@example.com")
    for who in (stranger, setup.admin):
        refused = await create_key(client, who)
        assert error_codes(refused) == ["FORBIDDEN"]
    _, key_id = await new_key(client, setup.owner)
    assert error_codes(await revoke(client, stranger, key_id)) == ["FORBIDDEN"]
    # Nobody but its owner and admins finds the key by its id.
    node = "query($id: ID!) { node(id: $id) { ... on PartnerApiKey { name } } }"
    assert (await client.data(node, {"id": key_id}, token=stranger.access))["node"] is None
    for who in (setup.owner, setup.admin):
        found = await client.data(node, {"id": key_id}, token=who.access)
        assert found["node"] == {"name": "server"}
    assert await PartnerApiKey.count() == 1
    assert len(await audited(AuditKind.PARTNER_KEY_CREATED)) == 1


async def test_key_input_is_checked_and_bad_input_changes_nothing(
    client: GraphQLClient, runtime: Runtime
) -> None:
    setup = await approved_partner(client, runtime)
    cases = [
        ({"scopes": ()}, "scopes"),
        ({"name": " \u200b "}, "name"),
        ({"expires_at": _in(-timedelta(minutes=1))}, "expiresAt"),
        ({"expires_at": _in(timedelta(days=3 * 365 + 2))}, "expiresAt"),
    ]
    for options, field in cases:
        refused = await create_key(client, setup.owner, **options)  # type: ignore[arg-type]
        assert [(e["field"], e["code"]) for e in refused["errors"]] == [(field, "INVALID_INPUT")], (
            options
        )
    unknown = await client.execute(
        'mutation { createPartnerApiKey(input: {name: "x", scopes: [EVERYTHING]}) '
        "{ errors { code } } }",
        token=setup.owner.access,
    )
    assert "errors" in unknown
    assert await PartnerApiKey.count() == 0
    assert await audited(AuditKind.PARTNER_KEY_CREATED) == []


async def test_at_most_ten_keys_in_use_even_when_racing(
    client: GraphQLClient, runtime: Runtime
) -> None:
    setup = await approved_partner(client, runtime)
    ids = [(await new_key(client, setup.owner, name=f"key {n}"))[1] for n in range(8)]
    racing = await asyncio.gather(
        *(create_key(client, setup.owner, name=f"racer {n}") for n in range(5))
    )
    assert sorted(tuple(error_codes(p)) for p in racing) == [
        (),
        (),
        *([("INVALID_STATE",)] * 3),
    ]
    assert await PartnerApiKey.find({"revoked_at": None}).count() == 10
    # Revoking one makes room for another: rotation without downtime.
    assert (await revoke(client, setup.owner, ids[0]))["errors"] == []
    assert (await create_key(client, setup.owner, name="rotated"))["errors"] == []


async def test_a_suspended_partners_keys_are_refused_until_it_is_reinstated(
    client: GraphQLClient, runtime: Runtime
) -> None:
    setup = await approved_partner(client, runtime)
    secret, _ = await new_key(client, setup.owner)
    assert (await client.data(PARTNER_SELF, token=secret))["partner"]["name"] == "RoSaBank"

    await decide(client, setup.admin, "suspendPartner", setup.partner_id, note="chargebacks")
    refused = await client.post(PARTNER_SELF, token=secret)
    assert _refused_code(refused) == (401, "INVALID_API_KEY")
    [rejection] = await audited(AuditKind.PARTNER_KEY_REJECTED)
    assert rejection.details["reason"] == "partner_suspended"
    # Nor may its owner make new keys meanwhile.
    assert error_codes(await create_key(client, setup.owner)) == ["INVALID_STATE"]

    await decide(client, setup.admin, "reinstatePartner", setup.partner_id)
    assert (await client.data(PARTNER_SELF, token=secret))["partner"]["name"] == "RoSaBank"

    await decide(client, setup.admin, "closePartner", setup.partner_id)
    closed = await client.post(PARTNER_SELF, token=secret)
    assert _refused_code(closed) == (401, "INVALID_API_KEY")


async def test_a_revoked_key_is_refused_at_once_on_another_instance(
    client: GraphQLClient, runtime: Runtime
) -> None:
    setup = await approved_partner(client, runtime)
    kept, _ = await new_key(client, setup.owner, name="new")
    secret, key_id = await new_key(client, setup.owner, name="old")
    async with _instance(runtime) as a, _instance(runtime) as b:
        assert (await a.data(PARTNER_SELF, token=secret))["partner"]["name"] == "RoSaBank"

        revoked = await revoke(b, setup.owner, key_id)
        assert revoked["errors"] == [] and revoked["apiKey"]["revokedAt"] is not None

        assert _refused_code(await a.post(PARTNER_SELF, token=secret)) == (
            401,
            "INVALID_API_KEY",
        )
        # The partner's other key goes on working.
        assert (await a.data(PARTNER_SELF, token=kept))["partner"]["name"] == "RoSaBank"
        again = await revoke(b, setup.owner, key_id)
        assert error_codes(again) == ["INVALID_STATE"]
    [revocation] = await audited(AuditKind.PARTNER_KEY_REVOKED)
    assert revocation.actor_id == oid(setup.owner.user_id)
    assert revocation.details["key_id"] == str(oid(key_id))
    [rejection] = await audited(AuditKind.PARTNER_KEY_REJECTED)
    assert rejection.details["reason"] == "revoked"


async def test_an_admin_revokes_a_key_and_lists_keys_without_secrets(
    client: GraphQLClient, runtime: Runtime
) -> None:
    setup = await approved_partner(client, runtime)
    secret, key_id = await new_key(client, setup.owner)
    revoked = await revoke(client, setup.admin, key_id)
    assert revoked["errors"] == []
    assert _refused_code(await client.post(PARTNER_SELF, token=secret))[0] == 401
    listed = await client.data(KEYS, {"id": setup.partner_id}, token=setup.admin.access)
    [key] = [edge["node"] for edge in listed["partnerApiKeys"]["edges"]]
    assert key["id"] == key_id and key["revokedAt"] is not None
    stored = await PartnerApiKey.get(oid(key_id))
    assert stored is not None and stored.revoked_by == oid(setup.admin.user_id)
    # There is no field that could show a secret.
    probe = await client.execute(
        "query($id: ID!) { partnerApiKeys(partnerId: $id) { edges { node { digest } } } }",
        {"id": setup.partner_id},
        token=setup.admin.access,
    )
    assert graphql_error_codes(probe) != [] and secret not in str(probe)


async def test_an_expired_key_is_refused_at_once_on_another_instance(
    client: GraphQLClient, runtime: Runtime
) -> None:
    setup = await approved_partner(client, runtime)
    secret, key_id = await new_key(client, setup.owner, expires_at=_in(timedelta(days=1)))
    async with _instance(runtime) as a:
        assert (await a.data(PARTNER_SELF, token=secret))["partner"]["name"] == "RoSaBank"
        # The day passes (the stored expiry is what every instance reads).
        await PartnerApiKey.get_pymongo_collection().update_one(
            {"_id": oid(key_id)}, {"$set": {"expires_at": datetime.now(UTC)}}
        )
        assert _refused_code(await a.post(PARTNER_SELF, token=secret)) == (
            401,
            "INVALID_API_KEY",
        )
    [rejection] = await audited(AuditKind.PARTNER_KEY_REJECTED)
    assert rejection.details["reason"] == "expired"


async def test_bad_keys_from_one_address_are_throttled_and_audited(
    client: GraphQLClient, runtime: Runtime
) -> None:
    setup = await approved_partner(client, runtime)
    secret, _ = await new_key(client, setup.owner)
    async with _instance(runtime, login_ip_max_failures=3) as a:
        for guess in ("gq_test_nonsense", secret[:-2] + "xx", "gq_live_" + "0" * 16 + "_x"):
            assert _refused_code(await a.post(PARTNER_SELF, token=guess)) == (
                401,
                "INVALID_API_KEY",
            )
        for presented in ("gq_test_another", secret):
            assert _refused_code(await a.post(PARTNER_SELF, token=presented)) == (
                429,
                "TOO_MANY_ATTEMPTS",
            )
    reasons = [e.details["reason"] for e in await audited(AuditKind.PARTNER_KEY_REJECTED)]
    assert reasons == ["malformed", "wrong_secret", "malformed", "ip_throttled", "ip_throttled"]


async def test_a_partners_keys_count_against_their_own_budgets_not_the_address(
    client: GraphQLClient, runtime: Runtime
) -> None:
    """A partner's servers may all call from one address: each key has its budget, and
    the address's (for anonymous and users' requests) does not cap them."""
    setup = await approved_partner(client, runtime)
    first, _ = await new_key(client, setup.owner, name="first")
    second, _ = await new_key(client, setup.owner, name="second")
    limits = {"rate_limit_ip_requests": 2, "rate_limit_partner_key_requests": 4}
    async with _instance(runtime, **limits) as a:
        for key in (first, second):
            for _ in range(4):
                assert (await a.data(PARTNER_SELF, token=key))["partner"]["name"] == "RoSaBank"
            assert _refused_code(await a.post(PARTNER_SELF, token=key)) == (429, "RATE_LIMITED")
        # The address's own budget is untouched by them: an anonymous request still fits.
        assert (await a.post("{ __typename }")).status_code == 200


async def test_a_revoked_key_still_sent_after_a_rotation_locks_nothing_out(
    client: GraphQLClient, runtime: Runtime
) -> None:
    """A partner's server that still sends its old key after a rotation is refused each
    time (and audited), but that is no guessing: its new key keeps working."""
    setup = await approved_partner(client, runtime)
    old, old_id = await new_key(client, setup.owner, name="old")
    new, _ = await new_key(client, setup.owner, name="new")
    assert (await revoke(client, setup.owner, old_id))["errors"] == []
    async with _instance(runtime, login_ip_max_failures=3) as a:
        for _ in range(6):
            assert _refused_code(await a.post(PARTNER_SELF, token=old)) == (
                401,
                "INVALID_API_KEY",
            )
        assert (await a.data(PARTNER_SELF, token=new))["partner"]["name"] == "RoSaBank"
    reasons = [e.details["reason"] for e in await audited(AuditKind.PARTNER_KEY_REJECTED)]
    assert reasons == ["revoked"] * 6


async def test_a_key_past_its_budget_gets_429_while_another_key_works(
    client: GraphQLClient, runtime: Runtime
) -> None:
    setup = await approved_partner(client, runtime)
    busy, _ = await new_key(client, setup.owner, name="busy")
    other, _ = await new_key(client, setup.owner, name="other")
    async with _instance(runtime, rate_limit_partner_key_requests=2) as a:
        for _ in range(2):
            assert (await a.data(PARTNER_SELF, token=busy))["partner"]["name"] == "RoSaBank"
        refused = await a.post(PARTNER_SELF, token=busy)
        assert _refused_code(refused) == (429, "RATE_LIMITED")
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.json()["errors"][0]["extensions"]["retryAfter"] > 0
        assert (await a.data(PARTNER_SELF, token=other))["partner"]["name"] == "RoSaBank"
