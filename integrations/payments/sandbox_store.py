"""The sandbox gateway's state, in collections of its own in the app's database.

What Stripe keeps on its side is kept here, so that it outlives a process and is shared
by every process on the database (`--workers`, several instances, `gigql reconcile`):

    sandbox_objects           Stripe's objects in Stripe's JSON (`stripe`), by their id,
                              with what Stripe knows but does not show: the connected
                              account a payout lives on, what an intent has refunded,
                              when the bank answers a payout
    sandbox_idempotency_keys  the first request and answer under each key, for 24 hours
                              as on Stripe (a TTL index forgets them)
    sandbox_events            the webhook events, each delivered once under a lease
    sandbox_links             the single-use links to the sandbox's pages (hashed)

Every request of the gateway is one transaction (`SandboxStore.run`): the objects it
changes, the answer kept under its idempotency key and the events it causes commit
together or not at all. Two requests racing on one object conflict and the loser runs
again on what the winner wrote, as two Stripe requests on one object are serialised.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from bson import ObjectId
from pymongo import ASCENDING, DESCENDING, IndexModel, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from integrations.payments.errors import InvalidRequest

T = TypeVar("T")
StripeDict = dict[str, Any]
Raw = dict[str, Any]

OBJECTS = "sandbox_objects"
KEYS = "sandbox_idempotency_keys"
EVENTS = "sandbox_events"
LINKS = "sandbox_links"
COLLECTIONS = (OBJECTS, KEYS, EVENTS, LINKS)

KEY_LIFETIME = timedelta(hours=24)
"""Stripe forgets an idempotency key after 24 hours; so does the sandbox."""
EVENT_LIFETIME = timedelta(days=30)
"""Delivered events are kept as long as Stripe lists them."""
LINK_MEMORY = timedelta(days=1)
"""How long after it expired a link still leads to its refresh URL (then it is unknown)."""
EVENT_LEASE = timedelta(minutes=1)
"""How long a process holds an event it is delivering: past it, one that died is
presumed dead and another process delivers the event again."""
DUPLICATE_RETRIES = 5
"""Runs of a request that lost a race to insert the same key (the next run finds it)."""


def utcnow() -> datetime:
    """To the millisecond, as BSON keeps it: what is read back equals what was written."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def aware(moment: datetime | None) -> datetime | None:
    """A stored time as UTC, whether or not the client was asked for aware times."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


class EventStatus:
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    """Failed every attempt; left for a developer to look at."""


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Record:
    """One stored Stripe object and what the sandbox keeps beside it."""

    stripe: StripeDict
    account: str | None = None
    """The connected account it lives on (payouts), which Stripe's JSON does not name."""
    refunded: int = 0
    """Of a payment intent: refunded so far (a charge's `amount_refunded`)."""
    settle_at: datetime | None = None
    """Of a pending payout: when the bank answers it."""
    seq: ObjectId = field(default_factory=ObjectId)
    """Creation order within a second, for lists newest first."""

    @property
    def id(self) -> str:
        return str(self.stripe["id"])

    def document(self) -> Raw:
        return {
            "_id": self.id,
            "object": self.stripe["object"],
            "created": self.stripe["created"],
            "seq": self.seq,
            "account": self.account,
            "refunded": self.refunded,
            "settle_at": self.settle_at,
            "stripe": self.stripe,
        }

    @classmethod
    def of(cls, raw: Raw) -> Record:
        return cls(
            stripe=raw["stripe"],
            account=raw.get("account"),
            refunded=raw.get("refunded", 0),
            settle_at=aware(raw.get("settle_at")),
            seq=raw["seq"],
        )


@dataclass(frozen=True, slots=True)
class KeptAnswer:
    """What a request under an idempotency key was first answered."""

    request: str
    response: StripeDict | None
    declined: StripeDict | None
    """A declined card's error, which Stripe also answers every retry with."""


@dataclass(frozen=True, slots=True)
class ClaimedEvent:
    id: ObjectId
    payload: bytes
    attempts: int


