"""Outgoing SMS behind one small interface.

Backends: `LogSms` writes each message to the log (development: nothing to set up);
`TwilioSms` sends through Twilio's Messages API with the official SDK.
"""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger(__name__)


class SmsSender(Protocol):
    async def send(self, to: str, body: str, key: str) -> None:
        """Send `body` to the E.164 number `to`; `key` names the message (for the log and
        for providers that take an idempotency key). Raises on failure."""
        ...


class LogSms:
    async def send(self, to: str, body: str, key: str) -> None:
        log.info("sms to %s", to, extra={"sms_to": to, "sms_body": body, "sms_key": key})
