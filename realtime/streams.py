"""Subscription streams that neither lose nor repeat an item across a reconnect.

A stream subscribes to its topics first, then reads from the database everything after
the position the client gave, then goes live, dropping live items it already sent. So
an item published while the history was being read is neither lost (the subscription
already buffers it) nor sent twice (its position is not after the last one sent).
Where positions count up one by one (chat messages), a jump reveals a lost publication
and is filled from the database; after the broker lost its connection (RESYNC), the
database is read again for the same reason. Other positions (event ids) order items only
roughly: ids made by several processes in the same second, or by transactions that
commit in another order, reach the broker out of order. Live items of such feeds are
told apart by identity, not by being after the last one sent.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from realtime.broker import RESYNC, Broker, Message, Subscription

T = TypeVar("T")
P = TypeVar("P", int, str)

RECENT = 1000
"""Positions remembered per stream to recognise an item delivered twice (by the history
and live); a duplicate comes right after the original, never a thousand items later."""


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
) -> AsyncGenerator[T, None]:
    """Items after `after` from the database, then live; ends with TOKEN_EXPIRED when the
    access token the connection was opened with runs out."""
    async with await _subscribe(broker, feed.topics, expires_at) as subscription:
        last = after
        sent: OrderedDict[P, None] = OrderedDict.fromkeys([after] if after is not None else [])

        def fresh(position: P) -> bool:
            """Not sent yet: after the last one, where positions follow publication order;
            else not among the positions sent lately."""
            if feed.contiguous:
                return last is None or position > last
            return position not in sent

        missed = await feed.history(last)
        while True:
            for item in missed:
                position = feed.position(item)
                if not fresh(position):
                    continue
                last = position if last is None else max(last, position)
                if not feed.contiguous:
                    sent[position] = None
                    if len(sent) > RECENT:
                        sent.popitem(last=False)
                yield item
            message = await subscription.get()
            if message is RESYNC:
                missed = await feed.history(last)
            elif (live := await feed.decode(message)) is None:
                missed = []
            elif feed.contiguous and isinstance(last, int) and feed.position(live) > last + 1:
                missed = await feed.history(last)  # a jump: fill it
            else:
                missed = [live]


async def listen(
    broker: Broker,
    topics: list[str],
    decode: Callable[[Message], Awaitable[T | None]],
    *,
    expires_at: datetime | None = None,
) -> AsyncIterator[T]:
    """Live items only, for what is momentary (typing) or not kept in order: nothing to
    replay, so a RESYNC is passed over."""
    async with await _subscribe(broker, topics, expires_at) as subscription:
        while True:
            message = await subscription.get()
            item = None if message is RESYNC else await decode(message)
            if item is not None:
                yield item


async def _subscribe(
    broker: Broker, topics: list[str], expires_at: datetime | None
) -> Subscription:
    subscription = await broker.subscribe(*topics)
    if expires_at is not None:
        subscription.end_after((expires_at - utcnow()).total_seconds(), _token_expired)
    return subscription


def _token_expired() -> DomainError:
    return DomainError(
        ErrorCode.TOKEN_EXPIRED, "The access token has expired; subscribe again with a new one."
    )
