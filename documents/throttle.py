"""Fixed-window failure counters, used to slow down password guessing per client."""

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