class Tx:
    """The reads and writes of one request, inside its transaction."""

    def __init__(self, store: SandboxStore, session: AsyncClientSession) -> None:
        self._store = store
        self.session = session
        self._events: list[Raw] = []

    async def get(self, kind: str, object_id: str) -> Record:
        raw = await self._store.objects.find_one({"_id": object_id}, session=self.session)
        if raw is None or raw["object"] != kind:
            raise InvalidRequest(
                f"No such {kind.rsplit('.', 1)[-1]}: '{object_id}'", code="resource_missing"
            )
        return Record.of(raw)

    async def find(self, query: Raw) -> list[Record]:
        cursor = self._store.objects.find(query, session=self.session)
        return [Record.of(raw) async for raw in cursor]

    async def insert(self, record: Record) -> Record:
        await self._store.objects.insert_one(record.document(), session=self.session)
        return record

    async def save(self, record: Record) -> None:
        await self._store.objects.replace_one(
            {"_id": record.id}, record.document(), session=self.session
        )

    async def kept_answer(self, account: str | None, key: str) -> KeptAnswer | None:
        raw = await self._store.keys.find_one(
            {"account": account, "key": key}, session=self.session
        )
        if raw is None:
            return None
        return KeptAnswer(raw["request"], raw.get("response"), raw.get("declined"))

    async def keep_answer(
        self,
        account: str | None,
        key: str,
        request: str,
        *,
        response: StripeDict | None = None,
        declined: StripeDict | None = None,
    ) -> None:
        await self._store.keys.insert_one(
            {
                "account": account,
                "key": key,
                "request": request,
                "response": response,
                "declined": declined,
                "created": utcnow(),
            },
            session=self.session,
        )

    def emit(self, event: StripeDict) -> None:
        """The event goes out once the transaction commits."""
        self._events.append(
            {
                "_id": ObjectId(),  # ascending in this process: delivered in this order
                "event_id": event["id"],
                "type": event["type"],
                "payload": json.dumps(event),
                "status": EventStatus.PENDING,
                "attempts": 0,
                "next_attempt_at": utcnow(),
                "last_error": None,
            }
        )

    async def insert_link(self, token: str, fields: Raw) -> None:
        await self._store.links.insert_one(
            {"_id": token_hash(token), **fields}, session=self.session
        )

    async def link(self, token: str) -> Raw | None:
        return await self._store.links.find_one({"_id": token_hash(token)}, session=self.session)

    async def update_link(self, token: str, fields: Raw) -> None:
        await self._store.links.update_one(
            {"_id": token_hash(token)}, {"$set": fields}, session=self.session
        )

    async def _commit_events(self) -> ObjectId | None:
        if not self._events:
            return None
        await self._store.events.insert_many(self._events, session=self.session)
        last: ObjectId = self._events[-1]["_id"]
        return last


