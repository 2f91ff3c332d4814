"""Escrow: the payer's money for one deal, held by the platform until the work is done.

    awaiting_payment -> held -> releasing -> released
    awaiting_payment -> failed (the intent was cancelled, or the deal before payment)
    held -> partially_refunded / refunded;  held -> disputed
    disputed -> held / partially_refunded (an admin's decision, or a chargeback won)
    held / partially_refunded / disputed -> charged_back (a lost chargeback covered)

A deal is an accepted offer on a task or a confirmed booking; `deal` names it and is
unique, so a deal has one escrow however often its creation is retried. The fee
breakdown is computed when the escrow is made and kept on it, so later steps never
read fee settings that may have changed since.

Each gateway step is claimed on the escrow first (a conditional update), then made
with an idempotency key derived from the escrow's id, then recorded: a refund is
`pending` on the escrow until recorded, a release is `releasing` with its amounts
fixed in `release`. Repeating a step after a crash gives the gateway the same key and
the ledger the same posting.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from beanie import Document, PydanticObjectId
from bson import ObjectId
from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow
from documents.money import Money


class EscrowStatus(StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"
    HELD = "held"
    RELEASING = "releasing"
    """The work is approved: the provider's transfer is being made, or waits for their
    payout account."""
    RELEASED = "released"
    PARTIALLY_REFUNDED = "partially_refunded"
    """Part went back to the payer; the rest is still held."""
    REFUNDED = "refunded"
    DISPUTED = "disputed"
    """Frozen: nothing is released automatically."""
    FAILED = "failed"
    """Never paid: the payment intent was cancelled, or the deal before payment."""
    CHARGED_BACK = "charged_back"
    """The payer's bank took the payment back (a lost chargeback) and an admin kept all
    the escrow held to cover the loss (resolvers/payments/disputes/chargeback_settlement.py):
    final."""


PAID_STATUSES = (
    EscrowStatus.HELD,
    EscrowStatus.RELEASING,
    EscrowStatus.RELEASED,
    EscrowStatus.PARTIALLY_REFUNDED,
    EscrowStatus.REFUNDED,
    EscrowStatus.DISPUTED,
    EscrowStatus.CHARGED_BACK,
)
"""The payment was received."""
HOLDING_STATUSES = (EscrowStatus.HELD, EscrowStatus.PARTIALLY_REFUNDED)
"""Money is held and may be released or refunded."""


class FeeBreakdown(BaseModel):
    """How the payer's money divides. Exact: price + customer_fee == charged and
    provider_share + commission_on_hold + commission_on_release == price."""

    price: Money
    """The agreed amount for the work."""
    customer_fee: Money
    """The payer's service fee on top of the price: the platform's."""
    commission_on_hold: Money
    """Kept from the price once the payment is held."""
    commission_on_release: Money
    """Kept from the price on release."""
    provider_share: Money

    @property
    def charged(self) -> Money:
        return self.price + self.customer_fee

    @property
    def platform_on_hold(self) -> Money:
        """What the platform takes when the payment is held."""
        return self.customer_fee + self.commission_on_hold


class RefundStatus(StrEnum):
    PENDING = "pending"
    """Claimed; the gateway's refund may or may not have been made yet."""
    SUCCEEDED = "succeeded"


class EscrowRefund(BaseModel):
    number: int
    """1, 2, 3... per escrow: part of its idempotency keys."""
    amount: Money
    """Back to the payer, in all."""
    from_escrow: Money
    from_platform: Money
    """The platform's share of the refund: its fee and staged commission, pro rata."""
    status: RefundStatus = RefundStatus.PENDING
    refund_id: str | None = None
    external: bool = False
    """Made outside gigql (the Stripe dashboard), learnt of from `charge.refunded`."""
    reason: str = ""
    at: datetime = Field(default_factory=utcnow)


class ReleasePlan(BaseModel):
    """What a release moves, fixed when it is claimed, so that a repeat moves the same."""

    round: int = 1
    """Releases made so far plus one: after a transfer reversal a new one needs new keys."""
    to_provider: Money
    commission: Money
    commission_before: Money | None = None
    """The commission earlier rounds took (None: none, or a plan stored before it was
    kept), which this round does not take again."""
    claimed_at: datetime = Field(default_factory=utcnow)

    @property
    def commission_so_far(self) -> Money:
        """The commission taken by this round and every one before it."""
        before = self.commission_before
        return self.commission if before is None else self.commission + before


class EscrowChange(BaseModel):
    status: EscrowStatus
    at: datetime = Field(default_factory=utcnow)
    note: str = ""
    event_id: str | None = None
    """The gateway event that caused it: a redelivered event is recognised by it."""


