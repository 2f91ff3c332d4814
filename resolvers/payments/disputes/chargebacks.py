"""Chargebacks: the payer's bank takes a payment back through the card network.

    charge.dispute.created  the disputed amount leaves the platform's funds: DISPUTE_OPENED
                            moves it from the escrow's chargeback account back to the
                            payer's funding, and an escrow still holding money is frozen.
    charge.dispute.closed   won: DISPUTE_WON brings it back, and an escrow frozen by this
                            chargeback alone holds again (not automatically released:
                            completing the deal releases it); lost: DISPUTE_LOST recognises the
                            loss against platform revenue, and the escrow stays frozen for
                            an admin to decide whether the provider is still paid.

Postings are keyed by the gateway's dispute id (`escrow:<id>:chargeback:<dp>`, then
`:won` or `:lost`), so a redelivered event posts nothing again, and a closing that
arrives before its opening waits (NotReady) until the opening is recorded. A dispute
must be of the escrow's intent and charge as we recorded them, in its currency, for at
most what it charged, and on the platform's account: else it is rejected (EventMismatch).
"""

from __future__ import annotations

import logging

from documents.events import EventKind
from documents.money import Money
from documents.payments import ledger_accounts
from documents.payments.escrow import (
    HOLDING_STATUSES,
    PAID_STATUSES,
    Escrow,
    EscrowStatus,
    frozen_by_chargeback,
)
from documents.payments.ledger import LedgerTransaction, MovementKind, Ref, transfer
from integrations.payments.gateway import GatewayEvent
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.payments import ledger
from resolvers.payments.disputes import money as dispute_money
from resolvers.payments.escrow.escrows import change_escrow, notify, reload
from resolvers.payments.escrow.release import NOT_REFUNDING
from resolvers.payments.webhooks.checks import Comparison, NotReady, upper, whole_number

log = logging.getLogger(__name__)

WON = ("won", "warning_closed")
"""Closed in the platform's favour (an inquiry that closed never became a chargeback)."""
LOST = "lost"


async def _escrow_of(event: GatewayEvent) -> Escrow:
    """The escrow whose payment is disputed: by the intent, else by the charge; checked
    against the event."""
    chargeback = event.data_object
    escrow = None
    if chargeback.get("payment_intent"):
        escrow = await Escrow.find_one({"payment_intent_id": chargeback["payment_intent"]})
    if escrow is None and chargeback.get("charge"):
        escrow = await Escrow.find_one({"charge_id": chargeback["charge"]})
    if escrow is not None:
        _check_chargeback(event, escrow)
    if escrow is None or escrow.status not in PAID_STATUSES:
        raise NotReady(f"the payment disputed by {chargeback.get('id')} is not recorded yet")
    return escrow


def _check_chargeback(event: GatewayEvent, escrow: Escrow) -> None:
    chargeback = event.data_object
    comparison = Comparison(event)
    comparison.on_platform()
    if chargeback.get("payment_intent") is not None:  # older API versions leave it out
        comparison.same_id("payment_intent", escrow.payment_intent_id, chargeback["payment_intent"])
    comparison.same_id("charge", escrow.charge_id, chargeback.get("charge"))
    charged = escrow.fees.charged
    comparison.same("currency", charged.currency, upper(chargeback.get("currency")))
    comparison.at_most("amount", charged.amount, whole_number(chargeback, "amount"), least=1)
    comparison.settle()


def _opening_key(escrow: Escrow, chargeback_id: str) -> str:
    return f"{escrow.gateway_group}:chargeback:{chargeback_id}"


