"""Every check of a secret, counted per client IP: passwords, refresh and mailed tokens.

A check is counted before it is made and forgiven when it succeeds, so that checks still
in flight count too: however many requests a client sends at once, at most
`login_ip_max_failures` a window are checked, whichever accounts or tokens they name.
Beyond that a client is refused (TOO_MANY_ATTEMPTS) before anything is checked, and the
refusal is audited.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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


# A token that was not right; the rest (a suspended account, a weak new password) come
# after a right one.
_WRONG_TOKEN = {
    ErrorCode.INVALID_TOKEN: "invalid",
    ErrorCode.TOKEN_EXPIRED: "expired",
    ErrorCode.TOKEN_REUSED: "reused",
}


@asynccontextmanager
async def token_check(services: Services, meta: RequestMeta, token: str) -> AsyncIterator[None]:
    """Count the check of a token (`token` names its kind) made inside, as `start_attempt`;
    a wrong one stays counted and is audited."""
    attempt = await start_attempt(services, meta, AuditKind.TOKEN_REJECTED, token=token)
    try:
        yield
    except DomainError as error:
        if error.code not in _WRONG_TOKEN:
            await attempt.succeeded()
        elif error.code is not ErrorCode.TOKEN_REUSED:  # audited as such where it is found
            reason = _WRONG_TOKEN[error.code]
            await audit.record(AuditKind.TOKEN_REJECTED, meta, token=token, reason=reason)
        raise
    await attempt.succeeded()


def clock(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
