"""A home cleaning booked, from the request to the review, with every message beyond the
app arriving where README's table of notifications says it goes: e-mail through a real
SMTP relay (`SmtpMailer`), SMS through the Twilio SDK to a fake Twilio, web push
through a push service that checks the VAPID signature and decrypts the message as the
browser does (tests/notifications/channels/every_channel.py).

Tom cleans homes in Sydney; he verified his phone and subscribed a browser. Ann books
him; she subscribed a browser and gave no phone. After each step the background jobs
run once (the scheduled messages' at the moment the test names), and exactly the
expected messages must have arrived, each once, each saying what it should.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest

from documents.clock import utcnow
from documents.notifications.catalogue import Channel, NotificationKind
from documents.notifications.deliveries import Delivery, DeliveryStatus
from resolvers.notifications.outbox import MAX_ATTEMPTS, backoff
from server.runtime import Runtime
from tests.notifications.channels.every_channel import Channels, Expect, Person, open_channels
from tests.notifications.channels.push_service import Browser
from tests.support.bookings import act, booked, create_package, provider, slots
from tests.support.graphql_client import GraphQLClient, Tokens
from tests.support.marketplace import aud, logged_in_admin, object_id
from tests.support.payments.escrow import booking_escrow, onboard, pay_booking, sandbox
from tests.support.reviews import reviewed

K = NotificationKind
EMAIL, SMS, PUSH = Channel.EMAIL, Channel.SMS, Channel.PUSH
SYDNEY = "Australia/Sydney"
PACKAGE = "Home cleaning, 3 bedrooms"
PRICE = 15000
"""A$150.00; with the customer's 10 % service fee, A$165.00 charged."""
PAID = "165.00 AUD paid into escrow"
TOM_PHONE = "+61412345678"
SETTINGS: dict[str, Any] = {
    "marketplace_name": "Sparkle & Shine",
    "app_url": "https://app.sparkle.example",
    "public_url": "https://api.sparkle.example",
    "mail_from": "Sparkle & Shine <hello@sparkle.example>",
    # Tom starts the job the moment the test is done with the reminders (a day or so
    # before its start time on the clock the server reads).
    "booking_start_window": timedelta(days=2),
}


@pytest.fixture
async def channels(runtime: Runtime, tmp_path: Path) -> AsyncIterator[Channels]:
    async with open_channels(runtime, tmp_path, **SETTINGS) as opened:
        yield opened


def to(person: Person, kind: K, title: str, page: str, *on: Channel) -> list[Expect]:
    return [Expect(person, channel, kind, title, page) for channel in on]


async def subscribed(channels: Channels, who: Tokens) -> Browser:
    """A browser of `who`'s, subscribed for push as the web app subscribes it."""
    browser = channels.push.browser()
    registered = await channels.client.mutate(
        "registerPushSubscription",
        browser.subscription(),
        "subscription { endpoint }",
        token=who.access,
    )
    assert registered["errors"] == [], registered
    return browser


async def verified_phone(channels: Channels, who: Tokens, number: str) -> None:
    """`number` verified by `who` with the code the fake Twilio received."""
    client = channels.client
    fields = "phone { number verified }"
    started = await client.mutate(
        "startPhoneVerification", {"phone": number}, fields, token=who.access
    )
    assert started["errors"] == [] and started["phone"]["verified"] is False, started
    [code_sms] = channels.twilio.to(number)
    code = re.search(r"\b(\d{6})\b", code_sms.body)
    assert code is not None, code_sms.body
    confirmed = await client.mutate(
        "confirmPhoneVerification", {"code": code.group(1)}, fields, token=who.access
    )
    assert confirmed["errors"] == [] and confirmed["phone"] == {"number": number, "verified": True}


async def cast(channels: Channels, runtime: Runtime) -> tuple[Person, Person, str]:
    """Tom (provider: phone verified, a browser, payouts set up) with his package, and
    Ann (customer: a browser, no phone). Nothing but Tom's code has reached anyone."""
    client = channels.client
    tom_tokens = await provider(client, "tom@example.com", name="Tom Nguyen", time_zone=SYDNEY)
    await onboard(client, runtime, tom_tokens)
    await verified_phone(channels, tom_tokens, TOM_PHONE)
    tom = Person(
        "Tom Nguyen",
        "tom@example.com",
        tom_tokens,
        phone=TOM_PHONE,
        browser=await subscribed(channels, tom_tokens),
    )
    ann_tokens = await client.member("ann@example.com", name="Ann Lee", roles=("POSTER",))
    ann = Person(
        "Ann Lee", "ann@example.com", ann_tokens, browser=await subscribed(channels, ann_tokens)
    )
    channels.people = [tom, ann]
    [code] = channels.arrived()
    assert code.key[:2] == ("Tom Nguyen", SMS) and "is your code" in code.key[3]
    package = await create_package(
        client,
        tom_tokens,
        name=PACKAGE,
        description="Kitchen, two bathrooms, floors and windows inside.",
        price=aud(PRICE),
        durationMinutes=180,
    )
    package_id: str = package["id"]
    return tom, ann, package_id


