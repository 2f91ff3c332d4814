"""Counting events per key in fixed time windows (failed logins per IP, mails per address)."""

from __future__ import annotations

from datetime import datetime, timedelta

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from documents.clock import utcnow
from documents.throttle import FailureWindow


def _window_start(now: datetime, window: timedelta) -> datetime:
    size = window.total_seconds()
    return datetime.fromtimestamp(now.timestamp() // size * size, tz=now.tzinfo)


class Throttle:
    def __init__(self, scope: str, limit: int, window: timedelta) -> None:
        self._scope = scope
        self.limit = limit
        self.window = window

    def _key(self, subject: str) -> str:
        return f"{self._scope}:{subject}"

    async def count(self, subject: str) -> int:
        start = _window_start(utcnow(), self.window)
        window = await FailureWindow.find_one(
            FailureWindow.key == self._key(subject), FailureWindow.window_start == start
        )
        return window.failures if window else 0

    async def exhausted(self, subject: str) -> bool:
        return await self.count(subject) >= self.limit

    async def hit(self, subject: str) -> int:
        """Count one event; return the count in the current window, this one included."""
        start = _window_start(utcnow(), self.window)
        try:
            return await self._increment(subject, start)
        except DuplicateKeyError:
            # Two first hits raced to create the window; the loser now finds it.
            return await self._increment(subject, start)

    async def _increment(self, subject: str, start: datetime) -> int:
        window = await FailureWindow.get_pymongo_collection().find_one_and_update(
            {"key": self._key(subject), "window_start": start},
            {"$inc": {"failures": 1}, "$setOnInsert": {"expires_at": start + self.window}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert window is not None  # an upsert always leaves a document
        return int(window["failures"])

    def retry_after(self) -> datetime:
        return _window_start(utcnow(), self.window) + self.window
