"""Receiving gateway webhooks: verify, store once, process, retry with backoff.

`receive` is what `POST /webhooks/stripe` and the sandbox's deliveries call. It answers
only once the event is stored, so an acknowledged event is never lost; processing
follows at once, and a failure is retried by `retry_due` (a background job on every
instance) with exponential backoff until `webhook_max_attempts`, then parked as `dead`.
An event that contradicts our records (`EventMismatch`) is `rejected` at once, with what
differed, and logged as an alert (`webhook_mismatch`): retrying would not change it.

Any number of deliveries of one event may race (the gateway retries, instances run the
retry job): the unique event id stores it once, and a claim (a conditional update
pushing `next_attempt_at` past a lease) lets exactly one runner process it at a time.
The delivery that stores an event stores it claimed, by itself (its first attempt, the
lease running), so a new event costs one write before its processing and one after
(shared with the events finished at the same time): the later deliveries and the retry
job find it held. Claims are compare-and-set updates
on the attempts read, not findAndModify, which SecantusDB runs as a scan of the whole
collection (bench/README.md, Issue 16: payment webhooks).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from beanie import PydanticObjectId
from pymongo import ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError, WriteError

from documents.clock import utcnow
from documents.grouped_writes import GroupedWrites
from documents.payments.webhooks import PENDING_STATUSES, WebhookEvent, WebhookStatus
from integrations.payments.gateway import GatewayEvent
from resolvers.common.services import Services
from resolvers.payments.webhooks.checks import EventMismatch
from resolvers.payments.webhooks.handlers import HANDLERS, Handler, NotReady

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
"""How long a runner holds an event: past it, a runner that died is presumed dead."""
MAX_BACKOFF = timedelta(hours=1)
MAX_ERROR_LENGTH = 1000
MISMATCH_ALERT = "webhook_mismatch"
DUPLICATE_KEY = 11000
"""The marker of the log line an event rejected for contradicting our records makes."""


class NotAnEvent(ValueError):
    """A genuinely signed body that is not an event: nothing to store or retry."""


async def receive(
    services: Services,
    payload: bytes,
    signature: str | None,
    handlers: Mapping[str, Handler] = HANDLERS,
) -> WebhookEvent:
    """Store a signed event once and process it.

    Raises WebhookSignatureError if it is not genuine, NotAnEvent if it is not an event.
    """
    stored = _parsed(services, payload, signature)
    new = await _STORING.submit(stored)
    if isinstance(new, Exception):
        raise new  # this event's alone: the others received with it go on
    if not new:
        existing = await WebhookEvent.find_one({"event_id": stored.event_id})
        if existing is None:  # pragma: no cover - the unique index says it exists
            raise RuntimeError(f"event {stored.event_id} was refused as stored, yet is not")
        return await process(services, existing.event_id, handlers) or existing
    # Stored claimed: this delivery holds it, as if it had claimed it.
    return await _run(services, stored, handlers) or stored


async def _store_all(events: list[WebhookEvent]) -> list[bool | Exception]:
    """Store the events received at the same time in one insert (documents/grouped_writes.py):
    for each, whether it was new, or the error that kept it from being stored. Unordered,
    so that each is stored or refused on its own: an event stored already (by its unique
    id) is refused alone, as its own insert would have been, and so is one that cannot be
    stored (too large, not encodable): it fails its own delivery, not the others' (which
    may well be stored, held by this runner, and must go on to be processed)."""
    if len(events) == 1:
        return [await _store_one(events[0])]
    for event in events:
        event.id = PydanticObjectId()
    try:
        await WebhookEvent.insert_many(events, ordered=False)
    except BulkWriteError as error:
        details = error.details
        if details.get("writeConcernErrors"):
            # Not any one event's: the inserts were made but not made durable, as each
            # event's own insert would have been; none may be acknowledged.
            raise
        # Every batch was sent: the events without an error were inserted.
        failures = {failure["index"]: failure for failure in details.get("writeErrors", [])}
        outcomes: list[bool | Exception] = []
        for index, event in enumerate(events):
            failure = failures.get(index)
            if failure is None:
                outcomes.append(True)
            elif failure.get("code") == DUPLICATE_KEY:
                outcomes.append(False)
            else:
                # Tried again alone, the event gets what its own insert gets.
                outcomes.append(await _store_one(event))
        return outcomes
    except PyMongoError:
        # The command or the connection failed (not a document): every event's own
        # insert would have failed alike.
        raise
    except Exception:
        # The driver could not encode a document (bson's InvalidDocument, a lone surrogate's
        # UnicodeEncodeError...): raised while building a batch, after any earlier batch
        # was sent. Each is tried alone; one found stored with the id given here was
        # stored by this insert.
        return [await _store_one(event, maybe_stored=True) for event in events]
    return [True] * len(events)


async def _store_one(event: WebhookEvent, *, maybe_stored: bool = False) -> bool | Exception:
    """Whether the event was new, inserted alone; or the error its insert raised. A
    duplicate of an event that `maybe_stored` by this runner already (its `_id` set)
    counts as new if the stored one is that one."""
    try:
        await event.insert()
    except DuplicateKeyError:
        if maybe_stored:
            ours = await WebhookEvent.get_pymongo_collection().find_one(
                {"_id": event.id, "event_id": event.event_id}, {"_id": 1}
            )
            return ours is not None
        return False
    except WriteError as error:
        return error  # this document's own (refused by the server), not the group's
    except PyMongoError:
        raise
    except Exception as error:
        return error
    return True


_STORING: GroupedWrites[WebhookEvent, bool | Exception] = GroupedWrites(_store_all)


def _parsed(services: Services, payload: bytes, signature: str | None) -> WebhookEvent:
    """The event to store. The signature is checked before the body is read, so
    WebhookSignatureError (not a ValueError) comes first."""
    try:
        event = services.payments.parse_event(payload, signature or "")
        now = utcnow()
        return WebhookEvent(
            event_id=event.id,
            type=event.type,
            account=event.account,
            created=event.created,
            payload=payload.decode(),
            # Claimed by whoever stores it: what `_claim` would set.
            attempts=1,
            next_attempt_at=now + LEASE,
            received_at=now,
        )
    except (ValueError, KeyError, TypeError, OverflowError, OSError) as error:
        # Not JSON, fields missing or of the wrong type, a `created` out of range.
        raise NotAnEvent(f"{type(error).__name__}: {error}") from error


async def process(
    services: Services, event_id: str, handlers: Mapping[str, Handler] = HANDLERS
) -> WebhookEvent | None:
    """Process the event if it is due and nobody else holds it; None if not taken (or
    taken over by another runner after the lease ran out)."""
    claimed = await _claim(event_id)
    if claimed is None:
        return None
    return await _run(services, claimed, handlers)


async def _run(
    services: Services, claimed: WebhookEvent, handlers: Mapping[str, Handler]
) -> WebhookEvent | None:
    """Process an event this runner holds, and record how it ended."""
    event = GatewayEvent.from_stripe(json.loads(claimed.payload))
    handler = handlers.get(event.type)
    if handler is None:
        return await _finish(claimed, WebhookStatus.IGNORED)
    try:
        await handler(services, event)
    except EventMismatch as mismatch:
        return await _rejected(claimed, mismatch)
    except Exception as error:
        return await _failed(services, claimed, error)
    return await _finish(claimed, WebhookStatus.PROCESSED)


async def retry_due(
    services: Services, limit: int = 100, handlers: Mapping[str, Handler] = HANDLERS
) -> int:
    """Process events whose time has come: failed ones, and fresh ones whose runner died."""
    due = await WebhookEvent.find(_due(utcnow())).sort("next_attempt_at").limit(limit).to_list()
    done = 0
    for event in due:
        if await process(services, event.event_id, handlers) is not None:
            done += 1
    return done


async def revive(event_id: str) -> WebhookEvent | None:
    """A dead event back in the queue with fresh attempts (an admin fixed the cause)."""
    raw = await WebhookEvent.get_pymongo_collection().find_one_and_update(
        {"event_id": event_id, "status": WebhookStatus.DEAD.value},
        {
            "$set": {
                "status": WebhookStatus.FAILED.value,
                "attempts": 0,
                "next_attempt_at": utcnow(),
            }
        },
        return_document=ReturnDocument.AFTER,
    )
    return None if raw is None else WebhookEvent.model_validate(raw)


async def _claim(event_id: str) -> WebhookEvent | None:
    """The event, held by this runner, if it is due: read, then taken on the condition
    that nobody took it since (its attempts still the ones read: every claim counts one),
    so of any number of runners exactly one holds it."""
    now = utcnow()
    due = _due(now)
    found = await WebhookEvent.find_one({"event_id": event_id, **due})
    if found is None:
        return None
    held = {"next_attempt_at": now + LEASE, "attempts": found.attempts + 1}
    taken = await WebhookEvent.get_pymongo_collection().update_one(
        {"_id": found.id, "attempts": found.attempts, **due}, {"$set": held}
    )
    return found.model_copy(update=held) if taken.modified_count else None


def _due(now: datetime) -> dict[str, Any]:
    """Events waiting to be processed whose time has come (a held one's is its lease's end)."""
    return {
        "status": {"$in": [s.value for s in PENDING_STATUSES]},
        "next_attempt_at": {"$lte": now},
    }


def _still_held(event: WebhookEvent) -> dict[str, Any]:
    """The claimed event, unless its lease ran out and another runner claimed it since
    (which counted one more attempt): then that runner's outcome is the one to keep."""
    return {"_id": event.id, "attempts": event.attempts}


