"""Web push behind one small interface.

Backends: `LogPush` writes each message to the log; `VapidPush` encrypts it for the
browser (RFC 8291, aes128gcm) and signs the request with the server's VAPID key
(RFC 8292) through `pywebpush`, posting it with pywebpush's aiohttp path so that the
event loop never waits on a push service.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
from py_vapid import Vapid02
from pywebpush import WebPusher

from documents.notifications.push_keys import (
    PRIVATE_KEY_BYTES,
    b64url_encode,
    private_key_of,
    public_key_text,
)

log = logging.getLogger(__name__)

CLAIMS_LIFETIME = 12 * 3600
"""Seconds a VAPID token is valid for; push services refuse more than 24 hours."""
URGENCY = "normal"
"""RFC 8030's Urgency: delivered promptly, without waking a device on low battery as
`high` would for every kind alike."""
TIMEOUT = aiohttp.ClientTimeout(total=10)
_GONE = frozenset({404, 410})


@dataclass(frozen=True, slots=True)
class PushTarget:
    """A browser's PushSubscription: where to post, and its keys (base64url)."""

    endpoint: str
    p256dh: str
    auth: str


class SubscriptionGone(Exception):
    """The push service answered 404 or 410: the subscription is over; drop it."""


class PushRefused(Exception):
    """The push service answered neither success nor gone (a bad request, a VAPID key it
    does not know for the subscription, too many messages, its own failure)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"the push service answered {status}: {detail}")
        self.status = status


class PushSender(Protocol):
    @property
    def application_server_key(self) -> str | None:
        """The public key browsers subscribe with (`pushManager.subscribe`'s
        `applicationServerKey`, base64url); None when nothing is sent to browsers."""
        ...

    async def send(self, target: PushTarget, payload: bytes, key: str) -> None:
        """Deliver `payload` (JSON) to one subscription. Raises SubscriptionGone when the
        push service says it no longer exists, and other errors on failure."""
        ...


class LogPush:
    application_server_key: str | None = None

    async def send(self, target: PushTarget, payload: bytes, key: str) -> None:
        log.info(
            "push to %s",
            target.endpoint,
            extra={
                "push_endpoint": target.endpoint,
                "push_payload": payload.decode(),
                "push_key": key,
            },
        )


@dataclass(frozen=True, slots=True)
class VapidKeys:
    """The server's VAPID key pair, as the settings and the data folder keep it."""

    private_key: str
    """The P-256 private key's 32 bytes, base64url."""
    public_key: str
    """Its public point, uncompressed, base64url: the application server key."""

    @classmethod
    def of(cls, private_key: str) -> VapidKeys:
        """The pair of `private_key` (base64url, padded or not), written without padding."""
        key = private_key_of(private_key)
        if key is None:
            raise ValueError("not a P-256 private key in base64url")
        scalar = key.private_numbers().private_value.to_bytes(PRIVATE_KEY_BYTES, "big")
        return cls(private_key=b64url_encode(scalar), public_key=public_key_text(key))


class VapidPush:
    """Web push to browsers' push services, signed as the server that they subscribed to.

    `connect` makes the connector each message is posted through (a fresh session per
    message, so nothing outlives a send); by default aiohttp's, with the system's DNS and
    certificate authorities.
    """

    def __init__(
        self,
        keys: VapidKeys,
        contact: str,
        *,
        ttl: timedelta,
        connect: Callable[[], aiohttp.BaseConnector] | None = None,
    ) -> None:
        self._vapid = Vapid02.from_raw(keys.private_key.encode())
        self._public_key = keys.public_key
        self._contact = contact
        self._ttl = int(ttl.total_seconds())
        self._connect = connect

    @property
    def application_server_key(self) -> str:
        return self._public_key

    async def send(self, target: PushTarget, payload: bytes, key: str) -> None:
        subscription = {
            "endpoint": target.endpoint,
            "keys": {"p256dh": target.p256dh, "auth": target.auth},
        }
        headers = {**self._vapid.sign(self._claims(target.endpoint)), "Urgency": URGENCY}
        connector = self._connect() if self._connect is not None else None
        async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
            pusher = WebPusher(subscription, aiohttp_session=session)
            response = await pusher.send_async(
                payload, headers, ttl=self._ttl, content_encoding="aes128gcm", timeout=TIMEOUT
            )
            status = response.status
            detail = (await response.text())[:200] if status >= 300 else ""
        if status in _GONE:
            raise SubscriptionGone(f"the push service answered {status}")
        if not 200 <= status < 300:
            raise PushRefused(status, detail or response.reason or "")
        log.debug("push %s sent to %s", key, _origin(target.endpoint))

    def _claims(self, endpoint: str) -> dict[str, str | int]:
        """The JWT claims RFC 8292 asks for: the push service's origin as the audience,
        an expiry within 24 hours, and who to contact."""
        return {
            "aud": _origin(endpoint),
            "exp": int(time.time()) + CLAIMS_LIFETIME,
            "sub": self._contact,
        }


def _origin(url: str) -> str:
    """The origin of an https URL as browsers write it: no default port, a lower-case host."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port not in (None, 443) else ""
    return f"{parts.scheme.lower()}://{host}{port}"
