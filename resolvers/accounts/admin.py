"""Operator actions on accounts."""

from __future__ import annotations

from beanie import PydanticObjectId
from bson import ObjectId

from documents.accounts.audit import AuditKind
from documents.accounts.sessions import RevokeReason
from documents.accounts.users import Role, User, UserStatus, email_key
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from realtime.signals import announce_access_change
from resolvers.accounts import audit
from resolvers.accounts.auth.passwords import password_problems
from resolvers.accounts.auth.sessions import revoke_all_sessions
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.services import RequestMeta, Services
from resolvers.common.validation import MAX_REASON_LENGTH, Checked


async def suspend_user(
    services: Services, meta: RequestMeta, admin: Viewer, user_id: ObjectId, reason: str
) -> User:
    checked = Checked()
    reason = checked.text(reason, "reason", MAX_REASON_LENGTH, multiline=True)
    if not reason:
        checked.fail(ErrorCode.INVALID_INPUT, "Give a reason for the suspension.", "reason")
    if user_id == admin.user_id:
        checked.fail(ErrorCode.FORBIDDEN, "Admins cannot suspend themselves.", "userId")
    checked.raise_if_any()
    result = await User.get_pymongo_collection().update_one(
        {"_id": user_id, "status": UserStatus.ACTIVE.value},
        {
            "$set": {
                "status": UserStatus.SUSPENDED.value,
                "suspension_reason": reason,
                "updated_at": utcnow(),
            }
        },
    )
    user = await _existing(user_id)
    if not result.modified_count:
        raise DomainError(
            ErrorCode.INVALID_STATE, f"The account is {user.status.value}, not active.", "userId"
        )
    revoked = await revoke_all_sessions(user_id, RevokeReason.ACCOUNT_SUSPENDED)
    await announce_access_change(services.broker, user_id)
    await audit.record(
        AuditKind.USER_SUSPENDED,
        meta,
        user_id=user_id,
        actor_id=admin.user_id,
        reason=reason,
        sessions_revoked=revoked,
    )
    return user


async def reinstate_user(meta: RequestMeta, admin: Viewer, user_id: ObjectId) -> User:
    result = await User.get_pymongo_collection().update_one(
        {"_id": user_id, "status": UserStatus.SUSPENDED.value},
        {
            "$set": {
                "status": UserStatus.ACTIVE.value,
                "suspension_reason": None,
                "updated_at": utcnow(),
            }
        },
    )
    user = await _existing(user_id)
    if not result.modified_count:
        raise DomainError(
            ErrorCode.INVALID_STATE, f"The account is {user.status.value}, not suspended.", "userId"
        )
    await audit.record(AuditKind.USER_REINSTATED, meta, user_id=user_id, actor_id=admin.user_id)
    return user


async def _existing(user_id: ObjectId) -> User:
    user = await User.get(PydanticObjectId(user_id))
    if user is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such user.", "userId")
    return user


async def create_admin(
    services: Services, meta: RequestMeta, *, name: str, email: str, password: str
) -> User:
    """Create an admin account, or make an existing account an admin (its password stays)."""
    checked = Checked()
    email = checked.email(email)
    existing = await User.find_one(User.email_key == email_key(email))
    if existing is None:
        name = checked.name(name)
        checked.add(password_problems(password, "password"))
    checked.raise_if_any()

    if existing is not None:
        if not existing.is_admin:
            before = [r.value for r in existing.roles]
            existing.roles = [*existing.roles, Role.ADMIN]
            existing.updated_at = utcnow()
            await existing.save()
            assert existing.id is not None
            await announce_access_change(services.broker, existing.id)  # sockets read it again
            await audit.record(
                AuditKind.ROLE_CHANGED,
                meta,
                user_id=existing.id,
                before=before,
                after=[r.value for r in existing.roles],
                via="create-admin",
            )
        return existing

    user = User(
        name=name,
        email=email,
        email_key=email_key(email),
        # The operator typed the address in; there is no one to send a link to first.
        email_verified_at=utcnow(),
        roles=[Role.ADMIN],
        password_hash=await services.passwords.hash(password),
    )
    await user.insert()
    await audit.record(
        AuditKind.SIGNUP, meta, user_id=user.id, roles=[Role.ADMIN.value], via="create-admin"
    )
    await audit.record(
        AuditKind.ROLE_CHANGED,
        meta,
        user_id=user.id,
        before=[],
        after=[Role.ADMIN.value],
        via="create-admin",
    )
    return user
