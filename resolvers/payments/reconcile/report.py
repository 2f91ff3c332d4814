"""What `gigql reconcile` reports: each mismatch between our records and the gateway's."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from documents.money import Money
from resolvers.payments.report import Report

InPeriod = Callable[[datetime], bool]


class Kind(StrEnum):
    PAYMENT = "payment"
    REFUND = "refund"
    TRANSFER = "transfer"
    PAYOUT = "payout"


class Mismatch(StrEnum):
    MISSING_HERE = "missing_here"
    """At the gateway, not (or not as this object) in our records."""
    MISSING_AT_GATEWAY = "missing_at_gateway"
    AMOUNT = "amount_mismatch"
    CURRENCY = "currency_mismatch"
    STATUS = "status_mismatch"
    NOT_POSTED = "not_posted"
    """Recorded, but not (or not for that amount) in the ledger."""


@dataclass(slots=True)
class Reconciliation(Report):
    """Findings are `Mismatch`es of a `Kind` of record; their subject is the gateway
    object and/or our record concerned."""

    name = "reconcile"
    findings_called = "mismatch(es)"
    check_key = "mismatch"  # what scripts reading `gigql reconcile --json` look for

    created_from: datetime
    created_until: datetime
    compared: dict[Kind, int] = field(default_factory=lambda: dict.fromkeys(Kind, 0))
    """Gateway objects of the period, per kind."""

    def summary(self) -> str:
        counts = ", ".join(f"{count} {kind.value}(s)" for kind, count in self.compared.items())
        period = f"{self.created_from.isoformat()} to {self.created_until.isoformat()}"
        return f"{period}: {counts} compared"

    def asked(self) -> dict[str, Any]:
        return {"from": self.created_from.isoformat(), "until": self.created_until.isoformat()}

    def counted(self) -> dict[str, Any]:
        return {"compared": {kind.value: count for kind, count in self.compared.items()}}


def to_compare(
    result: Reconciliation,
    kind: Kind,
    created: datetime,
    ours_at: datetime | None,
    in_period: InPeriod,
) -> bool:
    """Whether a gateway object is this period's to compare: each pair once, by the
    object's time, else by our record's. The period's gateway objects are counted."""
    if in_period(created):
        result.compared[kind] += 1
        return True
    return ours_at is not None and in_period(ours_at)


def compare_money(
    result: Reconciliation, kind: Kind, subject: str, gateway: Money, ours: Money
) -> None:
    if gateway.currency != ours.currency:
        result.add(Mismatch.CURRENCY, subject, f"gateway {gateway}, ours {ours}", kind=kind)
    elif gateway.amount != ours.amount:
        result.add(Mismatch.AMOUNT, subject, f"gateway {gateway}, ours {ours}", kind=kind)