async def slot_from(
    client: GraphQLClient, tom: Person, package_id: str, earliest: datetime
) -> datetime:
    """Tom's first open start at or after `earliest`."""
    for days in range(3):
        day = (earliest + timedelta(days=days)).date()
        for start in await slots(client, tom.tokens.user_id, package_id, day):
            if datetime.fromisoformat(start) >= earliest:
                return datetime.fromisoformat(start)
    raise AssertionError("Tom has no open slot")


def page_of(booking: dict[str, Any]) -> str:
    return f"/bookings/{object_id(booking['id'])}"


async def requested(
    channels: Channels, tom: Person, ann: Person, package_id: str, hours_ahead: int = 30
) -> tuple[dict[str, Any], datetime]:
    """Ann's request for Tom's first slot `hours_ahead` from now, and its start; Tom has
    had it on all three channels."""
    start = await slot_from(
        channels.client, tom, package_id, utcnow() + timedelta(hours=hours_ahead)
    )
    booking = await booked(channels.client, ann.tokens, package_id, start.isoformat())
    channels.nothing_arrived()  # nothing is sent inside the request
    assert await channels.send() == 3
    local = start.astimezone(ZoneInfo(SYDNEY))
    title = f"Ann Lee asks to book “{PACKAGE}” at {local:%a %d %b %Y %H:%M %Z}"
    channels.expect(*to(tom, K.BOOKING_REQUESTED, title, page_of(booking), EMAIL, SMS, PUSH))
    return booking, start


CONFIRMED = f"The booking of “{PACKAGE}” was confirmed"


async def confirmed(channels: Channels, tom: Person, booking: dict[str, Any]) -> None:
    payload = await act(channels.client, "confirmBooking", tom.tokens, booking["id"])
    assert payload["errors"] == [] and payload["booking"]["status"] == "CONFIRMED", payload


async def paid(channels: Channels, runtime: Runtime, ann: Person, booking: dict[str, Any]) -> None:
    escrow = await booking_escrow(channels.client, ann.tokens, booking["id"])
    assert escrow is not None
    fees = escrow["fees"]
    assert (fees["price"]["amount"], fees["customerFee"]["amount"]) == (PRICE, 1500)
    assert fees["charged"]["amount"] == 16500
    await pay_booking(channels.client, ann.tokens, booking["id"])
    await sandbox(runtime).drain()


