"""Every deal's lifecycle, declared once, as data.

A lifecycle lists the moves between its states: from which states each starts, where it
leads, who may make it and what it needs (its guards: the money held, the clock). Every
status change is checked against these declarations inside the transaction that makes
it, and no module holds a rule of its own: tasks, offers, bookings and disputes move
through `resolvers/common/transitions.py`, milestones through `move_milestone`
(resolvers/payments/escrow/milestones.py) and escrows through `change_escrow`
(resolvers/payments/escrow/escrows.py), which match a document only in a state the declaration
lets the
caller move it from. README's state diagrams are printed from here, and a test keeps
them in step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Generic, TypeVar

from documents.marketplace.bookings import BookingStatus
from documents.marketplace.offers import OfferStatus
from documents.marketplace.tasks import MilestoneStatus, TaskStatus
from documents.partners.partners import PartnerStatus
from documents.partners.transactions import TransactionStatus
from documents.partners.wallets import WalletStatus
from documents.payments.disputes import DisputeStatus
from documents.payments.escrow import EscrowStatus

S = TypeVar("S", bound=StrEnum)


class Party(StrEnum):
    """Who makes a move, as the deal sees them."""

    POSTER = "poster"
    TASKER = "tasker"
    """The tasker assigned to a task (or making an offer on it)."""
    CUSTOMER = "customer"
    PROVIDER = "provider"
    MAKER = "maker"
    """Whoever made an offer: the tasker, or the poster of a direct offer."""
    RECIPIENT = "recipient"
    """Whoever an offer is made to: the poster, or the tasker of a direct offer."""
    ADMIN = "admin"
    PARTNER = "partner"
    """A partner's app, with one of its API keys."""
    SYSTEM = "system"
    """gigql itself: a deadline or window running out, a payment event, a sweep."""


class Guard(StrEnum):
    """What a move needs besides its source state; resolvers/common/deal_guards.py checks each."""

    PAID = "paid"
    """The deal's escrow holds its money (or, where capture is manual, has it authorised):
    else PAYMENT_REQUIRED. Work is not started, handed in or accepted unpaid."""
    START_WINDOW = "start_window"
    """A booking starts no earlier than GIGQL_BOOKING_START_WINDOW before its start time."""
    NOTHING_HANDED_IN = "nothing_handed_in"
    """No milestone of the task has been handed in since it was last approved: work
    handed in is not taken back by cancelling, only by the tasker's own step back or an
    admin's dispute decision."""
    DEAL_CANCELLED = "deal_cancelled"
    """An escrow's deal was cancelled (its `deal_cancelled`), so what it receives now goes
    back to the payer. Escrows move through `change_escrow`, not `transition`: it matches
    a move with this guard only where its own update's condition requires it, so the
    database checks it in the same write."""


@dataclass(frozen=True, slots=True)
class Move(Generic[S]):
    name: str
    sources: frozenset[S]
    target: S
    by: frozenset[Party]
    verb: str
    """What it does, in messages: "started", "cancelled"."""
    guards: tuple[Guard, ...] = ()


def move(
    name: str,
    sources: Iterable[S],
    target: S,
    by: Iterable[Party],
    verb: str,
    *guards: Guard,
) -> Move[S]:
    return Move(name, frozenset(sources), target, frozenset(by), verb, tuple(guards))


