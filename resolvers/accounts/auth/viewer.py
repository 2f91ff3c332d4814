"""Who is calling: the account and session behind an access token."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from bson import ObjectId

from documents.accounts.sessions import Session
from documents.accounts.users import Role, User, UserStatus
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from resolvers.accounts.auth.tokens import AccessClaims, AccessTokens


@dataclass(frozen=True, slots=True)
class Viewer:
    user: User
    session_id: ObjectId
    expires_at: datetime | None = None
    """When the access token used runs out."""

    @property
    def user_id(self) -> ObjectId:
        assert self.user.id is not None
        return self.user.id


async def authenticate(tokens: AccessTokens, access_token: str) -> Viewer:
    """Check the token, then the account and session as they are now.

    A valid signature is not enough: the session may have been revoked (logout, password
    reset) and the account suspended since the token was issued, and either must take
    effect on the very next request.
    """
    return await viewer_as_of_now(tokens.verify(access_token))


async def viewer_as_of_now(claims: AccessClaims) -> Viewer:
    """The account and session a verified token names, as they are now: raises if either
    has ended (the token's own expiry is the caller's to check)."""
    user, session = await asyncio.gather(User.get(claims.user_id), Session.get(claims.session_id))
    return viewer_of(claims, user, session)


def viewer_of(claims: AccessClaims, user: User | None, session: Session | None) -> Viewer:
    """What `viewer_as_of_now` decides, given the account and session it reads (or a
    batch read of many sockets' found): raises if either has ended."""
    if user is None or session is None or session.user_id != user.id:
        raise DomainError(ErrorCode.INVALID_TOKEN, "The access token is not valid.")
    if user.status is UserStatus.SUSPENDED:
        raise DomainError(ErrorCode.ACCOUNT_SUSPENDED, "This account is suspended.")
    if user.status is UserStatus.DELETED:
        raise DomainError(ErrorCode.INVALID_TOKEN, "The access token is not valid.")
    if not session.is_active(utcnow()):
        raise DomainError(ErrorCode.SESSION_REVOKED, "This session has ended; log in again.")
    return Viewer(user, claims.session_id, claims.expires_at)


def require_role(viewer: Viewer, role: Role, doing: str) -> None:
    """FORBIDDEN unless the caller has `role`: "Only providers can {doing}."."""
    if not viewer.user.has_role(role):
        raise DomainError(ErrorCode.FORBIDDEN, f"Only {role.value}s can {doing}.")
