"""Web push behind one small interface.

Backends: `LogPush` writes each message to the log (development); `VapidPush` encrypts
for the browser (RFC 8291) and signs with the server's VAPID key (RFC 8292) through
`pywebpush`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PushTarget:
    """A browser's PushSubscription: where to post, and its keys (base64url)."""

    endpoint: str
    p256dh: str
    auth: str


class SubscriptionGone(Exception):
    """The push service answered 404 or 410: the subscription is over; drop it."""


class PushSender(Protocol):
    async def send(self, target: PushTarget, payload: bytes, key: str) -> None:
        """Deliver `payload` (JSON) to one subscription. Raises SubscriptionGone when the
        push service says it no longer exists, and other errors on failure."""
        ...


class LogPush:
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
