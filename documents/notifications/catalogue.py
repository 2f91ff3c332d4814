"""Every kind of notification gigql sends: who gets it, on which channels by default,
and whether people may turn it off. README's table is printed from here, and a test
keeps it in step.

A notification always lands in the app (the `notifications` query and live events); the
channels here are the ones that reach people who are not looking: e-mail, SMS and web
push. Security messages and payment receipts cannot be turned off; there is no marketing.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Channel(StrEnum):
    EMAIL = "email"
    SMS = "sms"
    PUSH = "push"


class NotificationKind(StrEnum):
    OFFER_RECEIVED = "offer_received"
    DIRECT_OFFER_RECEIVED = "direct_offer_received"
    OFFER_ACCEPTED = "offer_accepted"
    OFFER_REJECTED = "offer_rejected"
    WORK_SUBMITTED = "work_submitted"
    CHANGES_REQUESTED = "changes_requested"
    TASK_COMPLETED = "task_completed"
    TASK_CANCELLED = "task_cancelled"
    BOOKING_REQUESTED = "booking_requested"
    BOOKING_CONFIRMED = "booking_confirmed"
    BOOKING_DECLINED = "booking_declined"
    BOOKING_CANCELLED = "booking_cancelled"
    BOOKING_REMINDER_DAY = "booking_reminder_day"
    BOOKING_REMINDER_HOUR = "booking_reminder_hour"
    BOOKING_REMINDER_SOON = "booking_reminder_soon"
    PAYMENT_RECEIPT = "payment_receipt"
    DEAL_FUNDED = "deal_funded"
    PAYMENT_REFUNDED = "payment_refunded"
    PAYOUT_PAID = "payout_paid"
    PAYOUT_FAILED = "payout_failed"
    DISPUTE_OPENED = "dispute_opened"
    DISPUTE_EVIDENCE_ADDED = "dispute_evidence_added"
    DISPUTE_DECIDED = "dispute_decided"
    REVIEW_RECEIVED = "review_received"
    REVIEW_REQUEST = "review_request"
    CHAT_MESSAGE = "chat_message"


E, S, P = Channel.EMAIL, Channel.SMS, Channel.PUSH
ALL_CHANNELS = frozenset(Channel)


@dataclass(frozen=True, slots=True)
class Spec:
    recipients: str
    """Who gets it, in README's words."""
    default: frozenset[Channel]
    """The channels it goes out on unless the person chose otherwise."""
    optional: bool = True
    """False: security and payment messages, always sent on their default channels."""
    when: str = "at once"


def spec(recipients: str, *default: Channel, optional: bool = True, when: str = "at once") -> Spec:
    return Spec(recipients, frozenset(default), optional, when)


K = NotificationKind

CATALOGUE: dict[NotificationKind, Spec] = {
    K.OFFER_RECEIVED: spec("the poster", E, P),
    K.DIRECT_OFFER_RECEIVED: spec("the tasker offered a task directly", E, P),
    K.OFFER_ACCEPTED: spec("whoever made the offer: the task is now assigned", E, P),
    K.OFFER_REJECTED: spec("whoever made the offer", E),
    K.WORK_SUBMITTED: spec("the poster", E, P),
    K.CHANGES_REQUESTED: spec("the tasker", E, P),
    K.TASK_COMPLETED: spec("the tasker", E, P),
    K.TASK_CANCELLED: spec("the other side of the task", E, P),
    K.BOOKING_REQUESTED: spec("the provider", E, S, P),
    K.BOOKING_CONFIRMED: spec("the customer", E, P),
    K.BOOKING_DECLINED: spec("the customer", E, P),
    K.BOOKING_CANCELLED: spec("the other side, with the refund", E, P),
    K.BOOKING_REMINDER_DAY: spec(
        "the customer and the provider", E, when="24 hours before the booking"
    ),
    K.BOOKING_REMINDER_HOUR: spec("the provider", S, P, when="1 hour before the booking"),
    K.BOOKING_REMINDER_SOON: spec("the customer", S, P, when="30 minutes before the booking"),
    K.PAYMENT_RECEIPT: spec("the payer, with the fee breakdown", E, optional=False),
    K.DEAL_FUNDED: spec("the provider: the payer has paid, work can start", E, P),
    K.PAYMENT_REFUNDED: spec("the payer", E, optional=False),
    K.PAYOUT_PAID: spec("the provider", E, optional=False),
    K.PAYOUT_FAILED: spec("the provider", E, P, optional=False),
    K.DISPUTE_OPENED: spec("the other side of the deal", E, P, optional=False),
    K.DISPUTE_EVIDENCE_ADDED: spec("the other side of the deal", E),
    K.DISPUTE_DECIDED: spec("both sides of the deal", E, P, optional=False),
    K.REVIEW_RECEIVED: spec(
        "whoever was reviewed (the review shows once both have written, or after the reveal days)",
        E,
        P,
        when="when the review is posted",
    ),
    K.REVIEW_REQUEST: spec("both sides of a completed task or booking", E, when="after completion"),
    K.CHAT_MESSAGE: spec(
        "the other member of a conversation, while they have not read it",
        E,
        P,
        when="a few minutes after the first unread message, one per conversation",
    ),
}


def readme_table() -> str:
    """README's table of notifications, printed from the catalogue (a test keeps README
    equal to it)."""
    rows = [
        "| notification | to | when | default channels | may be turned off |",
        "| --- | --- | --- | --- | --- |",
    ]
    for kind, entry in CATALOGUE.items():
        channels = ", ".join(c.value for c in Channel if c in entry.default)
        rows.append(
            f"| `{kind.value}` | {entry.recipients} | {entry.when} | {channels} | "
            f"{'yes' if entry.optional else 'no'} |"
        )
    return "\n".join(rows) + "\n"
