"""Posting tasks and moving them through their lifecycle (documents/lifecycles.py `TASK`).

Every move goes through resolvers/common/transitions.py: one conditional update on the task's
current status inside a transaction, checked against the declaration (who, from where,
with the money held), so two racing requests cannot both move it, and an illegal move
changes nothing. A task in milestones is submitted and completed with its last
milestone (resolvers/marketplace/milestones.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument

from documents.accounts.users import Role
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.events import EventKind
from documents.geo import Place
from documents.lifecycles import OFFER, TASK, Move, Party
from documents.marketplace.offers import ENDED, Offer, OfferStatus
from documents.marketplace.tasks import StatusChange, Task, TaskStatus
from documents.money import Money
from resolvers.accounts.auth.viewer import Viewer, require_role
from resolvers.common import search
from resolvers.common.deals import count_completed_job
from resolvers.common.inputs import KEEP, Keep, MoneyInput, PlaceInput, given_fields, if_given
from resolvers.common.services import Services
from resolvers.common.transitions import OFFER_SUBJECT, TASK_SUBJECT, transition
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.common.validation import MAX_REASON_LENGTH, Checked
from resolvers.payments.escrow import hooks as escrow_hooks
from resolvers.payments.escrow.progress import advance_deals

MAX_TITLE = 120
MAX_DESCRIPTION = 5000
MAX_NOTE = 2000
DUE_WITHIN = timedelta(days=2 * 365)
"""How far ahead a due date may be: far enough for any task, and no year 9999."""


async def get_task(task_id: ObjectId, unit: UnitOfWork | None = None) -> Task:
    task = await Task.get(PydanticObjectId(task_id), session=unit.session if unit else None)
    if task is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such task.", "taskId")
    return task


def _budget(checked: Checked, services: Services, budget: MoneyInput) -> Money:
    rules = services.price_rules
    return checked.price(budget.amount, budget.currency, "budget", rules)


def _title(checked: Checked, title: str) -> str:
    return checked.required_text(title, "title", min_length=3, max_length=MAX_TITLE)


def _description(checked: Checked, description: str) -> str:
    return checked.required_text(
        description, "description", min_length=10, max_length=MAX_DESCRIPTION, multiline=True
    )


def _place(checked: Checked, place: PlaceInput) -> Place:
    return checked.place(place.latitude, place.longitude, place.address, "location")


def _due_at(checked: Checked, due_at: datetime | None) -> datetime | None:
    """A due date, or None for a task without one."""
    return None if due_at is None else checked.future(due_at, "dueAt", within=DUE_WITHIN)


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
    title = _title(checked, title)
    description = _description(checked, description)
    category = checked.category(category, services.settings.categories)
    money = _budget(checked, services, budget)
    where = _place(checked, place)
    due_at = _due_at(checked, due_at)
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
    categories = services.settings.categories
    changes = given_fields(
        title=if_given(title, lambda text: _title(checked, text)),
        description=if_given(description, lambda text: _description(checked, text)),
        category=if_given(category, lambda name: checked.category(name, categories)),
        budget=if_given(budget, lambda money: _budget(checked, services, money).model_dump()),
        place=if_given(place, lambda where: _place(checked, where).model_dump()),
        due_at=if_given(due_at, lambda moment: _due_at(checked, moment)),
        image_urls=if_given(image_urls, checked.image_urls),
    )
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


def party_of(viewer: Viewer, task: Task) -> Party | None:
    """The side the viewer is on in the task, if any."""
    if viewer.user_id == task.poster_id:
        return Party.POSTER
    if task.assigned_tasker_id is not None and viewer.user_id == task.assigned_tasker_id:
        return Party.TASKER
    return None


async def move_task(
    services: Services, viewer: Viewer, task_id: ObjectId, move: str, *, note: str | None = None
) -> Task:
    """Make a move of the task's lifecycle (documents/lifecycles.py `TASK`) as the viewer."""
    checked = Checked()
    if move in ("send_back", "cancel", "dispute"):
        note = checked.required_text(
            note or "", "reason", min_length=3, max_length=MAX_REASON_LENGTH, multiline=True
        )
    elif note is not None:
        note = checked.text(note, "note", MAX_NOTE, multiline=True) or None
    checked.raise_if_any()

    async def work(unit: UnitOfWork) -> Task:
        task = await get_task(task_id, unit)
        return await apply_move(unit, services, viewer, task, move, note=note)

    moved_task = await transact(services, work)
    # A payment, release or refund it claimed.
    await advance_deals(services, escrow_hooks.task_deals(moved_task))
    return moved_task