class Escrow(Document):
    deal: str
    """`task:<task id>`, `task:<task id>:milestone:<n>` or `booking:<booking id>`: one
    escrow per deal."""
    milestone: int | None = None
    """The number of the task's milestone this escrow pays for, if it is one."""
    task_id: PydanticObjectId | None = None
    offer_id: PydanticObjectId | None = None
    booking_id: PydanticObjectId | None = None
    payer_id: PydanticObjectId
    provider_id: PydanticObjectId
    fees: FeeBreakdown
    status: EscrowStatus = EscrowStatus.AWAITING_PAYMENT
    capture_manually: bool = False
    """Authorised only; captured on release (deals settling within a card authorisation's
    lifetime, when configured)."""
    captured: bool = False
    payment_intent_id: str | None = None
    charge_id: str | None = None
    transfer_id: str | None = None
    payment_failure_code: str | None = None
    """Why the payer's last attempt failed; they may try again with another card."""
    requires_action: bool = False
    """The payer's bank asks them to authenticate (3-D Secure)."""
    refunded: Money
    refunds: list[EscrowRefund] = Field(default_factory=list)
    transfer_reversed: Money
    """How much of the transfer `transfer_id` the gateway reversed (each release after a
    reversal makes a new transfer, and starts again from zero)."""
    release: ReleasePlan | None = None
    release_requested: bool = False
    """The work was approved before the payment arrived: release once it does."""
    deal_cancelled: bool = False
    """The task or booking was cancelled: a payment arriving now is refunded."""
    disputes_while_unpaid: int = 0
    """How often its task's dispute was opened or decided while this escrow awaited
    payment. Counting it is a write to the escrow that a payment committing at the same
    moment conflicts with (resolvers/payments/escrow/release.py `mark_unpaid`); nothing
    reads it."""
    frozen_by: str | None = None
    """While disputed, what froze it: `FROZEN_BY_DEAL`, `FROZEN_BY_REVERSAL` or
    `frozen_by_chargeback(id)`. A cause that ends thaws only what it froze itself."""
    auto_release_at: datetime | None = None
    pay_by: datetime | None = None
    """The payer's deadline: unpaid then, the deal lapses (resolvers/marketplace/lapses.py)."""
    held_at: datetime | None = None
    released_at: datetime | None = None
    history: list[EscrowChange] = Field(default_factory=list)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "escrows"
        use_revision = False
        indexes = [
            IndexModel([("deal", ASCENDING)], name="one_escrow_per_deal", unique=True),
            IndexModel([("payment_intent_id", ASCENDING)], sparse=True),
            # A chargeback names the charge (and, not always, the intent).
            IndexModel([("charge_id", ASCENDING)], sparse=True),
            # The admins' list, newest first.
            IndexModel([("created_at", DESCENDING), ("_id", DESCENDING)]),
            IndexModel([("status", ASCENDING), ("auto_release_at", ASCENDING)]),
            IndexModel([("status", ASCENDING), ("pay_by", ASCENDING)]),
            IndexModel([("provider_id", ASCENDING), ("status", ASCENDING)]),
            IndexModel([("payer_id", ASCENDING), ("created_at", ASCENDING)]),
            IndexModel([("refunds.status", ASCENDING)]),
        ]

    @property
    def participants(self) -> list[PydanticObjectId]:
        return [self.payer_id, self.provider_id]

    @property
    def gateway_group(self) -> str:
        """The gateway's `transfer_group` and the prefix of every key for this escrow."""
        return f"escrow:{self.id}"

    @property
    def refundable(self) -> Money:
        return self.fees.charged - self.refunded

    @property
    def pending_refund(self) -> EscrowRefund | None:
        return next((r for r in self.refunds if r.status is RefundStatus.PENDING), None)


FROZEN_BY_DEAL = "deal"
"""Its task or booking is disputed."""
FROZEN_BY_REVERSAL = "transfer_reversal"
"""The provider's transfer was reversed."""


def frozen_by_chargeback(gateway_dispute_id: str) -> str:
    return f"chargeback:{gateway_dispute_id}"


def task_deal(task_id: ObjectId | str, round: int = 1) -> str:
    """The deal of a task's accepted offer. A task reopened (its tasker stepped back, or
    its payment lapsed) deals again in a new round, with escrows of its own."""
    return f"task:{task_id}" if round == 1 else f"task:{task_id}:round:{round}"


def milestone_deal(task_id: ObjectId | str, number: int, round: int = 1) -> str:
    return f"{task_deal(task_id, round)}:milestone:{number}"


def booking_deal(booking_id: ObjectId | str) -> str:
    return f"booking:{booking_id}"
