"""The caller's own account: profile, roles, a copy of their data, erasure."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from documents.accounts.audit import AuditEvent, AuditKind
from documents.accounts.one_time_tokens import OneTimeToken
from documents.accounts.profiles import CustomerProfile, ProviderProfile
from documents.accounts.sessions import RefreshToken, RevokeReason, Session
from documents.accounts.users import DELETED_USER_NAME, Role, User, UserStatus
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.notifications.deliveries import Delivery, DeliveryStatus
from documents.notifications.preferences import NotificationPreferences
from documents.transactions import run_in_transaction
from realtime.signals import announce_access_change
from resolvers.accounts import audit
from resolvers.accounts.auth.password_checks import check_password, confirmation
from resolvers.accounts.auth.sessions import revoke_all_sessions
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.inputs import KEEP, Keep, given_fields, if_given
from resolvers.common.services import RequestMeta, Services
from resolvers.common.validation import Checked


async def update_profile(
    services: Services,
    meta: RequestMeta,
    viewer: Viewer,
    *,
    name: str | Keep = KEEP,
    phone: str | Keep | None = KEEP,
    roles: list[Role] | Keep = KEEP,
) -> User:
    user = viewer.user
    checked = Checked()
    changes = given_fields(
        name=if_given(name, checked.name),
        phone=if_given(phone, checked.phone),
        roles=if_given(roles, lambda chosen: _roles(checked, user, chosen)),
    )
    checked.raise_if_any()
    old_roles = list(user.roles)
    changes = {name: value for name, value in changes.items() if getattr(user, name) != value}
    if not changes:
        return user  # nothing to write, nor to tell the person's sockets
    changes["updated_at"] = utcnow()
    await User.get_pymongo_collection().update_one({"_id": user.id}, {"$set": changes})
    await announce_access_change(services.broker, viewer.user_id)  # sockets read it again
    updated = await User.get(viewer.user_id)
    assert updated is not None
    if "roles" in changes and set(changes["roles"]) != set(old_roles):
        await audit.record(
            AuditKind.ROLE_CHANGED,
            meta,
            user_id=user.id,
            before=[r.value for r in old_roles],
            after=[r.value for r in updated.roles],
        )
    fields = sorted(k for k in changes if k not in ("roles", "updated_at"))
    if fields:
        await audit.record(AuditKind.PROFILE_UPDATED, meta, user_id=user.id, fields=fields)
    return updated


def _roles(checked: Checked, user: User, chosen: list[Role]) -> list[Role]:
    """The working roles chosen; admin is granted by operators only, and choosing keeps it."""
    working = checked.self_service_roles(chosen)
    return [*working, Role.ADMIN] if user.is_admin else working


async def _confirm_password(
    services: Services, meta: RequestMeta, viewer: Viewer, password: str
) -> None:
    """The caller's password, checked like a login's (counted, locked and audited with it)."""
    user = viewer.user
    assert user.email_key is not None  # only erased accounts lack one, and they cannot log in
    await check_password(
        services,
        meta,
        confirmation("password"),
        address=user.email_key,
        user=user,
        password=password,
    )


async def export_my_data(
    services: Services, meta: RequestMeta, viewer: Viewer, password: str
) -> dict[str, Any]:
    """Everything stored about the caller, in plain JSON (the right of access)."""
    await _confirm_password(services, meta, viewer, password)
    user = viewer.user
    sessions = await Session.find(Session.user_id == user.id).sort("-created_at").to_list()
    events = await AuditEvent.find(AuditEvent.user_id == user.id).sort("-at").to_list()
    preferences = await NotificationPreferences.find_one(NotificationPreferences.user_id == user.id)
    await audit.record(AuditKind.DATA_EXPORTED, meta, user_id=user.id)
    return {
        "exportedAt": utcnow().isoformat(),
        "account": user.model_dump(mode="json", exclude={"password_hash", "revision_id"}),
        "sessions": [s.model_dump(mode="json", exclude={"revision_id"}) for s in sessions],
        "securityEvents": [e.model_dump(mode="json", exclude={"revision_id"}) for e in events],
        # Choices, quiet hours, the phone number and browsers: not the code's hash.
        "notificationPreferences": preferences.model_dump(
            mode="json", exclude={"revision_id": True, "phone": {"code_hash"}}
        )
        if preferences is not None
        else None,
    }


async def delete_my_account(
    services: Services, meta: RequestMeta, viewer: Viewer, password: str
) -> None:
    """Erase personal data, keeping an anonymous account for what others still refer to.

    The account record stays (as "Deleted user") because other people's tasks, reviews
    and payments point at it, and the audit log is kept as a security record; both hold
    no name, address, phone or password any more. Deals in progress or money due refuse
    it; offers and requests not yet deals are ended first (resolvers/accounts/closing.py).
    """
    # Imported here: the use cases it calls import this module (KEEP).
    from resolvers.accounts import closing as account_closing

    await _confirm_password(services, meta, viewer, password)
    user_id = viewer.user_id
    await account_closing.refuse_if_in_progress(user_id)

    async def erase(db_session: AsyncClientSession) -> None:
        # Nothing may have become a deal, nor arrived pending, while winding down.
        await account_closing.refuse_if_in_progress(user_id, db_session)
        await account_closing.refuse_if_pending(user_id, db_session)
        now = utcnow()
        await User.get_pymongo_collection().update_one(
            {"_id": user_id},
            {
                "$set": {
                    "name": DELETED_USER_NAME,
                    "email": None,
                    "email_key": None,
                    "email_verified_at": None,
                    "phone": None,
                    "password_hash": None,
                    "status": UserStatus.DELETED.value,
                    "deleted_at": now,
                    "updated_at": now,
                }
            },
            session=db_session,
        )
        await revoke_all_sessions(user_id, RevokeReason.ACCOUNT_DELETED, db_session=db_session)
        # Sessions keep device and network details: erase those too.
        await Session.get_pymongo_collection().update_many(
            {"user_id": user_id},
            {"$set": {"ip": None, "user_agent": None, "device_name": None}},
            session=db_session,
        )
        await RefreshToken.get_pymongo_collection().delete_many(
            {"user_id": user_id}, session=db_session
        )
        await OneTimeToken.get_pymongo_collection().delete_many(
            {"user_id": user_id}, session=db_session
        )
        # Profiles keep the ratings others gave; where someone lives or works goes.
        await ProviderProfile.get_pymongo_collection().update_one(
            {"_id": user_id},
            {"$set": {"place": None, "bio": "", "available": False, "updated_at": now}},
            session=db_session,
        )
        await CustomerProfile.get_pymongo_collection().update_one(
            {"_id": user_id}, {"$set": {"addresses": [], "updated_at": now}}, session=db_session
        )
        # A phone number and browsers to push to are how to reach the person: gone too, with
        # whatever was waiting to reach them.
        await NotificationPreferences.get_pymongo_collection().delete_one(
            {"user_id": user_id}, session=db_session
        )
        await Delivery.get_pymongo_collection().update_many(
            {"user_id": user_id, "status": DeliveryStatus.PENDING.value},
            {"$set": {"status": DeliveryStatus.SKIPPED.value, "ended_reason": "account deleted"}},
            session=db_session,
        )

    for _ in range(account_closing.MAX_ROUNDS):
        await account_closing.wind_down(services, viewer)
        try:
            await run_in_transaction(erase)
            break
        except account_closing.LeftPending:
            continue  # a new offer or request arrived meanwhile: wind that down too
    else:
        raise DomainError(
            ErrorCode.INVALID_STATE,
            "New offers or booking requests keep arriving; try again in a moment.",
        )
    await announce_access_change(services.broker, user_id)
    await audit.record(AuditKind.ACCOUNT_DELETED, meta, user_id=user_id)
