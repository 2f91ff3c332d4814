"""Publish/subscribe between API instances.

`RedisBroker` carries messages between processes over Redis pub/sub; `InProcessBroker`
does the same inside one process when no Redis is configured. Both multiplex: however
many local subscribers there are, a process holds one Redis subscriber connection and
one Redis channel subscription per topic in use.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
import logging
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol, cast

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import Connection
from redis.exceptions import RedisError

from documents.metrics import (
    BROKER_MESSAGES_DELIVERED,
    BROKER_MESSAGES_DROPPED,
    BROKER_RECONNECTS,
    redis_round_trip,
)

log = logging.getLogger(__name__)

SUBSCRIBER_QUEUE_SIZE = 1000
HEALTH_CHECK_SECONDS = 10.0
"""How long the Redis subscriber connection may stay silent before a PING asks whether
Redis is still at the other end."""
PONG_TIMEOUT = 5.0
"""How long the answer to that PING may take before the connection is given up on."""


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    data: bytes


RESYNC = Message(topic="", data=b"")
"""Delivered to every subscription after the broker lost its connection for a while:
messages published meanwhile never arrive, so consumers re-read what they follow."""

ENDED = Message(topic="", data=b"ended")
"""Handed to a subscription's callback (`on_message`) when its `end_after` time comes:
`get` raises the end from then on, and a callback has no `get` waiting to hear it."""


class SubscriberOverflow(Exception):
    """A subscriber fell so far behind that messages for it were dropped."""


class Subscription:
    """The messages of some topics, for one local consumer, in publication order.

    Its queue is made when a message comes and dropped once read, and its consumer waits
    on a future of its own: an idle subscription holds neither (an asyncio.Queue, with
    its three deques and an Event, came to about 3 KB a subscription, and a websocket
    holds two: its session's and its operation's)."""

    __slots__ = (
        "_callback",
        "_ended",
        "_ending",
        "_hub",
        "_left",
        "_overflowed",
        "_queue",
        "_queue_size",
        "_waiter",
        "topics",
    )

    def __init__(
        self, hub: _LocalHub, topics: frozenset[str], queue_size: int = SUBSCRIBER_QUEUE_SIZE
    ) -> None:
        self._hub = hub
        self.topics = topics
        self._queue_size = queue_size
        self._queue: deque[Message] | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._overflowed = False
        self._ended: Callable[[], Exception] | None = None
        self._ending: Callable[[], Exception] | None = None
        """What `end_after` will raise, until its time comes."""
        self._left = False
        self._callback: Callable[[Message], None] | None = None

    def on_message(self, callback: Callable[[Message], None] | None) -> None:
        """From now on, hand each message (RESYNC too, and ENDED once `end_after`'s time
        comes) to `callback`, in the hub's own call, instead of queueing it for `get`: for
        a consumer that needs no task of its own waiting (a socket's session, a framed
        subscription written from the hub). The callback must not block nor raise. What
        was queued before comes first. None: queue for `get` again from now on."""
        if callback is None:
            self._callback = None
            return
        queue, self._queue = self._queue, None
        overflowed, self._overflowed = self._overflowed, False
        self._callback = callback
        if overflowed:
            callback(RESYNC)  # some were dropped: as after a lost connection, look again
        for message in queue or ():
            callback(message)

    def _deliver(self, message: Message) -> bool:
        """Queue the message; False when the queue is full and it was dropped."""
        callback = self._callback
        if callback is not None:
            try:
                callback(message)
            except Exception:  # one consumer's bug must not stop the others' delivery
                log.exception("a subscription's callback failed")
            return True
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        elif len(queue) >= self._queue_size:
            # Dropping silently would leave a gap; the consumer must resynchronise.
            self._overflowed = True
            return False
        queue.append(message)
        self._wake()
        return True

    def hold(self, message: Message | None) -> None:
        """Stop handing messages to the callback and queue them for `get` again, starting
        with `message` (one the callback was given but leaves to `get`'s reader)."""
        self._callback = None
        if message is not None and message is not ENDED:
            if self._queue is None:
                self._queue = deque()
            self._queue.appendleft(message)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    @property
    def pending(self) -> bool:
        """Whether something was delivered that the consumer has not taken yet."""
        return self._overflowed or bool(self._queue)

    @property
    def waiting(self) -> bool:
        """Whether `get` would return or raise at once: something pending, or the end."""
        return self._ended is not None or self.pending

    def discard_pending(self) -> None:
        """Forget what waits unread, a lost part included: for a consumer to whom any
        message means the same (look again), which it is about to do anyway."""
        self._queue = None
        self._overflowed = False

    def end_after(self, seconds: float, error: Callable[[], Exception]) -> None:
        """From `seconds` from now on, `get` raises `error()` instead of returning
        messages. Set once for the subscription's life (arming a timeout around every
        `get` cost about 5 % of a busy fan-out's CPU), on the hub's one timer (`_Ends`)."""
        self._ending = error
        self._hub.ends.add(asyncio.get_running_loop().time() + max(seconds, 0), self)

    def _end(self) -> None:
        error, self._ending = self._ending, None
        if error is None or self._left:
            return
        self._ended = error
        self._wake()
        callback = self._callback
        if callback is not None:
            try:
                callback(ENDED)
            except Exception:
                log.exception("a subscription's callback failed")

    async def get(self) -> Message:
        if self._overflowed:
            raise SubscriberOverflow(f"subscriber on {sorted(self.topics)} fell behind")
        while not self._queue and self._ended is None:
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        if self._ended is not None:
            raise self._ended()
        queue = self._queue
        assert queue  # the loop above waits until there is a message or the end
        message = queue.popleft()
        if not queue:
            self._queue = None
        return message

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        return await self.get()

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(self, *_: object) -> None:
        self._left = True
        if self._ending is not None:
            self._ending = None
            self._hub.ends.forget()
        await self._hub.remove(self)


class _Ends:
    """When subscriptions end (`end_after`), on one timer for the earliest of them rather
    than a timer each: a TimerHandle with its bound method and arguments came to about
    half a KB an idle websocket (bench/README.md, "Issue 16, third pass").

    A subscription that leaves first stays in the heap, marked, until its time or until
    those left outnumber the others, when the heap is rebuilt without them: leaving
    costs no search, and the heap stays within twice what is still waiting."""

    COMPACT_AFTER = 64

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Subscription]] = []
        self._order = itertools.count()  # ties end in the order they were set
        self._timer: asyncio.TimerHandle | None = None
        self._gone = 0

    def add(self, at: float, subscription: Subscription) -> None:
        heapq.heappush(self._heap, (at, next(self._order), subscription))
        if self._heap[0][2] is subscription:
            self._arm()

    def forget(self) -> None:
        """One subscription waiting here has left."""
        self._gone += 1
        if self._gone > self.COMPACT_AFTER and self._gone * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if not entry[2]._left]
            heapq.heapify(self._heap)
            self._gone = 0
            self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._heap:
            self._timer = asyncio.get_running_loop().call_at(self._heap[0][0], self._due)

    def _due(self) -> None:
        self._timer = None
        now = asyncio.get_running_loop().time()
        while self._heap and self._heap[0][0] <= now:
            _, _, subscription = heapq.heappop(self._heap)
            if subscription._left:
                self._gone -= 1
            else:
                subscription._end()
        self._arm()