async def chargeback_created(services: Services, event: GatewayEvent) -> None:
    chargeback = event.data_object
    escrow = await _escrow_of(event)
    amount = Money(amount=int(chargeback["amount"]), currency=escrow.fees.charged.currency)
    key = _opening_key(escrow, chargeback["id"])

    async def work(unit: UnitOfWork) -> None:
        if await LedgerTransaction.find_one({"idempotency_key": key}, session=unit.session):
            return  # recorded already
        current = await reload(unit, escrow)
        assert current.id is not None
        await ledger.post(
            unit.session,
            key=key,
            kind=MovementKind.DISPUTE_OPENED,
            entries=transfer(
                ledger_accounts.chargeback(current.id),
                ledger_accounts.funding(current.payer_id),
                amount,
            ),
            refs={Ref.ESCROW: current.id, Ref.GATEWAY: chargeback["id"]},
            memo=f"chargeback opened: {chargeback.get('reason') or 'no reason given'}",
        )
        # A release already being transferred, or a refund under way, finishes as it is.
        frozen = await change_escrow(
            unit.session,
            {
                "_id": current.id,
                "status": {"$in": [s.value for s in HOLDING_STATUSES]},
                **NOT_REFUNDING,
            },
            EscrowStatus.DISPUTED,
            note=f"chargeback {chargeback['id']}",
            event_id=event.id,
            fields={"auto_release_at": None, "frozen_by": frozen_by_chargeback(chargeback["id"])},
        )
        notify(
            unit,
            frozen or current,
            EventKind.CHARGEBACK_OPENED,
            f"The payer's bank disputes the payment: {amount} was taken back",
            amount=amount.model_dump(),
            gateway_dispute_id=chargeback["id"],
        )

    await transact(services, work)


async def chargeback_closed(services: Services, event: GatewayEvent) -> None:
    chargeback = event.data_object
    status = chargeback.get("status")
    if status != LOST and status not in WON:
        log.warning("chargeback %s closed as %r; nothing to record", chargeback.get("id"), status)
        return
    escrow = await _escrow_of(event)
    opening = _opening_key(escrow, chargeback["id"])
    won = status in WON
    key = f"{opening}:{'won' if won else 'lost'}"
    escrow_id = escrow.id
    assert escrow_id is not None

    async def work(unit: UnitOfWork) -> None:
        opened = await LedgerTransaction.find_one(
            {"idempotency_key": opening}, session=unit.session
        )
        if opened is None:
            raise NotReady(f"chargeback {chargeback['id']} is not recorded as opened yet")
        if await LedgerTransaction.find_one({"idempotency_key": key}, session=unit.session):
            return
        # What the opening took, whatever this event says: the account returns to zero.
        [taken] = [e for e in opened.entries if e.amount > 0]
        amount = Money(amount=taken.amount, currency=taken.currency)
        held_back = ledger_accounts.chargeback(escrow_id)
        source = (
            ledger_accounts.funding(escrow.payer_id) if won else ledger_accounts.platform_revenue()
        )
        await ledger.post(
            unit.session,
            key=key,
            kind=MovementKind.DISPUTE_WON if won else MovementKind.DISPUTE_LOST,
            entries=transfer(source, held_back, amount),
            refs={Ref.ESCROW: escrow_id, Ref.GATEWAY: chargeback["id"]},
            memo="chargeback won: the money came back" if won else "chargeback lost",
        )
        current = await reload(unit, escrow)
        if won:
            current = await _thaw(unit, current, chargeback["id"])
        notify(
            unit,
            current,
            EventKind.CHARGEBACK_CLOSED,
            f"The bank's dispute of the payment was {'won' if won else 'lost'}",
            amount=amount.model_dump(),
            gateway_dispute_id=chargeback["id"],
            won=won,
        )

    await transact(services, work)


async def _thaw(unit: UnitOfWork, escrow: Escrow, chargeback_id: str) -> Escrow:
    """Hold the escrow again if nothing but this chargeback froze it."""
    frozen_by_it = escrow.frozen_by == frozen_by_chargeback(chargeback_id)
    if escrow.status is not EscrowStatus.DISPUTED or not frozen_by_it:
        return escrow
    if await dispute_money.open_dispute_of(unit, escrow) is not None:
        return escrow
    return await dispute_money.unfreeze(unit, escrow, f"chargeback {chargeback_id} won")
