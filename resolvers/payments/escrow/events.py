"""The gateway's webhooks about escrows: payments, refunds and transfers.

Each handler finds its escrow by the `escrow_id` in the object's metadata (events can
arrive before we recorded the intent's id), else by the intent's id, and raises
NotReady when there is none yet or when what it follows has not been recorded (a
refund before the payment). Before that, it compares the event with the escrow
(resolvers/payments/escrow/event_checks.py): one that differs is rejected and changes nothing.
Each records its event at most once: a status change carries the event's id, and a
repeated event finds it in the escrow's history. Ledger postings use the same keys as
our own paths, so each movement is posted once.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.client_session import AsyncClientSession

from documents.events import EventKind
from documents.money import Money
from documents.payments.escrow import (
    FROZEN_BY_REVERSAL,
    HOLDING_STATUSES,
    PAID_STATUSES,
    Escrow,
    EscrowStatus,
)
from documents.payments.webhooks import EventDifference
from integrations.payments.gateway import GatewayEvent, PaymentIntent, Refund, Transfer
from resolvers.common.deals import deal_disputed
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.payments.escrow.escrows import change_escrow, escrow_by_id, notify, reload
from resolvers.payments.escrow.event_checks import (
    check_charge,
    check_intent,
    check_refund,
    check_transfer,
)
from resolvers.payments.escrow.postings import post_payment, post_reversal
from resolvers.payments.escrow.progress import after_commit, awaits_next_step
from resolvers.payments.escrow.refunds import claim_refund, record_external_refund, record_refund
from resolvers.payments.escrow.release import freeze, record_release
from resolvers.payments.webhooks.checks import EventMismatch, NotReady


async def _escrow_for(
    obj: dict[str, Any], intent_id: str | None, session: AsyncClientSession | None = None
) -> Escrow:
    escrow_id = (obj.get("metadata") or {}).get("escrow_id")
    escrow = await escrow_by_id(escrow_id, session) if escrow_id else None
    if escrow is None and intent_id:
        escrow = await Escrow.find_one({"payment_intent_id": intent_id}, session=session)
    if escrow is None:
        raise NotReady(f"no escrow for {obj.get('object')} {obj.get('id')} yet")
    return escrow


async def payment_held(services: Services, event: GatewayEvent) -> None:
    """payment_intent.succeeded, and amount_capturable_updated for an authorisation:
    the money is held. A payment for a deal cancelled meanwhile is refunded in full."""
    intent = PaymentIntent.from_stripe(event.data_object)
    captured = intent.status == "succeeded"

    async def work(unit: UnitOfWork) -> Escrow:
        # Found in the transaction, so it is read once and as the change sees it.
        current = await _escrow_for(event.data_object, intent.id, unit.session)
        await check_intent(event, current, intent, paid=True, session=unit.session)
        ids = {"payment_intent_id": intent.id, "charge_id": intent.latest_charge_id}
        if current.status in PAID_STATUSES:
            # Seen already (or the authorisation was held and is captured now).
            await Escrow.get_pymongo_collection().update_one(
                {"_id": current.id},
                {"$set": {**ids, "captured": current.captured or captured}},
                session=unit.session,
            )
            return current
        held = await change_escrow(
            unit.session,
            _payable(current, intent),
            EscrowStatus.HELD,
            note=(
                "payment received after the deal was cancelled"
                if current.status is EscrowStatus.FAILED
                else "payment received"
            ),
            event_id=event.id,
            fields={
                **ids,
                "captured": captured,
                "held_at": event.created,
                "payment_failure_code": None,
                "requires_action": False,
            },
            # Read above in this transaction: the change is made from it, not read back.
            read=current,
        )
        if held is None:
            # Read in this transaction and not yet paid: only an escrow failed without
            # its deal cancelled is left (the intent was cancelled at the gateway, as its
            # own event said), and no payment can follow that. Rejected for an admin
            # rather than believed.
            raise EventMismatch(
                [
                    EventDifference(
                        field="status", recorded=current.status.value, received=intent.status
                    )
                ]
            )
        await post_payment(unit.session, held)
        notify(unit, held, EventKind.PAYMENT_SUCCEEDED, f"{held.fees.charged} paid into escrow")
        if held.deal_cancelled:
            await claim_refund(unit, held, held.fees.charged, "the deal was cancelled")
        elif await deal_disputed(held.task_id, held.booking_id, unit.session):
            # A milestone paid ahead while its task is disputed: frozen like the others
            # until the decision.
            await freeze(unit, held.deal, "paid while the deal is disputed")
        return held

    held = await transact(services, work)
    if awaits_next_step(held):
        await after_commit(services, held.id)


def _payable(escrow: Escrow, intent: PaymentIntent) -> dict[str, Any]:
    """The condition under which a payment makes `escrow` held: still in the status it
    was read in, and, for one that failed because its deal was cancelled unpaid (the
    payer paid in the moment before its intent was cancelled, or the cancellation came
    too late), only with that deal cancelled and for its own intent (`check_intent`
    compared the event's with it already): held, then refunded in full."""
    query: dict[str, Any] = {"_id": escrow.id, "status": escrow.status.value}
    if escrow.status is EscrowStatus.FAILED:
        query["deal_cancelled"] = True
        query["payment_intent_id"] = {"$in": [None, intent.id]}
    return query


async def payment_failed(services: Services, event: GatewayEvent) -> None:
    """The payer's attempt failed; the intent takes another card, so the escrow stays
    payable with the reason shown."""
    intent = PaymentIntent.from_stripe(event.data_object)
    escrow = await _escrow_for(event.data_object, intent.id)
    code = intent.failure_code or "payment_failed"
    await _record(
        services,
        escrow,
        event,
        EventKind.PAYMENT_FAILED,
        "The payment failed; try another card",
        fields={"payment_failure_code": code, "requires_action": False},
        audience=[escrow.payer_id, escrow.provider_id],
    )


async def payment_requires_action(services: Services, event: GatewayEvent) -> None:
    intent = PaymentIntent.from_stripe(event.data_object)
    escrow = await _escrow_for(event.data_object, intent.id)
    await _record(
        services,
        escrow,
        event,
        EventKind.PAYMENT_ACTION_REQUIRED,
        "Your bank asks you to confirm the payment",
        fields={"requires_action": True},
        audience=[escrow.payer_id],
    )


async def payment_canceled(services: Services, event: GatewayEvent) -> None:
    intent = PaymentIntent.from_stripe(event.data_object)
    escrow = await _escrow_for(event.data_object, intent.id)
    await _record(
        services,
        escrow,
        event,
        EventKind.PAYMENT_CANCELLED,
        "The payment was cancelled",
        fields={"requires_action": False},
        audience=[escrow.payer_id, escrow.provider_id],
        to=EscrowStatus.FAILED,
    )


async def _record(
    services: Services,
    escrow: Escrow,
    event: GatewayEvent,
    kind: EventKind,
    title: str,
    *,
    fields: dict[str, Any],
    audience: list[Any],
    to: EscrowStatus = EscrowStatus.AWAITING_PAYMENT,
) -> None:
    """A change to an escrow still awaiting payment (a late event for a paid one is
    stale and changes nothing). An intent id not recorded yet is adopted."""
    intent = PaymentIntent.from_stripe(event.data_object)
    await check_intent(event, escrow, intent)

    async def work(unit: UnitOfWork) -> None:
        changed = await change_escrow(
            unit.session,
            {
                "_id": escrow.id,
                "status": EscrowStatus.AWAITING_PAYMENT.value,
                "payment_intent_id": {"$in": [None, intent.id]},
            },
            to,
            note=event.type,
            event_id=event.id,
            fields={**fields, "payment_intent_id": intent.id},
        )
        if changed is not None:
            notify(unit, changed, kind, title, audience=audience)

    await transact(services, work)


async def charge_refunded(services: Services, event: GatewayEvent) -> None:
    """`amount_refunded` is the charge's total: whatever of it we have not recorded is
    our pending refund completing, or one made at the gateway directly."""
    charge = event.data_object
    escrow = await _escrow_for(charge, charge.get("payment_intent"))
    check_charge(event, escrow, charge)
    total = Money(amount=int(charge["amount_refunded"]), currency=escrow.fees.price.currency)
    if escrow.status not in PAID_STATUSES:
        raise NotReady(f"escrow {escrow.id} is {escrow.status.value}: its payment comes first")
    pending = escrow.pending_refund
    if pending is not None and total.amount >= (escrow.refunded + pending.amount).amount:
        escrow = await record_refund(services, escrow, pending.number, None, event.id)
    unrecorded = total - escrow.refunded
    if unrecorded.amount <= 0:
        return
    if escrow.pending_refund is not None:
        raise NotReady(f"escrow {escrow.id} has a refund in progress")
    if escrow.status not in (*HOLDING_STATUSES, EscrowStatus.DISPUTED):
        raise RuntimeError(f"escrow {escrow.id} is {escrow.status.value}; refund by hand")

    async def work(unit: UnitOfWork) -> None:
        current = await reload(unit, escrow)
        missing = total - current.refunded
        if missing.amount > 0:
            await record_external_refund(unit, current, missing, event.id)

    await transact(services, work)


async def refund_created(services: Services, event: GatewayEvent) -> None:
    """Our refund at the gateway (its metadata numbers it): recorded with its id if its
    recording was lost. One made at the gateway directly is left to `charge.refunded`."""
    refund = Refund.from_stripe(event.data_object)
    number = refund.metadata.get("refund_number")
    if number is None or refund.status not in ("pending", "succeeded"):
        return
    escrow = await _escrow_for(event.data_object, refund.payment_intent_id)
    ours = check_refund(event, escrow, refund, _number(number))
    await record_refund(services, escrow, ours.number, refund.id, event.id)


def _number(text: str) -> int | None:
    """A number of ours in a gateway object's metadata; None if it is not one."""
    return int(text) if text.isascii() and text.isdigit() else None


def _release_round(transfer: Transfer) -> int | None:
    return _number(transfer.metadata.get("release_round", "1"))


async def transfer_created(services: Services, event: GatewayEvent) -> None:
    """Our release's transfer: if its recording was lost, it is recorded now."""
    transfer = Transfer.from_stripe(event.data_object)
    escrow = await _escrow_for(event.data_object, None)
    round = _release_round(transfer)
    await check_transfer(event, escrow, transfer, round)
    assert round is not None  # else a mismatch
    if escrow.status is EscrowStatus.RELEASING and escrow.release and escrow.release.round == round:
        await record_release(services, escrow, round, transfer.id, event.id)
    elif escrow.transfer_id is None and escrow.status is EscrowStatus.RELEASED:
        await Escrow.get_pymongo_collection().update_one(
            {"_id": escrow.id, "transfer_id": None}, {"$set": {"transfer_id": transfer.id}}
        )


async def transfer_reversed(services: Services, event: GatewayEvent) -> None:
    """Money taken back from the provider's account: back from their wallet into the
    escrow, which is frozen (disputed) for an admin to release again or refund."""
    transfer = Transfer.from_stripe(event.data_object)
    escrow = await _escrow_for(event.data_object, None)
    round = _release_round(transfer)
    await check_transfer(event, escrow, transfer, round)
    assert escrow.release is not None  # else a mismatch
    if round != escrow.release.round:
        # The money of an earlier release came back, and was released again since: nothing
        # says whose it is now. Rejected (an alert, listed for admins) to be settled by hand.
        late = EventDifference(
            field="release_round", recorded=str(escrow.release.round), received=str(round)
        )
        raise EventMismatch([late])
    if escrow.status is EscrowStatus.RELEASING:
        raise NotReady(f"escrow {escrow.id}'s release is not recorded yet")

    async def work(unit: UnitOfWork) -> None:
        current = await reload(unit, escrow)
        reversed_now = transfer.amount_reversed - current.transfer_reversed.amount
        if reversed_now <= 0:
            return
        amount = Money(amount=reversed_now, currency=current.fees.price.currency)
        changed = await change_escrow(
            unit.session,
            {"_id": current.id, "transfer_reversed.amount": current.transfer_reversed.amount},
            EscrowStatus.DISPUTED,
            note=f"{amount} of the transfer reversed",
            event_id=event.id,
            fields={
                "transfer_reversed": (current.transfer_reversed + amount).model_dump(),
                "frozen_by": FROZEN_BY_REVERSAL,
            },
        )
        assert changed is not None
        await post_reversal(unit.session, changed, amount, transfer.amount_reversed)
        notify(
            unit,
            changed,
            EventKind.ESCROW_TRANSFER_REVERSED,
            f"{amount} of the transfer to the provider was reversed",
            amount=amount.model_dump(),
        )

    await transact(services, work)
