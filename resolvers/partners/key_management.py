"""A partner's API keys as its owner and admins manage them: made, listed, revoked.

Only the owner of an approved partner makes keys; the whole key is in the answer once
and never stored (resolvers/partners/keys.py keeps its digest). A partner holds up to
MAX_KEYS_IN_USE unrevoked keys, so that a new one can be deployed before the old one is
revoked; making one claims the partner document, so concurrent requests cannot pass
the limit together, and a suspension racing it conflicts with it. The owner or an admin
revokes a key; keys are read from the database on every request, so the next request
with it is refused on every instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.accounts.audit import AuditKind
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.partners.api_keys import ApiScope, PartnerApiKey
from documents.partners.partners import Partner, PartnerStatus
from resolvers.accounts import audit
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.pagination import Page, PageRequest, paginate
from resolvers.common.services import RequestMeta, Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.common.validation import MAX_NAME_LENGTH, Checked
from resolvers.partners.applications import NEWEST_FIRST, partner_of
from resolvers.partners.keys import NewKey, key_mode, make_key

MAX_KEYS_IN_USE = 10
"""Unrevoked keys a partner may hold at once (expired ones count until revoked)."""
MAX_KEY_LIFETIME = timedelta(days=3 * 365)
"""The furthest an expiry may be set."""


async def create_key(
    services: Services,
    meta: RequestMeta,
    viewer: Viewer,
    name: str,
    scopes: Sequence[ApiScope],
    expires_at: datetime | None,
) -> NewKey:
    """A new key of the viewer's partner; FORBIDDEN if they own none, INVALID_STATE
    unless it is approved or while it holds MAX_KEYS_IN_USE keys."""
    checked = Checked()
    name = checked.required_text(name, "name", min_length=1, max_length=MAX_NAME_LENGTH)
    if not scopes:
        checked.fail(ErrorCode.INVALID_INPUT, "Choose at least one scope.", "scopes")
    if expires_at is not None:
        expires_at = checked.future(expires_at, "expiresAt", within=MAX_KEY_LIFETIME)
    checked.raise_if_any()

    async def work(unit: UnitOfWork) -> NewKey:
        partner = await _owned_approved(unit.session, viewer)
        assert partner.id is not None
        in_use = await PartnerApiKey.find(
            {"partner_id": partner.id, "revoked_at": None}, session=unit.session
        ).count()
        if in_use >= MAX_KEYS_IN_USE:
            raise DomainError(
                ErrorCode.INVALID_STATE,
                f"A partner holds at most {MAX_KEYS_IN_USE} keys in use; revoke one first.",
            )
        made = make_key(
            partner.id,
            mode=key_mode(services.settings),
            name=name,
            scopes=list(scopes),
            expires_at=expires_at,
            created_by=viewer.user_id,
        )
        await made.key.insert(session=unit.session)
        await audit.record(
            AuditKind.PARTNER_KEY_CREATED,
            meta,
            user_id=viewer.user_id,
            actor_id=viewer.user_id,
            session=unit.session,
            partner_id=str(partner.id),
            key_id=str(made.key.id),
            name=name,
            hint=made.key.hint,
            mode=made.key.mode.value,
            scopes=[s.value for s in made.key.scopes],
            expires_at=expires_at,
        )
        return made

    return await transact(services, work)


async def _owned_approved(session: AsyncClientSession, viewer: Viewer) -> Partner:
    """The viewer's partner, claimed in this transaction while it is approved."""
    partner = await partner_of(viewer.user_id, session)
    if partner is None:
        raise DomainError(ErrorCode.FORBIDDEN, "Only a partner's owner can make its keys.")
    claimed = await Partner.get_pymongo_collection().update_one(
        {"_id": partner.id, "status": PartnerStatus.APPROVED.value},
        {"$set": {"updated_at": utcnow()}},
        session=session,
    )
    if claimed.matched_count == 0:
        raise DomainError(
            ErrorCode.INVALID_STATE,
            f"The partner is {partner.status.value}; keys are made only once it is approved.",
        )
    return partner


async def revoke_key(
    services: Services, meta: RequestMeta, viewer: Viewer, key_id: ObjectId
) -> PartnerApiKey:
    """Revoke a key, by its partner's owner or an admin; INVALID_STATE if it was already."""

    async def work(unit: UnitOfWork) -> PartnerApiKey:
        key = await PartnerApiKey.get(key_id, session=unit.session)
        partner = await Partner.get(key.partner_id, session=unit.session) if key else None
        if key is None or partner is None:
            raise DomainError(ErrorCode.NOT_FOUND, "No such key.", "keyId")
        if partner.owner_id != viewer.user_id and not viewer.user.is_admin:
            raise DomainError(
                ErrorCode.FORBIDDEN, "Only the partner's owner or an admin can revoke its keys."
            )
        now = utcnow()
        revoked = await PartnerApiKey.get_pymongo_collection().update_one(
            {"_id": key.id, "revoked_at": None},
            {"$set": {"revoked_at": now, "revoked_by": viewer.user_id}},
            session=unit.session,
        )
        if revoked.matched_count == 0:
            raise DomainError(ErrorCode.INVALID_STATE, "The key was revoked already.", "keyId")
        await audit.record(
            AuditKind.PARTNER_KEY_REVOKED,
            meta,
            user_id=partner.owner_id,
            actor_id=viewer.user_id,
            session=unit.session,
            partner_id=str(partner.id),
            key_id=str(key.id),
            name=key.name,
            hint=key.hint,
        )
        key.revoked_at, key.revoked_by = now, PydanticObjectId(viewer.user_id)
        return key

    return await transact(services, work)


async def keys_of(partner_id: ObjectId, request: PageRequest) -> Page[PartnerApiKey]:
    """A partner's keys, revoked ones too, newest first (the caller checks who asks)."""
    return await paginate(PartnerApiKey, {"partner_id": partner_id}, NEWEST_FIRST, request)
