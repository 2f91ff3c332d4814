"""Which notifications a domain event makes, for whom.

Every event already leaves an in-app notification for each person it concerns but its
actor (derived after its commit: resolvers/notifications/outbox.py); this decides which
of those people also hear of it on other channels, and as which kind of the catalogue
(documents/notifications/catalogue.py). An event that concerns nobody outside the app
(a task edited, an offer updated) makes none.
"""

from __future__ import annotations

from collections.abc import Callable

from bson import ObjectId

from documents.events import DomainEvent, EventKind
from documents.notifications.catalogue import NotificationKind as K

Rule = Callable[[DomainEvent, ObjectId], K | None]


def kind_for(event: DomainEvent, person: ObjectId) -> K | None:
    """The notification `event` makes for `person` (one of its audience, not its actor)."""
    rule = _RULES.get(event.kind)
    return rule(event, person) if rule is not None else None


def _always(kind: K) -> Rule:
    return lambda event, person: kind


def _offer_received(event: DomainEvent, person: ObjectId) -> K:
    return K.DIRECT_OFFER_RECEIVED if event.data.get("direct") else K.OFFER_RECEIVED


def _task_moved(event: DomainEvent, person: ObjectId) -> K | None:
    status, previous = event.data.get("status"), event.data.get("previous")
    # An assignment is told as its offer's acceptance (OFFER_ACCEPTED), to the same person.
    if status == "submitted":
        return K.WORK_SUBMITTED
    if status == "in_progress" and previous == "submitted":
        return K.CHANGES_REQUESTED
    if status == "completed":
        return K.TASK_COMPLETED
    if status == "cancelled":
        return K.TASK_CANCELLED
    return None


def _payer(kind_for_payer: K, kind_for_provider: K | None) -> Rule:
    def rule(event: DomainEvent, person: ObjectId) -> K | None:
        if str(person) == event.data.get("payer_id"):
            return kind_for_payer
        return kind_for_provider

    return rule


_RULES: dict[EventKind, Rule] = {
    EventKind.OFFER_RECEIVED: _offer_received,
    EventKind.OFFER_ACCEPTED: _always(K.OFFER_ACCEPTED),
    EventKind.OFFER_REJECTED: _always(K.OFFER_REJECTED),
    EventKind.TASK_STATUS_CHANGED: _task_moved,
    EventKind.BOOKING_REQUESTED: _always(K.BOOKING_REQUESTED),
    EventKind.BOOKING_CONFIRMED: _always(K.BOOKING_CONFIRMED),
    EventKind.BOOKING_REJECTED: _always(K.BOOKING_DECLINED),
    EventKind.BOOKING_CANCELLED: _always(K.BOOKING_CANCELLED),
    EventKind.PAYMENT_SUCCEEDED: _payer(K.PAYMENT_RECEIPT, K.DEAL_FUNDED),
    EventKind.PAYMENT_REFUNDED: _payer(K.PAYMENT_REFUNDED, None),
    EventKind.PAYOUT_PAID: _always(K.PAYOUT_PAID),
    EventKind.PAYOUT_FAILED: _always(K.PAYOUT_FAILED),
    EventKind.DISPUTE_OPENED: _always(K.DISPUTE_OPENED),
    EventKind.DISPUTE_EVIDENCE_ADDED: _always(K.DISPUTE_EVIDENCE_ADDED),
    EventKind.DISPUTE_RESOLVED: _always(K.DISPUTE_DECIDED),
    EventKind.REVIEW_POSTED: _always(K.REVIEW_RECEIVED),
}
