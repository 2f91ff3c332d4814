"""Publish/subscribe between API instances over a Redis Cluster, with sharded pub/sub.

A sharded channel (Redis 7+) lives on the node that owns its slot, the slot its name
hashes to as a key's would: SPUBLISH goes to that node alone and reaches only the
subscribers connected to it, so the traffic spreads over the shards instead of every
message being broadcast to every node, as plain PUBLISH is in a cluster.

Publishing goes through the cluster client, which routes SPUBLISH by the channel's slot
and follows MOVED. Subscribing needs a connection to each node: redis-py's asyncio
ClusterPubSub has them, but reads them by polling each in turn for a slice of the
timeout (a message on one node waits out the slices of the others) and reconnects and
resubscribes by itself without saying that messages were lost meanwhile. So here each
node that owns slots of the topics in use has one plain pub/sub connection of ours,
read by its own task (`_Shard`), and:

- each topic is SSUBSCRIBEd on its slot's owner (one command per slot: a multi-channel
  SSUBSCRIBE must stay within one slot), and `subscribe` returns once the node confirmed;
- when a node's connection is lost, or the node gives a slot away (it SUNSUBSCRIBEs the
  slot's channels unasked), the slot map is read again, the topics it carried are
  subscribed again where they now live, and only then are their subscriptions told to
  RESYNC: consumers re-read from the database what they follow (nothing lost), and the
  streams drop what they already sent (nothing repeated). Topics on the other nodes
  keep flowing meanwhile.

The local hub multiplexes as RedisBroker's does: one server-side subscription per topic
per process, whatever the number of local subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections import defaultdict

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError

from documents.metrics import BROKER_RECONNECTS, redis_round_trip
from realtime.broker import SUBSCRIBER_QUEUE_SIZE, Message, Subscription, _LocalHub
from realtime.redis_urls import ClusterAddress

log = logging.getLogger(__name__)

CONFIRM_TIMEOUT = 5.0
"""Seconds a node may take to confirm an SSUBSCRIBE before its connection counts as lost."""
READ_TIMEOUT = 1.0
"""Seconds each read waits for a message; a health check PING goes out when idle."""
HEALTH_CHECK_SECONDS = 10
MOST_BACKOFF = 5.0
"""Seconds at most between attempts to subscribe again the topics of a lost node."""
CONNECT_TIMEOUT = 2.0
SHARD_FAILURES = (RedisError, RedisClusterException, OSError, TimeoutError)


def _by_slot(topics: set[str] | list[str]) -> list[list[str]]:
    groups: dict[int, list[str]] = defaultdict(list)
    for topic in sorted(topics):
        groups[key_slot(topic.encode())].append(topic)
    return list(groups.values())


class _Shard:
    """One node's pub/sub connection, the topics SSUBSCRIBEd on it, and its reader."""

    def __init__(self, name: str, client: Redis, broker: ClusterBroker) -> None:
        self.name = name
        self.topics: set[str] = set()
        """SSUBSCRIBEd here (confirmed, or being) and still wanted."""
        self.failed = False
        self._client = client
        self._pubsub: PubSub = client.pubsub()
        self._broker = broker
        self._confirming: dict[str, asyncio.Future[None]] = {}
        self._leaving: set[str] = set()
        """SUNSUBSCRIBEd by us: their confirmations are not a slot moving away."""
        self._reader: asyncio.Task[None] | None = None

    async def subscribe(self, topics: list[str]) -> None:
        """SSUBSCRIBE topics of one slot; returns once the node confirmed them all. They
        count as this shard's from the start: if it fails meanwhile, they are lost with
        it (and subscribed again), and if the caller gives up, they are SUNSUBSCRIBEd."""
        if self.failed:
            # Given up already: its PubSub would quietly open a new connection instead.
            raise RedisConnectionError(f"the connection to {self.name} was lost")
        loop = asyncio.get_running_loop()
        waiting = []
        for topic in topics:
            self._leaving.discard(topic)
            waiting.append(self._confirming.setdefault(topic, loop.create_future()))
        self.topics.update(topics)
        await self._pubsub.ssubscribe(*topics)
        if self._reader is None:
            # Started after the first SSUBSCRIBE: before it there is no connection to read.
            # Not in the first subscriber's context (realtime/broker.py tells why).
            self._reader = asyncio.create_task(
                self._read(), name=f"redis-shard-{self.name}", context=contextvars.Context()
            )
        async with asyncio.timeout(CONFIRM_TIMEOUT):
            await asyncio.gather(*waiting)

    async def unsubscribe(self, topics: list[str]) -> None:
        self.topics.difference_update(topics)
        self._leaving.update(topics)
        with contextlib.suppress(*SHARD_FAILURES):
            await self._pubsub.sunsubscribe(*topics)

    async def _read(self) -> None:
        try:
            while True:
                raw = await self._pubsub.get_message(timeout=READ_TIMEOUT)
                if raw is not None:
                    self._handle(raw)
        except Exception as error:
            # Whatever it was, this connection is no longer read: its topics must move
            # to a fresh one, or they would go deaf without anyone noticing.
            if not isinstance(error, SHARD_FAILURES):
                log.exception("redis cluster shard reader of %s failed", self.name)
            self._broker._shard_failed(self, error)

    def _handle(self, raw: dict[str, object]) -> None:
        kind, channel = raw.get("type"), raw.get("channel")
        topic = channel.decode() if isinstance(channel, bytes) else str(channel)
        if kind == "smessage":
            data = raw["data"]
            self._broker._hub.dispatch(Message(topic, data if isinstance(data, bytes) else b""))
        elif kind == "ssubscribe":
            waiting = self._confirming.pop(topic, None)
            if waiting is not None and not waiting.done():
                waiting.set_result(None)
        elif kind == "sunsubscribe" and topic not in self._leaving:
            # Unasked: the node no longer owns the slot (resharded, or failed over).
            self._broker._topic_moved(self, topic)
        elif kind == "sunsubscribe":
            self._leaving.discard(topic)

    def fail(self, error: BaseException) -> None:
        """Stop using this connection: nothing it confirmed can be trusted to arrive."""
        self.failed = True
        for waiting in self._confirming.values():
            if not waiting.done():
                waiting.set_exception(error)
                waiting.exception()  # retrieved here: nobody may be waiting for it any more
        self._confirming.clear()

    async def close(self) -> None:
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        with contextlib.suppress(*SHARD_FAILURES):
            await self._pubsub.aclose()
        with contextlib.suppress(*SHARD_FAILURES):
            await self._client.aclose()


