"""A partner's application and admins' decisions on it, over the main graph."""

from __future__ import annotations

import asyncio

import httpx

from documents.accounts.audit import AuditEvent, AuditKind
from documents.partners.partners import Partner
from documents.partners.webhooks import PartnerWebhookEndpoint
from documents.settings import Settings
from resolvers.partners.webhooks.urls import webhook_url_problem
from server.runtime import Runtime
from tests.conftest import serve
from tests.support.graphql_client import GraphQLClient, error_codes, graphql_error_codes
from tests.support.partners.steps import (
    APPLICATION,
    MY_PARTNER,
    PARTNER_SELF,
    applied_partner,
    apply,
    approved_partner,
    audited,
    decide,
    new_key,
    oid,
)

PARTNERS = "{ partners(first: 10) { edges { node { id name status } } } }"


async def test_a_partner_goes_from_application_to_a_working_key(
    client: GraphQLClient, runtime: Runtime
) -> None:
    setup = await applied_partner(client, runtime)
    mine = (await client.data(MY_PARTNER, token=setup.owner.access))["myPartner"]
    assert (mine["name"], mine["status"], mine["fees"]) == (
        "RoSaBank",
        "APPLIED",
        {"creditBp": 290},
    )

    approved = await decide(
        client, setup.admin, "approvePartner", setup.partner_id, creditFeeBp=250, note="KYB ok"
    )
    assert approved["errors"] == []
    assert approved["partner"]["status"] == "APPROVED"
    assert approved["partner"]["fees"] == {
        "creditBp": 250,
        "debitBp": 0,
        "transferBp": 0,
        "withdrawalBp": 0,
    }
    # The application's URL is its first webhook endpoint, with a signing secret.
    endpoints = await PartnerWebhookEndpoint.find({"partner_id": setup.oid}).to_list()
    assert [e.url for e in endpoints] == [APPLICATION["webhookUrl"]]
    assert endpoints[0].secrets[0].secret.startswith("whsec_")

    secret, key_id = await new_key(client, setup.owner, scopes=("READ_WALLETS", "MOVE_MONEY"))
    assert secret.startswith("gq_test_")
    data = await client.data(PARTNER_SELF, token=secret)
    assert data == {"partner": {"name": "RoSaBank", "keyScopes": ["MOVE_MONEY", "READ_WALLETS"]}}

    keys = (await client.data(MY_PARTNER, token=setup.owner.access))["myPartner"]["apiKeys"]
    [key] = [edge["node"] for edge in keys["edges"]]
    assert key["id"] == key_id and key["mode"] == "TEST" and key["revokedAt"] is None
    assert key["lastUsedAt"] is not None
    assert key["hint"].startswith("gq_test_") and key["hint"].endswith(secret[-4:])
    assert secret not in str(keys)

    applied = await audited(AuditKind.PARTNER_APPLIED)
    assert [e.actor_id for e in applied] == [oid(setup.owner.user_id)]
    [change] = await audited(AuditKind.PARTNER_STATUS_CHANGED)
    assert change.details["move"] == "approve" and change.details["note"] == "KYB ok"
    assert change.details["fees"]["credit_bp"] == 250
    assert change.actor_id == oid(setup.admin.user_id)
    [created] = await audited(AuditKind.PARTNER_KEY_CREATED)
    assert created.details["key_id"] is not None and secret not in str(created.details)


async def test_bad_applications_change_nothing(client: GraphQLClient) -> None:
    who = await client.member("careless@example.com")
    bad = {
        "name": " ",
        "companyName": "Rosa\u202eBank",
        "contactName": "",
        "contactEmail": "not-an-address",
        "businessType": "x" * 101,
        "webhookUrl": "http://api.rosabank.com/webhooks",
    }
    payload = await apply(client, who, **bad)
    assert payload["partner"] is None
    fields = {e["field"]: e["code"] for e in payload["errors"]}
    assert fields == {
        "name": "INVALID_INPUT",
        "companyName": "INVALID_INPUT",
        "contactName": "INVALID_INPUT",
        "contactEmail": "INVALID_EMAIL",
        "businessType": "INVALID_INPUT",
        "webhookUrl": "INVALID_INPUT",
    }
    for url in (
        "https://10.0.0.7/hooks",
        "https://localhost/hooks",
        "https://user:pw@api.rosabank.com/hooks",
        "https://api.rosabank.com:8443/hooks",
        "ftp://api.rosabank.com/hooks",
    ):
        refused = await apply(client, who, webhookUrl=url)
        assert [(e["field"], e["code"]) for e in refused["errors"]] == [
            ("webhookUrl", "INVALID_INPUT")
        ], url
    assert await Partner.count() == 0
    assert await AuditEvent.find({"kind": AuditKind.PARTNER_APPLIED.value}).count() == 0
    assert (await client.data(MY_PARTNER, token=who.access))["myPartner"] is None


async def test_a_person_applies_once_even_when_racing(client: GraphQLClient) -> None:
    who = await client.member("eager@example.com")
    payloads = await asyncio.gather(*(apply(client, who) for _ in range(5)))
    assert sorted(tuple(error_codes(p)) for p in payloads) == [
        (),
        *([("ALREADY_EXISTS",)] * 4),
    ]
    assert await Partner.count() == 1
    again = await apply(client, who, name="Another Brand")
    assert error_codes(again) == ["ALREADY_EXISTS"]
    assert await AuditEvent.find({"kind": AuditKind.PARTNER_APPLIED.value}).count() == 1


