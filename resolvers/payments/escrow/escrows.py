"""Escrows: opened with each deal, paid through the gateway, seen by the deal's two sides.

`open_escrow` runs inside the transaction that makes the deal (accepting an offer,
confirming a booking). The payment intent is made after the commit (`ensure_intent`),
never inside a transaction: with the key `escrow:<id>:intent`, so however often it is
repeated (the payer asking for the client secret, the background sweep after a crash)
the gateway makes one intent.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.collection import AsyncCollection

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.events import EventKind
from documents.lifecycles import ESCROW, Guard, Party
from documents.money import Money
from documents.payments.escrow import Escrow, EscrowChange, EscrowStatus
from integrations.payments.errors import GatewayError
from integrations.payments.gateway import PaymentIntent
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork
from resolvers.marketplace.deal_terms import DealTerms
from resolvers.payments.fees import FeePolicy
from resolvers.payments.sandbox_card import SandboxOutcome, play_card, sandbox_gateway

log = logging.getLogger(__name__)


async def open_escrow(
    unit: UnitOfWork,
    terms: DealTerms,
    fees: FeePolicy,
    *,
    deal: str,
    payer_id: PydanticObjectId,
    provider_id: PydanticObjectId,
    price: Money,
    customer_fee: Money | None = None,
    task_id: PydanticObjectId | None = None,
    offer_id: PydanticObjectId | None = None,
    booking_id: PydanticObjectId | None = None,
    milestone: int | None = None,
    settles_by: datetime | None = None,
    pay_by: datetime | None = None,
) -> Escrow:
    """The escrow of a new deal, awaiting the payer's payment. `settles_by`: when the
    deal is expected to be released (a booking's end, plus the customer's window), if
    known: a deal that settles soon enough is authorised and captured on release. Nothing
    is released automatically before the work is handed in (resolvers/payments/escrow/hooks.py)."""
    now = utcnow()
    window = terms.manual_capture_within
    expected_release = settles_by + terms.auto_release_after if settles_by else None
    escrow = Escrow(
        deal=deal,
        task_id=task_id,
        offer_id=offer_id,
        booking_id=booking_id,
        milestone=milestone,
        payer_id=payer_id,
        provider_id=provider_id,
        fees=fees.split(price, customer_fee),
        capture_manually=bool(
            window and expected_release is not None and expected_release - now <= window
        ),
        refunded=price.zero(),
        transfer_reversed=price.zero(),
        pay_by=pay_by,
        history=[EscrowChange(status=EscrowStatus.AWAITING_PAYMENT, at=now)],
        created_at=now,
        updated_at=now,
    )
    # No event of its own: the deal's (OFFER_ACCEPTED, BOOKING_CONFIRMED) announces it.
    await escrow.insert(session=unit.session)
    return escrow


def notify(
    unit: UnitOfWork,
    escrow: Escrow,
    kind: EventKind,
    title: str,
    *,
    audience: Sequence[ObjectId] | None = None,
    actor_id: ObjectId | None = None,
    **data: Any,
) -> None:
    """An event about the escrow, on its deal's topics, for both sides unless told."""
    if escrow.milestone is not None:
        data["milestone"] = escrow.milestone
    unit.emit(
        kind,
        actor_id=actor_id,
        audience=audience if audience is not None else escrow.participants,
        title=title,
        task_id=escrow.task_id,
        offer_id=escrow.offer_id,
        booking_id=escrow.booking_id,
        escrow_id=escrow.id,
        status=escrow.status.value,
        payer_id=escrow.payer_id,
        **data,
    )


