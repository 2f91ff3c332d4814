"""The API with every channel beyond the app wired to a real receiver on this machine: the
SMTP relay (smtp_relay.py) that `SmtpMailer` delivers e-mail to, the fake Twilio
(fake_twilio.py) that the Twilio SDK texts through, and the push service
(push_service.py) that checks VAPID signatures and decrypts what browsers receive.

`open_channels` serves the API (its own SMS going through the fake Twilio, for phone
codes) and gives the services the background jobs run with: the same settings, mail
through the relay and push through the test's push service. `Channels.expect` then says
what arrived since it was last asked, on every channel at once, and checks each message
as its receiver shows it: every e-mail as a mail program reads it (its plain-text and
HTML parts, its unsubscribe headers), every SMS as Twilio took it, every push message as
the browser decrypts it.
"""

from __future__ import annotations

import dataclasses
import html
import ssl
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import httpx

from documents.notifications.catalogue import CATALOGUE, Channel, NotificationKind
from integrations.mail import Postman, SmtpMailer
from integrations.push import VapidPush
from resolvers.common.services import Services
from resolvers.notifications.scheduled import turn_due
from resolvers.notifications.sending import send_due
from server.runtime import Runtime, vapid_keys
from tests.conftest import serve, serve_asgi, with_settings
from tests.notifications.channels import push_service as pushing
from tests.notifications.channels.fake_twilio import SENDER, FakeTwilio, fake_twilio
from tests.notifications.channels.push_service import Browser, PushService
from tests.notifications.channels.smtp_relay import Received, SmtpRelay
from tests.notifications.conftest import twilio_settings
from tests.support.graphql_client import GraphQLClient, Tokens
from tests.support.marketplace import object_id

Key = tuple[str, Channel, NotificationKind | None, str]
"""Who, on which channel, which kind (None for an SMS: its text does not say), what title."""


@dataclass(frozen=True)
class Person:
    name: str
    email: str
    tokens: Tokens
    phone: str | None = None
    """Their verified number, if they gave one."""
    browser: Browser | None = None
    """The browser they subscribed for push, if any."""

    @property
    def user_id(self) -> str:
        return str(object_id(self.tokens.user_id))


@dataclass(frozen=True)
class Expect:
    """A message that should arrive: to whom, on which channel, what it says."""

    person: Person
    channel: Channel
    kind: NotificationKind
    title: str
    page: str
    """The web app's page it links to (`/bookings/<id>`)."""

    @property
    def key(self) -> Key:
        return (
            self.person.name,
            self.channel,
            None if self.channel is Channel.SMS else self.kind,
            self.title,
        )


@dataclass(frozen=True)
class Arrival:
    """A message one of the receivers took."""

    key: Key
    raw: Any
    """What the receiver holds: the relay's `Received`, Twilio's `Sent`, the push
    service's `Received`."""


