"""Deals whose payment did not come in time lapse.

An accepted offer's escrow, or a confirmed booking's, carries the payer's deadline
(`Escrow.pay_by`: GIGQL_PAYMENT_DEADLINE after it opened; a booking's never past its
start less the booking notice). Every instance looks for escrows still unpaid past it;
each lapse is one transaction whose moves are conditional (resolvers/common/transitions.py),
so however many instances find the same escrow, one lapses it and the others change
nothing. The task is open for offers again, the booking cancelled; the payment intent
is cancelled once the transaction commits, and both sides are told.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial

from documents.clock import utcnow
from documents.lifecycles import Party
from documents.marketplace.bookings import Booking, BookingStatus
from documents.marketplace.tasks import Task, TaskStatus
from documents.payments.escrow import Escrow, EscrowStatus
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.marketplace.reopening import lapse_booking, reopen_task
from resolvers.payments.escrow.hooks import task_deals
from resolvers.payments.escrow.progress import advance_deals

log = logging.getLogger(__name__)

LAPSE_BATCH = 100
REASON = "The payment did not come in time."


async def lapse_unpaid_deals(services: Services, now: datetime | None = None) -> int:
    """Lapse the deals unpaid past their deadline; how many this run lapsed."""
    now = now or utcnow()
    due = (
        await Escrow.find({"status": EscrowStatus.AWAITING_PAYMENT.value, "pay_by": {"$lte": now}})
        .limit(LAPSE_BATCH)
        .to_list()
    )
    lapsed = 0
    for escrow in due:
        deal = await transact(services, partial(_lapse, services, escrow))
        if deal is not None:
            lapsed += 1
            await advance_deals(services, [deal])  # the intent cancelled
    return lapsed


async def _lapse(services: Services, escrow: Escrow, unit: UnitOfWork) -> str | None:
    """The deal `escrow` pays for, lapsed; None if something else moved it first (it was
    paid, cancelled, lapsed by another instance) or it is not its first payment."""
    current = await Escrow.get(escrow.id, session=unit.session)
    if current is None or current.status is not EscrowStatus.AWAITING_PAYMENT:
        return None
    if current.booking_id is not None:
        booking = await Booking.get(current.booking_id, session=unit.session)
        if booking is None or booking.status is not BookingStatus.CONFIRMED:
            return None
        await lapse_booking(unit, services, booking, REASON)
        return current.deal
    if current.task_id is None:
        return None
    task = await Task.get(current.task_id, session=unit.session)
    # Only the payment work waits for: a later milestone is funded when its work comes up.
    if task is None or task.status is not TaskStatus.ASSIGNED:
        return None
    if current.deal != task_deals(task)[0]:
        return None
    await reopen_task(unit, services, task, "lapse", Party.SYSTEM, None, REASON)
    log.info("task %s lapsed unpaid: open for offers again", task.id)
    return current.deal
