"""Accounts: who someone is and what they may do."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from beanie import Document
from pydantic import Field
from pymongo import ASCENDING, IndexModel

from documents.clock import utcnow


class Role(StrEnum):
    POSTER = "poster"
    """Hires: posts tasks and books services (a customer)."""
    TASKER = "tasker"
    """Works: makes offers and provides services (a provider)."""
    ADMIN = "admin"
    """Operates the marketplace; granted only by `gigql create-admin`."""


SELF_SERVICE_ROLES = frozenset({Role.POSTER, Role.TASKER})


class UserStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    DELETED = "deleted"


DELETED_USER_NAME = "Deleted user"


def email_key(email: str) -> str:
    """The case-insensitive identity of an address, used for uniqueness and lookup."""
    return email.strip().casefold()


class User(Document):
    name: str
    email: str | None
    email_key: str | None
    email_verified_at: datetime | None = None
    phone: str | None = None
    roles: list[Role]
    status: UserStatus = UserStatus.ACTIVE
    suspension_reason: str | None = None
    password_hash: str | None
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    deleted_at: datetime | None = None

    class Settings:
        name = "users"
        use_revision = False
        indexes = [
            # Partial: erased accounts give up their address for a new sign-up.
            IndexModel(
                [("email_key", ASCENDING)],
                name="email_key_unique",
                unique=True,
                partialFilterExpression={"email_key": {"$type": "string"}},
            ),
            IndexModel([("status", ASCENDING), ("created_at", ASCENDING)]),
        ]

    def has_role(self, role: Role) -> bool:
        return role in self.roles

    @property
    def is_admin(self) -> bool:
        return Role.ADMIN in self.roles
