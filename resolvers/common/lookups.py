"""Batched reads, the building blocks of the GraphQL data loaders: each serves a whole
page of objects with one query."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TypeVar

from beanie import Document
from bson import ObjectId

from documents.marketplace.bookings import Booking, BookingStatus
from documents.marketplace.offers import LIVE_STATUSES, Offer
from documents.marketplace.packages import ServicePackage
from documents.marketplace.tasks import Task, TaskStatus

D = TypeVar("D", bound=Document)

# A task in these states binds its poster and tasker: each may see the other's contacts.
ENGAGED_TASK = [
    TaskStatus.ASSIGNED,
    TaskStatus.IN_PROGRESS,
    TaskStatus.SUBMITTED,
    TaskStatus.COMPLETED,
    TaskStatus.DISPUTED,
]
# Likewise a booking the provider has confirmed.
ENGAGED_BOOKING = [
    BookingStatus.CONFIRMED,
    BookingStatus.IN_PROGRESS,
    BookingStatus.COMPLETED,
    BookingStatus.DISPUTED,
]


async def by_ids(model: type[D], ids: Sequence[ObjectId]) -> list[D | None]:
    """The documents with these ids, in the same order, None where one does not exist."""
    found = await model.find({"_id": {"$in": list(set(ids))}}).to_list()
    by_id: dict[ObjectId | None, D] = {doc.id: doc for doc in found}
    return [by_id.get(i) for i in ids]


async def live_offers(tasker_id: ObjectId, task_ids: Sequence[ObjectId]) -> list[Offer | None]:
    """The tasker's live (pending or accepted) offer on each task, if any."""
    found = await Offer.find(
        {
            "tasker_id": tasker_id,
            "task_id": {"$in": list(set(task_ids))},
            "status": {"$in": [s.value for s in LIVE_STATUSES]},
        }
    ).to_list()
    by_task: dict[ObjectId, Offer] = {offer.task_id: offer for offer in found}
    return [by_task.get(i) for i in task_ids]


async def counterparts(viewer_id: ObjectId, other_ids: Sequence[ObjectId]) -> list[bool]:
    """Whether the viewer works with each other user: an accepted offer or booking binds them."""
    others = list(set(other_ids))
    tasks, bookings = await asyncio.gather(
        Task.find(
            {
                "status": {"$in": [s.value for s in ENGAGED_TASK]},
                "$or": [
                    {"poster_id": viewer_id, "assigned_tasker_id": {"$in": others}},
                    {"assigned_tasker_id": viewer_id, "poster_id": {"$in": others}},
                ],
            }
        ).to_list(),
        Booking.find(
            {
                "status": {"$in": [s.value for s in ENGAGED_BOOKING]},
                "$or": [
                    {"customer_id": viewer_id, "provider_id": {"$in": others}},
                    {"provider_id": viewer_id, "customer_id": {"$in": others}},
                ],
            }
        ).to_list(),
    )
    bound = {t.assigned_tasker_id for t in tasks} | {t.poster_id for t in tasks}
    bound |= {person for b in bookings for person in b.participants}
    return [other in bound for other in other_ids]


async def packages_of(provider_ids: Sequence[ObjectId]) -> list[list[ServicePackage]]:
    """Each provider's packages, cheapest first."""
    found = await ServicePackage.find({"provider_id": {"$in": list(set(provider_ids))}}).to_list()
    by_provider: dict[ObjectId, list[ServicePackage]] = {}
    for package in sorted(found, key=lambda p: (p.price.amount, p.created_at)):
        by_provider.setdefault(package.provider_id, []).append(package)
    return [by_provider.get(i, []) for i in provider_ids]