async def test_a_home_cleaning_reaches_everyone_on_their_channels_from_request_to_review(
    channels: Channels, runtime: Runtime
) -> None:
    client = channels.client
    tom, ann, package_id = await cast(channels, runtime)

    # Ann asks: Tom hears of it by e-mail, SMS and push.
    booking, start = await requested(channels, tom, ann, package_id)
    page = page_of(booking)
    assert start - utcnow() > timedelta(hours=24)  # every reminder is still ahead

    # Tom confirms: Ann hears of it by e-mail and push.
    await confirmed(channels, tom, booking)
    assert await channels.send() == 2
    channels.expect(*to(ann, K.BOOKING_CONFIRMED, CONFIRMED, page, EMAIL, PUSH))

    # Ann pays: her receipt by e-mail (the one kind here that cannot be turned off: no
    # unsubscribe link); Tom hears the work is funded by e-mail and push.
    await paid(channels, runtime, ann, booking)
    assert await channels.send() == 3
    channels.expect(
        *to(ann, K.PAYMENT_RECEIPT, PAID, page, EMAIL),
        *to(tom, K.DEAL_FUNDED, PAID, page, EMAIL, PUSH),
    )

    # The reminders, each when it comes due, each once however often the jobs run.
    local = start.astimezone(ZoneInfo(SYDNEY))
    day, hour = f"{local:%a %d %b %Y}", f"{local:%H:%M %Z}"
    the_day = f"Reminder: “{PACKAGE}” is booked for {day} at {hour}"
    reminders = [
        (
            start - timedelta(hours=24),
            [
                *to(ann, K.BOOKING_REMINDER_DAY, the_day, page, EMAIL),
                *to(tom, K.BOOKING_REMINDER_DAY, the_day, page, EMAIL),
            ],
        ),
        (
            start - timedelta(hours=1),
            to(
                tom,
                K.BOOKING_REMINDER_HOUR,
                f"“{PACKAGE}” starts in an hour, at {hour}",
                page,
                SMS,
                PUSH,
            ),
        ),
        (
            start - timedelta(minutes=30),
            # Ann gave no phone: her browser only.
            to(
                ann,
                K.BOOKING_REMINDER_SOON,
                f"“{PACKAGE}” starts in 30 minutes, at {hour}",
                page,
                PUSH,
            ),
        ),
    ]
    assert await channels.turn_due(start - timedelta(hours=24, seconds=1)) == 0
    for moment, expected in reminders:
        # One scheduled message per person, one delivery per channel.
        assert await channels.turn_due(moment) == len({e.person.name for e in expected})
        assert await channels.send(moment) == len(expected)
        # Another instance, or the next run: nothing is due twice.
        assert await channels.turn_due(moment) == 0
        assert await channels.send(moment) == 0
        channels.expect(*expected)

    # Tom starts and finishes; Ann approves, and Tom is paid: news for the app alone.
    for step, who in (("startBooking", tom), ("completeBooking", tom)):
        before = utcnow()
        moved = await act(client, step, who.tokens, booking["id"])
        assert moved["errors"] == [], (step, moved)
    completed = moved["booking"]["history"][-1]
    assert moved["booking"]["status"] == "COMPLETED" and completed["status"] == "COMPLETED"
    approved = await act(client, "approveBooking", ann.tokens, booking["id"])
    assert approved["errors"] == [], approved
    await sandbox(runtime).drain()
    assert await channels.send() == 0
    channels.nothing_arrived()

    # Both are asked for a review once GIGQL_REVIEW_REQUEST_DELAY has passed, once.
    delay = channels.services.settings.review_request_delay
    assert await channels.turn_due(before + delay - timedelta(seconds=1)) == 0
    later = utcnow() + delay
    assert await channels.turn_due(later) == 2
    assert await channels.send(later) == 2
    assert await channels.turn_due(later) == 0 and await channels.send(later) == 0
    ask = f"How did “{PACKAGE}” go? Leave a review"
    channels.expect(
        *to(ann, K.REVIEW_REQUEST, ask, page, EMAIL), *to(tom, K.REVIEW_REQUEST, ask, page, EMAIL)
    )

    # Ann reviews: Tom hears of it by e-mail and push.
    await reviewed(client, ann.tokens, booking["id"], 5, "Spotless, and on time.")
    assert await channels.send() == 2
    review = (
        f"Ann Lee reviewed you for “{PACKAGE}”. It shows once you review them too, or in "
        f"{channels.services.settings.review_reveal_days} days."
    )
    channels.expect(*to(tom, K.REVIEW_RECEIVED, review, page, EMAIL, PUSH))

    # Nothing else was ever due, and everything planned went out.
    assert await channels.turn_due(start + timedelta(days=30)) == 0
    assert await channels.send(start + timedelta(days=30)) == 0
    channels.nothing_arrived()
    statuses = {d.status for d in await Delivery.find_all().to_list()}
    assert statuses == {DeliveryStatus.SENT}


async def test_choices_made_along_the_way_count_from_the_next_message(
    channels: Channels, runtime: Runtime
) -> None:
    client = channels.client
    tom, ann, package_id = await cast(channels, runtime)
    booking, _start = await requested(channels, tom, ann, package_id)
    [request_mail] = [mail for mail in channels.relay.received if mail.rcpt_tos == [tom.email]]

    # Ann wants her confirmation in the browser only.
    chosen = await client.mutate(
        "updateNotificationPreferences",
        {"choices": [{"kind": "BOOKING_CONFIRMED", "channels": ["PUSH"]}]},
        "preferences { kinds { kind channels } }",
        token=ann.tokens.access,
    )
    assert chosen["errors"] == [], chosen
    await confirmed(channels, tom, booking)
    assert await channels.send() == 1
    channels.expect(*to(ann, K.BOOKING_CONFIRMED, CONFIRMED, page_of(booking), PUSH))
    emails = await Delivery.find(Delivery.kind == K.BOOKING_CONFIRMED).to_list()
    assert [d.channel for d in emails] == [PUSH]  # the e-mail was never planned

    # Tom clicks "unsubscribe" in his mail program on the request's e-mail: no more
    # request e-mails, his SMS and push stay.
    link = str(request_mail.message["List-Unsubscribe"]).strip("<>")
    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}" == channels.services.settings.public_url
    answer = await client.http.post(
        f"{channels.base_url}{parts.path}?{parts.query}",
        data={"List-Unsubscribe": "One-Click"},
    )
    assert answer.status_code == 200, answer.text
    kinds = await client.data(
        "{ notificationPreferences { kinds { kind channels } } }", token=tom.tokens.access
    )
    [requests] = [
        k for k in kinds["notificationPreferences"]["kinds"] if k["kind"] == "BOOKING_REQUESTED"
    ]
    assert requests["channels"] == ["SMS", "PUSH"]

    start = await slot_from(client, tom, package_id, utcnow() + timedelta(hours=50))
    second = await booked(client, ann.tokens, package_id, start.isoformat())
    assert await channels.send() == 2
    local = start.astimezone(ZoneInfo(SYDNEY))
    title = f"Ann Lee asks to book “{PACKAGE}” at {local:%a %d %b %Y %H:%M %Z}"
    channels.expect(*to(tom, K.BOOKING_REQUESTED, title, page_of(second), SMS, PUSH))


