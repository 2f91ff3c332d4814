"""Subscription streams that neither lose nor repeat an item across a reconnect.

A stream subscribes to its topics first, then reads from the database everything after
the position the client gave, then goes live, dropping live items it already sent. So
an item published while the history was being read is neither lost (the subscription
already buffers it) nor sent twice (its position is not after the last one sent).
Where positions count up one by one (chat messages), a jump reveals a lost publication
and is filled from the database; after the broker lost its connection (RESYNC), the
database is read again for the same reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from realtime.broker import RESYNC, Broker, Message

T = TypeVar("T")
P = TypeVar("P", int, str)


@dataclass(frozen=True)
class Feed(Generic[T, P]):
    topics: list[str]
    history: Callable[[P | None], Awaitable[list[T]]]
    """Stored items after a position (all, for None), oldest first."""
    decode: Callable[[Message], Awaitable[T | None]]
    """A live message as an item; None to skip it. May raise to end the stream."""
    position: Callable[[T], P]
    contiguous: bool = False
    """Positions count up by one, so a jump means something was missed."""


async def follow(
    broker: Broker, feed: Feed[T, P], after: P | None, *, expires_at: datetime | None = None
) -> AsyncIterator[T]:
    """Items after `after` from the database, then live; ends with TOKEN_EXPIRED when the
    access token the connection was opened with runs out."""
    async with await broker.subscribe(*feed.topics) as subscription:
        last = after
        for item in await feed.history(last):
            last = feed.position(item)
            yield item
        while True:
            message = await _next(subscription.get(), expires_at)
            if message is RESYNC:
                missed = await feed.history(last)
            else:
                live = await feed.decode(message)
                if live is None or (last is not None and feed.position(live) <= last):
                    continue
                position = feed.position(live)
                jumped = feed.contiguous and isinstance(last, int) and position != last + 1
                missed = await feed.history(last) if jumped else [live]
            for item in missed:
                last = feed.position(item)
                yield item


async def listen(
    broker: Broker,
    topics: list[str],
    decode: Callable[[Message], Awaitable[T | None]],
    *,
    expires_at: datetime | None = None,
) -> AsyncIterator[T]:
    """Live items only, for what is momentary (typing) or not kept in order: nothing to
    replay, so a RESYNC is passed over."""
    async with await broker.subscribe(*topics) as subscription:
        while True:
            message = await _next(subscription.get(), expires_at)
            item = None if message is RESYNC else await decode(message)
            if item is not None:
                yield item


async def _next(get: Awaitable[Message], expires_at: datetime | None) -> Message:
    if expires_at is None:
        return await get
    remaining = (expires_at - utcnow()).total_seconds()
    try:
        async with asyncio.timeout(max(remaining, 0)):
            return await get
    except TimeoutError:
        raise DomainError(
            ErrorCode.TOKEN_EXPIRED, "The access token has expired; subscribe again with a new one."
        ) from None
