"""Every check of a secret, counted per client address: passwords, refresh and mailed
tokens, codes texted to a phone.

Two counts per address and window: the checks that failed, and the checks under way. A
check may start only while the two together are under `login_ip_max_failures`: however
many requests a client sends at once, and however many right answers it mixes in (its
own account's password, its own refresh token), it gets at most that many wrong ones a
window, whichever accounts or tokens they name. Beyond that it is refused
(TOO_MANY_ATTEMPTS) before anything is checked, and the refusal is audited. Addresses
are counted as the rate limits count them (an IPv6 /64 as one).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

from documents.accounts.audit import AuditKind
from documents.errors import DomainError, ErrorCode
from resolvers.accounts import audit
from resolvers.accounts.auth.throttle import Throttle
from resolvers.common.client_addresses import address_key
from resolvers.common.services import RequestMeta, Services


@dataclass(slots=True)
class Attempt:
    """A secret check under way; marked `wrong` if the secret was."""

    wrong: bool = False


@asynccontextmanager
async def attempt(
    services: Services, meta: RequestMeta, refusal: AuditKind, **details: Any
) -> AsyncIterator[Attempt]:
    """A check by this client, made inside; refused (audited as `refusal`) past the limit.
    Counted as under way until the block ends, then as a failure if marked wrong."""
    failures = _failures(services)
    under_way = Throttle("login-ip-checking", failures.limit, failures.window)
    client = address_key(meta.ip)
    if await under_way.hit(client) + await failures.count(client) > failures.limit:
        await under_way.forgive(client)
        await _refuse(failures, meta, refusal, **details)
    check = Attempt()
    try:
        yield check
    finally:
        if check.wrong:
            await failures.hit(client)
        await under_way.forgive(client)


async def refuse_if_throttled(
    services: Services, meta: RequestMeta, refusal: AuditKind, **details: Any
) -> None:
    """For a secret of such entropy that guessing it is hopeless, checked on every request
    (a partner's API key): refused (audited as `refusal`) once this client has had as
    many failures this window as `attempt` allows. Right checks are not counted, even
    while under way: a partner's servers send many requests at once from one address."""
    failures = _failures(services)
    if await failures.count(address_key(meta.ip)) >= failures.limit:
        await _refuse(failures, meta, refusal, **details)


async def count_wrong(services: Services, meta: RequestMeta) -> None:
    """One failed check by this client, as `attempt` counts a wrong secret."""
    await _failures(services).hit(address_key(meta.ip))


def _failures(services: Services) -> Throttle:
    settings = services.settings
    return Throttle("login-ip", settings.login_ip_max_failures, settings.login_ip_window)


async def _refuse(
    failures: Throttle, meta: RequestMeta, refusal: AuditKind, **details: Any
) -> NoReturn:
    await audit.record(refusal, meta, reason="ip_throttled", **details)
    raise DomainError(
        ErrorCode.TOO_MANY_ATTEMPTS,
        "Too many failed attempts from this network; "
        f"try again after {clock(failures.retry_after())}.",
    )


# A token that was not right; the rest (a suspended account, a weak new password) come
# after a right one.
_WRONG_TOKEN = {
    ErrorCode.INVALID_TOKEN: "invalid",
    ErrorCode.TOKEN_EXPIRED: "expired",
    ErrorCode.TOKEN_REUSED: "reused",
}


@asynccontextmanager
async def token_check(services: Services, meta: RequestMeta, token: str) -> AsyncIterator[None]:
    """Count the check of a token (`token` names its kind) made inside, as `attempt`; a
    wrong one counts as a failure and is audited."""
    async with attempt(services, meta, AuditKind.TOKEN_REJECTED, token=token) as check:
        try:
            yield
        except DomainError as error:
            if error.code in _WRONG_TOKEN:
                check.wrong = True
                if error.code is not ErrorCode.TOKEN_REUSED:  # audited as such where found
                    reason = _WRONG_TOKEN[error.code]
                    await audit.record(AuditKind.TOKEN_REJECTED, meta, token=token, reason=reason)
            raise


def clock(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")
