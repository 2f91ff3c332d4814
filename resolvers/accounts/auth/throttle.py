"""Counting events per key in fixed time windows (secret checks per IP, mails per address)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from documents.accounts.throttle import FailureWindow
from documents.clock import utcnow


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
        """The events counted in the current window."""
        start = _window_start(utcnow(), self.window)
        window = await FailureWindow.get_pymongo_collection().find_one(
            {"key": self._key(subject), "window_start": start}, {"failures": 1}
        )
        return int(window["failures"]) if window else 0

    async def hit(self, subject: str) -> int:
        """Count one event; return the count in the current window, this one included."""
        start = _window_start(utcnow(), self.window)
        return await count_failure(
            FailureWindow.get_pymongo_collection(),
            {"key": self._key(subject), "window_start": start},
            {"$setOnInsert": {"expires_at": start + self.window}},
        )

    async def forgive(self, subject: str) -> None:
        """Take back one event of the current window (an attempt that turned out right)."""
        start = _window_start(utcnow(), self.window)
        await FailureWindow.get_pymongo_collection().update_one(
            {"key": self._key(subject), "window_start": start, "failures": {"$gt": 0}},
            {"$inc": {"failures": -1}},
        )

    def retry_after(self) -> datetime:
        return _window_start(utcnow(), self.window) + self.window


async def count_failure(
    collection: AsyncCollection[dict[str, Any]], query: dict[str, Any], update: dict[str, Any]
) -> int:
    """Add one to `failures` of the document `query` names, made if missing (with `update`
    applied as well); the count, this one included."""
    change = {"$inc": {"failures": 1}, **update}
    try:
        counted = await _upsert(collection, query, change)
    except DuplicateKeyError:
        # Two first failures raced to make the document; the loser now finds it.
        counted = await _upsert(collection, query, change)
    if counted is None:
        # SecantusDB may answer an upsert that raced another with no document, though it
        # made the change: read it back (a count that may include a later failure).
        counted = await collection.find_one(query)
    assert counted is not None
    return int(counted["failures"])


async def _upsert(
    collection: AsyncCollection[dict[str, Any]], query: dict[str, Any], change: dict[str, Any]
) -> dict[str, Any] | None:
    return await collection.find_one_and_update(
        query, change, upsert=True, return_document=ReturnDocument.AFTER
    )
