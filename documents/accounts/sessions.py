"""Login sessions and the rotating refresh tokens that keep them alive.

A session is one refresh-token family: every refresh consumes the current token and
issues the next one in the same family. Presenting a consumed token again means it was
copied, so the whole family (the session) is revoked. Only SHA-256 digests of tokens are
stored; the tokens themselves exist only on the client.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from beanie import Document, PydanticObjectId
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow


class RevokeReason(StrEnum):
    LOGOUT = "logout"
    LOGOUT_EVERYWHERE = "logout_everywhere"
    REVOKED_BY_USER = "revoked_by_user"
    PASSWORD_CHANGED = "password_changed"
    PASSWORD_RESET = "password_reset"
    TOKEN_REUSE = "token_reuse"
    ACCOUNT_SUSPENDED = "account_suspended"
    ACCOUNT_DELETED = "account_deleted"


class Session(Document):
    user_id: PydanticObjectId
    created_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    ip: str | None = None
    user_agent: str | None = None
    device_name: str | None = None
    revoked_at: datetime | None = None
    revoke_reason: RevokeReason | None = None

    class Settings:
        name = "sessions"
        use_revision = False
        indexes = [
            IndexModel([("user_id", ASCENDING), ("last_used_at", DESCENDING)]),
            IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0),
        ]

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and self.expires_at > now


class RefreshToken(Document):
    token_hash: str
    session_id: PydanticObjectId
    user_id: PydanticObjectId
    issued_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None

    class Settings:
        name = "refresh_tokens"
        use_revision = False
        indexes = [
            IndexModel([("token_hash", ASCENDING)], unique=True),
            IndexModel([("session_id", ASCENDING)]),
            # Consumed tokens stay until they expire so that their reuse is recognised.
            IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0),
        ]
