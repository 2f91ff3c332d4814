"""Twilio's Messages API, as much of it as sending an SMS with the SDK uses, on a loopback
port: the real SDK is pointed at it (GIGQL_TWILIO_API_BASE) and nothing else is faked.

`POST /2010-04-01/Accounts/{AccountSid}/Messages.json` takes a form-encoded `To`, `Body`
and `From` or `MessagingServiceSid`, with HTTP Basic auth of the account SID and auth
token, and answers as Twilio does: 201 with the message resource in JSON, or an error
object (`code`, `message`, `more_info`, `status`) with Twilio's codes for a wrong login
(20003), a missing parameter (21602, 21603, 21604) and a number it will not text (21614).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import serve_asgi

ACCOUNT_SID = "AC" + "5" * 32
AUTH_TOKEN = "fake-twilio-auth-token-0123456789"
SENDER = "+15005550006"
MESSAGES = "/2010-04-01/Accounts/{account_sid}/Messages.json"


@dataclass(frozen=True)
class Sent:
    """A message Twilio accepted."""

    sid: str
    to: str
    body: str
    sender: str | None
    """`From`, when given."""
    messaging_service_sid: str | None
    user_agent: str


@dataclass
class FakeTwilio:
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    sent: list[Sent] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)
    """The Twilio error code of every request answered with an error."""
    unreachable: set[str] = field(default_factory=set)
    """Numbers answered with 21614 (not a mobile number)."""
    down: bool = False
    """Answer every request 503, as Twilio does when it cannot take one."""
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> Starlette:
        return Starlette(routes=[Route(MESSAGES, self._create, methods=["POST"])])

    def to(self, number: str) -> list[Sent]:
        return [message for message in self.sent if message.to == number]

    async def wait_for(self, number: str, count: int = 1, timeout: float = 5.0) -> list[Sent]:
        """The first `count` messages to `number`, waiting for them to arrive."""
        async with asyncio.timeout(timeout):
            while len(self.to(number)) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.to(number)[:count]

    async def _create(self, request: Request) -> JSONResponse:
        if self.down:
            return self._error(503, 20500, "Service Unavailable")
        if not self._signed_in(request.headers.get("authorization", "")):
            return self._error(401, 20003, "Authenticate")
        if request.path_params["account_sid"] != self.account_sid:
            return self._error(404, 20404, "The requested resource was not found")
        if request.headers.get("content-type") != "application/x-www-form-urlencoded":
            return self._error(400, 20001, "Unsupported content type")
        form = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
        to, body = form.get("To"), form.get("Body")
        sender, service = form.get("From"), form.get("MessagingServiceSid")
        if not to:
            return self._error(400, 21604, "A 'To' phone number is required.")
        if not body:
            return self._error(400, 21602, "Message body is required.")
        if not sender and not service:
            return self._error(400, 21603, "A 'From' phone number is required.")
        if to in self.unreachable:
            return self._error(400, 21614, f"'To' number {to} is not a valid mobile number")
        message = Sent(
            sid="SM" + secrets.token_hex(16),
            to=to,
            body=body,
            sender=sender,
            messaging_service_sid=service,
            user_agent=request.headers.get("user-agent", ""),
        )
        self.sent.append(message)
        self._arrived.set()
        return JSONResponse(self._resource(message), status_code=201)

    def _signed_in(self, authorization: str) -> bool:
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            pair = base64.b64decode(credentials, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return False
        return secrets.compare_digest(pair, f"{self.account_sid}:{self.auth_token}")

    def _resource(self, message: Sent) -> dict[str, object]:
        now = format_datetime(datetime.now(UTC), usegmt=True)
        path = MESSAGES.format(account_sid=self.account_sid).removesuffix(".json")
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": message.body,
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": message.sender,
            "messaging_service_sid": message.messaging_service_sid,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": message.sid,
            "status": "queued" if message.sender else "accepted",
            "subresource_uris": {"media": f"{path}/{message.sid}/Media.json"},
            "to": message.to,
            "uri": f"{path}/{message.sid}.json",
        }

    def _error(self, status: int, code: int, message: str) -> JSONResponse:
        self.refused.append(code)
        return JSONResponse(
            {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            },
            status_code=status,
        )


@asynccontextmanager
async def fake_twilio() -> AsyncIterator[tuple[FakeTwilio, str]]:
    """A fake Twilio served on a free loopback port, and its base URL."""
    fake = FakeTwilio()
    async with serve_asgi(fake.app()) as url:
        yield fake, url
