"""Outgoing e-mail behind one small interface.

Backends: `ConsoleMailer` writes each message to the log (development), `SmtpMailer`
delivers through an SMTP relay, `MemoryMailer` keeps an outbox that tests read.
`Postman` sends in the background so that a request never waits for (or reveals the
timing of) a delivery.
"""

from __future__ import annotations

import asyncio
import logging
import smtplib
import ssl
from collections.abc import Callable, Coroutine
from contextvars import Context
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    text: str
    """The plain-text part; every mail has one."""
    html: str | None = None
    """An HTML alternative, for notifications (account mails are plain text only)."""
    headers: tuple[tuple[str, str], ...] = ()
    """More header fields: Message-ID, List-Unsubscribe and List-Unsubscribe-Post."""

    def __post_init__(self) -> None:
        # Header values: a line break in one would start a header of its own.
        values = (self.to, self.subject, *(v for pair in self.headers for v in pair))
        if any(c in value for value in values for c in "\r\n"):
            raise ValueError("a mail header value must be one line")

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key.lower() == name.lower()), None)


class Mailer(Protocol):
    async def send(self, mail: Mail) -> None: ...


class ConsoleMailer:
    async def send(self, mail: Mail) -> None:
        log.info(
            "mail to %s: %s",
            mail.to,
            mail.subject,
            extra={"mail_to": mail.to, "mail_subject": mail.subject, "mail_text": mail.text},
        )


class MemoryMailer:
    def __init__(self) -> None:
        self.outbox: list[Mail] = []
        self._arrived = asyncio.Event()

    async def send(self, mail: Mail) -> None:
        self.outbox.append(mail)
        self._arrived.set()

    async def wait_for(self, match: Callable[[Mail], bool], timeout: float = 5.0) -> Mail:
        """The first message in the outbox that matches, waiting for it to arrive."""
        async with asyncio.timeout(timeout):
            while True:
                for mail in self.outbox:
                    if match(mail):
                        return mail
                self._arrived.clear()
                await self._arrived.wait()


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    sender: str
    username: str | None = None
    password: str | None = None
    starttls: bool = True
    timeout: float = 10.0


_SENT_AS = policy.default.clone(max_line_length=998)
"""How mail is written out: header lines up to RFC 5322's limit of 998 characters (78 is
only a SHOULD). At 78, the generator cannot fold a field with no space to fold at, such
as List-Unsubscribe's link (longer than that with any GIGQL_PUBLIC_URL), and writes it
as RFC 2047 encoded words, which mail programs do not decode in that field (RFC 2369):
no unsubscribe button, and no link."""


class SmtpMailer:
    def __init__(self, config: SmtpConfig) -> None:
        self._config = config

    async def send(self, mail: Mail) -> None:
        message = EmailMessage()
        message["From"] = self._config.sender
        message["To"] = mail.to
        message["Subject"] = mail.subject
        for name, value in mail.headers:
            message[name] = value
        message.set_content(mail.text)
        if mail.html is not None:
            message.add_alternative(mail.html, subtype="html")
        # The parts' encodings are chosen above, for lines of 78; only the headers' folding
        # changes.
        message.policy = _SENT_AS
        # smtplib blocks; a thread keeps the event loop free.
        await asyncio.to_thread(self._deliver, message)

    def _deliver(self, message: EmailMessage) -> None:
        config = self._config
        with smtplib.SMTP(config.host, config.port, timeout=config.timeout) as smtp:
            if config.starttls:
                smtp.starttls(context=ssl.create_default_context())
            if config.username and config.password:
                smtp.login(config.username, config.password)
            smtp.send_message(message)


class Postman:
    """Delivers mail in background tasks; `drain` waits for them at shutdown."""

    def __init__(self, mailer: Mailer) -> None:
        self.mailer = mailer
        self._pending: set[asyncio.Task[None]] = set()

    def post(self, mail: Mail) -> None:
        self._track(asyncio.create_task(self._deliver(mail)))

    def post_when_ready(
        self, compose: Coroutine[Any, Any, Mail | None], context: Context | None = None
    ) -> None:
        """Run `compose` in the background (in `context`, if given) and send the mail it
        returns, if any: for mails whose preparing (finding the account, storing a token)
        must not show in the timing of the request that asked for them."""
        self._track(asyncio.create_task(self._compose(compose), context=context))

    async def _compose(self, compose: Coroutine[Any, Any, Mail | None]) -> None:
        try:
            mail = await compose
        except Exception:
            log.exception("could not prepare a mail")
            return
        if mail is not None:
            await self._deliver(mail)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _deliver(self, mail: Mail) -> None:
        try:
            await self.mailer.send(mail)
        except Exception:
            log.exception("could not deliver mail %r to %s", mail.subject, mail.to)

    async def drain(self) -> None:
        if self._pending:
            await asyncio.wait(set(self._pending))