class _LocalHub:
    """Fans messages out to the local subscriptions of each topic."""

    def __init__(self) -> None:
        self._by_topic: dict[str, set[Subscription]] = defaultdict(set)
        self.ends = _Ends()

    def add(self, subscription: Subscription) -> list[str]:
        """Register a subscription; return the topics that had no local subscriber yet."""
        new = [topic for topic in subscription.topics if not self._by_topic.get(topic)]
        for topic in subscription.topics:
            self._by_topic[topic].add(subscription)
        return new

    def discard(self, subscription: Subscription) -> list[str]:
        """Unregister a subscription; return the topics left without local subscribers."""
        emptied = []
        for topic in subscription.topics:
            subscribers = self._by_topic.get(topic)
            if subscribers is None:
                continue
            subscribers.discard(subscription)
            if not subscribers:
                del self._by_topic[topic]
                emptied.append(topic)
        return emptied

    def dispatch(self, message: Message) -> None:
        subscriptions = tuple(self._by_topic.get(message.topic, ()))
        queued = sum(subscription._deliver(message) for subscription in subscriptions)
        # Counted once per message, not per subscriber: a fan-out stays one add.
        if queued:
            BROKER_MESSAGES_DELIVERED.inc(queued)
        if queued < len(subscriptions):
            BROKER_MESSAGES_DROPPED.inc(len(subscriptions) - queued)

    def resync_all(self) -> None:
        subscriptions = {s for subscribers in self._by_topic.values() for s in subscribers}
        for subscription in subscriptions:
            subscription._deliver(RESYNC)

    def resync(self, topics: set[str]) -> None:
        """RESYNC to the subscriptions of some topics only (those a lost Redis Cluster
        node carried), once each however many of them it follows."""
        subscriptions = {s for topic in topics for s in self._by_topic.get(topic, ())}
        for subscription in subscriptions:
            subscription._deliver(RESYNC)

    async def remove(self, subscription: Subscription) -> None:
        self.discard(subscription)


