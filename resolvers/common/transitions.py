"""The one way a deal's status changes.

`transition` makes a move of a lifecycle (documents/lifecycles.py) inside the caller's
transaction: it checks that the party may make it, that the document is in one of its
source states and that its guards hold (resolvers/common/deal_guards.py), then writes the new
status, the caller's other fields and a history entry in one conditional update that
applies only while the status is still the one it read. A race lost to another move is
INVALID_STATE, as a wrong state is. In the same transaction, the messages the new status
schedules beyond the app (a booking's reminders, review requests) are scheduled, and the
ones it makes pointless cancelled (resolvers/notifications/follow_ups.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from beanie import Document
from bson import ObjectId
from pymongo import ReturnDocument

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.lifecycles import Lifecycle, Move, Party
from resolvers.common.deal_guards import check_guards
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork
from resolvers.notifications import follow_ups

D = TypeVar("D", bound=Document)
S = TypeVar("S", bound=StrEnum)

_WHO = {
    Party.POSTER: "the poster",
    Party.TASKER: "the assigned tasker",
    Party.CUSTOMER: "the customer",
    Party.PROVIDER: "the provider",
    Party.MAKER: "whoever made it",
    Party.RECIPIENT: "whoever it was made to",
    Party.ADMIN: "an admin",
    Party.PARTNER: "the partner",
    Party.SYSTEM: "gigql itself",
}


@dataclass(frozen=True, slots=True)
class Subject:
    """How a document is named in messages and errors: "task", field "taskId"."""

    noun: str
    field: str


TASK_SUBJECT = Subject("task", "taskId")
OFFER_SUBJECT = Subject("offer", "offerId")
BOOKING_SUBJECT = Subject("booking", "bookingId")
MILESTONE_SUBJECT = Subject("milestone", "number")
DISPUTE_SUBJECT = Subject("dispute", "disputeId")


async def transition(
    unit: UnitOfWork,
    services: Services,
    lifecycle: Lifecycle[S],
    move_name: str,
    document: D,
    party: Party | None,
    subject: Subject,
    *,
    actor_id: ObjectId | None = None,
    note: str | None = None,
    fields: Mapping[str, Any] | None = None,
    more: Mapping[str, Any] | None = None,
    history: str | None = "history",
) -> D:
    """`document` (as read in this transaction) after `move_name` made by `party` (None:
    the caller is no party of it), with `fields` set alongside and `more` update
    operators (`$unset`, `$inc`) applied; `history` names the list the change is recorded
    in (None: not recorded)."""
    move = lifecycle[move_name]
    if party not in move.by:
        raise forbidden(move, subject)
    current = status_of(document, lifecycle)
    if current not in move.sources:
        raise wrong_state(move, subject, current)
    await check_guards(unit, services, lifecycle, move, document)
    now = utcnow()
    update: dict[str, Any] = {
        **(more or {}),
        "$set": {"status": move.target.value, "updated_at": now, **(fields or {})},
    }
    if history is not None:
        entry = {"status": move.target.value, "at": now, "by": actor_id, "note": note}
        update["$push"] = {history: {**entry, "move": move.name}}
    raw = (
        await type(document)
        .get_pymongo_collection()
        .find_one_and_update(
            {"_id": document.id, "status": current.value},
            update,
            return_document=ReturnDocument.AFTER,
            session=unit.session,
        )
    )
    if raw is None:
        fresh = await type(document).get(document.id, session=unit.session)
        raise wrong_state(move, subject, status_of(fresh or document, lifecycle))
    moved: D = type(document).model_validate(raw)
    # Reminders and review requests the new status schedules, or cancels, in this transaction.
    await follow_ups.deal_moved(unit.session, services.settings, moved, current, now)
    return moved


def status_of(document: Document, lifecycle: Lifecycle[S]) -> S:
    status = getattr(document, "status")  # noqa: B009 # every deal document has one
    return lifecycle.states(status)


def wrong_state(move: Move[Any], subject: Subject, current: StrEnum) -> DomainError:
    expected = " or ".join(sorted(_spoken(s) for s in move.sources))
    return DomainError(
        ErrorCode.INVALID_STATE,
        f"The {subject.noun} is {_spoken(current)}; it can be {move.verb} only when {expected}.",
        subject.field,
    )


def forbidden(move: Move[Any], subject: Subject) -> DomainError:
    who = " or ".join(_WHO[p] for p in sorted(move.by) if p is not Party.SYSTEM) or "gigql"
    return DomainError(
        ErrorCode.FORBIDDEN, f"Only {who} can do this to the {subject.noun}.", subject.field
    )


def _spoken(state: StrEnum) -> str:
    return state.value.replace("_", " ")
