"""What `gigql reconcile` reports: each mismatch between our records and the gateway's."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


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


@dataclass(frozen=True, slots=True)
class Finding:
    mismatch: Mismatch
    kind: Kind
    subject: str
    """The gateway object and/or our record concerned."""
    detail: str


@dataclass(slots=True)
class Reconciliation:
    created_from: datetime
    created_until: datetime
    compared: dict[Kind, int] = field(default_factory=lambda: dict.fromkeys(Kind, 0))
    """Gateway objects of the period, per kind."""
    findings: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(self, mismatch: Mismatch, kind: Kind, subject: str, detail: str) -> None:
        self.findings.append(Finding(mismatch, kind, subject, detail))

    def as_json(self) -> dict[str, Any]:
        return {
            "from": self.created_from.isoformat(),
            "until": self.created_until.isoformat(),
            "ok": self.ok,
            "compared": {kind.value: count for kind, count in self.compared.items()},
            "findings": [
                {
                    "mismatch": f.mismatch.value,
                    "kind": f.kind.value,
                    "subject": f.subject,
                    "detail": f.detail,
                }
                for f in self.findings
            ],
        }


def format_reconciliation(result: Reconciliation) -> str:
    """One summary line, then one line per mismatch: what `gigql reconcile` prints."""
    state = "ok" if result.ok else f"{len(result.findings)} mismatch(es)"
    counts = ", ".join(f"{count} {kind.value}(s)" for kind, count in result.compared.items())
    lines = [
        f"reconcile {state}: {result.created_from.isoformat()} to "
        f"{result.created_until.isoformat()}: {counts} compared"
    ]
    lines += [
        f"{f.mismatch.value}: {f.kind.value} {f.subject}: {f.detail}" for f in result.findings
    ]
    return "\n".join(lines)
