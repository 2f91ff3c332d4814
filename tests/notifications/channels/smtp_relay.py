"""An SMTP relay on a loopback port (aiosmtpd, a real SMTP server in a thread of its own),
which the server's `SmtpMailer` delivers to as it would to a production relay, and which
can go down and come back on the same port.

Every message it takes is kept as it arrived (the envelope and the bytes), and parsed as
a mail program reads it (`email.policy.default`), for the tests to read its headers and
its plain-text and HTML parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from integrations.mail import SmtpConfig
from server.embedded import free_port


@dataclass(frozen=True)
class Received:
    """A message the relay took."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def header_as_sent(self, name: str) -> str | None:
        """The field's value as the bytes on the wire give it, unfolded (RFC 5322) but not
        decoded: what a mail program reads from a field where RFC 2047 encoded words have
        no place, such as List-Unsubscribe (RFC 2369)."""
        head = self.raw.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
        fields: list[str] = []
        for line in head.decode("ascii").split("\n"):
            if line[:1] in (" ", "\t") and fields:
                fields[-1] += line
            else:
                fields.append(line)
        values = [
            value.strip()
            for field_name, _, value in (f.partition(":") for f in fields)
            if field_name.lower() == name.lower()
        ]
        assert len(values) <= 1, values
        return values[0] if values else None

    def part(self, subtype: str) -> str:
        """The decoded text of the `text/<subtype>` part."""
        body = self.message.get_body(preferencelist=(subtype,))
        assert body is not None and body.get_content_type() == f"text/{subtype}", (
            subtype,
            self.raw,
        )
        content: str = body.get_content()
        return content


@dataclass
class _Recorder:
    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.content)
        )
        return "250 OK"


class SmtpRelay:
    """A relay on a fixed loopback port: `stop` takes it down (connections are refused),
    `start` brings it back on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self._recorder = _Recorder()
        self._controller: Controller | None = None

    @property
    def received(self) -> list[Received]:
        return self._recorder.received

    def config(self, sender: str) -> SmtpConfig:
        """How the server reaches this relay: plain SMTP on loopback, no login."""
        return SmtpConfig(
            host="127.0.0.1", port=self.port, sender=sender, starttls=False, timeout=5
        )

    def start(self) -> None:
        assert self._controller is None, "already running"
        self._controller = Controller(self._recorder, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpRelay:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
