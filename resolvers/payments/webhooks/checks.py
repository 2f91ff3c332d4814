"""Comparing a gateway event with what we recorded, before acting on it.

A valid signature proves that the gateway sent an event, not that the event is about
what its metadata names: a payment of another intent, amount or currency, or an event
of another connected account, must not move our money. So each handler compares the
event's object with our records (the gateway ids we stored, the amount, the currency,
the account the event happened on) in a `Comparison`, and `settle` raises
`EventMismatch` if anything differed, before anything is written. The inbox then stores
the event as rejected, with the differences, logs an alert and never retries it.

Where we have not recorded a gateway id yet (a crash between the gateway's answer and
our write), everything else must match before the event's id is adopted.

A handler raises `NotReady` for an event that depends on something not recorded yet
(retried later) and `EventMismatch` for one that contradicts our records.

Connect: events about the platform's own objects (payments, charges, refunds,
transfers, disputes, identity sessions) name no connected account; events of a
connected account (its updates, its payouts) name the provider's recorded account.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from documents.money import Money
from documents.payments.webhooks import EventDifference
from integrations.payments.gateway import GatewayEvent


class NotReady(Exception):
    """The event depends on something not recorded yet; process it again later."""


class EventMismatch(Exception):
    """The event's object contradicts what we recorded: nothing is changed, the event is
    stored as rejected with the differences and an alert is logged. Never retried: a
    signed event is still not believed on its metadata alone."""

    def __init__(self, differences: Sequence[EventDifference]) -> None:
        super().__init__("; ".join(str(difference) for difference in differences))
        self.differences = list(differences)


NONE = "none"
"""How a missing value is shown."""


def shown(value: object) -> str:
    return NONE if value is None else str(value)


def whole_number(obj: Mapping[str, Any], name: str) -> int | None:
    """An integer field of a gateway object; None if missing or not an integer."""
    value = obj.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def upper(value: object) -> str | None:
    """A currency code as we keep them; None if it is not a string."""
    return value.upper() if isinstance(value, str) else None


class Comparison:
    """The differences found so far between one event and our records."""

    def __init__(self, event: GatewayEvent) -> None:
        self.event = event
        self.differences: list[EventDifference] = []

    @property
    def matches(self) -> bool:
        return not self.differences

    def differ(self, field: str, recorded: object, received: object) -> None:
        self.differences.append(
            EventDifference(field=field, recorded=shown(recorded), received=shown(received))
        )

    def same(self, field: str, recorded: object, received: object) -> None:
        if recorded != received:
            self.differ(field, recorded, received)

    def same_id(self, field: str, recorded: str | None, received: str | None) -> None:
        """A gateway id, once we recorded one (until then any id may be adopted, when
        everything else matches)."""
        if recorded is not None:
            self.same(field, recorded, received)

    def same_money(self, recorded: Money, amount: object, currency: object) -> None:
        self.same("currency", recorded.currency, upper(currency))
        self.same("amount", recorded.amount, amount)

    def at_most(self, field: str, limit: int, received: int | None, least: int = 0) -> None:
        if received is None or not least <= received <= limit:
            self.differ(field, f"{least} to {limit}", received)

    def our_links(self, recorded: Mapping[str, str], metadata: Mapping[str, str]) -> None:
        """The ids of ours the object carries in its metadata name what we found."""
        for name, value in recorded.items():
            if name in metadata:
                self.same(f"metadata.{name}", value, metadata[name])

    def on_platform(self) -> None:
        """The object is the platform's own: the event names no connected account."""
        self.same("account", None, self.event.account)

    def on_account(self, recorded: str | None) -> None:
        """The event happened on the connected account we recorded."""
        self.same("account", recorded, self.event.account)

    def settle(self) -> None:
        """Raise EventMismatch if anything differed."""
        if self.differences:
            raise EventMismatch(self.differences)
