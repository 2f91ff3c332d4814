"""What deleting an account does to the deals it takes part in.

A deleted account cannot finish work nor receive money, so deletion is refused, with
one DEALS_IN_PROGRESS problem per item, while the person has:

- a task assigned, in progress, handed in or disputed, as its poster or its tasker;
- a booking confirmed, in progress or disputed, as its customer or its provider;
- money due to them as a provider in an escrow (held, frozen, or being released);
- money in their wallet, or on its way to their bank;
- a partner business they own that is not closed or rejected (its wallets hold other
  people's money, and its keys and payout account answer to them).

Each ends by the ordinary rules (complete or cancel the deal, set up payouts, withdraw),
then the account can go. What has not become a deal yet is wound down on the way out,
through the same use cases the person would call, so each move is checked and the other
side notified as if they had made it: their pending offers withdrawn (a tasker's, and
a poster's direct offers), direct offers to them declined, their open tasks cancelled
(declining the offers on them), their pending booking requests cancelled (as customer)
or declined (as provider).

Winding down takes one transaction per item, so a deal can still be made meanwhile (an
offer accepted just before it was withdrawn). The erasure therefore checks again, in its
own transaction, that nothing is in progress and nothing pending is left: a deal made
meanwhile refuses the deletion (what was withdrawn stays withdrawn), and anything
pending that arrived meanwhile is wound down in another round.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.errors import DomainError, ErrorCode, Problem
from documents.marketplace.bookings import Booking, BookingStatus
from documents.marketplace.offers import Offer, OfferStatus
from documents.marketplace.tasks import Task, TaskStatus
from documents.partners.partners import Partner, PartnerStatus
from documents.payments.escrow import Escrow, EscrowStatus, booking_deal
from documents.payments.ledger_accounts import AccountKind, parse_account
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.marketplace import bookings, offers, tasks
from resolvers.payments import ledger
from resolvers.payments.escrow import hooks as escrow_hooks
from resolvers.payments.escrow.progress import advance_deal, advance_deals

log = logging.getLogger(__name__)

CLOSING_REASON = "The account was closed."
MAX_LISTED = 20
"""Items a refusal lists (a last problem says there are more); no more are read."""
MAX_ROUNDS = 3
"""Rounds of winding down before a deletion that keeps meeting new requests gives up."""

_PARTNERS_OPEN = [PartnerStatus.APPLIED, PartnerStatus.APPROVED, PartnerStatus.SUSPENDED]
_TASKS_IN_PROGRESS = [
    TaskStatus.ASSIGNED,
    TaskStatus.IN_PROGRESS,
    TaskStatus.SUBMITTED,
    TaskStatus.DISPUTED,
]
_BOOKINGS_IN_PROGRESS = [BookingStatus.CONFIRMED, BookingStatus.IN_PROGRESS, BookingStatus.DISPUTED]
_MONEY_DUE = [
    EscrowStatus.HELD,
    EscrowStatus.PARTIALLY_REFUNDED,
    EscrowStatus.DISPUTED,
    EscrowStatus.RELEASING,
]
"""An escrow in these states may still pay its provider."""


class LeftPending(Exception):
    """Something pending arrived while the account was being wound down."""


async def refuse_if_in_progress(
    user_id: ObjectId, session: AsyncClientSession | None = None
) -> None:
    """DEALS_IN_PROGRESS, one problem per deal or sum of money, if the account has any."""
    problems = await _in_progress(user_id, session)
    if len(problems) > MAX_LISTED:
        problems = [*problems[:MAX_LISTED], _problem("And more besides.")]
    if problems:
        raise DomainError.of(problems)


async def wind_down(services: Services, viewer: Viewer) -> None:
    """Withdraw, decline or cancel whatever of the viewer's has not become a deal, as
    they would themselves; an item that moved meanwhile is left to the final check."""
    user_id = viewer.user_id
    for offer in await Offer.find(_offers_made_by(user_id)).to_list():
        assert offer.id is not None
        await _unless_moved(offers.withdraw_offer(services, viewer, offer.id))
    for offer in await Offer.find(_direct_offers_to(user_id)).to_list():
        assert offer.id is not None
        await _unless_moved(offers.reject_offer(services, viewer, offer.id, CLOSING_REASON))
    for task in await Task.find(_open_tasks_of(user_id)).to_list():
        assert task.id is not None
        await _unless_moved(_cancel_open_task(services, viewer, task.id))
    for booking in await Booking.find(_pending_bookings_of(user_id)).to_list():
        assert booking.id is not None
        await _unless_moved(_end_booking_request(services, viewer, booking.id))


async def refuse_if_pending(user_id: ObjectId, session: AsyncClientSession) -> None:
    """LeftPending if anything `wind_down` ends is there (again)."""
    for model, query in (
        (Offer, _offers_made_by(user_id)),
        (Offer, _direct_offers_to(user_id)),
        (Task, _open_tasks_of(user_id)),
        (Booking, _pending_bookings_of(user_id)),
    ):
        if await model.get_pymongo_collection().find_one(query, {"_id": 1}, session=session):
            raise LeftPending


async def _cancel_open_task(services: Services, viewer: Viewer, task_id: ObjectId) -> None:
    """The poster's cancelling, if the task is still open: one assigned meanwhile is a
    deal, which the final check refuses the deletion for, not one to cancel."""

    async def work(unit: UnitOfWork) -> Task | None:
        task = await tasks.get_task(task_id, unit)
        if task.status is not TaskStatus.OPEN:
            return None
        return await tasks.apply_move(unit, services, viewer, task, "cancel", note=CLOSING_REASON)

    cancelled = await transact(services, work)
    if cancelled is not None:
        await advance_deals(services, escrow_hooks.task_deals(cancelled))


async def _end_booking_request(services: Services, viewer: Viewer, booking_id: ObjectId) -> None:
    """The customer's cancelling, or the provider's declining, of a booking still
    pending: one confirmed meanwhile is a deal, as for tasks."""

    async def work(unit: UnitOfWork) -> bool:
        booking = await bookings.get_booking(booking_id, viewer, unit)
        if booking.status is not BookingStatus.PENDING:
            return False
        move = "decline" if booking.provider_id == viewer.user_id else "cancel"
        await bookings.apply_move(unit, services, viewer, booking_id, move, CLOSING_REASON)
        return True

    if await transact(services, work):
        await advance_deal(services, booking_deal(booking_id))


async def _unless_moved(step: Awaitable[Any]) -> None:
    try:
        await step
    except DomainError as error:
        # Accepted, declined or cancelled by the other side meanwhile: the final check
        # decides whether the account can go.
        log.info("closing an account: %s", error)


def _offers_made_by(user_id: ObjectId) -> dict[str, Any]:
    return {
        "status": OfferStatus.PENDING.value,
        "$or": [
            {"tasker_id": user_id, "direct": False},
            {"poster_id": user_id, "direct": True},
        ],
    }


def _direct_offers_to(user_id: ObjectId) -> dict[str, Any]:
    return {"status": OfferStatus.PENDING.value, "tasker_id": user_id, "direct": True}


def _open_tasks_of(user_id: ObjectId) -> dict[str, Any]:
    return {"poster_id": user_id, "status": TaskStatus.OPEN.value}


def _pending_bookings_of(user_id: ObjectId) -> dict[str, Any]:
    return {
        "status": BookingStatus.PENDING.value,
        "$or": [{"customer_id": user_id}, {"provider_id": user_id}],
    }


async def _in_progress(user_id: ObjectId, session: AsyncClientSession | None) -> list[Problem]:
    problems: list[Problem] = []
    listed_deals: set[ObjectId] = set()
    found_tasks = Task.find(
        {
            "$or": [{"poster_id": user_id}, {"assigned_tasker_id": user_id}],
            "status": {"$in": [s.value for s in _TASKS_IN_PROGRESS]},
        },
        session=session,
        limit=MAX_LISTED + 1,
    )
    async for task in found_tasks:
        assert task.id is not None
        listed_deals.add(task.id)
        status = task.status.value.replace("_", " ")
        problems.append(
            _problem(f"The task “{task.title}” is {status}: finish or cancel it first.")
        )
    found_bookings = Booking.find(
        {
            "$or": [{"customer_id": user_id}, {"provider_id": user_id}],
            "status": {"$in": [s.value for s in _BOOKINGS_IN_PROGRESS]},
        },
        session=session,
        limit=MAX_LISTED + 1,
    )
    async for booking in found_bookings:
        assert booking.id is not None
        listed_deals.add(booking.id)
        status = booking.status.value.replace("_", " ")
        problems.append(
            _problem(
                f"The booking of “{booking.package.name}” at {booking.start_at:%d %b %Y %H:%M} "
                f"UTC is {status}: finish or cancel it first."
            )
        )
    found_escrows = Escrow.find(
        {
            "provider_id": user_id,
            "status": {"$in": [s.value for s in _MONEY_DUE]},
            # Those of the deals listed above are not listed again.
            "task_id": {"$nin": list(listed_deals)},
            "booking_id": {"$nin": list(listed_deals)},
        },
        session=session,
        limit=MAX_LISTED + 1,
    )
    async for escrow in found_escrows:
        status = escrow.status.value.replace("_", " ")
        problems.append(
            _problem(
                f"A payment of {escrow.fees.price} for your work is {status}: it must reach "
                "your payout account first."
            )
        )
    for held in await ledger.balances_of(user_id, session):
        kind = parse_account(held.account).kind
        if not held.money.amount:
            continue
        if kind is AccountKind.WALLET:
            problems.append(_problem(f"Your wallet holds {held.money}: withdraw it first."))
        elif kind is AccountKind.PAYOUT_IN_FLIGHT:
            problems.append(
                _problem(f"{held.money} is on its way to your bank: wait until it arrives.")
            )
    partner = await Partner.find_one(
        {"owner_id": user_id, "status": {"$in": [s.value for s in _PARTNERS_OPEN]}},
        session=session,
    )
    if partner is not None:
        problems.append(
            _problem(
                f"You own the partner “{partner.name}”: an admin must close it first "
                "(its wallets empty)."
            )
        )
    return problems


def _problem(message: str) -> Problem:
    return Problem(ErrorCode.DEALS_IN_PROGRESS, message, None)