@dataclass
class Channels:
    client: GraphQLClient
    """The API; its own SMS (phone codes) go through the fake Twilio."""
    base_url: str
    services: Services
    """What the background jobs run with: mail through the relay, push through the test's
    push service, SMS through the fake Twilio."""
    relay: SmtpRelay
    twilio: FakeTwilio
    push: PushService
    people: list[Person] = field(default_factory=list)
    _seen: dict[Channel, int] = field(default_factory=lambda: dict.fromkeys(Channel, 0))

    # --- the background jobs, at a moment of the test's choosing -------------------------

    async def send(self, now: datetime | None = None) -> int:
        """The outbox's sender, once: how many deliveries it handled."""
        return await send_due(self.services, now)

    async def turn_due(self, now: datetime | None = None) -> int:
        """The scheduled messages' job, once: how many messages it claimed."""
        return await turn_due(self.services, now)

    # --- what arrived ----------------------------------------------------------------------

    def arrived(self) -> list[Arrival]:
        """Every message the receivers took since the last call."""
        mails = self.relay.received[self._seen[Channel.EMAIL] :]
        texts = self.twilio.sent[self._seen[Channel.SMS] :]
        pushes = self.push.received[self._seen[Channel.PUSH] :]
        self._seen = {
            Channel.EMAIL: len(self.relay.received),
            Channel.SMS: len(self.twilio.sent),
            Channel.PUSH: len(self.push.received),
        }
        return [
            *(Arrival(self._mail_key(mail), mail) for mail in mails),
            *(Arrival(self._sms_key(text.to, text.body), text) for text in texts),
            *(Arrival(self._push_key(push), push) for push in pushes),
        ]

    def expect(self, *expected: Expect) -> None:
        """Exactly `expected` arrived since the last look, once each, each saying what it
        should on its channel."""
        arrived = self.arrived()
        assert self.push.refused == [], self.push.refused
        assert sorted(a.key for a in arrived) == sorted(e.key for e in expected)
        for expectation in expected:
            [arrival] = [a for a in arrived if a.key == expectation.key]
            if expectation.channel is Channel.EMAIL:
                self._check_mail(expectation, arrival.raw)
            elif expectation.channel is Channel.SMS:
                assert arrival.raw.body == self._sms_text(expectation), arrival.raw
                assert arrival.raw.sender == SENDER
            else:
                assert arrival.raw.message == {
                    "title": self.services.settings.marketplace_name,
                    "body": expectation.title,
                    "url": self.link(expectation.page),
                    "kind": expectation.kind.value,
                }

    def nothing_arrived(self) -> None:
        self.expect()

    def link(self, page: str) -> str:
        return self.services.settings.app_url + page

    def unsubscribe_link(self, person: Person, kind: NotificationKind) -> str | None:
        return self.services.unsubscribe_links.url(object_id(person.tokens.user_id), kind)

    def _person(self, match: Iterable[Person]) -> str:
        [person] = match
        return person.name

    def _mail_key(self, mail: Received) -> Key:
        message = mail.message
        # The Message-ID is the delivery's key, which ends with its kind and channel.
        message_id = str(message["Message-ID"]).strip("<>").split("@")[0]
        *_, kind, channel = message_id.split(".")
        assert channel == Channel.EMAIL.value, message_id
        to = self._person(p for p in self.people if [p.email] == mail.rcpt_tos)
        return (to, Channel.EMAIL, NotificationKind(kind), str(message["Subject"]))

    def _sms_key(self, number: str, body: str) -> Key:
        to = self._person(p for p in self.people if p.phone == number)
        prefix = f"{self.services.settings.marketplace_name}: "
        assert body.startswith(prefix), body
        title, _, _link = body.removeprefix(prefix).rpartition(" ")
        return (to, Channel.SMS, None, title)

    def _push_key(self, push: pushing.Received) -> Key:
        to = self._person(p for p in self.people if p.browser and p.browser.token == push.token)
        return (to, Channel.PUSH, NotificationKind(push.message["kind"]), push.message["body"])

    def _sms_text(self, expected: Expect) -> str:
        marketplace = self.services.settings.marketplace_name
        return f"{marketplace}: {expected.title} {self.link(expected.page)}"

    def _check_mail(self, expected: Expect, mail: Received) -> None:
        settings = self.services.settings
        message = mail.message
        person, link = expected.person, self.link(expected.page)
        assert mail.mail_from == parseaddr(settings.mail_from)[1]
        assert mail.rcpt_tos == [person.email]
        assert str(message["From"]) == settings.mail_from
        assert str(message["To"]) == person.email
        assert str(message["Subject"]) == expected.title
        assert message.get_content_type() == "multipart/alternative"
        text, page = mail.part("plain"), mail.part("html")
        unsubscribe = self.unsubscribe_link(person, expected.kind)
        assert (unsubscribe is not None) == CATALOGUE[expected.kind].optional

        lines = text.splitlines()
        assert lines[0] == expected.title, text
        assert link in lines, text
        assert "-- " in lines and lines[lines.index("-- ") + 1] == settings.marketplace_name
        assert f'<h1 style="font-size: 1.25em">{html.escape(expected.title)}</h1>' in page
        assert f'<a href="{html.escape(link)}">' in page, page
        assert html.escape(settings.marketplace_name) in page
        if unsubscribe is None:
            assert mail.header_as_sent("List-Unsubscribe") is None
            assert mail.header_as_sent("List-Unsubscribe-Post") is None
            assert "unsubscribe" not in text.lower() and "unsubscribe" not in page.lower()
        else:
            # RFC 8058: the link in angle brackets, and the one-click POST's body.
            # Mail programs read these fields as sent: an encoded word (RFC 2047) is no
            # link to them.
            sent = mail.header_as_sent("List-Unsubscribe")
            assert sent == f"<{unsubscribe}>", (sent, unsubscribe)
            assert mail.header_as_sent("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
            assert lines[-1] == f"Stop these e-mails: {unsubscribe}", text
            assert f'<a href="{html.escape(unsubscribe)}">Stop these e-mails</a>' in page


@asynccontextmanager
async def open_channels(runtime: Runtime, folder: Path, **changes: Any) -> AsyncIterator[Channels]:
    """The API served with `changes` to its settings and SMS through a fake Twilio; the
    jobs' services sending through the relay, Twilio and the push service."""
    made = pushing.certificates(folder)
    service = PushService(port=0, authority=ssl.create_default_context(cafile=str(made.authority)))
    async with (
        fake_twilio() as (twilio, twilio_url),
        serve_asgi(
            pushing.app(service), ssl_certfile=str(made.certificate), ssl_keyfile=str(made.key)
        ) as push_url,
    ):
        service.port = int(push_url.rsplit(":", 1)[1])
        changes = {**twilio_settings(twilio_url), **changes}
        with SmtpRelay() as relay:
            async with (
                serve(runtime, **changes) as url,
                httpx.AsyncClient(base_url=url, timeout=30) as http,
            ):
                services = with_settings(runtime, **changes).services
                settings = services.settings
                services = dataclasses.replace(
                    services,
                    postman=Postman(SmtpMailer(relay.config(settings.mail_from))),
                    push=VapidPush(
                        vapid_keys(settings),
                        settings.push_contact,
                        ttl=settings.push_ttl,
                        connect=service.connect,
                    ),
                )
                yield Channels(GraphQLClient(http), url, services, relay, twilio, service)
