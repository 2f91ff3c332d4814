"""A provider's payout account (Stripe Connect) and identity verification."""

from __future__ import annotations

from datetime import datetime

import strawberry

from documents.accounts.profiles import IdentityVerification, ProviderProfile
from documents.accounts.users import Role
from resolvers.accounts.auth.viewer import require_role
from resolvers.payments import connect, identity
from schema.common.context import Info
from schema.common.payloads import Payload, mutation_payload
from schema.common.permissions import IsAuthenticated, allow


@strawberry.type(description="Where my earnings are paid out, as the payment gateway reports.")
class PayoutAccount:
    connected: bool = strawberry.field(description="A connected account has been created.")
    payouts_enabled: bool = strawberry.field(description="Withdrawals and releases can be paid.")
    charges_enabled: bool
    details_submitted: bool = strawberry.field(description="Onboarding was completed.")
    identity_verification: IdentityVerification

    @classmethod
    def of(cls, profile: ProviderProfile | None) -> PayoutAccount:
        if profile is None:
            return cls(
                connected=False,
                payouts_enabled=False,
                charges_enabled=False,
                details_submitted=False,
                identity_verification=IdentityVerification.UNVERIFIED,
            )
        return cls(
            connected=profile.stripe_account_id is not None,
            payouts_enabled=profile.payouts_enabled,
            charges_enabled=profile.charges_enabled,
            details_submitted=profile.details_submitted,
            identity_verification=profile.identity_verification,
        )


@strawberry.type
class ConnectQuery:
    @strawberry.field(
        extensions=allow(IsAuthenticated()), description="Taskers: my payout account's status."
    )
    async def my_payout_account(self, info: Info) -> PayoutAccount:
        viewer = await info.context.require_viewer()
        require_role(viewer, Role.TASKER, "have a payout account")
        return PayoutAccount.of(await info.context.loaders.provider_profiles.load(viewer.user_id))


@strawberry.input
class StartPayoutOnboardingInput:
    country: str | None = strawberry.field(
        default=None,
        description="ISO 3166-1 alpha-2 country of the account, when it is first created; "
        "by default my profile's, else the marketplace's.",
    )


@strawberry.type
class StartPayoutOnboardingPayload(Payload):
    onboarding_url: str | None = strawberry.field(
        default=None, description="Send me there at once: it works once, for a few minutes."
    )
    expires_at: datetime | None = None
    payout_account: PayoutAccount | None = None


@strawberry.input
class StartIdentityVerificationInput:
    start_over: bool = strawberry.field(
        default=False,
        description="Begin a new check even if one is waiting for my documents.",
    )


@strawberry.type
class StartIdentityVerificationPayload(Payload):
    url: str | None = strawberry.field(
        default=None, description="The gateway's page for the check (web)."
    )
    client_secret: str | None = strawberry.field(
        default=None, description="For the gateway's mobile or web SDK; never store it."
    )
    identity_verification: IdentityVerification | None = None


@strawberry.type
class ConnectMutation:
    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Taskers: set up (or finish setting up) my payout account: returns a "
        "fresh link to the gateway's onboarding pages.",
    )
    @mutation_payload
    async def start_payout_onboarding(
        self, info: Info, input: StartPayoutOnboardingInput
    ) -> StartPayoutOnboardingPayload:
        viewer = await info.context.require_viewer()
        onboarding = await connect.start_onboarding(info.context.services, viewer, input.country)
        return StartPayoutOnboardingPayload(
            onboarding_url=onboarding.link.url,
            expires_at=onboarding.link.expires_at,
            payout_account=PayoutAccount.of(onboarding.profile),
        )

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Taskers: verify my identity with the gateway; returns where to do it.",
    )
    @mutation_payload
    async def start_identity_verification(
        self, info: Info, input: StartIdentityVerificationInput
    ) -> StartIdentityVerificationPayload:
        viewer = await info.context.require_viewer()
        started = await identity.start_verification(
            info.context.services, viewer, start_over=input.start_over
        )
        return StartIdentityVerificationPayload(
            url=started.session.url,
            client_secret=started.session.client_secret,
            identity_verification=started.profile.identity_verification,
        )
