"""Partners' webhook endpoints and their signing secrets."""

from __future__ import annotations

import secrets

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.clock import utcnow
from documents.partners.webhooks import PartnerWebhookEndpoint, SigningSecret

SECRET_PREFIX = "whsec_"  # noqa: S105 # how secrets start, as Stripe's


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


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