DEAD_DELIVERIES = """query($f: NotificationDeliveryFilter) {
  notificationDeliveries(first: 20, filter: $f) {
    edges { node { id kind channel status attempts lastError user { id name } } } } }"""


async def dead_deliveries(client: GraphQLClient, admin: Tokens) -> list[dict[str, Any]]:
    data = await client.data(DEAD_DELIVERIES, {"f": {"status": "DEAD"}}, token=admin.access)
    return [edge["node"] for edge in data["notificationDeliveries"]["edges"]]


async def test_mail_sent_while_the_relay_is_down_ends_dead_and_an_admin_sends_it_again(
    channels: Channels, runtime: Runtime
) -> None:
    client = channels.client
    tom, ann, package_id = await cast(channels, runtime)
    booking, _start = await requested(channels, tom, ann, package_id)
    page = page_of(booking)
    await confirmed(channels, tom, booking)
    assert await channels.send() == 2
    channels.expect(*to(ann, K.BOOKING_CONFIRMED, CONFIRMED, page, EMAIL, PUSH))

    # The relay goes down as Ann pays: both e-mails fail on every attempt, with backoff;
    # Tom's push message goes out at once.
    channels.relay.stop()
    await paid(channels, runtime, ann, booking)
    moment = utcnow()
    handled = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        handled.append(await channels.send(moment))
        moment += backoff(attempt)
    assert handled == [3] + [2] * (MAX_ATTEMPTS - 1)
    assert await channels.send(moment + timedelta(days=1)) == 0  # dead: no more attempts
    channels.expect(*to(tom, K.DEAL_FUNDED, PAID, page, PUSH))

    admin = await logged_in_admin(client, runtime)
    dead = await dead_deliveries(client, admin)
    assert sorted((d["kind"], d["channel"], d["user"]["name"]) for d in dead) == [
        ("DEAL_FUNDED", "EMAIL", "Tom Nguyen"),
        ("PAYMENT_RECEIPT", "EMAIL", "Ann Lee"),
    ]
    for delivery in dead:
        assert delivery["attempts"] == MAX_ATTEMPTS
        assert "ConnectionRefusedError" in (delivery["lastError"] or ""), delivery

    # The relay is back; the admin sends Ann's receipt again: it arrives, once.
    channels.relay.start()
    [receipt] = [d for d in dead if d["kind"] == "PAYMENT_RECEIPT"]
    retried = await client.mutate(
        "retryNotificationDelivery",
        {"id": receipt["id"]},
        "delivery { status attempts }",
        token=admin.access,
    )
    assert retried == {"errors": [], "delivery": {"status": "PENDING", "attempts": 0}}
    assert await channels.send() == 1
    assert await channels.send() == 0
    channels.expect(*to(ann, K.PAYMENT_RECEIPT, PAID, page, EMAIL))
    # Tom's stays dead until someone sends it again.
    assert [d["kind"] for d in await dead_deliveries(client, admin)] == ["DEAL_FUNDED"]


async def test_the_receipt_shows_the_fee_breakdown(channels: Channels, runtime: Runtime) -> None:
    tom, ann, package_id = await cast(channels, runtime)
    booking, _start = await requested(channels, tom, ann, package_id)
    await confirmed(channels, tom, booking)
    await paid(channels, runtime, ann, booking)
    await channels.send()
    [receipt] = [
        mail
        for mail in channels.relay.received
        if mail.rcpt_tos == [ann.email] and str(mail.message["Subject"]) == PAID
    ]
    text = receipt.part("plain")
    # The price, the service fee on top, and the total.
    for amount in ("150.00 AUD", "15.00 AUD", "165.00 AUD"):
        assert amount in text.replace(PAID, ""), text
