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


class NotNow:
    """What `Feed.decode_now` answers for a message it cannot decode without waiting."""

    __slots__ = ()


NOT_NOW = NotNow()


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
    decode_now: Callable[[Message], T | NotNow | None] | None = None
    """`decode` for a message that needs no waiting (nor raising); NOT_NOW for any other,
    which `decode` then decodes. Lets a consumer take a live item in the broker's own
    call (`Follower.next_now`)."""


class Follower(Generic[T, P]):
    """What `follow` keeps between items (the last position sent, the recent ones), over a
    subscription already made: steps that a consumer driving the stream itself can take
    one at a time (schema/live/hub_writer.py), the same `follow` takes in a loop."""

    __slots__ = ("feed", "last", "sent", "subscription")

    feed: Feed[T, P]
    last: P | None

    def __init__(self, feed: Feed[T, P], subscription: Subscription, after: P | None) -> None:
        self.feed = feed
        self.subscription = subscription
        self.last = after
        self.sent: OrderedDict[P, None] | None = (
            None if feed.contiguous else OrderedDict.fromkeys([after] if after is not None else [])
        )

    def fresh(self, position: P) -> bool:
        """Not sent yet: after the last one, where positions follow publication order;
        else not among the positions sent lately."""
        if self.sent is None:
            return self.last is None or position > self.last
        return position not in self.sent

    def mark(self, position: P) -> None:
        """The item at `position` is sent (or about to be, in order)."""
        last = self.last
        self.last = position if last is None else max(last, position)
        sent = self.sent
        if sent is not None:
            sent[position] = None
            if len(sent) > RECENT:
                sent.popitem(last=False)

    async def items(self, *, history: bool, until_caught_up: bool) -> AsyncGenerator[T, None]:
        """Items in order, each once: the stored ones after the last position first if
        `history`, then the subscription's messages; with `until_caught_up`, ends as soon
        as nothing is waiting (else waits for the next message for ever)."""
        feed = self.feed
        subscription = self.subscription
        missed = await feed.history(self.last) if history else []
        while True:
            for item in missed:
                position = feed.position(item)
                if not self.fresh(position):
                    continue
                self.mark(position)
                yield item
            if until_caught_up and not subscription.waiting:
                return
            message = await subscription.get()
            if message is RESYNC:
                missed = await feed.history(self.last)
            elif (live := await feed.decode(message)) is None:
                missed = []
            elif (
                feed.contiguous
                and isinstance(self.last, int)
                and feed.position(live) > self.last + 1
            ):
                missed = await feed.history(self.last)  # a jump: fill it
            else:
                missed = [live]

    def next_now(self, message: Message) -> T | NotNow | None:
        """The item a live message brings when it can be taken at once (the caller marks
        it once it is on its way): it decodes without waiting and its position is exactly
        the next one of a contiguous feed. None: nothing to send (not an item, or one sent already).
        NOT_NOW: `items` must take it (RESYNC, a jump to fill, a decode that waits, no
        position yet)."""
        feed = self.feed
        last = self.last
        if (
            message is RESYNC
            or feed.decode_now is None
            or not feed.contiguous
            or not isinstance(last, int)
        ):
            return NOT_NOW
        live: T | NotNow | None = feed.decode_now(message)
        if live is None or isinstance(live, NotNow):
            return live
        position = feed.position(live)
        if position == last + 1:
            return live
        return None if position <= last else NOT_NOW


@dataclass(frozen=True, slots=True)
class Followed(Generic[T, P]):
    """A feed to follow from `after`, not started: as a stream (`stream`, which is
    `follow`), or as a subscription and its `Follower` for a consumer driving it."""

    broker: Broker
    feed: Feed[T, P]
    after: P | None
    expires_at: datetime | None = None

    def stream(self) -> AsyncGenerator[T, None]:
        return follow(self.broker, self.feed, self.after, expires_at=self.expires_at)

    async def start(self) -> Follower[T, P]:
        """Subscribed: what is published from now on waits for the follower, whose first
        `items(history=True, ...)` then reads what came before."""
        subscription = await _subscribe(self.broker, self.feed.topics, self.expires_at)
        return Follower(self.feed, subscription, self.after)


async def follow(
    broker: Broker, feed: Feed[T, P], after: P | None, *, expires_at: datetime | None = None
) -> AsyncGenerator[T, None]:
    """Items after `after` from the database, then live; ends with TOKEN_EXPIRED when the
    access token the connection was opened with runs out."""
    async with await _subscribe(broker, feed.topics, expires_at) as subscription:
        follower = Follower(feed, subscription, after)
        async for item in follower.items(history=True, until_caught_up=False):
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