async def change_escrow(
    session: AsyncClientSession | None,
    query: dict[str, Any],
    status: EscrowStatus,
    *,
    note: str = "",
    event_id: str | None = None,
    fields: dict[str, Any] | None = None,
    more: dict[str, Any] | None = None,
    by: Party = Party.SYSTEM,
    read: Escrow | None = None,
) -> Escrow | None:
    """Set `status` (and `fields`) on the escrow matching `query`, recording the change
    in its history; None if none matches. Only an escrow in a state the lifecycle
    (documents/lifecycles.py `ESCROW`) lets `by` move to `status` from matches, so no
    caller can make a move that is not declared (a guarded one only where `query` requires
    its guard's condition: `_GUARD_CONDITIONS`). A gateway event is recorded once: an
    escrow whose history has its `event_id` does not match.

    `read`: the escrow `query["_id"]` names, as this transaction read it and has not
    written it since; the escrow as changed is then made from it, not read back."""
    now = utcnow()
    declared = [state.value for state in ESCROW.sources_into(status, by, _guards_met(query))]
    query = within_statuses(query, declared)
    if event_id is not None:
        query = {**query, "history.event_id": {"$ne": event_id}}
    change = EscrowChange(status=status, at=now, note=note, event_id=event_id)
    update: dict[str, Any] = {
        "$set": {"status": status.value, "updated_at": now, **(fields or {})},
        "$push": {"history": change.model_dump()},
        **(more or {}),
    }
    collection = Escrow.get_pymongo_collection()
    if session is not None and session.in_transaction and "_id" in query:
        raw = await _update_then_read(collection, query, update, session, read)
    else:
        raw = await collection.find_one_and_update(
            query, update, return_document=ReturnDocument.AFTER, session=session
        )
    return None if raw is None else Escrow.model_validate(raw)


_GUARD_CONDITIONS: dict[Guard, tuple[str, object]] = {
    Guard.DEAL_CANCELLED: ("deal_cancelled", True)
}
"""The condition on the escrow that each guard of an escrow's move stands for."""


def _guards_met(query: dict[str, Any]) -> frozenset[Guard]:
    """The guards `query` itself requires of the escrow it matches: a guarded move is
    made only by a write whose condition holds its guard, checked by the database in
    the same update as the status."""
    return frozenset(
        guard
        for guard, (field, value) in _GUARD_CONDITIONS.items()
        if field in query and query[field] == value and type(query[field]) is type(value)
    )


async def _update_then_read(
    collection: AsyncCollection[dict[str, Any]],
    query: dict[str, Any],
    update: dict[str, Any],
    session: AsyncClientSession,
    read: Escrow | None = None,
) -> dict[str, Any] | None:
    """What `find_one_and_update` returns (the matching escrow as changed, or None), as a
    conditional update and a read of it by id. Inside a transaction the read sees the
    update and nothing else can come between them, so it is the same post-image on any
    database. Why not one command: SecantusDB runs findAndModify's write as a scan of the
    whole collection, inside the transaction, while the other transactions wait on it
    (bench/README.md, Issue 16: payment webhooks); an update and a read by id use
    the `_id` index.

    Given the escrow as this transaction `read` it, the read is not needed either: the
    update matched the document of the transaction's snapshot (a change committed by
    anyone since would have been a write conflict), so it is `read` with the update
    applied (`_applied`, for the plain `$set` and `$push` this module writes)."""
    changed = await collection.update_one(query, update, session=session)
    if changed.matched_count == 0:
        return None
    if read is not None and read.id == query["_id"]:
        applied = _applied(read, update)
        if applied is not None:
            return applied
    return await collection.find_one({"_id": query["_id"]}, session=session)


def _applied(read: Escrow, update: dict[str, Any]) -> dict[str, Any] | None:
    """The stored escrow `read` with `update` applied, as the database applies it, for an
    update of only `$set` and `$push` on top-level fields; None for any other."""
    if set(update) - {"$set", "$push"} or any(
        "." in field for operator in update.values() for field in operator
    ):
        return None
    stored: dict[str, Any] = read.model_dump(by_alias=True)
    stored.update(update.get("$set", {}))
    for field, value in update.get("$push", {}).items():
        stored[field] = [*stored.get(field, []), value]
    return stored


def within_statuses(query: dict[str, Any], statuses: list[str]) -> dict[str, Any]:
    """`query`, matching only escrows whose status is also one of `statuses`.

    The two status conditions become one `$in` of the statuses both allow, beside the
    query's other fields, rather than an `$and` of the two: the same documents match,
    and the `_id` (or `deal`) stays a top-level equality that any planner serves from
    its index (SecantusDB scans the whole collection for a top-level `$and`, inside the
    caller's transaction). A shape it does not know is combined with `$and`."""
    wanted = query.get("status")
    if wanted is None:
        allowed = statuses
    elif isinstance(wanted, str):
        allowed = [wanted] if wanted in statuses else []
    elif isinstance(wanted, dict) and set(wanted) == {"$in"}:
        allowed = [state for state in wanted["$in"] if state in statuses]
    else:
        return {"$and": [query, {"status": {"$in": statuses}}]}
    return {**query, "status": {"$in": allowed}}