class Broker(Protocol):
    @property
    def connected(self) -> bool:
        """Whether what is published now reaches this broker's subscriptions: False from
        the moment it notices it lost its connection until it has it back (and told every
        subscription to RESYNC)."""
        ...

    async def publish(self, topic: str, data: bytes) -> None: ...
    async def subscribe(self, *topics: str) -> Subscription: ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...


class InProcessBroker:
    """Single-process broker: delivery is immediate and never leaves the process."""

    def __init__(self, queue_size: int = SUBSCRIBER_QUEUE_SIZE) -> None:
        self._hub = _LocalHub()
        self._queue_size = queue_size

    @property
    def connected(self) -> bool:
        return True

    async def publish(self, topic: str, data: bytes) -> None:
        self._hub.dispatch(Message(topic, data))

    async def subscribe(self, *topics: str) -> Subscription:
        subscription = Subscription(self._hub, frozenset(topics), self._queue_size)
        self._hub.add(subscription)
        return subscription

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None


class _RedisHub(_LocalHub):
    """A local hub whose topics are mirrored as channels on one Redis subscriber."""

    def __init__(self, pubsub: PubSub) -> None:
        super().__init__()
        self._pubsub = pubsub
        self._lock = asyncio.Lock()

    async def attach(self, subscription: Subscription) -> None:
        async with self._lock:
            new = self.add(subscription)
            if not new:
                return
            try:
                with redis_round_trip("subscribe"):
                    await self._pubsub.subscribe(*new)
            except BaseException:
                # Not subscribed (Redis away, or cancelled): forget it, or its topics would
                # count as subscribed and no later subscriber would SUBSCRIBE them again.
                self.discard(subscription)
                raise

    async def remove(self, subscription: Subscription) -> None:
        async with self._lock:
            emptied = self.discard(subscription)
            if emptied:
                with contextlib.suppress(RedisError):
                    await self._pubsub.unsubscribe(*emptied)