class Lifecycle(Generic[S]):
    def __init__(self, name: str, states: type[S], initial: S, *moves: Move[S]) -> None:
        self.name = name
        self.states = states
        self.initial = initial
        self.moves: Mapping[str, Move[S]] = {m.name: m for m in moves}
        assert len(self.moves) == len(moves), f"{name}: two moves of one name"

    def __getitem__(self, name: str) -> Move[S]:
        return self.moves[name]

    def every_state(self) -> list[S]:
        return list(self.states)

    def graph(self) -> dict[S, frozenset[S]]:
        """Every state and the states one move leads to from it."""
        targets: dict[S, set[S]] = {state: set() for state in self.every_state()}
        for m in self.moves.values():
            for source in m.sources:
                targets[source].add(m.target)
        return {state: frozenset(found) for state, found in targets.items()}

    def sources_into(
        self, target: S, party: Party, met: frozenset[Guard] = frozenset()
    ) -> frozenset[S]:
        """The states `party` may move a document from to reach `target`, and `target`
        itself while it is not final (a change recorded on the document, its status
        kept): for writes that name the status they lead to rather than a move. A move
        with guards counts only if the caller's write requires every one of them (`met`)."""
        sources = {
            source
            for m in self.moves.values()
            if m.target == target and party in m.by and set(m.guards) <= met
            for source in m.sources
        }
        if target not in self.final():
            sources.add(target)
        return frozenset(sources)

    def final(self) -> frozenset[S]:
        return frozenset(state for state, targets in self.graph().items() if not targets)

    def diagram(self) -> str:
        """A Mermaid state diagram: every move, labelled with its name, who makes it and
        what it needs."""
        lines = ["stateDiagram-v2", f"    [*] --> {self.initial.value}"]
        for m in self.moves.values():
            who = "/".join(sorted(p.value for p in m.by))
            needs = f" [{', '.join(g.value for g in m.guards)}]" if m.guards else ""
            for source in sorted(m.sources, key=list(self.states).index):
                lines.append(f"    {source.value} --> {m.target.value}: {m.name} ({who}){needs}")
        for state in sorted(self.final(), key=list(self.states).index):
            lines.append(f"    {state.value} --> [*]")
        return "\n".join(lines)


P = Party
G = Guard
TS = TaskStatus

TASK = Lifecycle(
    "task",
    TaskStatus,
    TS.OPEN,
    move("assign", [TS.OPEN], TS.ASSIGNED, [P.POSTER, P.TASKER], "assigned"),
    move("start", [TS.ASSIGNED], TS.IN_PROGRESS, [P.TASKER], "started", G.PAID),
    move("submit", [TS.IN_PROGRESS], TS.SUBMITTED, [P.TASKER], "submitted", G.PAID),
    move("send_back", [TS.SUBMITTED], TS.IN_PROGRESS, [P.POSTER], "sent back"),
    move("complete", [TS.SUBMITTED], TS.COMPLETED, [P.POSTER, P.SYSTEM], "completed", G.PAID),
    move("cancel", [TS.OPEN, TS.ASSIGNED], TS.CANCELLED, [P.POSTER], "cancelled"),
    # A task in milestones may end between milestones: nothing handed in is taken back.
    move(
        "cancel_between_milestones",
        [TS.IN_PROGRESS],
        TS.CANCELLED,
        [P.POSTER],
        "cancelled",
        G.NOTHING_HANDED_IN,
    ),
    # The tasker steps back before work starts; unpaid past its deadline, the deal lapses.
    # Either way the task is open for offers again.
    move("step_back", [TS.ASSIGNED], TS.OPEN, [P.TASKER], "stepped back from"),
    move("lapse", [TS.ASSIGNED], TS.OPEN, [P.SYSTEM], "reopened, unpaid,"),
    move("dispute", [TS.IN_PROGRESS, TS.SUBMITTED], TS.DISPUTED, [P.POSTER, P.TASKER], "disputed"),
    # A dispute ends by an admin's decision: the work stands or is undone, or, for a
    # milestone decided before the last, the work goes on.
    move("decide_completed", [TS.DISPUTED], TS.COMPLETED, [P.ADMIN], "completed"),
    move("decide_cancelled", [TS.DISPUTED], TS.CANCELLED, [P.ADMIN], "cancelled"),
    move("decide_resumed", [TS.DISPUTED], TS.IN_PROGRESS, [P.ADMIN], "resumed"),
)

OS = OfferStatus

