"""What a move needs besides its source state (documents/lifecycles.py `Guard`), checked
inside the transaction that makes it (resolvers/common/transitions.py)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from beanie import Document

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.lifecycles import Guard, Lifecycle, Move
from documents.marketplace.bookings import Booking
from documents.marketplace.tasks import MilestoneStatus, Task
from documents.payments.escrow import (
    HOLDING_STATUSES,
    Escrow,
    EscrowStatus,
    booking_deal,
    milestone_deal,
    task_deal,
)
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork

Check = Callable[[UnitOfWork, Services, Document, str | None], Awaitable[None]]


async def check_guards(
    unit: UnitOfWork,
    services: Services,
    lifecycle: Lifecycle[Any],
    move: Move[Any],
    document: Document,
    deal: str | None = None,
) -> None:
    """Raise the error of the first guard of `move` that `document` does not meet; `deal`
    names the deal whose money counts where it is not the one in work (a milestone's)."""
    for guard in move.guards:
        await _CHECKS[guard](unit, services, document, deal)


def deal_in_work(document: Document) -> str:
    """The deal whose money the work now in hand is paid with: a booking's, a task's, or
    for a task in milestones the first milestone not approved yet."""
    if isinstance(document, Booking):
        assert document.id is not None
        return booking_deal(document.id)
    if isinstance(document, Task):
        assert document.id is not None
        for milestone in document.milestones:
            if milestone.status is not MilestoneStatus.APPROVED:
                return milestone_deal(document.id, milestone.number, document.deal_round)
        if document.milestones:  # all approved: the last one completes the task
            last = document.milestones[-1].number
            return milestone_deal(document.id, last, document.deal_round)
        return task_deal(document.id, document.deal_round)
    raise TypeError(f"{type(document).__name__} is no deal")


FUNDED = frozenset({*HOLDING_STATUSES, EscrowStatus.RELEASING, EscrowStatus.RELEASED})
"""The payment was received and is not given back: held (or authorised, where capture is
manual), or on its way to the provider."""


async def _paid(unit: UnitOfWork, services: Services, document: Document, deal: str | None) -> None:
    escrow = await Escrow.find_one({"deal": deal or deal_in_work(document)}, session=unit.session)
    if escrow is None or escrow.status not in FUNDED:
        raise DomainError(
            ErrorCode.PAYMENT_REQUIRED,
            "The payment for this work has not been received: the payer pays first "
            "(escrow { clientSecret }), then the work goes on.",
            _field(document),
        )


async def _in_start_window(
    unit: UnitOfWork, services: Services, document: Document, deal: str | None
) -> None:
    assert isinstance(document, Booking)
    opens = document.start_at - services.terms.booking_start_window
    if utcnow() < opens:
        raise DomainError(
            ErrorCode.TOO_EARLY,
            f"The booking starts at {_clock(document.start_at)}; it can be started from "
            f"{_clock(opens)}.",
            "bookingId",
        )


async def _nothing_handed_in(
    unit: UnitOfWork, services: Services, document: Document, deal: str | None
) -> None:
    assert isinstance(document, Task)
    handed_in = [
        m.number
        for m in document.milestones
        if m.status is not MilestoneStatus.APPROVED and m.submitted_at is not None
    ]
    if handed_in:
        raise DomainError(
            ErrorCode.INVALID_STATE,
            f"Milestone {handed_in[0]} was handed in: cancelling would take back work done. "
            "Approve it, or open a dispute for an admin to decide.",
            "taskId",
        )


_CHECKS: dict[Guard, Check] = {
    Guard.PAID: _paid,
    Guard.START_WINDOW: _in_start_window,
    Guard.NOTHING_HANDED_IN: _nothing_handed_in,
}


def _field(document: Document) -> str:
    return "bookingId" if isinstance(document, Booking) else "taskId"


def _clock(moment: Any) -> str:
    return str(moment.strftime("%Y-%m-%d %H:%M UTC"))