_BY_MILESTONE = ("submit", "complete", "send_back")
"""A task in milestones makes these moves with its last milestone only."""


async def apply_move(
    unit: UnitOfWork,
    services: Services,
    viewer: Viewer,
    task: Task,
    move: str,
    *,
    note: str | None,
    by_milestone: bool = False,
) -> Task:
    """Within the caller's transaction: make `move` of `task` (as read in it), with what
    the move does to its escrows, offers and events; the task as it is after.
    `by_milestone`: the move its last milestone makes (resolvers/marketplace/milestones.py)."""
    if task.milestones and not by_milestone and move in _BY_MILESTONE:
        raise DomainError(
            ErrorCode.INVALID_STATE,
            "The task is paid in milestones: submit, approve or send back each milestone.",
            "taskId",
        )
    if move == "cancel" and task.milestones and task.status is TaskStatus.IN_PROGRESS:
        move = "cancel_between_milestones"  # what was approved stays paid
    party = party_of(viewer, task)
    result = await transition(
        unit, services, TASK, move, task, party, TASK_SUBJECT, actor_id=viewer.user_id, note=note
    )
    return await after_move(unit, services, task, result, TASK[move], viewer.user_id, note)


async def after_move(
    unit: UnitOfWork,
    services: Services,
    before: Task,
    result: Task,
    move: Move[TaskStatus],
    actor_id: ObjectId | None,
    note: str | None,
) -> Task:
    """What a move of a task does besides its status: its escrows, the offers still
    pending, the provider's completed jobs, and the news."""
    rejected_offers: list[Offer] = []
    if result.status is TaskStatus.CANCELLED:
        rejected_offers = await reject_pending_offers(
            result, unit, services, reason="The task was cancelled."
        )
    await escrow_hooks.task_moved(
        unit, services.terms, result, changes_requested=move.name == "send_back", note=note
    )
    if result.status is TaskStatus.COMPLETED and result.assigned_tasker_id is not None:
        await count_completed_job(result.assigned_tasker_id, unit.session)
    unit.emit(
        EventKind.TASK_STATUS_CHANGED,
        actor_id=actor_id,
        audience=[*result.participants, *(o.tasker_id for o in rejected_offers)],
        title=f"“{result.title}” was {move.verb}",
        task_id=result.id,
        status=result.status.value,
        previous=before.status.value,
        note=note,
    )
    for offer in rejected_offers:
        unit.emit(
            EventKind.OFFER_REJECTED,
            actor_id=actor_id,
            audience=[offer.tasker_id, offer.poster_id],
            title=f"Your offer on “{result.title}” was declined: the task was cancelled",
            task_id=result.id,
            offer_id=offer.id,
        )
    return result


async def reject_pending_offers(
    task: Task,
    unit: UnitOfWork,
    services: Services,
    *,
    reason: str,
    keep: ObjectId | None = None,
) -> list[Offer]:
    """Close the task's pending offers but `keep` (documents/lifecycles.py `OFFER`)."""
    query: dict[str, Any] = {"task_id": task.id, "status": OfferStatus.PENDING.value}
    if keep is not None:
        query["_id"] = {"$ne": keep}
    closed = []
    for offer in await Offer.find(query, session=unit.session).to_list():
        closed.append(
            await transition(
                unit,
                services,
                OFFER,
                "close",
                offer,
                Party.SYSTEM,
                OFFER_SUBJECT,
                fields={"decided_at": utcnow(), "rejection_reason": reason},
                more=ENDED,
                history=None,
            )
        )
    return closed
