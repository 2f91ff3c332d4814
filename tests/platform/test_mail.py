"""Mail backends: SMTP against a real SMTP server on a loopback port, and the console."""

from __future__ import annotations

import asyncio
import logging
from email import message_from_bytes

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Sink

from integrations.mail import ConsoleMailer, Mail, Postman, SmtpConfig, SmtpMailer
from server.embedded import free_port


class Recorder(Sink):
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages.append((envelope.mail_from, envelope.rcpt_tos, envelope.content))  # type: ignore[attr-defined]
        return "250 OK"


async def test_smtp_backend_delivers_to_a_real_smtp_server() -> None:
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        mailer = SmtpMailer(
            SmtpConfig(
                host="127.0.0.1",
                port=controller.port,
                sender="gigql <no-reply@example.com>",
                starttls=False,
            )
        )
        await mailer.send(
            Mail(to="ana@example.com", subject="Confirm your e-mail address", text="Hello Ana")
        )
    finally:
        controller.stop()
    [(sender, recipients, content)] = recorder.messages
    assert sender == "no-reply@example.com" and recipients == ["ana@example.com"]
    parsed = message_from_bytes(content)
    assert parsed["Subject"] == "Confirm your e-mail address"
    assert parsed.get_payload().strip() == "Hello Ana"  # type: ignore[union-attr]


async def test_a_long_unsubscribe_link_is_sent_as_it_is_not_as_encoded_words() -> None:
    """RFC 2369 fields hold URLs; mail programs do not decode RFC 2047 words there."""
    link = (
        "https://api.example.com/notifications/unsubscribe?token=1." + "a" * 24 + ".x." + "b" * 22
    )
    recorder = Recorder()
    controller = Controller(recorder, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        mailer = SmtpMailer(
            SmtpConfig(
                host="127.0.0.1", port=controller.port, sender="a@example.com", starttls=False
            )
        )
        await mailer.send(
            Mail(
                to="ana@example.com",
                subject="Your booking is confirmed",
                text="Hello Ana",
                html="<p>Hello Ana</p>",
                headers=(("List-Unsubscribe", f"<{link}>"),),
            )
        )
    finally:
        controller.stop()
    [(_sender, _recipients, content)] = recorder.messages
    assert f"\r\nList-Unsubscribe: <{link}>\r\n".encode() in content


async def test_a_failed_delivery_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    postman = Postman(
        SmtpMailer(
            SmtpConfig(host="127.0.0.1", port=free_port(), sender="x@example.com", timeout=2)
        )
    )
    with caplog.at_level(logging.ERROR):
        postman.post(Mail(to="ana@example.com", subject="Hi", text="body"))
        await asyncio.wait_for(postman.drain(), 10)
    assert any("could not deliver mail" in r.getMessage() for r in caplog.records)


async def test_console_backend_logs_the_message(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="integrations.mail"):
        await ConsoleMailer().send(
            Mail(to="bo@example.com", subject="Reset your password", text="token=abc")
        )
    [record] = [r for r in caplog.records if r.name == "integrations.mail"]
    assert record.getMessage() == "mail to bo@example.com: Reset your password"
    assert record.mail_text == "token=abc"  # type: ignore[attr-defined]
