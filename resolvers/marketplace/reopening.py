"""A deal that ends before its work begins: the tasker steps back, or the payer does not
pay in time (resolvers/marketplace/lapses.py).

The task is open for offers again, in a new round of deals (documents/payments/escrow.py
`task_deal`): the accepted offer is released, the deal's escrow ended (an unpaid payment
intent cancelled, anything paid refunded in full) and both sides told. A booking that
lapses is cancelled, its slot free again.
"""

from __future__ import annotations

from bson import ObjectId

from documents.clock import utcnow
from documents.events import EventKind
from documents.lifecycles import BOOKING, OFFER, TASK, Party
from documents.marketplace.bookings import Booking, BookingStatus, Cancellation, CancelledBy
from documents.marketplace.offers import ENDED, Offer
from documents.marketplace.tasks import Task
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.deals import count_cancellation
from resolvers.common.services import Services
from resolvers.common.transitions import BOOKING_SUBJECT, OFFER_SUBJECT, TASK_SUBJECT, transition
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.common.validation import MAX_REASON_LENGTH, Checked
from resolvers.marketplace import bookings
from resolvers.marketplace.tasks import get_task, party_of
from resolvers.payments.escrow import hooks as escrow_hooks
from resolvers.payments.escrow.progress import advance_deals
from resolvers.payments.escrow.refunds import cancel_deal


async def step_back(services: Services, viewer: Viewer, task_id: ObjectId, reason: str) -> Task:
    """The assigned tasker leaves the task before work begins: anything paid goes back to
    the poster, the task is open for offers again, and it counts on the tasker's profile."""
    checked = Checked()
    reason = checked.required_text(
        reason, "reason", min_length=3, max_length=MAX_REASON_LENGTH, multiline=True
    )
    checked.raise_if_any()

    async def work(unit: UnitOfWork) -> tuple[Task, list[str]]:
        task = await get_task(task_id, unit)
        ended = escrow_hooks.task_deals(task)
        reopened = await reopen_task(
            unit, services, task, "step_back", party_of(viewer, task), viewer.user_id, reason
        )
        await count_cancellation(viewer.user_id, unit.session)
        return reopened, ended

    reopened, ended = await transact(services, work)
    await advance_deals(services, ended)  # the intent cancelled, or the refund made
    return reopened


async def reopen_task(
    unit: UnitOfWork,
    services: Services,
    task: Task,
    move: str,
    party: Party | None,
    actor_id: ObjectId | None,
    reason: str,
) -> Task:
    """Within the caller's transaction: `move` (step_back, lapse) of the assigned `task`
    (as read in it), with its accepted offer released and its deals ended."""
    assert task.accepted_offer_id is not None
    ended = escrow_hooks.task_deals(task)
    reopened = await transition(
        unit,
        services,
        TASK,
        move,
        task,
        party,
        TASK_SUBJECT,
        actor_id=actor_id,
        note=reason,
        fields={
            "assigned_tasker_id": None,
            "accepted_offer_id": None,
            "agreed_price": None,
            "milestones": [],
            "deal_round": task.deal_round + 1,
        },
        more={"$inc": {"offer_count": -1}},
    )
    offer = await Offer.get(task.accepted_offer_id, session=unit.session)
    assert offer is not None  # offers are never deleted
    await transition(
        unit,
        services,
        OFFER,
        "release",
        offer,
        Party.SYSTEM if party is Party.SYSTEM else Party.TASKER,
        OFFER_SUBJECT,
        fields={"decided_at": utcnow()},
        more=ENDED,
        history=None,
    )
    for deal in ended:
        await cancel_deal(unit, deal, None, reason)
    unit.emit(
        EventKind.TASK_STATUS_CHANGED,
        actor_id=actor_id,
        audience=task.participants,
        title=f"“{task.title}” was {TASK[move].verb}: it is open for offers again",
        task_id=task.id,
        offer_id=offer.id,
        status=reopened.status.value,
        previous=task.status.value,
        note=reason,
    )
    return reopened


async def lapse_booking(
    unit: UnitOfWork, services: Services, booking: Booking, reason: str
) -> Booking:
    """Within the caller's transaction: the confirmed, unpaid `booking` cancelled (by
    nobody: its payment did not come), its slot free again."""
    cancellation = Cancellation(
        by=None,
        role=CancelledBy.SYSTEM,
        at=utcnow(),
        reason=reason,
        refund_bp=0,
        refundable=booking.price.total.zero(),
    )
    lapsed = await transition(
        unit,
        services,
        BOOKING,
        "lapse",
        booking,
        Party.SYSTEM,
        BOOKING_SUBJECT,
        note=reason,
        fields={"cancellation": cancellation.model_dump()},
    )
    assert lapsed.status is BookingStatus.CANCELLED
    return await bookings.after_move(unit, services, booking, lapsed, "lapse", None)
