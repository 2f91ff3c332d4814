"""The security audit log: who did what to which account, from where, and when.

Entries are only ever inserted. They outlive account deletion (security and legal
records), so they hold ids and network facts, never names, addresses or secrets.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from beanie import Document, PydanticObjectId
from pydantic import Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow


class AuditKind(StrEnum):
    SIGNUP = "signup"
    SIGNUP_ADDRESS_TAKEN = "signup_address_taken"
    """Someone tried to sign up with the address of this account; its owner was told."""
    EMAIL_VERIFIED = "email_verified"
    LOGIN_SUCCEEDED = "login_succeeded"
    LOGIN_FAILED = "login_failed"
    ACCOUNT_LOCKED = "account_locked"
    PASSWORD_CHECK_FAILED = "password_check_failed"
    """A wrong password where a logged-in user confirms theirs (export, deletion, change)."""
    TOKEN_REJECTED = "token_rejected"
    """A refresh or mailed token that was unknown, expired, or refused for its network."""
    REFRESH_TOKEN_REUSED = "refresh_token_reused"
    LOGOUT = "logout"
    SESSIONS_REVOKED = "sessions_revoked"
    PASSWORD_RESET_REQUESTED = "password_reset_requested"
    PASSWORD_RESET = "password_reset"
    PASSWORD_CHANGED = "password_changed"
    ROLE_CHANGED = "role_changed"
    PROFILE_UPDATED = "profile_updated"
    DATA_EXPORTED = "data_exported"
    ACCOUNT_DELETED = "account_deleted"
    PHONE_CODE_SENT = "phone_code_sent"
    """A one-time code went by SMS to confirm a phone number (the number is not logged)."""
    PHONE_CODE_REJECTED = "phone_code_rejected"
    """A wrong or expired phone code, or a check refused for too many failures."""
    PHONE_VERIFIED = "phone_verified"
    PHONE_REMOVED = "phone_removed"
    USER_SUSPENDED = "user_suspended"
    USER_REINSTATED = "user_reinstated"
    WEBHOOK_EVENT_RETRIED = "webhook_event_retried"
    NOTIFICATION_DELIVERY_RETRIED = "notification_delivery_retried"
    DISPUTE_RESOLVED = "dispute_resolved"
    ESCROW_RELEASED_BY_ADMIN = "escrow_released_by_admin"
    ESCROW_REFUNDED_BY_ADMIN = "escrow_refunded_by_admin"
    CHARGEBACK_SETTLED_BY_ADMIN = "chargeback_settled_by_admin"
    PARTNER_APPLIED = "partner_applied"
    PARTNER_STATUS_CHANGED = "partner_status_changed"
    """An admin approved, rejected, suspended, reinstated or closed a partner."""
    PARTNER_KEY_CREATED = "partner_key_created"
    PARTNER_KEY_REVOKED = "partner_key_revoked"
    PARTNER_KEY_REJECTED = "partner_key_rejected"
    """A partner API key that was unknown, wrong, revoked, expired, of a partner not
    approved, or a check refused for too many failures from the address."""
    PARTNER_WEBHOOK_SECRET_ROTATED = "partner_webhook_secret_rotated"
    PARTNER_WEBHOOK_SECRET_REVEALED = "partner_webhook_secret_revealed"


class AuditEvent(Document):
    kind: AuditKind
    at: datetime = Field(default_factory=utcnow)
    user_id: PydanticObjectId | None = None
    """The account the event is about."""
    actor_id: PydanticObjectId | None = None
    """Who caused it, when that is someone else (an admin) or known."""
    ip: str | None = None
    user_agent: str | None = None
    request_id: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)

    class Settings:
        name = "audit_events"
        use_revision = False
        indexes = [
            IndexModel([("user_id", ASCENDING), ("at", DESCENDING), ("_id", DESCENDING)]),
            IndexModel([("kind", ASCENDING), ("at", DESCENDING), ("_id", DESCENDING)]),
            IndexModel([("at", DESCENDING), ("_id", DESCENDING)]),
        ]
