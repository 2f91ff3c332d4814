"""What a check of the payments records reports (`gigql ledger verify`, `gigql reconcile`):
what it looked at, and one finding per thing it found wrong.

Each check subclasses `Report` to name itself and say what it looked at. The rest is
shared, so that every check's report reads the same way: the findings, `ok` (the CLI's
exit status), the JSON form (`gigql reconcile --json`) and the text form the CLI prints:

    <name> ok: <summary>                         or  <name> <n> <findings_called>: <summary>
    <check>: [<kind> ]<subject>: <detail>        one line per finding
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar


@dataclass(frozen=True, slots=True)
class Finding:
    check: StrEnum
    """What is wrong: the invariant that fails, or how our records and another's differ."""
    subject: str
    """The record(s) concerned, as an operator would look them up."""
    detail: str
    kind: StrEnum | None = None
    """What sort of record the subject is, where a check looks at several sorts."""

    def as_text(self) -> str:
        subject = self.subject if self.kind is None else f"{self.kind.value} {self.subject}"
        return f"{self.check.value}: {subject}: {self.detail}"

    def as_json(self, check_key: str) -> dict[str, str]:
        found = {check_key: self.check.value}
        if self.kind is not None:
            found["kind"] = self.kind.value
        return found | {"subject": self.subject, "detail": self.detail}


@dataclass(slots=True)
class Report(ABC):
    """The findings of one run of a check, and what that run looked at."""

    name: ClassVar[str]
    """The summary line's first word: what was checked."""
    findings_called: ClassVar[str]
    """What the summary line calls the findings, after their number."""
    check_key: ClassVar[str] = "check"
    """The key of a finding's check in JSON."""

    # Keyword-only, so that a report's own fields may come first and have no default.
    findings: list[Finding] = field(default_factory=list, kw_only=True)

    @property
    def ok(self) -> bool:
        return not self.findings

    def add(
        self, check: StrEnum, subject: str, detail: str, *, kind: StrEnum | None = None
    ) -> None:
        self.findings.append(Finding(check, subject, detail, kind))

    @abstractmethod
    def summary(self) -> str:
        """What the check was asked and how much it looked at, as the summary line ends."""

    def asked(self) -> dict[str, Any]:
        """What the check was asked to look at (a period, say), for JSON."""
        return {}

    @abstractmethod
    def counted(self) -> dict[str, Any]:
        """How much the check looked at, for JSON."""

    def as_text(self) -> str:
        """One summary line, then one line per finding."""
        state = "ok" if self.ok else f"{len(self.findings)} {self.findings_called}"
        lines = [f"{self.name} {state}: {self.summary()}"]
        lines += [finding.as_text() for finding in self.findings]
        return "\n".join(lines)

    def as_json(self) -> dict[str, Any]:
        """What was asked, the verdict, how much was looked at, then the findings."""
        return {
            **self.asked(),
            "ok": self.ok,
            **self.counted(),
            "findings": [finding.as_json(self.check_key) for finding in self.findings],
        }