OFFER = Lifecycle(
    "offer",
    OfferStatus,
    OS.PENDING,
    move("accept", [OS.PENDING], OS.ACCEPTED, [P.RECIPIENT], "accepted"),
    move("reject", [OS.PENDING], OS.REJECTED, [P.RECIPIENT], "declined"),
    move("withdraw", [OS.PENDING], OS.WITHDRAWN, [P.MAKER], "withdrawn"),
    # Another offer was accepted, or the task closed.
    move("close", [OS.PENDING], OS.REJECTED, [P.SYSTEM], "closed"),
    # The deal it made ended before work began: its tasker stepped back, or it lapsed unpaid.
    move("release", [OS.ACCEPTED], OS.WITHDRAWN, [P.TASKER, P.SYSTEM], "released"),
)

BS = BookingStatus

BOOKING = Lifecycle(
    "booking",
    BookingStatus,
    BS.PENDING,
    move("confirm", [BS.PENDING], BS.CONFIRMED, [P.PROVIDER], "confirmed"),
    move("decline", [BS.PENDING], BS.CANCELLED, [P.PROVIDER], "declined"),
    move("start", [BS.CONFIRMED], BS.IN_PROGRESS, [P.PROVIDER], "started", G.PAID, G.START_WINDOW),
    # Finished, the customer has GIGQL_AUTO_RELEASE_AFTER to approve it (paid at once) or
    # dispute it; the provider is paid when the window ends.
    move("finish", [BS.IN_PROGRESS], BS.COMPLETED, [P.PROVIDER], "completed", G.PAID),
    move(
        "cancel",
        [BS.PENDING, BS.CONFIRMED, BS.IN_PROGRESS],
        BS.CANCELLED,
        [P.CUSTOMER, P.PROVIDER],
        "cancelled",
    ),
    move("lapse", [BS.CONFIRMED], BS.CANCELLED, [P.SYSTEM], "cancelled, unpaid,"),
    # A request the provider did not answer by its `respond_by` frees its time.
    move("expire", [BS.PENDING], BS.CANCELLED, [P.SYSTEM], "cancelled unanswered"),
    move(
        "dispute",
        [BS.CONFIRMED, BS.IN_PROGRESS, BS.COMPLETED],
        BS.DISPUTED,
        [P.CUSTOMER, P.PROVIDER],
        "disputed",
        G.PAID,
    ),
    move("decide_completed", [BS.DISPUTED], BS.COMPLETED, [P.ADMIN], "completed"),
    move("decide_cancelled", [BS.DISPUTED], BS.CANCELLED, [P.ADMIN], "cancelled"),
)

MS = MilestoneStatus

MILESTONE = Lifecycle(
    "milestone",
    MilestoneStatus,
    MS.PENDING,
    move("submit", [MS.PENDING], MS.SUBMITTED, [P.TASKER], "handed in", G.PAID),
    move("send_back", [MS.SUBMITTED], MS.PENDING, [P.POSTER], "sent back"),
    move("approve", [MS.SUBMITTED], MS.APPROVED, [P.POSTER, P.SYSTEM], "approved", G.PAID),
    move("decide_approved", [MS.PENDING, MS.SUBMITTED], MS.APPROVED, [P.ADMIN], "approved"),
)

ES = EscrowStatus
_HOLDING = [ES.HELD, ES.PARTIALLY_REFUNDED]

ESCROW = Lifecycle(
    "escrow",
    EscrowStatus,
    ES.AWAITING_PAYMENT,
    move("pay", [ES.AWAITING_PAYMENT], ES.HELD, [P.SYSTEM], "paid"),
    move("fail", [ES.AWAITING_PAYMENT], ES.FAILED, [P.SYSTEM], "failed"),
    # Paid at the gateway in the moment its deal was cancelled unpaid (before, or instead
    # of, the intent's cancellation there): recorded as held, then refunded in full.
    move(
        "pay_after_cancel",
        [ES.FAILED],
        ES.HELD,
        [P.SYSTEM],
        "paid after its deal was cancelled",
        G.DEAL_CANCELLED,
    ),
    move("release", _HOLDING, ES.RELEASING, [P.SYSTEM, P.ADMIN], "released"),
    move("released", [ES.RELEASING], ES.RELEASED, [P.SYSTEM], "released"),
    move("refund_part", _HOLDING, ES.PARTIALLY_REFUNDED, [P.SYSTEM, P.ADMIN], "refunded in part"),
    move("refund", _HOLDING, ES.REFUNDED, [P.SYSTEM, P.ADMIN], "refunded"),
    move("freeze", [*_HOLDING, ES.RELEASED], ES.DISPUTED, [P.SYSTEM], "frozen"),
    move("thaw", [ES.DISPUTED], ES.HELD, [P.SYSTEM, P.ADMIN], "held again"),
    move("thaw_part", [ES.DISPUTED], ES.PARTIALLY_REFUNDED, [P.SYSTEM, P.ADMIN], "held again"),
    # After a lost chargeback, what the escrow holds covers the loss.
    move("charge_back", [*_HOLDING, ES.DISPUTED], ES.CHARGED_BACK, [P.ADMIN], "kept"),
)

