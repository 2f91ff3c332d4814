"""Posting signed webhooks to partners' endpoints.

Each delivery is signed the way Stripe signs the events it sends us
(integrations/payments/webhooks.py):

    Gigql-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<raw body>">[,v1=...]

with one `v1` per signing secret the endpoint holds (the newest first), so that during
a secret's rotation a receiver checking either secret accepts it.

A post counts as delivered only on a 2xx answer; redirects are not followed (a 3xx is
a failure like any other), proxies from the environment are not used, and only the
first `ANSWER_LIMIT` bytes of an answer are read. Unless private hosts are allowed
(development), the connector refuses, at connect time, any address that is not
globally reachable (integrations/public_addresses.py): a public name that resolves to
a private address reaches nothing, and neither does an address literal in the URL.

What went wrong is recorded for the partner to read in its deliveries, so a failure to
connect (a refused address, a name that does not resolve, a connection refused or
reset) is only ever `COULD_NOT_CONNECT`: the cause, which could tell a partner which
of our internal host names exist, goes to the server log alone.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import ipaddress
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from integrations.public_addresses import globally_reachable

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Gigql-Signature"
EVENT_ID_HEADER = "Gigql-Event-Id"
SCHEME = "v1"
ANSWER_LIMIT = 1024
"""Bytes of a receiver's answer (or characters of an error) that are kept."""
USER_AGENT = "gigql-webhooks/1"
CONNECTIONS = 20
"""Connections one session keeps open at once, over all hosts."""
COULD_NOT_CONNECT = "could not connect"
"""What a partner is told of every connection-level failure (the cause is logged)."""
NO_ANSWER = "no answer within the timeout"


def signature(body: bytes, secret: str, timestamp: int) -> str:
    """The hex HMAC-SHA256, under `secret`, of `<timestamp>.<body>`."""
    signed = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def signature_header(body: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """`t=<timestamp>,v1=<signature>` with one `v1` per secret, in the order given."""
    assert secrets, "an endpoint always has a signing secret"
    signed = ",".join(f"{SCHEME}={signature(body, secret, timestamp)}" for secret in secrets)
    return f"t={timestamp},{signed}"


class NonPublicAddress(OSError):
    """The host is, or resolves only to, addresses that are not globally reachable."""

    def __init__(self, message: str) -> None:
        # As (errno, strerror), so that aiohttp's connection error shows the message.
        super().__init__(errno.EACCES, message)


class PublicOnlyResolver(AbstractResolver):
    """Resolves with `inner` and keeps only globally reachable addresses; raises
    NonPublicAddress when none is left, so that no connection is made."""

    def __init__(self, inner: AbstractResolver) -> None:
        self.inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self.inner.resolve(host, port, family)
        public = [r for r in found if globally_reachable(ipaddress.ip_address(r["host"]))]
        if not public:
            raise NonPublicAddress(f"{host} resolves to no public address")
        return public

    async def close(self) -> None:
        await self.inner.close()


@dataclass(frozen=True, slots=True)
class Answer:
    """What came of one post."""

    status_code: int | None
    """The receiver's HTTP status; None when it did not answer."""
    body: str
    """The start of its answer, or what went wrong."""
    duration_ms: int

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookPoster:
    """Posts webhook bodies, each within `timeout`, connecting within `connect_timeout`
    (a host that drops packets is given up on soon). `resolver` makes the DNS resolver
    of each session (by default aiohttp's); unless `allow_private`, it is wrapped in
    PublicOnlyResolver."""

    def __init__(
        self,
        *,
        timeout: timedelta,
        allow_private: bool,
        connect_timeout: timedelta | None = None,
        resolver: Callable[[], AbstractResolver] | None = None,
    ) -> None:
        self.timeout = aiohttp.ClientTimeout(
            total=timeout.total_seconds(),
            sock_connect=connect_timeout.total_seconds() if connect_timeout else None,
        )
        self.allow_private = allow_private
        self._resolver = resolver or DefaultResolver

    @asynccontextmanager
    async def session(self) -> AsyncIterator[PosterSession]:
        """A session to post through (its connections are reused within it, closed after)."""
        resolver = self._resolver()
        if not self.allow_private:
            resolver = PublicOnlyResolver(resolver)
        connector = aiohttp.TCPConnector(resolver=resolver, limit=CONNECTIONS)
        async with aiohttp.ClientSession(
            connector=connector, timeout=self.timeout, trust_env=False
        ) as http:
            yield PosterSession(http, self.allow_private)


class PosterSession:
    def __init__(self, http: aiohttp.ClientSession, allow_private: bool) -> None:
        self._http = http
        self._allow_private = allow_private

    async def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> Answer:
        """Post `body` to `url`; never raises for what the receiver or the network does."""
        started = time.monotonic()
        try:
            self._check_literal(url)
            async with self._http.post(
                url,
                data=body,
                headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
                allow_redirects=False,
            ) as response:
                start = await response.content.read(ANSWER_LIMIT)
                return Answer(response.status, start.decode(errors="replace"), _since(started))
        except TimeoutError:
            return Answer(None, NO_ANSWER, _since(started))
        except (aiohttp.ClientError, OSError, ValueError) as error:
            log.info("partner webhook post to %s failed: %s: %s", url, type(error).__name__, error)
            return Answer(None, COULD_NOT_CONNECT, _since(started))

    def _check_literal(self, url: str) -> None:
        """An address in the URL itself is never resolved, so it is checked here."""
        if self._allow_private:
            return
        host = urlsplit(url).hostname or ""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return
        if not globally_reachable(address):
            raise NonPublicAddress(f"{host} is not a public address")


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)