class _ShardedHub(_LocalHub):
    """A local hub whose topics are mirrored as sharded channels on the cluster."""

    def __init__(self, broker: ClusterBroker) -> None:
        super().__init__()
        self._broker = broker

    async def attach(self, subscription: Subscription) -> None:
        async with self._broker._lock:
            new = self.add(subscription)
            if not new:
                return
            try:
                with redis_round_trip("subscribe"):
                    await self._broker._subscribe(new)
            except BaseException:
                # Not subscribed: forget it, or its topics would count as subscribed and
                # no later subscriber would SSUBSCRIBE them again.
                emptied = self.discard(subscription)
                await self._broker._unsubscribe(emptied)
                raise

    async def remove(self, subscription: Subscription) -> None:
        async with self._broker._lock:
            emptied = self.discard(subscription)
            if emptied:
                await self._broker._unsubscribe(emptied)


class ClusterBroker:
    """The `Broker` over a Redis Cluster (`redis+cluster://` in REDIS_URL)."""

    def __init__(self, address: ClusterAddress, queue_size: int = SUBSCRIBER_QUEUE_SIZE) -> None:
        self._address = address
        self._cluster: RedisCluster = address.client(socket_connect_timeout=CONNECT_TIMEOUT)
        self._hub = _ShardedHub(self)
        self._queue_size = queue_size
        self._lock = asyncio.Lock()
        """Held while topics are placed on nodes or taken off them."""
        self._shards: dict[str, _Shard] = {}
        self._home: dict[str, _Shard] = {}
        """Where each topic in use is subscribed."""
        self._orphans: set[str] = set()
        """Topics in use whose node was lost, until they are subscribed again."""
        self._repair: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    @property
    def connected(self) -> bool:
        return not self._orphans

    async def publish(self, topic: str, data: bytes) -> None:
        with redis_round_trip("publish"):
            await self._cluster.execute_command("SPUBLISH", topic, data)

    async def subscribe(self, *topics: str) -> Subscription:
        subscription = Subscription(self._hub, frozenset(topics), self._queue_size)
        await self._hub.attach(subscription)
        return subscription

    async def ping(self) -> None:
        """Answers when the cluster does: when any of its primaries does. One node down
        makes only its slots' topics wait (and RESYNC), not this instance unready."""
        with redis_round_trip("ping"):
            await self._cluster.initialize()
            primaries = self._cluster.get_primaries()
            answers = await asyncio.gather(
                *(self._cluster.execute_command("PING", target_nodes=node) for node in primaries),
                return_exceptions=True,
            )
            if not any(answer is True for answer in answers):
                raise next(
                    (answer for answer in answers if isinstance(answer, BaseException)),
                    RedisError("the Redis Cluster has no primaries"),
                )

    async def close(self) -> None:
        self._closed = True
        if self._repair is not None:
            self._repair.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._repair
        for shard in list(self._shards.values()):
            await shard.close()
        self._shards.clear()
        await asyncio.gather(*self._closing)
        await self._cluster.aclose()

    # --- placing topics on their nodes (under self._lock) ------------------------------

    async def _subscribe(self, topics: list[str]) -> None:
        """SSUBSCRIBE new topics on their owners; once more on a fresh slot map if that
        fails (a slot moved, a replica took over); raises if it fails again."""
        await self._cluster.initialize()
        if await self._place(set(topics)) is None:
            return
        await self._cluster.nodes_manager.initialize()
        again = {topic for topic in topics if topic not in self._home}
        self._orphans -= again  # placed here and now, or the caller is told it failed
        failure = await self._place(again)
        if failure is not None:
            raise failure

    async def _place(self, topics: set[str]) -> BaseException | None:
        """SSUBSCRIBE each topic on its slot's owner, as per the slot map at hand; returns
        the first failure (the topics of the other nodes are placed all the same)."""
        failure: BaseException | None = None
        by_node: dict[str, set[str]] = defaultdict(set)
        for topic in topics:
            try:
                node = self._cluster.get_node_from_key(topic)
            except SHARD_FAILURES as error:  # a slot nobody covers (the cluster is down)
                failure = failure or error
                continue
            if node is not None:
                by_node[node.name].add(topic)
        for name, node_topics in by_node.items():
            shard = self._shard(name)
            try:
                for slot_topics in _by_slot(node_topics):
                    self._home.update(dict.fromkeys(slot_topics, shard))
                    await shard.subscribe(slot_topics)
            except SHARD_FAILURES as error:
                self._shard_failed(shard, error)
                failure = failure or error
        return failure

    def _shard(self, name: str) -> _Shard:
        shard = self._shards.get(name)
        if shard is None:
            host, _, port = name.rpartition(":")
            client = self._address.node_client(
                host,
                int(port),
                socket_connect_timeout=CONNECT_TIMEOUT,
                health_check_interval=HEALTH_CHECK_SECONDS,
                # No silent reconnect and resubscribe: a lost connection must be seen,
                # for what was published meanwhile is lost and needs a RESYNC.
                retry=Retry(NoBackoff(), 0),
            )
            shard = self._shards[name] = _Shard(name, client, self)
        return shard

    async def _unsubscribe(self, topics: list[str]) -> None:
        by_shard: dict[_Shard, list[str]] = defaultdict(list)
        for topic in topics:
            self._orphans.discard(topic)
            shard = self._home.pop(topic, None)
            if shard is not None:
                by_shard[shard].append(topic)
        for shard, shard_topics in by_shard.items():
            for slot_topics in _by_slot(shard_topics):
                await shard.unsubscribe(slot_topics)
            if not shard.topics and self._shards.get(shard.name) is shard:
                del self._shards[shard.name]  # nothing left to hear from that node
                await shard.close()

    # --- losing a node and getting its topics back ------------------------------------

    def _shard_failed(self, shard: _Shard, error: BaseException) -> None:
        """Give a shard up and orphan its topics. Synchronous, so that no topic is placed
        on the shard between the two; idempotent."""
        first = not shard.failed
        if first:
            shard.fail(error)
            if self._shards.get(shard.name) is shard:
                del self._shards[shard.name]
            closing = asyncio.get_running_loop().create_task(shard.close())
            self._closing.add(closing)  # held until done: the loop keeps weak references
            closing.add_done_callback(self._closing.discard)
        # Swept every time: a placement under way may have counted topics on it since.
        lost = {topic for topic, home in self._home.items() if home is shard}
        for topic in lost:
            del self._home[topic]
        if first and lost:
            log.warning(
                "redis cluster node %s lost (%s); subscribing its %d topics again",
                shard.name,
                error,
                len(lost),
            )
        self._orphan(lost)

    def _topic_moved(self, shard: _Shard, topic: str) -> None:
        if self._home.get(topic) is shard:
            del self._home[topic]
            shard.topics.discard(topic)
            log.info("redis cluster node %s gave away the slot of %s", shard.name, topic)
            self._orphan({topic})

    def _orphan(self, topics: set[str]) -> None:
        self._orphans |= topics
        if self._orphans and not self._closed and (self._repair is None or self._repair.done()):
            self._repair = asyncio.get_running_loop().create_task(
                self._subscribe_orphans(),
                name="redis-cluster-repair",
                context=contextvars.Context(),
            )

    async def _subscribe_orphans(self) -> None:
        """Until every lost topic is subscribed again: read the slot map, SSUBSCRIBE them
        on their owners, then RESYNC their subscriptions (never before: what is published
        between the RESYNC's re-read and the SSUBSCRIBE would be lost)."""
        backoff = 0.1
        while self._orphans:
            try:
                async with self._lock:
                    with contextlib.suppress(*SHARD_FAILURES):  # then the slot map at hand
                        await self._cluster.nodes_manager.initialize()
                    await self._place({t for t in self._orphans if t not in self._home})
                    back = {topic for topic in self._orphans if topic in self._home}
                    self._orphans -= back
                    if back:
                        self._hub.resync(back)
                        BROKER_RECONNECTS.inc()
            except Exception:
                # Nothing else restarts this task until another topic is lost: whatever
                # went wrong, try again after the backoff rather than leave topics deaf.
                log.exception("subscribing lost redis cluster topics again failed")
            if self._orphans:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MOST_BACKOFF)
        log.info("redis cluster topics all subscribed again")
