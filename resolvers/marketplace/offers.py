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

from documents.accounts.users import Role, User, UserStatus
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.events import EventKind
from documents.lifecycles import OFFER, TASK, Party
from documents.marketplace.offers import ENDED, Offer, OfferStatus
from documents.marketplace.tasks import Task, TaskStatus
from documents.money import Money
from resolvers.accounts.auth.viewer import Viewer, require_role
from resolvers.common.inputs import KEEP, Keep, MoneyInput, given_fields, if_given
from resolvers.common.services import Services
from resolvers.common.transitions import OFFER_SUBJECT, TASK_SUBJECT, transition
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.common.validation import MAX_REASON_LENGTH, Checked
from resolvers.marketplace.milestones import MilestoneInput, split_offer
from resolvers.marketplace.tasks import get_task, reject_pending_offers
from resolvers.payments.escrow import hooks as escrow_hooks
from resolvers.payments.escrow.progress import advance_deals

MAX_MESSAGE = 2000
ALREADY_OFFERED = "You already have a live offer on this task; change or withdraw it instead."


def _amount(checked: Checked, services: Services, task: Task, amount: MoneyInput) -> Money:
    money = checked.price(amount.amount, amount.currency, "amount", services.price_rules)
    if money.currency != task.budget.currency:
        checked.fail(
            ErrorCode.INVALID_INPUT,
            f"Offers on this task are in {task.budget.currency}.",
            "amount",
        )
    return money


def _message(checked: Checked, message: str) -> str:
    return checked.required_text(
        message, "message", min_length=1, max_length=MAX_MESSAGE, multiline=True
    )


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
    """A tasker offers to do an open task for `amount`; its poster accepts or rejects it."""
    require_role(viewer, Role.TASKER, "make offers")
    task = await get_task(task_id)
    if task.poster_id == viewer.user_id:
        raise DomainError(
            ErrorCode.FORBIDDEN, "You cannot make an offer on your own task.", "taskId"
        )
    return await _send_offer(services, viewer, task, viewer.user_id, amount, message)


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
    assert tasker.id is not None
    return await _send_offer(services, viewer, task, tasker.id, amount, message, direct=True)


async def _send_offer(
    services: Services,
    viewer: Viewer,
    task: Task,
    tasker_id: ObjectId,
    amount: MoneyInput,
    message: str,
    *,
    direct: bool = False,
) -> Offer:
    """Check the terms, then put the viewer's offer on the open task and tell the one who
    decides on it: the poster, or for a `direct` hire (made by the poster) the tasker.

    Who may make which offer is the caller's to check first."""
    checked = Checked()
    money = _amount(checked, services, task, amount)
    message = _message(checked, message)
    checked.raise_if_any()
    _open(task)
    offer = Offer(
        task_id=task.id,
        tasker_id=tasker_id,
        poster_id=task.poster_id,
        amount=money,
        message=message,
        direct=direct,
    )
    marks: dict[str, Any] = {}  # what the event says besides; only a hire is marked
    if direct:
        title = f"{viewer.user.name} would like to hire you for “{task.title}” at {money}"
        marks["direct"] = True
    else:
        title = f"{viewer.user.name} offered {money} for “{task.title}”"

    async def work(unit: UnitOfWork) -> Offer:
        await _insert(unit, offer, task)
        unit.emit(
            EventKind.OFFER_RECEIVED,
            actor_id=viewer.user_id,
            audience=[offer.decider_id, viewer.user_id],
            title=title,
            task_id=task.id,
            offer_id=offer.id,
            **marks,
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
    changes = given_fields(
        amount=if_given(amount, lambda money: _amount(checked, services, task, money).model_dump()),
        message=if_given(message, lambda text: _message(checked, text)),
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
        withdrawn = await move_offer(unit, services, viewer, offer, "withdraw")
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
        rejected = await move_offer(
            unit, services, viewer, offer, "reject", rejection_reason=reason
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
    expected_amount: MoneyInput | None = None,
) -> Offer:
    """Accept the offer, as the viewer was shown it (`expected_amount`: else OFFER_CHANGED,
    and nothing is agreed); the poster may split its work into `milestones` (see
    resolvers/marketplace/milestones.py), each paid on its own. What is agreed comes from one
    read of
    the offer inside the transaction that agrees it."""
    _decider(viewer, await get_offer(offer_id, viewer))

    async def work(unit: UnitOfWork) -> tuple[Offer, Task]:
        offer = await get_offer(offer_id, viewer, unit)
        if expected_amount is not None and (
            offer.amount.amount != expected_amount.amount
            or offer.amount.currency != expected_amount.currency.upper()
        ):
            raise DomainError(
                ErrorCode.OFFER_CHANGED,
                f"The offer is now {offer.amount}: look at it again before accepting.",
                "expectedAmount",
            )
        parts = split_offer(viewer, offer, milestones, services.price_rules) if milestones else []
        now = utcnow()
        task = await get_task(offer.task_id, unit)
        assigned = await transition(
            unit,
            services,
            TASK,
            "assign",
            task,
            Party.TASKER if offer.direct else Party.POSTER,
            TASK_SUBJECT,
            actor_id=viewer.user_id,
            fields={
                "assigned_tasker_id": offer.tasker_id,
                "accepted_offer_id": offer.id,
                "agreed_price": offer.amount.model_dump(),
                "milestones": [m.model_dump() for m in parts],
            },
        )
        accepted = await move_offer(unit, services, viewer, offer, "accept", decided_at=now)
        others = await reject_pending_offers(
            assigned, unit, services, reason="Another offer was accepted.", keep=offer.id
        )
        await escrow_hooks.offer_accepted(unit, services.terms, services.fees, accepted, assigned)
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


def offer_party(viewer: Viewer, offer: Offer) -> Party | None:
    if viewer.user_id == offer.author_id:
        return Party.MAKER
    if viewer.user_id == offer.decider_id:
        return Party.RECIPIENT
    return None


async def move_offer(
    unit: UnitOfWork, services: Services, viewer: Viewer, offer: Offer, move: str, **fields: Any
) -> Offer:
    """A move of the offer's lifecycle (documents/lifecycles.py `OFFER`) by the viewer."""
    ends = OFFER[move].target is not OfferStatus.ACCEPTED
    return await transition(
        unit,
        services,
        OFFER,
        move,
        offer,
        offer_party(viewer, offer),
        OFFER_SUBJECT,
        fields={"decided_at": utcnow(), **fields},
        more=ENDED if ends else None,
        history=None,
    )


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