class RedisBroker:
    def __init__(
        self,
        url: str,
        queue_size: int = SUBSCRIBER_QUEUE_SIZE,
        *,
        health_check_seconds: float = HEALTH_CHECK_SECONDS,
        pong_timeout: float = PONG_TIMEOUT,
    ) -> None:
        self._redis: Redis = Redis.from_url(url)
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._hub = _RedisHub(self._pubsub)
        self._queue_size = queue_size
        self._reader: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._health_check_seconds = health_check_seconds
        self._pong_timeout = pong_timeout
        self._heard = 0.0
        """The event loop's time when the reader last read anything (a pong too)."""
        self._lost = False

    @property
    def connected(self) -> bool:
        return not self._lost

    async def publish(self, topic: str, data: bytes) -> None:
        with redis_round_trip("publish"):
            await self._redis.publish(topic, data)

    async def subscribe(self, *topics: str) -> Subscription:
        subscription = Subscription(self._hub, frozenset(topics), self._queue_size)
        await self._hub.attach(subscription)
        if self._reader is None:
            self._heard = asyncio.get_running_loop().time()
            # In a context of their own, not the first subscriber's (its request id, its
            # socket's frame target), which every later subscriber's callback would run
            # in and the process would keep for its life.
            self._reader = asyncio.create_task(
                self._read(), name="redis-broker-reader", context=contextvars.Context()
            )
            self._watchdog = asyncio.create_task(
                self._watch(), name="redis-broker-watchdog", context=contextvars.Context()
            )
        return subscription

    async def _read(self) -> None:
        backoff = 0.1
        while True:
            try:
                # While connected, wait for the next message without a timeout: arming one
                # around every read cost about 4 % of a busy fan-out's CPU. After a loss, a
                # read returns within a second even with nothing published, which is how
                # the return of the connection is noticed (and RESYNC sent) at once.
                raw = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=1.0 if self._lost else None
                )
                self._heard = asyncio.get_running_loop().time()
            except RedisError:
                # redis-py reconnects and re-subscribes on the next read; wait a little.
                if not self._lost:
                    log.warning("redis subscriber connection lost; reconnecting", exc_info=True)
                self._lost = True
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if self._lost:
                log.info("redis subscriber connection back")
                BROKER_RECONNECTS.inc()
                backoff = 0.1
                self._hub.resync_all()
                self._lost = False
            if raw is None or raw.get("type") != "message":
                continue
            channel = raw["channel"]
            topic = channel.decode() if isinstance(channel, bytes) else str(channel)
            self._hub.dispatch(Message(topic, raw["data"]))

    async def _watch(self) -> None:
        """Drops the subscriber connection when Redis no longer answers on it.

        A half-open connection (a partition, a host gone without closing) never fails the
        reader's read, which waits without a timeout: the broker would stay deaf, and what
        is published meanwhile would be lost with no RESYNC to say so. So a connection
        silent for a while is sent a PING, whose pong the reader reads; with no answer in
        time the connection is closed under the reader, whose read then fails and takes
        the path of any lost connection (reconnect, subscribe again, RESYNC). One wake-up
        per period, whatever the traffic: nothing is added to each read."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._health_check_seconds)
            if self._lost or loop.time() - self._heard < self._health_check_seconds:
                continue
            asked = loop.time()
            try:
                async with asyncio.timeout(self._pong_timeout):
                    await self._pubsub.ping()
            except (RedisError, OSError, TimeoutError):
                pass  # not even sent: the reader meets the same failure, or the check below
            await asyncio.sleep(max(asked + self._pong_timeout - loop.time(), 0))
            if self._silent_since(asked):
                log.warning("redis subscriber connection silent; dropping it to reconnect")
                # redis-py leaves `PubSub.connection` unannotated, so it types as None.
                connection = cast("Connection | None", self._pubsub.connection)
                if connection is not None:
                    await connection.disconnect()

    def _silent_since(self, asked: float) -> bool:
        """Connected, as far as the reader knows, yet nothing read since `asked`."""
        return not self._lost and self._heard < asked

    async def ping(self) -> None:
        with redis_round_trip("ping"):
            await self._redis.ping()

    async def close(self) -> None:
        for task in (self._watchdog, self._reader):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self._pubsub.aclose()
        await self._redis.aclose()