class SandboxStore:
    def __init__(self, database: AsyncDatabase[Raw]) -> None:
        self._database = database
        self.objects: AsyncCollection[Raw] = database[OBJECTS]
        self.keys: AsyncCollection[Raw] = database[KEYS]
        self.events: AsyncCollection[Raw] = database[EVENTS]
        self.links: AsyncCollection[Raw] = database[LINKS]
        self._indexed = False
        self._indexing = asyncio.Lock()

    async def _ensure_indexes(self) -> None:
        if self._indexed:
            return
        async with self._indexing:
            if not self._indexed:  # unless a caller waiting before this one made them
                await self._create_indexes()
                self._indexed = True

    async def _create_indexes(self) -> None:
        await self.objects.create_indexes(
            [
                # Lists: of a kind, created in a period. (No third key: SecantusDB then
                # misses the keys equal to an inclusive bound of the second.)
                IndexModel([("object", ASCENDING), ("created", ASCENDING)]),
                IndexModel([("stripe.payment_intent", ASCENDING)], sparse=True),
                IndexModel([("object", ASCENDING), ("settle_at", ASCENDING)]),
            ]
        )
        await self.keys.create_indexes(
            [
                IndexModel([("account", ASCENDING), ("key", ASCENDING)], unique=True),
                IndexModel(
                    [("created", ASCENDING)],
                    expireAfterSeconds=int(KEY_LIFETIME.total_seconds()),
                ),
            ]
        )
        await self.events.create_indexes(
            [
                IndexModel([("status", ASCENDING), ("next_attempt_at", ASCENDING)]),
                IndexModel([("event_id", ASCENDING)], unique=True),
                IndexModel(
                    [("delivered_at", ASCENDING)],
                    expireAfterSeconds=int(EVENT_LIFETIME.total_seconds()),
                ),
            ]
        )
        await self.links.create_indexes(
            [IndexModel([("forget_at", ASCENDING)], expireAfterSeconds=0)]
        )

    async def run(self, work: Callable[[Tx], Awaitable[T]]) -> tuple[T, ObjectId | None]:
        """`work` in one transaction, run again on a conflict (so it must do everything
        through its `Tx`); its result and the id of the last event it emitted."""
        await self._ensure_indexes()

        async def attempt(session: AsyncClientSession) -> tuple[T, ObjectId | None]:
            tx = Tx(self, session)
            result = await work(tx)
            return result, await tx._commit_events()

        runs = 0
        while True:
            runs += 1
            async with self._database.client.start_session() as session:
                try:
                    return await session.with_transaction(attempt)
                except DuplicateKeyError:
                    # A concurrent request inserted the same key first: the next run
                    # finds its answer.
                    if runs == DUPLICATE_RETRIES:
                        raise

    # -- reads outside a request -----------------------------------------------------------

    async def get(self, kind: str, object_id: str) -> Record:
        await self._ensure_indexes()
        raw = await self.objects.find_one({"_id": object_id})
        if raw is None or raw["object"] != kind:
            raise InvalidRequest(
                f"No such {kind.rsplit('.', 1)[-1]}: '{object_id}'", code="resource_missing"
            )
        return Record.of(raw)

    async def created_within(self, kind: str, low: int, high: int, **match: Any) -> list[Record]:
        """Of `kind`, created in [low, high) (Unix seconds), newest first as Stripe lists."""
        await self._ensure_indexes()
        cursor = self.objects.find(
            {"object": kind, "created": {"$gte": low, "$lt": high}, **match}
        ).sort([("created", DESCENDING), ("seq", DESCENDING)])
        return [Record.of(raw) async for raw in cursor]

    async def due_payouts(self, now: datetime) -> list[str]:
        await self._ensure_indexes()
        cursor = self.objects.find(
            {"object": "payout", "settle_at": {"$lte": now}}, {"_id": 1}
        ).sort("settle_at", ASCENDING)
        return [str(raw["_id"]) async for raw in cursor]

    async def forget_keys(self) -> None:
        await self.keys.delete_many({})

    # -- events ----------------------------------------------------------------------------

    async def claim_event(self) -> ClaimedEvent | None:
        """The oldest event due for delivery, leased to this caller; None if none is due."""
        await self._ensure_indexes()
        now = utcnow()
        query: Raw = {"status": EventStatus.PENDING, "next_attempt_at": {"$lte": now}}
        raw = await self.events.find_one_and_update(
            query,
            {"$set": {"next_attempt_at": now + EVENT_LEASE}, "$inc": {"attempts": 1}},
            sort=[("_id", ASCENDING)],
            return_document=ReturnDocument.AFTER,
        )
        if raw is None:
            return None
        return ClaimedEvent(raw["_id"], raw["payload"].encode(), raw["attempts"])

    async def delivered(self, event: ClaimedEvent) -> None:
        # Unless the lease ran out and another process took the event over meanwhile.
        await self.events.update_one(
            {"_id": event.id, "attempts": event.attempts},
            {"$set": {"status": EventStatus.DELIVERED, "delivered_at": utcnow()}},
        )

    async def delivery_failed(
        self, event: ClaimedEvent, error: str, retry_in: timedelta | None
    ) -> None:
        """Due again after `retry_in`; with None, given up."""
        fields: Raw = {"last_error": error}
        if retry_in is None:
            fields["status"] = EventStatus.FAILED
        else:
            fields["next_attempt_at"] = utcnow() + retry_in
        await self.events.update_one(
            {"_id": event.id, "attempts": event.attempts}, {"$set": fields}
        )

    async def awaiting_first_delivery(self, up_to: ObjectId) -> bool:
        """Whether an event up to `up_to` has not been delivered and never failed: due,
        or being delivered by some process."""
        found = await self.events.find_one(
            {"_id": {"$lte": up_to}, "status": EventStatus.PENDING, "last_error": None},
            {"_id": 1},
        )
        return found is not None
