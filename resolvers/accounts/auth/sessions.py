"""Sessions: starting one at login, rotating its refresh token, ending it."""

from __future__ import annotations

from dataclasses import dataclass

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.accounts.audit import AuditKind
from documents.accounts.sessions import RefreshToken, RevokeReason, Session
from documents.accounts.users import User, UserStatus
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.transactions import run_in_transaction
from realtime.broker import Broker
from realtime.signals import announce_access_change
from resolvers.accounts import audit
from resolvers.accounts.auth import guessing
from resolvers.accounts.auth.tokens import IssuedToken, digest, new_secret
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.services import RequestMeta, Services

MAX_DEVICE_NAME_LENGTH = 100


@dataclass(frozen=True, slots=True)
class SignedIn:
    user: User
    session: Session
    access: IssuedToken
    refresh: IssuedToken


async def start_session(
    services: Services, meta: RequestMeta, user: User, device_name: str | None
) -> SignedIn:
    assert user.id is not None
    now = utcnow()
    expires_at = now + services.settings.refresh_token_ttl
    session = Session(
        user_id=user.id,
        expires_at=expires_at,
        ip=meta.ip,
        user_agent=meta.user_agent,
        device_name=(device_name or "").strip()[:MAX_DEVICE_NAME_LENGTH] or None,
        created_at=now,
        last_used_at=now,
    )
    token, token_hash = new_secret()

    async def insert(db_session: AsyncClientSession) -> None:
        await session.insert(session=db_session)
        assert session.id is not None
        refresh = RefreshToken(
            token_hash=token_hash, session_id=session.id, user_id=user.id, expires_at=expires_at
        )
        await refresh.insert(session=db_session)

    await run_in_transaction(insert)
    assert session.id is not None
    access = services.tokens.issue(user.id, session.id, admin=user.is_admin)
    return SignedIn(user, session, access, IssuedToken(token, expires_at))


async def refresh(services: Services, meta: RequestMeta, refresh_token: str) -> SignedIn:
    """Trade a refresh token for a new pair; a second use of one token ends its session."""
    if not refresh_token:
        raise DomainError(ErrorCode.INVALID_TOKEN, "No refresh token was given.", "refreshToken")
    token_hash = digest(refresh_token)
    next_token, next_hash = new_secret()

    async def rotate(db_session: AsyncClientSession) -> tuple[User, Session] | None:
        now = utcnow()
        consumed = await RefreshToken.get_pymongo_collection().find_one_and_update(
            {"token_hash": token_hash, "used_at": None, "expires_at": {"$gt": now}},
            {"$set": {"used_at": now}},
            return_document=ReturnDocument.AFTER,
            session=db_session,
        )
        if consumed is None:
            return None
        session = await Session.get(PydanticObjectId(consumed["session_id"]), session=db_session)
        user = await User.get(PydanticObjectId(consumed["user_id"]), session=db_session)
        if session is None or user is None or not session.is_active(now):
            raise DomainError(ErrorCode.SESSION_REVOKED, "This session has ended; log in again.")
        if user.status is not UserStatus.ACTIVE:
            raise DomainError(ErrorCode.ACCOUNT_SUSPENDED, "This account is suspended.")
        session.last_used_at = now
        session.expires_at = now + services.settings.refresh_token_ttl
        session.ip = meta.ip
        session.user_agent = meta.user_agent
        await session.save(session=db_session)
        assert session.id is not None
        await RefreshToken(
            token_hash=next_hash,
            session_id=session.id,
            user_id=consumed["user_id"],
            issued_at=now,
            expires_at=session.expires_at,
        ).insert(session=db_session)
        return user, session

    async with guessing.token_check(services, meta, "refresh"):
        rotated = await run_in_transaction(rotate)
        if rotated is None:
            raise await _unusable_token_error(services.broker, meta, token_hash)
    user, session = rotated
    assert user.id is not None and session.id is not None
    access = services.tokens.issue(user.id, session.id, admin=user.is_admin)
    return SignedIn(user, session, access, IssuedToken(next_token, session.expires_at))


