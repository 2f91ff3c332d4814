"""Offers on tasks: made, changed, withdrawn, accepted, rejected; and direct hires.

Accepting is the race that matters: in one transaction the task moves from open to
assigned (a conditional update), the offer from pending to accepted, and every other
pending offer to rejected. Of any number of concurrent accepts on one task, the first
to commit wins; the transactions of the others conflict on the task, retry, find it
assigned, and fail with INVALID_STATE, changing nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.events import EventKind
from documents.money import Money
from documents.offers import Offer, OfferStatus, closing
from documents.tasks import StatusChange, Task, TaskStatus
from documents.users import Role, User, UserStatus
from resolvers import escrow_hooks
from resolvers.accounts import KEEP, Keep
from resolvers.auth.viewer import Viewer
from resolvers.escrow_progress import advance_deals
from resolvers.milestones import MilestoneInput, check_total, split_offer
from resolvers.services import Services
from resolvers.tasks import MoneyInput, get_task, reject_pending_offers, require_role
from resolvers.unit_of_work import UnitOfWork, transact
from resolvers.validation import MAX_REASON_LENGTH, Checked, PriceRules

MAX_MESSAGE = 2000
ALREADY_OFFERED = "You already have a live offer on this task; change or withdraw it instead."


def _amount(checked: Checked, services: Services, task: Task, amount: MoneyInput) -> Money:
    money = checked.price(
        amount.amount, amount.currency, "amount", PriceRules.of(services.settings)
    )
    if money.currency != task.budget.currency:
        checked.fail(
            ErrorCode.INVALID_INPUT,
            f"Offers on this task are in {task.budget.currency}.",
            "amount",
        )
    return money


async def get_offer(offer_id: ObjectId, viewer: Viewer, unit: UnitOfWork | None = None) -> Offer:
    """The offer, if the viewer is one of its two sides (or an admin); else NOT_FOUND."""
    offer = await Offer.get(PydanticObjectId(offer_id), session=unit.session if unit else None)
    if offer is None or not can_see_offer(viewer, offer):
        raise DomainError(ErrorCode.NOT_FOUND, "No such offer.", "offerId")
    return offer


def can_see_offer(viewer: Viewer, offer: Offer) -> bool:
    return viewer.user_id in (offer.tasker_id, offer.poster_id) or viewer.user.is_admin


def _open(task: Task) -> None:
    if task.status is not TaskStatus.OPEN:
        raise DomainError(
            ErrorCode.INVALID_STATE, f"The task is {task.status.value}, no longer open.", "taskId"
        )


async def _insert(unit: UnitOfWork, offer: Offer, task: Task) -> None:
    """Insert a live offer and count it on the task, which must still be open."""
    counted = await Task.get_pymongo_collection().update_one(
        {"_id": task.id, "status": TaskStatus.OPEN.value},
        {"$inc": {"offer_count": 1}},
        session=unit.session,
    )
    if not counted.modified_count:
        raise DomainError(ErrorCode.INVALID_STATE, "The task is no longer open.", "taskId")
    offer.id = None
    try:
        await offer.insert(session=unit.session)
    except DuplicateKeyError as error:
        raise DomainError(ErrorCode.ALREADY_EXISTS, ALREADY_OFFERED, "taskId") from error


async def make_offer(
    services: Services, viewer: Viewer, task_id: ObjectId, amount: MoneyInput, message: str
) -> Offer:
    require_role(viewer, Role.TASKER, "make offers")
    task = await get_task(task_id)
    if task.poster_id == viewer.user_id:
        raise DomainError(
            ErrorCode.FORBIDDEN, "You cannot make an offer on your own task.", "taskId"
        )
    checked = Checked()
    money = _amount(checked, services, task, amount)
    message = checked.required_text(
        message, "message", min_length=1, max_length=MAX_MESSAGE, multiline=True
    )
    checked.raise_if_any()
    _open(task)
    offer = Offer(
        task_id=task.id,
        tasker_id=viewer.user_id,
        poster_id=task.poster_id,
        amount=money,
        message=message,
    )

    async def work(unit: UnitOfWork) -> Offer:
        await _insert(unit, offer, task)
        unit.emit(
            EventKind.OFFER_RECEIVED,
            actor_id=viewer.user_id,
            audience=[task.poster_id, viewer.user_id],
            title=f"{viewer.user.name} offered {money} for “{task.title}”",
            task_id=task.id,
            offer_id=offer.id,
        )
        return offer

    return await transact(services, work)


async def send_direct_offer(
    services: Services,
    viewer: Viewer,
    task_id: ObjectId,
    tasker_id: ObjectId,
    amount: MoneyInput,
    message: str,
) -> Offer:
    """The poster offers the task to a tasker of their choice, who accepts or rejects it."""
    task = await get_task(task_id)
    if task.poster_id != viewer.user_id:
        raise DomainError(ErrorCode.FORBIDDEN, "Only the poster can hire for a task.", "taskId")
    tasker = await User.get(PydanticObjectId(tasker_id))
    if tasker is None or tasker.status is not UserStatus.ACTIVE or not tasker.has_role(Role.TASKER):
        raise DomainError(ErrorCode.NOT_FOUND, "No such tasker.", "taskerId")
    if tasker.id == viewer.user_id:
        raise DomainError(ErrorCode.FORBIDDEN, "You cannot hire yourself.", "taskerId")
    checked = Checked()
    money = _amount(checked, services, task, amount)
    message = checked.required_text(
        message, "message", min_length=1, max_length=MAX_MESSAGE, multiline=True
    )
    checked.raise_if_any()
    _open(task)
    assert tasker.id is not None
    offer = Offer(
        task_id=task.id,
        tasker_id=tasker.id,
        poster_id=viewer.user_id,
        amount=money,
        message=message,
        direct=True,
    )

    async def work(unit: UnitOfWork) -> Offer:
        await _insert(unit, offer, task)
        unit.emit(
            EventKind.OFFER_RECEIVED,
            actor_id=viewer.user_id,
            audience=[tasker.id, viewer.user_id],
            title=f"{viewer.user.name} would like to hire you for “{task.title}” at {money}",
            task_id=task.id,
            offer_id=offer.id,
            direct=True,
        )
        return offer

    return await transact(services, work)


async def update_offer(
    services: Services,
    viewer: Viewer,
    offer_id: ObjectId,
    *,
    amount: MoneyInput | Keep = KEEP,
    message: str | Keep = KEEP,
) -> Offer:
    offer = await get_offer(offer_id, viewer)
    _author(viewer, offer)
    task = await get_task(offer.task_id)
    checked = Checked()
    changes: dict[str, Any] = {}
    if amount is not KEEP:
        changes["amount"] = _amount(checked, services, task, amount).model_dump()
    if message is not KEEP:
        changes["message"] = checked.required_text(
            message, "message", min_length=1, max_length=MAX_MESSAGE, multiline=True
        )
    checked.raise_if_any()

    async def work(unit: UnitOfWork) -> Offer:
        updated = await _pending_update(unit, offer, {"$set": {**changes, "updated_at": utcnow()}})
        unit.emit(
            EventKind.OFFER_UPDATED,
            actor_id=viewer.user_id,
            audience=[offer.decider_id, viewer.user_id],
            title=f"An offer on “{task.title}” changed to {updated.amount}",
            task_id=task.id,
            offer_id=offer.id,
        )
        return updated

    return await transact(services, work)


async def withdraw_offer(services: Services, viewer: Viewer, offer_id: ObjectId) -> Offer:
    offer = await get_offer(offer_id, viewer)
    _author(viewer, offer)

    async def work(unit: UnitOfWork) -> Offer:
        withdrawn = await _pending_update(unit, offer, closing(OfferStatus.WITHDRAWN))
        await Task.get_pymongo_collection().update_one(
            {"_id": offer.task_id}, {"$inc": {"offer_count": -1}}, session=unit.session
        )
        task = await get_task(offer.task_id, unit)
        unit.emit(
            EventKind.OFFER_WITHDRAWN,
            actor_id=viewer.user_id,
            audience=[offer.decider_id, viewer.user_id],
            title=f"An offer on “{task.title}” was withdrawn",
            task_id=offer.task_id,
            offer_id=offer.id,
        )
        return withdrawn

    return await transact(services, work)


async def reject_offer(
    services: Services, viewer: Viewer, offer_id: ObjectId, reason: str | None
) -> Offer:
    offer = await get_offer(offer_id, viewer)
    _decider(viewer, offer)
    checked = Checked()
    reason = checked.text(reason or "", "reason", MAX_REASON_LENGTH, multiline=True) or None
    checked.raise_if_any()

    async def work(unit: UnitOfWork) -> Offer:
        rejected = await _pending_update(
            unit, offer, closing(OfferStatus.REJECTED, rejection_reason=reason)
        )
        task = await get_task(offer.task_id, unit)
        unit.emit(
            EventKind.OFFER_REJECTED,
            actor_id=viewer.user_id,
            audience=[offer.author_id, viewer.user_id],
            title=f"The offer on “{task.title}” was declined",
            task_id=offer.task_id,
            offer_id=offer.id,
        )
        return rejected

    return await transact(services, work)


async def accept_offer(
    services: Services,
    viewer: Viewer,
    offer_id: ObjectId,
    milestones: Sequence[MilestoneInput] = (),
) -> Offer:
    """Accept the offer; the poster may split its work into `milestones` (see
    resolvers/milestones.py), each paid on its own."""
    offer = await get_offer(offer_id, viewer)
    _decider(viewer, offer)
    rules = PriceRules.of(services.settings)
    parts = split_offer(viewer, offer, milestones, rules) if milestones else []

    async def work(unit: UnitOfWork) -> tuple[Offer, Task]:
        now = utcnow()
        change = StatusChange(status=TaskStatus.ASSIGNED, by=viewer.user_id, at=now)
        task = await Task.get_pymongo_collection().find_one_and_update(
            {"_id": offer.task_id, "status": TaskStatus.OPEN.value},
            {
                "$set": {
                    "status": TaskStatus.ASSIGNED.value,
                    "assigned_tasker_id": offer.tasker_id,
                    "accepted_offer_id": offer.id,
                    "agreed_price": offer.amount.model_dump(),
                    "milestones": [m.model_dump() for m in parts],
                    "updated_at": now,
                },
                "$push": {"history": change.model_dump()},
            },
            return_document=ReturnDocument.AFTER,
            session=unit.session,
        )
        if task is None:
            current = await get_task(offer.task_id, unit)
            raise DomainError(
                ErrorCode.INVALID_STATE,
                f"The task is {current.status.value}: an offer was accepted already or it closed.",
                "offerId",
            )
        assigned: Task = Task.model_validate(task)
        accepted = await _pending_update(
            unit,
            offer,
            {"$set": {"status": OfferStatus.ACCEPTED.value, "decided_at": now, "updated_at": now}},
        )
        if parts:
            check_total(parts, accepted.amount)  # as the offer stands now
        others = await reject_pending_offers(
            assigned, unit, reason="Another offer was accepted.", keep=offer.id
        )
        await escrow_hooks.offer_accepted(unit, services.settings, accepted, assigned)
        unit.emit(
            EventKind.OFFER_ACCEPTED,
            actor_id=viewer.user_id,
            audience=[offer.tasker_id, offer.poster_id],
            title=f"The offer of {offer.amount} for “{assigned.title}” was accepted",
            task_id=assigned.id,
            offer_id=offer.id,
            amount=offer.amount.model_dump(),
        )
        unit.emit(
            EventKind.TASK_STATUS_CHANGED,
            actor_id=viewer.user_id,
            audience=assigned.participants,
            title=f"“{assigned.title}” is assigned",
            task_id=assigned.id,
            status=TaskStatus.ASSIGNED.value,
            previous=TaskStatus.OPEN.value,
        )
        for other in others:
            unit.emit(
                EventKind.OFFER_REJECTED,
                actor_id=viewer.user_id,
                audience=[other.tasker_id, other.poster_id],
                title=f"Another offer was chosen for “{assigned.title}”",
                task_id=assigned.id,
                offer_id=other.id,
            )
        return accepted, assigned

    accepted, assigned = await transact(services, work)
    await advance_deals(services, escrow_hooks.task_deals(assigned))  # the payment intent
    return accepted


async def _pending_update(unit: UnitOfWork, offer: Offer, update: dict[str, Any]) -> Offer:
    """Apply `update` if the offer is still pending; else INVALID_STATE."""
    raw = await Offer.get_pymongo_collection().find_one_and_update(
        {"_id": offer.id, "status": OfferStatus.PENDING.value},
        update,
        return_document=ReturnDocument.AFTER,
        session=unit.session,
    )
    if raw is None:
        current = await Offer.get(offer.id, session=unit.session) or offer
        raise DomainError(
            ErrorCode.INVALID_STATE,
            f"The offer is {current.status.value}, no longer pending.",
            "offerId",
        )
    updated: Offer = Offer.model_validate(raw)
    return updated


def _author(viewer: Viewer, offer: Offer) -> None:
    if viewer.user_id != offer.author_id:
        raise DomainError(
            ErrorCode.FORBIDDEN, "Only whoever made the offer can change it.", "offerId"
        )


def _decider(viewer: Viewer, offer: Offer) -> None:
    if viewer.user_id != offer.decider_id:
        who = "the tasker it was sent to" if offer.direct else "the task's poster"
        raise DomainError(ErrorCode.FORBIDDEN, f"Only {who} can decide on this offer.", "offerId")
