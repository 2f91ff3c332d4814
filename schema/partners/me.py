"""`partner`: the partner a key belongs to, and the key itself."""

from __future__ import annotations

from datetime import datetime

import strawberry

from documents.partners.api_keys import ApiScope
from documents.partners.partners import PartnerStatus
from schema.partners.context import PartnerInfo

ApiScopeType = strawberry.enum(
    ApiScope,
    name="ApiScope",
    description="READ_WALLETS: wallets, balances, entries, transactions; MOVE_MONEY: create and "
    "change wallets, credit, debit, transfer, withdraw; MANAGE_WEBHOOKS: endpoints, secrets, "
    "deliveries.",
)
PartnerStatusType = strawberry.enum(PartnerStatus, name="PartnerStatus")


@strawberry.type(description="The partner this API key belongs to, as the key sees it.")
class PartnerSelf:
    name: str
    company_name: str
    status: PartnerStatus
    credit_fee_bp: int = strawberry.field(
        description="The fee on card credits, in basis points, taken from the credited wallet."
    )
    payouts_enabled: bool = strawberry.field(
        description="Whether withdrawals can be paid to the partner's connected account."
    )
    key_name: str
    key_scopes: list[ApiScope]
    key_expires_at: datetime | None


@strawberry.type
class PartnerSelfQuery:
    @strawberry.field(description="The partner this request's API key belongs to.")
    def partner(self, info: PartnerInfo) -> PartnerSelf:
        access = info.context.partner_access
        assert access is not None
        partner, key = access.partner, access.key
        return PartnerSelf(
            name=partner.name,
            company_name=partner.company_name,
            status=partner.status,
            credit_fee_bp=partner.fees.credit_bp,
            payouts_enabled=partner.payouts_enabled,
            key_name=key.name,
            key_scopes=list(key.scopes),
            key_expires_at=key.expires_at,
        )
