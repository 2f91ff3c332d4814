"""Partners' webhook endpoints and their signing secrets.

A partner has at most MAX_ENDPOINTS endpoints, each with a URL that webhooks may be sent
to (urls.py) and a signing secret, shown when the endpoint is made and when the secret is
rotated. The first endpoint is made from the partner's application when an admin
approves it, with nobody there to be shown its secret: `reveal_secret` shows an
endpoint's current secret to a key that may manage webhooks (as Stripe's dashboard
reveals a signing secret), audited; such a key could rotate it anyway. Rotating keeps
the old secret signing too until `overlap` from now (at most MAX_OVERLAP), so that the
partner can deploy the new one first; then it is dropped. Disabling or deleting an
endpoint ends its pending deliveries as dead (the partner may redeliver them to an
endpoint enabled again).

Every change bumps the partner's `webhook_version` first, inside its transaction, so
that concurrent changes of one partner's endpoints serialise: two creations racing for
the last place leave one endpoint.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.accounts.audit import AuditKind
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.partners.partners import Partner
from documents.partners.webhooks import PartnerWebhookEndpoint, SigningSecret
from resolvers.accounts import audit
from resolvers.common.services import RequestMeta, Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.partners.keys import PartnerAccess
from resolvers.partners.webhooks.sender import end_pending
from resolvers.partners.webhooks.urls import webhook_url_problem

SECRET_PREFIX = "whsec_"  # noqa: S105 # how secrets start, as Stripe's
MAX_ENDPOINTS = 5
MAX_OVERLAP = timedelta(days=7)


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class NewSecret:
    """An endpoint with the signing secret just made for it, to be shown this once."""

    endpoint: PartnerWebhookEndpoint
    secret: str


async def add_endpoint(
    session: AsyncClientSession | None, partner_id: ObjectId, url: str
) -> PartnerWebhookEndpoint:
    """A new enabled endpoint with a fresh signing secret (the caller checked the URL)."""
    now = utcnow()
    endpoint = PartnerWebhookEndpoint(
        partner_id=partner_id,
        url=url,
        secrets=[SigningSecret(secret=new_secret(), created_at=now)],
        created_at=now,
        updated_at=now,
    )
    await endpoint.insert(session=session)
    return endpoint


async def endpoints_of(partner_id: ObjectId) -> list[PartnerWebhookEndpoint]:
    """The partner's endpoints, oldest first (there are at most MAX_ENDPOINTS)."""
    return (
        await PartnerWebhookEndpoint.find({"partner_id": partner_id}).sort("created_at").to_list()
    )


async def endpoint_of(
    access: PartnerAccess, endpoint_id: ObjectId, session: AsyncClientSession | None = None
) -> PartnerWebhookEndpoint:
    """The partner's endpoint `endpoint_id`; NOT_FOUND for any other, another
    partner's included."""
    endpoint = await PartnerWebhookEndpoint.find_one(
        {"_id": endpoint_id, "partner_id": access.partner_id}, session=session
    )
    if endpoint is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such webhook endpoint.", "endpointId")
    return endpoint


def checked_url(services: Services, url: str) -> str:
    url = url.strip()
    problem = webhook_url_problem(url, services.settings)
    if problem is not None:
        raise DomainError(ErrorCode.INVALID_INPUT, problem, "url")
    return url


async def create_endpoint(services: Services, access: PartnerAccess, url: str) -> NewSecret:
    url = checked_url(services, url)

    async def work(unit: UnitOfWork) -> PartnerWebhookEndpoint:
        await _serialise(unit, access)
        count = await PartnerWebhookEndpoint.find(
            {"partner_id": access.partner_id}, session=unit.session
        ).count()
        if count >= MAX_ENDPOINTS:
            raise DomainError(
                ErrorCode.INVALID_STATE,
                f"A partner has at most {MAX_ENDPOINTS} webhook endpoints: delete one first.",
            )
        return await add_endpoint(unit.session, access.partner_id, url)

    endpoint = await transact(services, work)
    return NewSecret(endpoint, endpoint.secrets[0].secret)


