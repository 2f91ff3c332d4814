"""Leases on periodic jobs: which instance runs a sweep, until when.

With many API instances every one of them would otherwise scan the same collections
every period, all waking at once. A lease is one document per job, naming its holder
and when the holding ends; taking it is one conditional write that only one instance
wins. Leases make sweeps efficient, not correct: every job still decides each piece of
work with its own conditional update, so two holders (a clock far off, a run outliving
its lease) cost queries, never a double effect.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from beanie import Document
from pymongo.errors import DuplicateKeyError

from documents.clock import utcnow


class JobLease(Document):
    """`_id` is the job's name: one lease per job across every instance."""

    id: str  # type: ignore[assignment]  # the job's name, not an ObjectId
    holder: str
    expires_at: datetime

    class Settings:
        name = "job_leases"
        use_revision = False


async def take(job: str, holder: str, lasting: timedelta, now: datetime | None = None) -> bool:
    """Hold `job`'s lease for `lasting` from now: True when `holder` has it (it was free,
    ran out, or was `holder`'s already, which renews it), False when another holds it."""
    moment = now or utcnow()
    try:
        await JobLease.get_pymongo_collection().update_one(
            # Matches only a lease this holder may take; when none matches, the upsert
            # inserts one, which fails on the unique _id if another holds it.
            {"_id": job, "$or": [{"holder": holder}, {"expires_at": {"$lte": moment}}]},
            {"$set": {"holder": holder, "expires_at": moment + lasting}},
            upsert=True,
        )
    except DuplicateKeyError:
        return False
    return True


async def give_up(job: str, holder: str) -> None:
    """End `holder`'s lease now, so another instance takes the job over at once (a
    stopping instance, not one that died: its lease runs out by itself)."""
    await JobLease.get_pymongo_collection().update_one(
        {"_id": job, "holder": holder}, {"$set": {"expires_at": utcnow()}}
    )
