"""A partner's payout account (Stripe Connect), which its withdrawals are paid to.

As a provider's (resolvers/payments/connect.py): one Express account, created the
first time the partner's owner asks to onboard, under an idempotency key made of the
partner's id, so concurrent requests, and a repeat after a crash before the id was
stored, get the same account. Each request returns a fresh onboarding link. Only the
account's id and `payouts_enabled` are kept; bank details stay at Stripe.

`account.updated` for an account a partner has comes here from the provider's handler
(which made the same checks first: the event happened on that account). An event
older than the flags stored (`account_flags_at`) changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bson import ObjectId

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.partners.partners import Partner, PartnerStatus
from integrations.payments.gateway import ConnectedAccount, GatewayEvent, OnboardingLink
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.services import Services
from resolvers.common.validation import Checked
from resolvers.partners.applications import partner_of
from resolvers.payments.gateway_failures import answered
from resolvers.payments.provider_fields import synced_no_later_than

log = logging.getLogger(__name__)

# Pages of the front end (GIGQL_APP_URL) the gateway sends the partner's owner back to.
ONBOARDING_RETURN_PATH = "/partners/payouts/onboarding/done"
ONBOARDING_REFRESH_PATH = "/partners/payouts/onboarding/refresh"


def account_key(partner_id: ObjectId) -> str:
    return f"partner:{partner_id}:account"


@dataclass(frozen=True, slots=True)
class Onboarding:
    partner: Partner
    link: OnboardingLink


async def start_onboarding(
    services: Services, viewer: Viewer, country: str | None = None
) -> Onboarding:
    """Create the viewer's partner's connected account if it has none; a fresh link to
    it. FORBIDDEN for anyone but a partner's owner, INVALID_STATE unless approved."""
    checked = Checked()
    if country is not None:
        country = checked.country(country)
    checked.raise_if_any()
    partner = await partner_of(viewer.user_id)
    if partner is None:
        raise DomainError(ErrorCode.FORBIDDEN, "Only a partner's owner can set up its payouts.")
    if partner.status is not PartnerStatus.APPROVED:
        raise DomainError(
            ErrorCode.INVALID_STATE,
            f"The partner is {partner.status.value}; payouts are set up once it is approved.",
        )
    assert partner.id is not None
    account_id = partner.stripe_account_id
    if account_id is None:
        account_id = await _create_account(
            services, partner, country or services.settings.stripe_connect_country
        )
    app_url = services.settings.app_url
    link = await answered(
        services.payments.create_onboarding_link(
            account_id,
            refresh_url=app_url + ONBOARDING_REFRESH_PATH,
            return_url=app_url + ONBOARDING_RETURN_PATH,
        )
    )
    return Onboarding(partner=await Partner.get(partner.id) or partner, link=link)


async def _create_account(services: Services, partner: Partner, country: str) -> str:
    assert partner.id is not None
    account = await answered(
        services.payments.create_connected_account(
            email=partner.contact_email, country=country, idempotency_key=account_key(partner.id)
        )
    )
    # The flag only with the id: `account.updated` may already have stored a newer one.
    await Partner.get_pymongo_collection().update_one(
        {"_id": partner.id, "stripe_account_id": None},
        {
            "$set": {
                "stripe_account_id": account.id,
                "payouts_enabled": account.payouts_enabled,
                "updated_at": utcnow(),
            }
        },
    )
    return account.id


async def partner_with(account_id: str) -> bool:
    """Whether the connected account is a partner's."""
    found = await Partner.get_pymongo_collection().find_one(
        {"stripe_account_id": account_id}, {"_id": 1}
    )
    return found is not None


async def account_updated(event: GatewayEvent, account: ConnectedAccount) -> None:
    """Webhook `account.updated` of a partner's account (checked by the caller): keep
    `payouts_enabled` as the gateway reports it. One conditional write: nothing else
    changes with it."""
    stored = await Partner.get_pymongo_collection().update_one(
        {
            "stripe_account_id": account.id,
            **synced_no_later_than("account_flags_at", event.created),
        },
        {
            "$set": {
                "payouts_enabled": account.payouts_enabled,
                "account_flags_at": event.created,
                "updated_at": utcnow(),
            }
        },
    )
    if stored.matched_count == 0:
        log.info("account.updated %s: older than what is stored for the partner", event.id)