DS = DisputeStatus

DISPUTE = Lifecycle(
    "dispute",
    DisputeStatus,
    DS.OPEN,
    move("resolve", [DS.OPEN], DS.RESOLVED, [P.ADMIN], "resolved"),
)

PS = PartnerStatus

PARTNER = Lifecycle(
    "partner",
    PartnerStatus,
    PS.APPLIED,
    move("approve", [PS.APPLIED], PS.APPROVED, [P.ADMIN], "approved"),
    move("reject", [PS.APPLIED], PS.REJECTED, [P.ADMIN], "rejected"),
    move("suspend", [PS.APPROVED], PS.SUSPENDED, [P.ADMIN], "suspended"),
    move("reinstate", [PS.SUSPENDED], PS.APPROVED, [P.ADMIN], "reinstated"),
    move("close", [PS.APPROVED, PS.SUSPENDED], PS.CLOSED, [P.ADMIN], "closed"),
)

WS = WalletStatus

PARTNER_WALLET = Lifecycle(
    "partner wallet",
    WalletStatus,
    WS.ACTIVE,
    move("freeze", [WS.ACTIVE], WS.FROZEN, [P.PARTNER, P.ADMIN], "frozen"),
    move("unfreeze", [WS.FROZEN], WS.ACTIVE, [P.PARTNER, P.ADMIN], "unfrozen"),
    move("close", [WS.ACTIVE, WS.FROZEN], WS.CLOSED, [P.PARTNER], "closed"),
    # Money came back to it after it closed (a returned payout, a chargeback won): a
    # closed wallet holds nothing, so the partner can unfreeze it and withdraw.
    move("reopen", [WS.CLOSED], WS.FROZEN, [P.SYSTEM], "reopened"),
)

XS = TransactionStatus

PARTNER_TRANSACTION = Lifecycle(
    "partner transaction",
    TransactionStatus,
    XS.PENDING,
    # A card credit: the payment's webhook settles it.
    move("complete", [XS.PENDING, XS.PROCESSING], XS.COMPLETED, [P.SYSTEM], "completed"),
    move("fail", [XS.PENDING, XS.PROCESSING], XS.FAILED, [P.SYSTEM], "failed"),
    # A withdrawal: transferred to the partner's account, its payout on the way.
    move("pay_out", [XS.PENDING], XS.PROCESSING, [P.SYSTEM], "paid out"),
    # A payout the bank returned after it was reported paid.
    move("return", [XS.COMPLETED], XS.FAILED, [P.SYSTEM], "returned"),
)

LIFECYCLES: tuple[Lifecycle[Any], ...] = (
    TASK,
    OFFER,
    BOOKING,
    MILESTONE,
    ESCROW,
    DISPUTE,
    PARTNER,
    PARTNER_WALLET,
    PARTNER_TRANSACTION,
)


def readme_section() -> str:
    """README's "Deal lifecycles" diagrams, printed from the declarations above (a test
    keeps README equal to it: `python -c 'from documents.lifecycles import readme_section;
    print(readme_section())'` prints it afresh)."""
    blocks = []
    for lifecycle in LIFECYCLES:
        blocks.append(
            f"**{lifecycle.name.capitalize()}**\n\n```mermaid\n{lifecycle.diagram()}\n```"
        )
    return "\n\n".join(blocks) + "\n"