async def _finish(event: WebhookEvent, status: WebhookStatus) -> WebhookEvent | None:
    """Record a final outcome (processed, ignored); None if this runner no longer held the
    event. The outcomes of events finished at the same time are written together, one
    update for all (documents/grouped_writes.py)."""
    return await _FINISHING.submit((event, status))


async def _finish_all(
    finished: list[tuple[WebhookEvent, WebhookStatus]],
) -> list[WebhookEvent | None]:
    """Each event's outcome, written on the condition that its runner still holds it, as
    `_record_outcome` writes one: one update per attempts count and status (nearly always
    one: first attempts). When not all matched, which did is read back: a final status is
    never claimed again, and any runner that took an event over counted one more attempt,
    so an event left with these attempts and this status was written by this update."""
    now = utcnow()
    groups: dict[tuple[int, WebhookStatus], list[int]] = {}
    for index, (event, status) in enumerate(finished):
        groups.setdefault((event.attempts, status), []).append(index)
    results: list[WebhookEvent | None] = [None] * len(finished)
    collection = WebhookEvent.get_pymongo_collection()
    for (attempts, status), indexes in groups.items():
        fields = {"status": status.value, "processed_at": now, "last_error": None}
        events = [finished[index][0] for index in indexes]
        if len(events) == 1:
            written = await collection.update_one(_still_held(events[0]), {"$set": fields})
        else:
            written = await collection.update_many(
                {"_id": {"$in": [event.id for event in events]}, "attempts": attempts},
                {"$set": fields},
            )
        held = {event.id for event in events}
        if written.matched_count != len(events):
            found = collection.find(
                {"_id": {"$in": list(held)}, "attempts": attempts, "status": status.value},
                {"_id": 1},
            )
            held = {raw["_id"] async for raw in found}
        for index, event in zip(indexes, events, strict=True):
            results[index] = _recorded(event, fields) if event.id in held else None
    return results


