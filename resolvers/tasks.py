"""Posting tasks and moving them through their lifecycle.

    open -> assigned -> in_progress -> submitted -> completed
                                  ^------------'  (changes requested)
    open/assigned -> cancelled;  in_progress/submitted -> disputed

A task in milestones is submitted and completed with its last milestone, and may also
be cancelled in progress while no milestone awaits review (resolvers/milestones.py).

Each move is one conditional update on the task's current status inside a transaction,
so two racing requests cannot both move it, and an illegal move changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.events import EventKind
from documents.geo import Address
from documents.offers import Offer, OfferStatus, closing
from documents.tasks import MilestoneStatus, StatusChange, Task, TaskStatus, sources_of
from documents.users import Role
from resolvers import escrow_hooks, search
from resolvers.accounts import KEEP, Keep
from resolvers.auth.viewer import Viewer
from resolvers.deals import count_completed_job
from resolvers.escrow_progress import advance_deals
from resolvers.services import Services
from resolvers.unit_of_work import UnitOfWork, transact
from resolvers.validation import MAX_REASON_LENGTH, Checked, PriceRules

MAX_TITLE = 120
MAX_DESCRIPTION = 5000
MAX_NOTE = 2000
DUE_WITHIN = timedelta(days=2 * 365)
"""How far ahead a due date may be: far enough for any task, and no year 9999."""


@dataclass(frozen=True)
class PlaceInput:
    latitude: float
    longitude: float
    address: Address


@dataclass(frozen=True)
class MoneyInput:
    amount: int
    currency: str


def require_role(viewer: Viewer, role: Role, doing: str) -> None:
    if not viewer.user.has_role(role):
        raise DomainError(ErrorCode.FORBIDDEN, f"Only {role.value}s can {doing}.")


async def get_task(task_id: ObjectId, unit: UnitOfWork | None = None) -> Task:
    task = await Task.get(PydanticObjectId(task_id), session=unit.session if unit else None)
    if task is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such task.", "taskId")
    return task


def _checked_budget(checked: Checked, services: Services, budget: MoneyInput) -> Any:
    rules = PriceRules.of(services.settings)
    return checked.price(budget.amount, budget.currency, "budget", rules)


async def post_task(
    services: Services,
    viewer: Viewer,
    *,
    title: str,
    description: str,
    category: str,
    budget: MoneyInput,
    place: PlaceInput,
    due_at: datetime | None,
    image_urls: list[str],
) -> Task:
    require_role(viewer, Role.POSTER, "post tasks")
    checked = Checked()
    title = checked.required_text(title, "title", min_length=3, max_length=MAX_TITLE)
    description = checked.required_text(
        description, "description", min_length=10, max_length=MAX_DESCRIPTION, multiline=True
    )
    category = checked.category(category, services.settings.categories)
    money = _checked_budget(checked, services, budget)
    where = checked.place(place.latitude, place.longitude, place.address, "location")
    if due_at is not None:
        due_at = checked.future(due_at, "dueAt", within=DUE_WITHIN)
    images = checked.image_urls(image_urls)
    checked.raise_if_any()

    task = Task(
        poster_id=viewer.user_id,
        title=title,
        description=description,
        category=category,
        budget=money,
        place=where,
        due_at=due_at,
        image_urls=images,
        keywords=search.words(title, description, category),
        history=[StatusChange(status=TaskStatus.OPEN, by=viewer.user_id)],
    )

    async def work(unit: UnitOfWork) -> Task:
        task.id = None  # a retried attempt inserts afresh
        await task.insert(session=unit.session)
        unit.emit(
            EventKind.TASK_POSTED,
            actor_id=viewer.user_id,
            audience=[viewer.user_id],
            title=f"Your task “{task.title}” is posted",
            task_id=task.id,
        )
        return task

    return await transact(services, work)


async def update_task(
    services: Services,
    viewer: Viewer,
    task_id: ObjectId,
    *,
    title: str | Keep = KEEP,
    description: str | Keep = KEEP,
    category: str | Keep = KEEP,
    budget: MoneyInput | Keep = KEEP,
    place: PlaceInput | Keep = KEEP,
    due_at: datetime | Keep | None = KEEP,
    image_urls: list[str] | Keep = KEEP,
) -> Task:
    """Change an open task; everyone with an offer on it hears of it."""
    checked = Checked()
    changes: dict[str, Any] = {}
    if title is not KEEP:
        changes["title"] = checked.required_text(title, "title", min_length=3, max_length=MAX_TITLE)
    if description is not KEEP:
        changes["description"] = checked.required_text(
            description, "description", min_length=10, max_length=MAX_DESCRIPTION, multiline=True
        )
    if category is not KEEP:
        changes["category"] = checked.category(category, services.settings.categories)
    if budget is not KEEP:
        changes["budget"] = _checked_budget(checked, services, budget).model_dump()
    if place is not KEEP:
        changes["place"] = checked.place(
            place.latitude, place.longitude, place.address, "location"
        ).model_dump()
    if due_at is not KEEP:
        changes["due_at"] = (
            None if due_at is None else checked.future(due_at, "dueAt", within=DUE_WITHIN)
        )
    if image_urls is not KEEP:
        changes["image_urls"] = checked.image_urls(image_urls)
    checked.raise_if_any()

    async def work(unit: UnitOfWork) -> Task:
        task = await get_task(task_id, unit)
        _only(viewer, task.poster_id, "Only the poster can edit a task.")
        if "budget" in changes:
            _check_offer_currency(task, changes["budget"]["currency"])
        words = search.words(
            changes.get("title", task.title),
            changes.get("description", task.description),
            changes.get("category", task.category),
        )
        updated = await Task.get_pymongo_collection().find_one_and_update(
            {"_id": task.id, "status": TaskStatus.OPEN.value},
            {"$set": {**changes, "keywords": words, "updated_at": utcnow()}},
            return_document=ReturnDocument.AFTER,
            session=unit.session,
        )
        if updated is None:
            raise _wrong_state(task, "edited", [TaskStatus.OPEN])
        result: Task = Task.model_validate(updated)
        unit.emit(
            EventKind.TASK_UPDATED,
            actor_id=viewer.user_id,
            audience=[task.poster_id, *await _pending_offerers(task, unit)],
            title=f"“{result.title}” was updated",
            task_id=task.id,
            fields=sorted(changes),
        )
        return result

    return await transact(services, work)


def _check_offer_currency(task: Task, currency: str) -> None:
    if currency != task.budget.currency and task.offer_count:
        raise DomainError(
            ErrorCode.INVALID_INPUT,
            "Offers in another currency exist; the budget's currency cannot change.",
            "budget",
        )


async def _pending_offerers(task: Task, unit: UnitOfWork) -> list[PydanticObjectId]:
    offers = Offer.find(
        Offer.task_id == task.id, Offer.status == OfferStatus.PENDING, session=unit.session
    )
    return [offer.tasker_id for offer in await offers.to_list()]


def _only(viewer: Viewer, owner_id: ObjectId, message: str) -> None:
    if viewer.user_id != owner_id:
        raise DomainError(ErrorCode.FORBIDDEN, message)


def _wrong_state(task: Task, doing: str, allowed: list[TaskStatus]) -> DomainError:
    expected = " or ".join(s.value.replace("_", " ") for s in allowed)
    current = task.status.value.replace("_", " ")
    return DomainError(
        ErrorCode.INVALID_STATE,
        f"The task is {current}; it can be {doing} only when {expected}.",
        "taskId",
    )


Actor = Literal["poster", "tasker", "either"]

# Who may make each move, and what it is called in messages.
_MOVES: dict[TaskStatus, tuple[Actor, str]] = {
    TaskStatus.IN_PROGRESS: ("tasker", "started"),
    TaskStatus.SUBMITTED: ("tasker", "submitted"),
    TaskStatus.COMPLETED: ("poster", "completed"),
    TaskStatus.CANCELLED: ("poster", "cancelled"),
    TaskStatus.DISPUTED: ("either", "disputed"),
}


async def move_task(
    services: Services,
    viewer: Viewer,
    task_id: ObjectId,
    to: TaskStatus,
    *,
    note: str | None = None,
    changes_requested: bool = False,
) -> Task:
    """Move a task to `to`; `changes_requested` is the poster sending submitted work back."""
    checked = Checked()
    if changes_requested or to in (TaskStatus.CANCELLED, TaskStatus.DISPUTED):
        note = checked.required_text(
            note or "", "reason", min_length=3, max_length=MAX_REASON_LENGTH, multiline=True
        )
    elif note is not None:
        note = checked.text(note, "note", MAX_NOTE, multiline=True) or None
    checked.raise_if_any()

    async def work(unit: UnitOfWork) -> Task:
        task = await get_task(task_id, unit)
        return await apply_move(
            unit, services, viewer, task, to, note=note, changes_requested=changes_requested
        )

    moved_task = await transact(services, work)
    # A payment, release or refund it claimed.
    await advance_deals(services, escrow_hooks.task_deals(moved_task))
    return moved_task


# A task in milestones moves to these with its last milestone only.
_BY_MILESTONE = (TaskStatus.SUBMITTED, TaskStatus.COMPLETED)


async def apply_move(
    unit: UnitOfWork,
    services: Services,
    viewer: Viewer,
    task: Task,
    to: TaskStatus,
    *,
    note: str | None,
    changes_requested: bool = False,
    by_milestone: bool = False,
) -> Task:
    """Within the caller's transaction: move `task` (as read in it) to `to`, with what
    the move does to its escrows, offers and events; the task as it is after.
    `by_milestone`: the move its last milestone makes (resolvers/milestones.py)."""
    actor: Actor
    actor, verb = ("poster", "sent back") if changes_requested else _MOVES[to]
    _check_actor(viewer, task, actor)
    if task.milestones and not by_milestone and (changes_requested or to in _BY_MILESTONE):
        raise DomainError(
            ErrorCode.INVALID_STATE,
            "The task is paid in milestones: submit, approve or send back each milestone.",
            "taskId",
        )
    sources = _sources(task, to, changes_requested)
    rejected_offers: list[Offer] = []
    if to is TaskStatus.CANCELLED:
        rejected_offers = await reject_pending_offers(task, unit, reason="The task was cancelled.")
    change = StatusChange(status=to, by=viewer.user_id, note=note)
    moved = await Task.get_pymongo_collection().find_one_and_update(
        {"_id": task.id, "status": {"$in": [s.value for s in sources]}},
        {
            "$set": {"status": to.value, "updated_at": change.at},
            "$push": {"history": change.model_dump()},
        },
        return_document=ReturnDocument.AFTER,
        session=unit.session,
    )
    if moved is None:
        raise _wrong_state(task, verb, sources)
    result: Task = Task.model_validate(moved)
    await escrow_hooks.task_moved(
        unit, services.settings, result, changes_requested=changes_requested, note=note
    )
    if to is TaskStatus.COMPLETED and result.assigned_tasker_id is not None:
        await count_completed_job(result.assigned_tasker_id, unit.session)
    unit.emit(
        EventKind.TASK_STATUS_CHANGED,
        actor_id=viewer.user_id,
        audience=[*result.participants, *(o.tasker_id for o in rejected_offers)],
        title=f"“{result.title}” was {verb}",
        task_id=result.id,
        status=to.value,
        previous=task.status.value,
        note=note,
    )
    for offer in rejected_offers:
        unit.emit(
            EventKind.OFFER_REJECTED,
            actor_id=viewer.user_id,
            audience=[offer.tasker_id, offer.poster_id],
            title=f"Your offer on “{result.title}” was declined: the task was cancelled",
            task_id=result.id,
            offer_id=offer.id,
        )
    return result


def _sources(task: Task, to: TaskStatus, changes_requested: bool) -> list[TaskStatus]:
    if changes_requested:
        return [TaskStatus.SUBMITTED]
    if (
        to is TaskStatus.CANCELLED
        and task.milestones
        and all(m.status is not MilestoneStatus.SUBMITTED for m in task.milestones)
    ):
        # The poster may end work in milestones between milestones: what was approved
        # stays paid, the rest is refunded. Work handed in is decided on first.
        return [*sources_of(to), TaskStatus.IN_PROGRESS]
    return sources_of(to)


def _check_actor(viewer: Viewer, task: Task, actor: Actor) -> None:
    is_poster = viewer.user_id == task.poster_id
    is_tasker = task.assigned_tasker_id is not None and viewer.user_id == task.assigned_tasker_id
    allowed = {"poster": is_poster, "tasker": is_tasker, "either": is_poster or is_tasker}[actor]
    if not allowed:
        who = {
            "poster": "the poster",
            "tasker": "the assigned tasker",
            "either": "its poster or tasker",
        }
        raise DomainError(
            ErrorCode.FORBIDDEN, f"Only {who[actor]} can do this to the task.", "taskId"
        )


async def reject_pending_offers(
    task: Task, unit: UnitOfWork, *, reason: str, keep: ObjectId | None = None
) -> list[Offer]:
    query: dict[str, Any] = {"task_id": task.id, "status": OfferStatus.PENDING.value}
    if keep is not None:
        query["_id"] = {"$ne": keep}
    pending = await Offer.find(query, session=unit.session).to_list()
    if pending:
        await Offer.get_pymongo_collection().update_many(
            {"_id": {"$in": [o.id for o in pending]}, "status": OfferStatus.PENDING.value},
            closing(OfferStatus.REJECTED, rejection_reason=reason),
            session=unit.session,
        )
    return pending