async def test_admin_fields_are_forbidden_to_everyone_else(
    client: GraphQLClient, runtime: Runtime
) -> None:
    setup = await applied_partner(client, runtime)
    stranger = await client.member("stranger@example.com")
    for who in (setup.owner, stranger):
        listed = await client.execute(PARTNERS, token=who.access)
        assert graphql_error_codes(listed) == ["FORBIDDEN"]
        keys = await client.execute(
            "query($id: ID!) { partnerApiKeys(partnerId: $id) { edges { node { id } } } }",
            {"id": setup.partner_id},
            token=who.access,
        )
        assert graphql_error_codes(keys) == ["FORBIDDEN"]
        for mutation in ("approvePartner", "suspendPartner", "closePartner"):
            result = await client.execute(
                f"mutation($input: {mutation[0].upper()}{mutation[1:]}Input!) "
                f"{{ {mutation}(input: $input) {{ errors {{ code }} }} }}",
                {"input": {"partnerId": setup.partner_id}},
                token=who.access,
            )
            assert graphql_error_codes(result) == ["FORBIDDEN"], mutation
    # A stranger does not see the partner by its id either; its owner and admins do.
    node = "query($id: ID!) { node(id: $id) { ... on Partner { name } } }"
    variables = {"id": setup.partner_id}
    assert (await client.data(node, variables, token=stranger.access))["node"] is None
    assert (await client.data(node, variables, token=setup.owner.access))["node"] is not None
    listed = await client.data(PARTNERS, token=setup.admin.access)
    assert [e["node"]["status"] for e in listed["partners"]["edges"]] == ["APPLIED"]
    partner = await Partner.get(setup.oid)
    assert partner is not None and partner.status.value == "applied"
    assert await audited(AuditKind.PARTNER_STATUS_CHANGED) == []


async def test_every_status_change_is_audited_and_only_from_its_states(
    client: GraphQLClient, runtime: Runtime
) -> None:
    setup = await approved_partner(client, runtime)
    wrong = await decide(client, setup.admin, "reinstatePartner", setup.partner_id)
    assert error_codes(wrong) == ["INVALID_STATE"]
    assert "only when suspended" in wrong["errors"][0]["message"]
    for mutation, status in (
        ("suspendPartner", "SUSPENDED"),
        ("reinstatePartner", "APPROVED"),
        ("suspendPartner", "SUSPENDED"),
        ("closePartner", "CLOSED"),
    ):
        moved = await decide(client, setup.admin, mutation, setup.partner_id, note=mutation)
        assert moved["errors"] == [] and moved["partner"]["status"] == status, moved
    final = await decide(client, setup.admin, "reinstatePartner", setup.partner_id)
    assert error_codes(final) == ["INVALID_STATE"]

    other = await client.member("second@example.com")
    second = await apply(client, other, name="Circle")
    rejected = await decide(client, setup.admin, "rejectPartner", second["partner"]["id"])
    assert rejected["partner"]["status"] == "REJECTED"

    changes = await audited(AuditKind.PARTNER_STATUS_CHANGED)
    assert [(c.details["move"], c.details["status_after"]) for c in changes] == [
        ("approve", "approved"),
        ("suspend", "suspended"),
        ("reinstate", "approved"),
        ("suspend", "suspended"),
        ("close", "closed"),
        ("reject", "rejected"),
    ]
    assert all(c.actor_id == oid(setup.admin.user_id) for c in changes)
    partner = await Partner.get(setup.oid)
    assert partner is not None
    assert [h.move for h in partner.history] == [
        "apply",
        "approve",
        "suspend",
        "reinstate",
        "suspend",
        "close",
    ]
    listed = await client.data(
        "{ partners(status: CLOSED) { edges { node { name } } } }", token=setup.admin.access
    )
    assert [e["node"]["name"] for e in listed["partners"]["edges"]] == ["RoSaBank"]


def test_webhook_urls_are_public_https_unless_private_hosts_are_allowed(
    settings: Settings,
) -> None:
    development = settings.model_copy(update={"partner_webhook_allow_private_hosts": True})
    public = "https://api.rosabank.com/webhooks"
    local = [
        "http://127.0.0.1:8081/hooks",
        "https://localhost:9443/hooks",
        "http://[::1]:8000/",
        "http://192.168.1.20/hooks",
        "http://10.0.0.7:3000/gigql",
    ]
    never = [
        "http://api.rosabank.com/webhooks",  # a public host needs https, also in development
        "http://user:pw@127.0.0.1/hooks",
        "http://127.0.0.1/a b",
        "gopher://127.0.0.1/hooks",
        "http://169.254.169.254/latest/meta-data",  # link-local: cloud metadata
        "http://[::ffff:169.254.169.254]/latest/meta-data",
        "http://0.0.0.0:8000/",
        "http://127.0.0.1:99999/",
    ]
    for given in (settings, development):
        assert webhook_url_problem(public, given) is None
    for url in local:
        assert webhook_url_problem(url, settings) is not None, url
        assert webhook_url_problem(url, development) is None, url
    for url in never:
        assert webhook_url_problem(url, development) is not None, url


async def test_in_development_a_local_webhook_url_is_accepted(runtime: Runtime) -> None:
    allowed = serve(runtime, partner_webhook_allow_private_hosts=True)
    async with allowed as url, httpx.AsyncClient(base_url=url) as http:
        client = GraphQLClient(http)
        who = await client.member("developer@example.com")
        applied = await apply(client, who, webhookUrl="http://127.0.0.1:8081/hooks")
    assert applied["errors"] == []
    assert applied["partner"]["webhookUrl"] == "http://127.0.0.1:8081/hooks"
