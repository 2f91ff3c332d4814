"""Partners and their API keys as their owners and admins see them in the main graph."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import strawberry
from strawberry import relay

from documents.partners.api_keys import ApiScope, KeyMode, PartnerApiKey
from documents.partners.partners import Partner, PartnerFees, PartnerStatus
from resolvers.partners import applications, key_management
from schema.common.context import Info
from schema.common.copying import copied
from schema.common.relay import object_ids, owned_documents, requested_page, to_connection
from schema.partners.me import ApiScopeType, PartnerStatusType

# The partner graph's enums, declared once there and shown here too: importing them
# registers them with the enums the fields below name.
__all__ = ["ApiScopeType", "PartnerStatusType"]

KeyModeType = strawberry.enum(
    KeyMode,
    name="PartnerKeyMode",
    description="LIVE: real money moves (gigql runs with a live Stripe key); TEST: anywhere else.",
)


@strawberry.type(
    name="PartnerApiKey",
    description="One of a partner's API keys: never its secret, which was shown once.",
)
class PartnerApiKeyNode(relay.Node):
    id: relay.NodeID[str]
    name: str
    hint: str = strawberry.field(description="Its start and last four characters.")
    mode: KeyMode
    scopes: list[ApiScope]
    expires_at: datetime | None = strawberry.field(description="Null: it does not expire.")
    revoked_at: datetime | None
    last_used_at: datetime | None = strawberry.field(description="To the minute.")
    created_at: datetime

    @classmethod
    def of(cls, key: PartnerApiKey) -> PartnerApiKeyNode:
        return copied(cls, key, id=str(key.id), scopes=list(key.scopes))

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[PartnerApiKeyNode | None]:
        """Only keys of the viewer's own partner; any, for an admin."""
        ids = object_ids(node_ids)
        viewer = await info.context.viewer()
        if viewer is None:
            return [None for _ in ids]
        query: dict[str, object] = {"_id": {"$in": [i for i in ids if i is not None]}}
        if not viewer.user.is_admin:
            partner = await applications.partner_of(viewer.user_id)
            if partner is None:
                return [None for _ in ids]
            query["partner_id"] = partner.id
        found = {k.id: k async for k in PartnerApiKey.find(query)}
        return [cls.of(found[i]) if i in found else None for i in ids]


@strawberry.type
class PartnerApiKeyConnection(relay.Connection[PartnerApiKeyNode]):
    pass


@strawberry.type(
    name="PartnerFees",
    description="What the platform takes of a partner's operations, in basis points "
    "(290 = 2.9 %), each as a ledger posting of its own.",
)
class PartnerFeesType:
    credit_bp: int = strawberry.field(description="Of a card credit, from the credited wallet.")
    debit_bp: int = strawberry.field(description="Of a debit, from the sending wallet on top.")
    transfer_bp: int = strawberry.field(description="Of a transfer, from the sending wallet.")
    withdrawal_bp: int = strawberry.field(description="Of a withdrawal, from its wallet.")

    @classmethod
    def of(cls, fees: PartnerFees) -> PartnerFeesType:
        return copied(cls, fees)


@strawberry.type(
    name="Partner",
    description="A business whose app holds wallets for its own users on gigql's ledger: "
    "seen by its owner (who applied) and admins.",
)
class PartnerNode(relay.Node):
    id: relay.NodeID[str]
    name: str
    company_name: str
    contact_name: str
    contact_email: str
    business_type: str
    webhook_url: str = strawberry.field(
        description="As given in the application: the first webhook endpoint on approval."
    )
    status: PartnerStatus
    fees: PartnerFeesType
    payouts_enabled: bool = strawberry.field(
        description="Whether withdrawals can be paid to the partner's connected account "
        "(startPartnerPayoutOnboarding)."
    )
    created_at: datetime
    updated_at: datetime
    doc: strawberry.Private[Partner]

    @classmethod
    def of(cls, partner: Partner) -> PartnerNode:
        return copied(
            cls, partner, id=str(partner.id), fees=PartnerFeesType.of(partner.fees), doc=partner
        )

    @strawberry.field(description="Its API keys, revoked ones too, newest first.")
    async def api_keys(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> PartnerApiKeyConnection:
        assert self.doc.id is not None
        page = await key_management.keys_of(self.doc.id, requested_page(info, first, after))
        return to_connection(PartnerApiKeyConnection, page, PartnerApiKeyNode.of)

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[PartnerNode | None]:
        found = await owned_documents(info, node_ids, Partner, "owner_id")
        return [cls.of(p) if p else None for p in found]


@strawberry.type
class PartnerConnection(relay.Connection[PartnerNode]):
    pass
