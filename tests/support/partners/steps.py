"""Steps of a partner's life over the main graph: applying, an admin's decisions, keys."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bson import ObjectId
from strawberry.relay import from_base64

from documents.accounts.audit import AuditEvent, AuditKind
from server.runtime import Runtime
from tests.support.graphql_client import GraphQLClient, Tokens
from tests.support.marketplace import logged_in_admin

APPLICATION = {
    "name": "RoSaBank",
    "companyName": "Rosa Banking Solutions Inc",
    "contactName": "Jane Smith",
    "contactEmail": "api@rosabank.com",
    "businessType": "Financial Services",
    "webhookUrl": "https://api.rosabank.com/webhooks",
}
PARTNER_FIELDS = """partner { id name companyName contactName contactEmail businessType
  webhookUrl status payoutsEnabled fees { creditBp debitBp transferBp withdrawalBp } }"""
KEY_FIELDS = "id name hint mode scopes expiresAt revokedAt lastUsedAt createdAt"
MY_PARTNER = f"""{{ myPartner {{ id name status payoutsEnabled fees {{ creditBp }}
  apiKeys(first: 20) {{ edges {{ node {{ {KEY_FIELDS} }} }} }} }} }}"""
PARTNER_SELF = "{ partner { name keyScopes } }"


@dataclass(frozen=True)
class PartnerSetup:
    owner: Tokens
    admin: Tokens
    partner_id: str
    """The global id."""

    @property
    def oid(self) -> ObjectId:
        return oid(self.partner_id)


def oid(global_id: str) -> ObjectId:
    """The database id in a global id."""
    return ObjectId(from_base64(global_id)[1])


async def apply(client: GraphQLClient, who: Tokens, **changes: Any) -> dict[str, Any]:
    """The applyForPartnership payload, errors included."""
    return await client.mutate(
        "applyForPartnership", {**APPLICATION, **changes}, PARTNER_FIELDS, token=who.access
    )


async def decide(
    client: GraphQLClient, admin: Tokens, mutation: str, partner_id: str, **more: Any
) -> dict[str, Any]:
    """An admin's approvePartner, suspendPartner... payload, errors included."""
    return await client.mutate(
        mutation, {"partnerId": partner_id, **more}, PARTNER_FIELDS, token=admin.access
    )


async def applied_partner(
    client: GraphQLClient, runtime: Runtime, owner_email: str = "owner@rosabank.com"
) -> PartnerSetup:
    owner = await client.member(owner_email)
    applied = await apply(client, owner)
    assert applied["errors"] == [], applied
    admin = await logged_in_admin(client, runtime)
    return PartnerSetup(owner, admin, applied["partner"]["id"])


async def approved_partner(
    client: GraphQLClient, runtime: Runtime, owner_email: str = "owner@rosabank.com"
) -> PartnerSetup:
    setup = await applied_partner(client, runtime, owner_email)
    approved = await decide(client, setup.admin, "approvePartner", setup.partner_id)
    assert approved["errors"] == [], approved
    return setup


async def create_key(
    client: GraphQLClient,
    who: Tokens,
    scopes: tuple[str, ...] = ("READ_WALLETS",),
    *,
    name: str = "server",
    expires_at: str | None = None,
) -> dict[str, Any]:
    """The createPartnerApiKey payload, errors included."""
    return await client.mutate(
        "createPartnerApiKey",
        {"name": name, "scopes": list(scopes), "expiresAt": expires_at},
        f"secret apiKey {{ {KEY_FIELDS} }}",
        token=who.access,
    )


async def new_key(client: GraphQLClient, who: Tokens, **options: Any) -> tuple[str, str]:
    """A new key's secret and global id."""
    made = await create_key(client, who, **options)
    assert made["errors"] == [], made
    return made["secret"], made["apiKey"]["id"]


async def revoke(client: GraphQLClient, who: Tokens, key_id: str) -> dict[str, Any]:
    return await client.mutate(
        "revokePartnerApiKey", {"keyId": key_id}, f"apiKey {{ {KEY_FIELDS} }}", token=who.access
    )


async def audited(kind: AuditKind) -> list[AuditEvent]:
    """Audit events of `kind`, in the order they were written (one process makes the ids)."""
    return await AuditEvent.find({"kind": kind.value}).sort("_id").to_list()