_FINISHING: GroupedWrites[tuple[WebhookEvent, WebhookStatus], WebhookEvent | None] = GroupedWrites(
    _finish_all
)


async def _rejected(event: WebhookEvent, mismatch: EventMismatch) -> WebhookEvent | None:
    differences = [difference.model_dump() for difference in mismatch.differences]
    log.error(
        "%s: event %s (%s) contradicts our records: %s",
        MISMATCH_ALERT,
        event.event_id,
        event.type,
        mismatch,
        extra={
            "alert": MISMATCH_ALERT,
            "event_id": event.event_id,
            "event_type": event.type,
            "differences": differences,
        },
    )
    return await _record_outcome(
        event,
        {
            "status": WebhookStatus.REJECTED.value,
            "processed_at": utcnow(),
            "last_error": f"{type(mismatch).__name__}: {mismatch}"[:MAX_ERROR_LENGTH],
            "differences": differences,
        },
    )


async def _failed(services: Services, event: WebhookEvent, error: Exception) -> WebhookEvent | None:
    settings = services.settings
    if isinstance(error, NotReady):
        log.info("webhook %s (%s) not ready: %s", event.event_id, event.type, error)
    else:
        log.exception("webhook %s (%s) failed", event.event_id, event.type, exc_info=error)
    dead = event.attempts >= settings.webhook_max_attempts
    backoff = min(settings.webhook_retry_base * 2 ** (event.attempts - 1), MAX_BACKOFF)
    return await _record_outcome(
        event,
        {
            "status": (WebhookStatus.DEAD if dead else WebhookStatus.FAILED).value,
            "next_attempt_at": utcnow() + backoff,
            "last_error": f"{type(error).__name__}: {error}"[:MAX_ERROR_LENGTH],
        },
    )


async def _record_outcome(event: WebhookEvent, fields: dict[str, Any]) -> WebhookEvent | None:
    """Set `fields` on the event this runner holds; None if it no longer does."""
    recorded = await WebhookEvent.get_pymongo_collection().update_one(
        _still_held(event), {"$set": fields}
    )
    if not recorded.matched_count:
        return None
    return _recorded(event, fields)


def _recorded(event: WebhookEvent, fields: dict[str, Any]) -> WebhookEvent:
    """The stored event: the one read or stored by this runner with these fields (it held
    it, so nobody else wrote it since)."""
    recorded_event: WebhookEvent = WebhookEvent.model_validate({**event.model_dump(), **fields})
    return recorded_event