async def escrow_by_id(
    escrow_id: ObjectId | str, session: AsyncClientSession | None = None
) -> Escrow | None:
    if not ObjectId.is_valid(escrow_id):
        return None
    return await Escrow.get(PydanticObjectId(escrow_id), session=session)


async def reload(unit: UnitOfWork, escrow: Escrow) -> Escrow:
    """The escrow as the caller's transaction sees it (escrows are never deleted)."""
    current = await Escrow.get(escrow.id, session=unit.session)
    assert current is not None
    return current


async def escrow_of_deal(deal: str, session: AsyncClientSession | None = None) -> Escrow | None:
    return await Escrow.find_one({"deal": deal}, session=session)


async def escrows_of_deals(deals: Sequence[str]) -> list[Escrow | None]:
    """For a DataLoader: the escrow of each deal, in order."""
    found = {e.deal: e for e in await Escrow.find({"deal": {"$in": list(deals)}}).to_list()}
    return [found.get(deal) for deal in deals]


def can_see_escrow(viewer: Viewer, escrow: Escrow) -> bool:
    return viewer.user_id in escrow.participants or viewer.user.is_admin


async def get_escrow(escrow_id: ObjectId, viewer: Viewer) -> Escrow:
    escrow = await escrow_by_id(escrow_id)
    if escrow is None or not can_see_escrow(viewer, escrow):
        raise DomainError(ErrorCode.NOT_FOUND, "No such escrow.", "escrowId")
    return escrow


def payment_metadata(escrow: Escrow) -> dict[str, str]:
    """What links the gateway's objects back to ours (webhooks find the escrow by it)."""
    links = {"escrow_id": str(escrow.id), "deal": escrow.deal}
    if escrow.task_id:
        links["task_id"] = str(escrow.task_id)
    if escrow.milestone is not None:
        links["milestone"] = str(escrow.milestone)
    if escrow.booking_id:
        links["booking_id"] = str(escrow.booking_id)
    return links


async def ensure_intent(services: Services, escrow: Escrow) -> PaymentIntent:
    """The escrow's payment intent, made now if it has none yet (the same one on every
    repeat: the key is the escrow's)."""
    gateway = services.payments
    if escrow.payment_intent_id:
        return await gateway.retrieve_payment_intent(escrow.payment_intent_id)
    intent = await gateway.create_payment_intent(
        amount=escrow.fees.charged.amount,
        currency=escrow.fees.charged.currency,
        transfer_group=escrow.gateway_group,
        metadata=payment_metadata(escrow),
        idempotency_key=f"{escrow.gateway_group}:intent",
        capture_manually=escrow.capture_manually,
    )
    await Escrow.get_pymongo_collection().update_one(
        {"_id": escrow.id, "payment_intent_id": None},
        {"$set": {"payment_intent_id": intent.id, "updated_at": utcnow()}},
    )
    return intent


async def client_secret(services: Services, viewer: Viewer, escrow: Escrow) -> str | None:
    """For the payer while payment is due: what their app confirms the payment with.
    Fetched from the gateway each time, never stored."""
    if viewer.user_id != escrow.payer_id or escrow.status is not EscrowStatus.AWAITING_PAYMENT:
        return None
    try:
        intent = await ensure_intent(services, escrow)
    except GatewayError as error:
        raise DomainError(ErrorCode.GATEWAY_UNAVAILABLE, f"The gateway failed: {error}") from error
    return intent.client_secret


async def sandbox_pay(
    services: Services, viewer: Viewer, escrow_id: ObjectId, outcome: SandboxOutcome
) -> Escrow:
    """Development only: play the payer's card in the sandbox gateway. On an intent that
    asks for authentication, SUCCEEDED passes it and DECLINED fails it."""
    gateway = sandbox_gateway(services)
    escrow = await get_escrow(escrow_id, viewer)
    if viewer.user_id != escrow.payer_id:
        raise DomainError(ErrorCode.FORBIDDEN, "Only the payer can pay.", "escrowId")
    if escrow.status is not EscrowStatus.AWAITING_PAYMENT:
        raise DomainError(
            ErrorCode.INVALID_STATE, f"The escrow is {escrow.status.value}.", "escrowId"
        )
    await play_card(gateway, await ensure_intent(services, escrow), outcome, "escrowId")
    paid = await escrow_by_id(escrow_id)
    assert paid is not None
    return paid
