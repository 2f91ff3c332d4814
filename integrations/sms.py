"""Outgoing SMS behind one small interface.

Backends: `LogSms` writes each message to the log (development: nothing to set up);
`TwilioSms` sends through Twilio's Messages API with the official SDK.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from typing import Any, Protocol

from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

log = logging.getLogger(__name__)

_sdk_log = logging.getLogger(f"{__name__}.twilio")
# The SDK logs every request's headers at INFO: only its warnings are worth a log line.
_sdk_log.setLevel(logging.WARNING)


class SmsFailed(Exception):
    """The provider did not take the message: it was down, slow or refused the request.
    Sending it again later may work."""


class NumberUnreachable(SmsFailed):
    """The provider will not send to this number (not a valid mobile number, a landline,
    a region not enabled, the person unsubscribed): sending again does not help."""


class SmsSender(Protocol):
    async def send(self, to: str, body: str, key: str) -> None:
        """Send `body` to the E.164 number `to`; `key` names the message (for the log and
        for providers that take an idempotency key). Raises NumberUnreachable when the
        provider will not send to `to`, SmsFailed when it did not take the message."""
        ...


class LogSms:
    async def send(self, to: str, body: str, key: str) -> None:
        log.info("sms to %s", to, extra={"sms_to": to, "sms_body": body, "sms_key": key})


UNREACHABLE_CODES = frozenset({21211, 21408, 21608, 21610, 21612, 21614, 21635})
"""Twilio's error codes for a `To` number it will not send to: invalid (21211), a region
not enabled (21408), unverified on a trial account (21608), unsubscribed by STOP
(21610), not routable (21612), not a mobile number (21614), a landline (21635)."""
MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
TIMEOUT_SECONDS = 10.0
"""How long one request to Twilio may take, connecting and reading."""


@dataclass(frozen=True)
class TwilioConfig:
    account_sid: str
    auth_token: str
    sender: str
    """A Twilio number (E.164), an alphanumeric sender ID, or a Messaging Service SID
    (`MG...`), from whose pool of senders Twilio then picks."""
    api_base: str | None = None
    """Another server speaking Twilio's API instead of https://api.twilio.com."""


class TwilioSms:
    """Twilio's Messages API, through the official SDK.

    The SDK's async client (aiohttp) ignores the timeout it is given (a call that passes
    none waits for ever) and holds an aiohttp session bound to the event loop it was made
    on, which would have to be closed on that loop; its synchronous client (requests)
    applies its timeout and keeps a connection pool, so messages go through that, in a
    worker thread. Requests are not retried here: the Messages API takes no idempotency
    key, and a retried POST whose first answer was lost would send the message twice. The
    outbox retries a failed delivery later instead (resolvers/notifications/outbox.py).
    """

    def __init__(self, config: TwilioConfig) -> None:
        self._client = Client(
            config.account_sid,
            config.auth_token,
            http_client=TwilioHttpClient(timeout=TIMEOUT_SECONDS, logger=_sdk_log),
        )
        if config.api_base is not None:
            self._client.api.base_url = config.api_base.rstrip("/")
            # TWILIO_EDGE or TWILIO_REGION in the environment would rewrite its host name.
            self._client.edge = self._client.region = None
        self._sender: dict[str, str] = (
            {"messaging_service_sid": config.sender}
            if MESSAGING_SERVICE_SID.match(config.sender)
            else {"from_": config.sender}
        )

    async def send(self, to: str, body: str, key: str) -> None:
        sid = await asyncio.to_thread(self._create, to, body)
        log.info("sms %s sent", key, extra={"sms_key": key, "sms_sid": sid})

    def _create(self, to: str, body: str) -> str:
        try:
            message: Any = self._client.messages.create(to=to, body=body, **self._sender)
        except TwilioException as error:
            # TwilioRestException, or TwilioServiceException for RFC 9457 answers.
            status = getattr(error, "status", None)
            code = getattr(error, "code", None)
            detail = getattr(error, "msg", None) or getattr(error, "detail", None) or ""
            reason = f"Twilio answered {status} (error {code}): {detail}".rstrip(": ")
            if code in UNREACHABLE_CODES:
                raise NumberUnreachable(reason) from error
            raise SmsFailed(reason) from error
        except OSError as error:  # requests' errors (refused, timed out) are OSErrors
            raise SmsFailed(f"Twilio did not answer: {type(error).__name__}") from error
        return str(message.sid)
