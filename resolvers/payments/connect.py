"""Stripe Connect: a provider's payout account, its onboarding, and its flags.

A provider gets one Express account, created the first time they ask to onboard. Its
idempotency key comes from the user id, so concurrent requests, and a repeat after a
crash before the id was stored, get the same account. Only the account's id and the
flags the gateway reports (`payouts_enabled`...) are kept; bank details stay at Stripe.
Each request returns a fresh onboarding link (they are single-use and short-lived).

`account.updated` keeps the flags current. Events come in any order, so one older than
the flags stored (`account_synced_at`) changes nothing. An event about an account that
no provider has is ignored: it is not ours, or it came in the instant between the
account's creation and the storing of its id, when nothing has happened on it yet.
The event must have happened on the account it describes (Connect names it): one of
another account is rejected (EventMismatch), whatever its object says. Once payouts
are enabled, the escrows that were waiting for the account are released. A partner's
payout account is updated the same way, by resolvers/partners/connect.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bson import ObjectId
from pymongo import ReturnDocument

from documents.accounts.profiles import ProviderProfile
from documents.accounts.users import Role
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.events import EventKind
from integrations.payments.gateway import ConnectedAccount, GatewayEvent, OnboardingLink
from resolvers.accounts.auth.viewer import Viewer, require_role
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.common.validation import Checked
from resolvers.partners import connect as partner_connect
from resolvers.payments.escrow.release import release_waiting_for
from resolvers.payments.gateway_failures import answered
from resolvers.payments.provider_fields import store_if, stored_profile, synced_no_later_than
from resolvers.payments.webhooks.checks import Comparison

log = logging.getLogger(__name__)

# Pages of the front end (GIGQL_APP_URL) the gateway sends the provider back to: when
# onboarding is done, and when the link expired and a new one is needed.
ONBOARDING_RETURN_PATH = "/payouts/onboarding/done"
ONBOARDING_REFRESH_PATH = "/payouts/onboarding/refresh"


def account_key(user_id: ObjectId) -> str:
    return f"connect:{user_id}:account"


def account_flags(source: ConnectedAccount | ProviderProfile) -> dict[str, bool]:
    """The flags kept of an account, as the gateway reports them or as stored."""
    return {
        "payouts_enabled": source.payouts_enabled,
        "charges_enabled": source.charges_enabled,
        "details_submitted": source.details_submitted,
    }


@dataclass(frozen=True, slots=True)
class Onboarding:
    profile: ProviderProfile
    link: OnboardingLink


async def start_onboarding(
    services: Services, viewer: Viewer, country: str | None = None
) -> Onboarding:
    """Create the provider's connected account if they have none; a fresh link to it."""
    require_role(viewer, Role.TASKER, "receive payouts")
    profile = await ProviderProfile.get(viewer.user_id)
    if country is not None:
        checked = Checked()
        country = checked.country(country)
        checked.raise_if_any()
    account_id = profile.stripe_account_id if profile else None
    if account_id is None:
        account_id = await _create_account(services, viewer, _country(services, profile, country))
    app_url = services.settings.app_url
    link = await answered(
        services.payments.create_onboarding_link(
            account_id,
            refresh_url=app_url + ONBOARDING_REFRESH_PATH,
            return_url=app_url + ONBOARDING_RETURN_PATH,
        )
    )
    return Onboarding(profile=await stored_profile(viewer.user_id), link=link)


def _country(services: Services, profile: ProviderProfile | None, given: str | None) -> str:
    if given is not None:
        return given.strip().upper()
    if profile is not None and profile.place is not None:
        return profile.place.address.country.upper()
    return services.settings.stripe_connect_country


async def _create_account(services: Services, viewer: Viewer, country: str) -> str:
    if viewer.user.email is None:
        raise DomainError(ErrorCode.INVALID_STATE, "An account without an e-mail address.")
    account = await answered(
        services.payments.create_connected_account(
            email=viewer.user.email, country=country, idempotency_key=account_key(viewer.user_id)
        )
    )
    # The flags only with the id: `account.updated` may already have stored newer ones.
    fields = {"stripe_account_id": account.id, **account_flags(account)}
    await store_if(viewer.user_id, {"stripe_account_id": None}, fields)
    return account.id


async def _provider_with(account_id: str) -> bool:
    found = await ProviderProfile.find_one({"stripe_account_id": account_id})
    return found is not None


async def account_updated(services: Services, event: GatewayEvent) -> None:
    """Webhook `account.updated`: store the flags, and release what waited for payouts."""
    account = ConnectedAccount.from_stripe(event.data_object)
    flags = account_flags(account)
    comparison = Comparison(event)
    partners = await partner_connect.partner_with(account.id)
    if event.account is not None or partners or await _provider_with(account.id):
        # About a connected account: it happened on that account. (Only the platform's
        # own account, which no provider or partner has, is updated without one.)
        comparison.on_account(account.id)
    comparison.settle()
    if partners:
        # A partner's payout account (resolvers/partners/connect.py), never a provider's.
        await partner_connect.account_updated(event, account)
        return

    async def work(unit: UnitOfWork) -> ProviderProfile | None:
        raw = await ProviderProfile.get_pymongo_collection().find_one_and_update(
            {
                "stripe_account_id": account.id,
                **synced_no_later_than("account_synced_at", event.created),
            },
            {"$set": {**flags, "account_synced_at": event.created, "updated_at": utcnow()}},
            return_document=ReturnDocument.BEFORE,
            session=unit.session,
        )
        if raw is None:
            return None
        before: ProviderProfile = ProviderProfile.model_validate(raw)
        if account_flags(before) != flags:
            unit.emit(
                EventKind.PAYOUT_ACCOUNT_UPDATED,
                actor_id=None,
                audience=[before.id],
                title="Payouts are enabled"
                if account.payouts_enabled
                else "Payout account updated",
                flags=flags,
            )
        return before

    before = await transact(services, work)
    if before is None:
        log.info("account.updated %s: unknown account, or older than what is stored", event.id)
        return
    if account.payouts_enabled:
        # Every time, not only on the change: a crash after the flags were stored is
        # repaired when the event is processed again. Releasing is idempotent.
        assert before.id is not None
        await release_waiting_for(services, before.id)
