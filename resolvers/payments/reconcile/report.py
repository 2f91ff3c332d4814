"""What `gigql reconcile` reports: each mismatch between our records and the gateway's."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from resolvers.payments.report import Report


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
