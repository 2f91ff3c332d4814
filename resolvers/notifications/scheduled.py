"""Scheduled messages: written with the change that makes them due, turned into
deliveries once they are.

Use cases write them inside their own transaction: `schedule` and `schedule_again` make
one (a booking's reminders, review requests: follow_ups.py; chat notices:
chat_notices.py), `cancel` ends the pending ones a change makes pointless. `turn_due` runs
on every instance in the background (server/background.py): it claims one due message at
a time with a lease, as the outbox claims deliveries, and then in one transaction either
writes its deliveries with `outbox.plan` and marks it done, or marks it dropped when it
no longer means anything (relevance.py: a reminder after the booking's start). That
transaction applies only while the claimer's lease is the one stored, so however many
instances run the job, exactly one turns each message into deliveries; an instance that
dies holding a lease leaves its message to be claimed again once the lease runs out.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from beanie.odm.utils.encoder import Encoder
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from documents.clock import utcnow
from documents.notifications.scheduled import ScheduledMessage, ScheduledStatus
from documents.transactions import run_in_transaction
from resolvers.common.services import Services
from resolvers.notifications import outbox, relevance

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
"""How long one instance may take over a due message before another may take it."""
BATCH = 50
"""Messages one run of `turn_due` handles at most, so that a run ends soon."""

PENDING = ScheduledStatus.PENDING.value


def _collection() -> AsyncCollection[dict[str, Any]]:
    collection: AsyncCollection[dict[str, Any]] = ScheduledMessage.get_pymongo_collection()
    return collection


async def schedule(session: AsyncClientSession | None, message: ScheduledMessage) -> bool:
    """Within the caller's transaction: `message`, unless one under its key exists (the
    same reminder or notice made twice, by a retried transaction or a later message in
    the same chat window). Whether it was written."""
    fields = Encoder().encode(message.model_dump(exclude={"id", "revision_id"}))
    written = await _collection().update_one(
        {"key": message.key}, {"$setOnInsert": fields}, upsert=True, session=session
    )
    return written.upserted_id is not None


async def schedule_again(session: AsyncClientSession | None, message: ScheduledMessage) -> bool:
    """Within the caller's transaction: `message` pending under its key, due anew, unless
    the one under that key was sent already (a deal completed again once a dispute about
    it was decided asks for reviews only if it has not asked yet). Whether it is pending."""
    found = await ScheduledMessage.find_one({"key": message.key}, session=session)
    if found is None:
        return await schedule(session, message)
    if found.status is ScheduledStatus.DONE:
        return False
    await _collection().update_one(
        {"_id": found.id},
        {
            "$set": {
                "status": PENDING,
                "due_at": message.due_at,
                "drop_after": message.drop_after,
                "title": message.title,
                "context": message.context,
                "lease_until": None,  # a claimer of the old one finds it changed
                "ended_at": None,
                "ended_reason": None,
            }
        },
        session=session,
    )
    return True


async def cancel(
    session: AsyncClientSession | None, query: dict[str, Any], reason: str, now: datetime
) -> int:
    """Within the caller's transaction: the pending messages matching `query` cancelled,
    leased or not (a claimer's transaction then finds them changed). How many."""
    cancelled = await _collection().update_many(
        {**query, "status": PENDING},
        {
            "$set": {
                "status": ScheduledStatus.CANCELLED.value,
                "ended_at": now,
                "ended_reason": reason,
                "lease_until": None,
            }
        },
        session=session,
    )
    return cancelled.modified_count


async def claim(now: datetime) -> ScheduledMessage | None:
    """One due message, leased to this caller until `now + LEASE`; None if none is due.

    The stored `lease_until` is the claim's token: a message is claimed again only once
    its lease has run out, so each claim stores a later time than the one before.
    """
    raw = await outbox.claim_due(_collection(), now, LEASE)
    return None if raw is None else ScheduledMessage.model_validate(raw)


async def turn_due(services: Services, now: datetime | None = None) -> int:
    """Turn what has come due into deliveries, or drop it, one claimed message at a time;
    how many messages this run claimed."""
    handled = 0
    while handled < BATCH:
        moment = now or utcnow()
        message = await claim(moment)
        if message is None:
            break
        try:
            await run_in_transaction(partial(settle, message, moment))
        except Exception:  # one message's failure is not the job's: the lease brings it back
            log.exception("scheduled message %s failed; retried once its lease ends", message.id)
        handled += 1
    return handled


async def settle(
    claimed: ScheduledMessage, now: datetime, session: AsyncClientSession
) -> ScheduledStatus | None:
    """In one transaction: the claimed message's deliveries written and the message done,
    or the message dropped; None (nothing written) if it is no longer this claimer's to
    settle: cancelled, moved, or claimed by another instance after this lease ran out."""
    held = {"_id": claimed.id, "status": PENDING, "lease_until": claimed.lease_until}
    message = await ScheduledMessage.find_one(held, session=session)
    if message is None:
        return None
    reason = await relevance.drop_reason(message, now, session)
    if reason is None:
        await outbox.plan(
            session,
            [
                outbox.Planned(
                    key=f"scheduled:{message.key}",
                    user_id=message.user_id,
                    kind=message.kind,
                    title=message.title,
                    context=message.context,
                    drop_after=message.drop_after,
                )
            ],
        )
    status = ScheduledStatus.DONE if reason is None else ScheduledStatus.DROPPED
    ended = await _collection().update_one(
        held,
        {
            "$set": {
                "status": status.value,
                "ended_at": now,
                "ended_reason": reason,
                "lease_until": None,
            }
        },
        session=session,
    )
    assert ended.modified_count == 1, "read in this transaction"
    return status