async def update_endpoint(
    services: Services,
    access: PartnerAccess,
    endpoint_id: ObjectId,
    *,
    url: str | None,
    enabled: bool | None,
) -> PartnerWebhookEndpoint:
    """Change what is given (None: keep it). Disabling ends the pending deliveries."""
    url = checked_url(services, url) if url is not None else None

    async def work(unit: UnitOfWork) -> PartnerWebhookEndpoint:
        await _serialise(unit, access)
        endpoint = await endpoint_of(access, endpoint_id, unit.session)
        changes: dict[str, object] = {"updated_at": utcnow()}
        if url is not None:
            changes["url"] = url
        if enabled is not None:
            changes["enabled"] = enabled
            if not enabled:
                await end_pending(unit.session, endpoint_id)
        await PartnerWebhookEndpoint.get_pymongo_collection().update_one(
            {"_id": endpoint_id}, {"$set": changes}, session=unit.session
        )
        changed: PartnerWebhookEndpoint = endpoint.model_copy(update=changes)
        return changed

    return await transact(services, work)


async def delete_endpoint(services: Services, access: PartnerAccess, endpoint_id: ObjectId) -> None:
    """The endpoint is gone; its deliveries stay listed, pending ones ended as dead."""

    async def work(unit: UnitOfWork) -> None:
        await _serialise(unit, access)
        await endpoint_of(access, endpoint_id, unit.session)
        await end_pending(unit.session, endpoint_id)
        await PartnerWebhookEndpoint.get_pymongo_collection().delete_one(
            {"_id": endpoint_id}, session=unit.session
        )

    await transact(services, work)


async def rotate_secret(
    services: Services,
    meta: RequestMeta,
    access: PartnerAccess,
    endpoint_id: ObjectId,
    overlap: timedelta | None,
) -> NewSecret:
    """A new signing secret for the endpoint; the current ones keep signing until
    `overlap` from now (default: the settings'), then are dropped. Audited."""
    if overlap is None:
        overlap = services.settings.partner_webhook_secret_overlap
    if not timedelta(0) <= overlap <= MAX_OVERLAP:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            f"The overlap is between 0 and {int(MAX_OVERLAP.total_seconds())} seconds (7 days).",
            "overlapSeconds",
        )
    secret = new_secret()

    async def work(unit: UnitOfWork) -> PartnerWebhookEndpoint:
        await _serialise(unit, access)
        endpoint = await endpoint_of(access, endpoint_id, unit.session)
        now = utcnow()
        until = now + overlap
        kept = [
            s.model_copy(update={"expires_at": min(s.expires_at or until, until)})
            for s in endpoint.secrets
            if (s.expires_at is None or s.expires_at > now) and overlap > timedelta(0)
        ]
        rotated = [SigningSecret(secret=secret, created_at=now), *kept]
        await PartnerWebhookEndpoint.get_pymongo_collection().update_one(
            {"_id": endpoint_id},
            {"$set": {"secrets": [s.model_dump() for s in rotated], "updated_at": now}},
            session=unit.session,
        )
        await audit.record(
            AuditKind.PARTNER_WEBHOOK_SECRET_ROTATED,
            meta,
            session=unit.session,
            partner_id=str(access.partner_id),
            key_id=str(access.key.id),
            endpoint_id=str(endpoint_id),
            old_secrets_expire_at=until.isoformat() if kept else None,
        )
        changed: PartnerWebhookEndpoint = endpoint.model_copy(
            update={"secrets": rotated, "updated_at": now}
        )
        return changed

    endpoint = await transact(services, work)
    return NewSecret(endpoint, secret)


async def reveal_secret(
    services: Services, meta: RequestMeta, access: PartnerAccess, endpoint_id: ObjectId
) -> str:
    """The endpoint's newest signing secret. Audited, without the secret."""

    async def work(unit: UnitOfWork) -> str:
        endpoint = await endpoint_of(access, endpoint_id, unit.session)
        await audit.record(
            AuditKind.PARTNER_WEBHOOK_SECRET_REVEALED,
            meta,
            session=unit.session,
            partner_id=str(access.partner_id),
            key_id=str(access.key.id),
            endpoint_id=str(endpoint_id),
        )
        return endpoint.secrets[0].secret

    return await transact(services, work)


async def _serialise(unit: UnitOfWork, access: PartnerAccess) -> None:
    """First in each change of a partner's endpoints: concurrent ones conflict here, and
    the transaction that retries sees the other's result."""
    await Partner.get_pymongo_collection().update_one(
        {"_id": access.partner_id}, {"$inc": {"webhook_version": 1}}, session=unit.session
    )
