"""Failure counters that slow down guessing: per client in fixed windows, per address."""

from __future__ import annotations

from datetime import datetime

from beanie import Document
from pymongo import ASCENDING, IndexModel


class FailureWindow(Document):
    key: str
    window_start: datetime
    failures: int = 0
    expires_at: datetime

    class Settings:
        name = "failure_windows"
        use_revision = False
        indexes = [
            IndexModel([("key", ASCENDING), ("window_start", ASCENDING)], unique=True),
            IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0),
        ]


class PasswordLock(Document):
    """Consecutive wrong passwords given for one e-mail address, and the lock they led to.

    Kept per address (a digest of its lookup key), whether or not an account has it, so
    that guessing at an address without an account counts, locks and answers exactly
    like guessing at one with: the answers do not tell who has an account.
    """

    key: str
    failures: int = 0
    locked_until: datetime | None = None
    expires_at: datetime

    class Settings:
        name = "password_locks"
        use_revision = False
        indexes = [
            IndexModel([("key", ASCENDING)], unique=True),
            IndexModel([("expires_at", ASCENDING)], expireAfterSeconds=0),
        ]