async def _unusable_token_error(broker: Broker, meta: RequestMeta, token_hash: str) -> DomainError:
    known = await RefreshToken.find_one(RefreshToken.token_hash == token_hash)
    if known is None or known.used_at is None:
        return DomainError(ErrorCode.INVALID_TOKEN, "The refresh token is not valid or expired.")
    # Someone holds a copy of a rotated token: end the family before either side uses it.
    await revoke_session(known.session_id, RevokeReason.TOKEN_REUSE)
    await announce_access_change(broker, known.user_id)
    await audit.record(
        AuditKind.REFRESH_TOKEN_REUSED,
        meta,
        user_id=known.user_id,
        session_id=str(known.session_id),
    )
    return DomainError(
        ErrorCode.TOKEN_REUSED,
        "This refresh token was already used; the session has been ended for safety.",
    )


async def revoke_session(
    session_id: ObjectId, reason: RevokeReason, *, user_id: ObjectId | None = None
) -> bool:
    query: dict[str, object] = {"_id": session_id, "revoked_at": None}
    if user_id is not None:
        query["user_id"] = user_id
    result = await Session.get_pymongo_collection().update_one(
        query, {"$set": {"revoked_at": utcnow(), "revoke_reason": reason.value}}
    )
    return result.modified_count == 1


async def revoke_all_sessions(
    user_id: ObjectId,
    reason: RevokeReason,
    *,
    keep: ObjectId | None = None,
    db_session: AsyncClientSession | None = None,
) -> int:
    query: dict[str, object] = {"user_id": user_id, "revoked_at": None}
    if keep is not None:
        query["_id"] = {"$ne": keep}
    result = await Session.get_pymongo_collection().update_many(
        query,
        {"$set": {"revoked_at": utcnow(), "revoke_reason": reason.value}},
        session=db_session,
    )
    return result.modified_count


async def logout(
    services: Services, meta: RequestMeta, *, viewer: Viewer | None, refresh_token: str | None
) -> None:
    """End the caller's session, named by its refresh token or by the access token in use."""
    session_id: ObjectId | None = None
    if refresh_token:
        known = await RefreshToken.find_one(RefreshToken.token_hash == digest(refresh_token))
        if known is not None:
            session_id = known.session_id
    if session_id is None and viewer is not None:
        session_id = viewer.session_id
    if session_id is None:
        raise DomainError(ErrorCode.UNAUTHENTICATED, "No session to end: log in first.")
    session = await Session.get(PydanticObjectId(session_id))
    if session is None:
        raise DomainError(ErrorCode.INVALID_TOKEN, "The refresh token is not valid or expired.")
    await revoke_session(session_id, RevokeReason.LOGOUT)
    await announce_access_change(services.broker, session.user_id)
    await audit.record(AuditKind.LOGOUT, meta, user_id=session.user_id, session_id=str(session_id))


async def logout_everywhere(
    services: Services, meta: RequestMeta, viewer: Viewer, *, keep_current: bool
) -> int:
    keep = viewer.session_id if keep_current else None
    count = await revoke_all_sessions(viewer.user_id, RevokeReason.LOGOUT_EVERYWHERE, keep=keep)
    await announce_access_change(services.broker, viewer.user_id)
    await audit.record(
        AuditKind.SESSIONS_REVOKED,
        meta,
        user_id=viewer.user_id,
        reason="logout_everywhere",
        count=count,
    )
    return count


async def revoke_own_session(
    services: Services, meta: RequestMeta, viewer: Viewer, session_id: ObjectId
) -> None:
    if not await revoke_session(session_id, RevokeReason.REVOKED_BY_USER, user_id=viewer.user_id):
        raise DomainError(ErrorCode.NOT_FOUND, "No such active session.", "sessionId")
    await announce_access_change(services.broker, viewer.user_id)
    await audit.record(AuditKind.LOGOUT, meta, user_id=viewer.user_id, session_id=str(session_id))
