"""The main graph's part for partners' owners: applying, the partner, its keys and its
payout account. Admins find the rest in schema/partners/admin.py."""

from __future__ import annotations

from datetime import datetime

import strawberry
from strawberry import relay

from documents.partners.api_keys import ApiScope
from resolvers.partners import applications, connect, key_management
from resolvers.partners.applications import Application
from schema.common.context import Info
from schema.common.payloads import Payload, mutation_payload
from schema.common.permissions import IsAuthenticated, allow
from schema.common.relay import decode_id
from schema.partners.partner_nodes import PartnerApiKeyNode, PartnerNode


@strawberry.type
class PartnerOwnerQuery:
    @strawberry.field(
        extensions=allow(IsAuthenticated()),
        description="The partner I applied for, if any.",
    )
    async def my_partner(self, info: Info) -> PartnerNode | None:
        viewer = await info.context.require_viewer()
        partner = await applications.partner_of(viewer.user_id)
        return PartnerNode.of(partner) if partner else None


@strawberry.input
class ApplyForPartnershipInput:
    name: str = strawberry.field(description="What the partner is called (its brand).")
    company_name: str = strawberry.field(description="The legal name of the business.")
    contact_name: str
    contact_email: str
    business_type: str = strawberry.field(description="Such as Financial Services.")
    webhook_url: str = strawberry.field(
        description="Where webhooks go once approved: an https URL of a public host."
    )


@strawberry.type
class ApplyForPartnershipPayload(Payload):
    partner: PartnerNode | None = None


@strawberry.input
class CreatePartnerApiKeyInput:
    name: str = strawberry.field(description="What the key is for, such as `production`.")
    scopes: list[ApiScope] = strawberry.field(description="At least one.")
    expires_at: datetime | None = strawberry.field(
        default=None,
        description="When it stops working: in the future, at most three years ahead; null: never.",
    )


@strawberry.type
class CreatePartnerApiKeyPayload(Payload):
    secret: str | None = strawberry.field(
        default=None,
        description="The whole key (`gq_live_...` or `gq_test_...`): shown this once, "
        "never again. Send it as `Authorization: Bearer <key>`.",
    )
    api_key: PartnerApiKeyNode | None = None


@strawberry.input
class RevokePartnerApiKeyInput:
    key_id: relay.GlobalID


@strawberry.type
class RevokePartnerApiKeyPayload(Payload):
    api_key: PartnerApiKeyNode | None = None


@strawberry.input
class StartPartnerPayoutOnboardingInput:
    country: str | None = strawberry.field(
        default=None,
        description="ISO 3166-1 alpha-2 country of the account, when it is first created; "
        "by default the marketplace's.",
    )


@strawberry.type
class StartPartnerPayoutOnboardingPayload(Payload):
    onboarding_url: str | None = strawberry.field(
        default=None, description="Go there at once: it works once, for a few minutes."
    )
    expires_at: datetime | None = None
    partner: PartnerNode | None = None


@strawberry.type
class PartnerOwnerMutation:
    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Apply for a partnership for my business; I become its owner. One per "
        "person (ALREADY_EXISTS); an admin approves or rejects it.",
    )
    @mutation_payload
    async def apply_for_partnership(
        self, info: Info, input: ApplyForPartnershipInput
    ) -> ApplyForPartnershipPayload:
        viewer = await info.context.require_viewer()
        partner = await applications.apply(
            info.context.services,
            info.context.meta,
            viewer,
            Application(
                name=input.name,
                company_name=input.company_name,
                contact_name=input.contact_name,
                contact_email=input.contact_email,
                business_type=input.business_type,
                webhook_url=input.webhook_url,
            ),
        )
        return ApplyForPartnershipPayload(partner=PartnerNode.of(partner))

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Partner owners: a new API key of my approved partner, at most 10 in use "
        "at once (revoke one first).",
    )
    @mutation_payload
    async def create_partner_api_key(
        self, info: Info, input: CreatePartnerApiKeyInput
    ) -> CreatePartnerApiKeyPayload:
        viewer = await info.context.require_viewer()
        made = await key_management.create_key(
            info.context.services,
            info.context.meta,
            viewer,
            input.name,
            input.scopes,
            input.expires_at,
        )
        return CreatePartnerApiKeyPayload(
            secret=made.secret, api_key=PartnerApiKeyNode.of(made.key)
        )

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Partner owners and admins: revoke a key; the next request with it is refused.",
    )
    @mutation_payload
    async def revoke_partner_api_key(
        self, info: Info, input: RevokePartnerApiKeyInput
    ) -> RevokePartnerApiKeyPayload:
        viewer = await info.context.require_viewer()
        key = await key_management.revoke_key(
            info.context.services,
            info.context.meta,
            viewer,
            decode_id(input.key_id, PartnerApiKeyNode, "keyId"),
        )
        return RevokePartnerApiKeyPayload(api_key=PartnerApiKeyNode.of(key))

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Partner owners: set up (or finish setting up) the payout account my "
        "approved partner's withdrawals are paid to; returns a fresh link to the gateway's "
        "onboarding pages.",
    )
    @mutation_payload
    async def start_partner_payout_onboarding(
        self, info: Info, input: StartPartnerPayoutOnboardingInput
    ) -> StartPartnerPayoutOnboardingPayload:
        viewer = await info.context.require_viewer()
        onboarding = await connect.start_onboarding(info.context.services, viewer, input.country)
        return StartPartnerPayoutOnboardingPayload(
            onboarding_url=onboarding.link.url,
            expires_at=onboarding.link.expires_at,
            partner=PartnerNode.of(onboarding.partner),
        )
