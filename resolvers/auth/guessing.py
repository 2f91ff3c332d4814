"""Every check of a secret, counted per client IP.

A check is counted before it is made and forgiven when it succeeds, so that checks still
in flight count too: however many requests a client sends at once, at most
`login_ip_max_failures` a window are checked, whichever accounts or tokens they name.
Beyond that a client is refused (TOO_MANY_ATTEMPTS) before anything is checked, and the
refusal is audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from documents.audit import AuditKind
from documents.errors import DomainError, ErrorCode
from resolvers import audit
from resolvers.auth.throttle import Throttle
from resolvers.services import RequestMeta, Services


@dataclass(frozen=True, slots=True)
class Attempt:
    """A secret check counted against its client; `succeeded` takes the count back."""

    throttle: Throttle
    client: str

    async def succeeded(self) -> None:
        await self.throttle.forgive(self.client)


async def start_attempt(
    services: Services, meta: RequestMeta, refusal: AuditKind, **details: Any
) -> Attempt:
    """Count a check by this client, or refuse it (audited as `refusal`) past the limit."""
    settings = services.settings
    throttle = Throttle("login-ip", settings.login_ip_max_failures, settings.login_ip_window)
    client = meta.ip or "unknown"
    if await throttle.hit(client) > throttle.limit:
        await audit.record(refusal, meta, reason="ip_throttled", **details)
        raise DomainError(
            ErrorCode.TOO_MANY_ATTEMPTS,
            "Too many failed attempts from this network; "
            f"try again after {clock(throttle.retry_after())}.",
        )
    return Attempt(throttle, client)


def clock(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
