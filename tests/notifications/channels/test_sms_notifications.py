"""Notifications that go out by SMS: to a verified number only, through Twilio (the fake)
when the outbox is sent, and retried when Twilio does not take them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from documents.notifications.catalogue import CATALOGUE, Channel, NotificationKind
from documents.notifications.deliveries import Delivery, DeliveryStatus
from integrations.mail import MemoryMailer
from resolvers.notifications.sending import send_due
from tests.notifications.channels.test_phone_verification import (
    NUMBER,
    OTHER_NUMBER,
    start,
    verify_phone,
)
from tests.notifications.conftest import SmsApi
from tests.support.bookings import booked, create_package, freeze_clock, provider, utc
from tests.support.graphql_client import Tokens
from tests.support.marketplace import object_id

JUNE_1 = date(2026, 6, 1)
TOM = "tom@example.com"


@pytest.fixture(autouse=True)
def new_year(monkeypatch: pytest.MonkeyPatch) -> None:
    """It is 2026-01-01 for the booking rules, so the dates booked stay in the future."""
    freeze_clock(monkeypatch, datetime(2026, 1, 1, tzinfo=UTC))


async def _provider_with_phone(api: SmsApi) -> Tokens:
    """Tom, a provider whose number is verified."""
    tom = await provider(api.client, TOM)
    await verify_phone(api, tom, NUMBER)
    return tom


async def _sms_deliveries() -> list[Delivery]:
    return await Delivery.find(Delivery.channel == Channel.SMS).to_list()


async def test_a_booking_request_reaches_the_provider_by_sms(
    sms_api: SmsApi, outbox: MemoryMailer
) -> None:
    assert Channel.SMS in CATALOGUE[NotificationKind.BOOKING_REQUESTED].default
    client, twilio = sms_api.client, sms_api.twilio
    tom = await _provider_with_phone(sms_api)
    package = await create_package(client, tom)
    ann = await client.member("ann@example.com", roles=("POSTER",))
    booking = await booked(client, ann, package["id"], utc(JUNE_1, 10))
    assert len(twilio.to(NUMBER)) == 1  # the code; nothing goes before the outbox is sent

    assert await send_due(sms_api.services) == 2  # e-mail and SMS; Tom has no push
    [_code, sms] = twilio.to(NUMBER)
    booking_id = object_id(booking["id"])
    assert sms.body == (
        "gigql: Test User asks to book “Deep clean” at Mon 01 Jun 2026 10:00 UTC "
        f"http://localhost:3000/bookings/{booking_id}"
    )
    [delivery] = await _sms_deliveries()
    assert (delivery.user_id, delivery.kind) == (
        object_id(tom.user_id),
        NotificationKind.BOOKING_REQUESTED,
    )
    assert delivery.status is DeliveryStatus.SENT and delivery.attempts == 0
    [mail] = [mail for mail in outbox.outbox if mail.subject.startswith("Test User asks")]
    assert mail.to == TOM

    # Sent once: another run finds nothing due.
    assert await send_due(sms_api.services) == 0
    assert len(twilio.to(NUMBER)) == 2


async def test_no_sms_goes_to_a_number_not_verified(sms_api: SmsApi) -> None:
    client, twilio = sms_api.client, sms_api.twilio
    tom = await _provider_with_phone(sms_api)
    package = await create_package(client, tom)
    # A new number replaces the verified one, unverified until its code comes back.
    assert (await start(client, tom, OTHER_NUMBER))["errors"] == []
    ann = await client.member("ann@example.com", roles=("POSTER",))
    await booked(client, ann, package["id"], utc(JUNE_1, 10))

    assert await send_due(sms_api.services) == 1  # e-mail only
    assert await _sms_deliveries() == []
    assert len(twilio.to(NUMBER)) == 1 and len(twilio.to(OTHER_NUMBER)) == 1  # codes only


async def test_an_sms_twilio_did_not_take_is_retried(sms_api: SmsApi) -> None:
    client, twilio = sms_api.client, sms_api.twilio
    tom = await _provider_with_phone(sms_api)
    package = await create_package(client, tom)
    ann = await client.member("ann@example.com", roles=("POSTER",))
    await booked(client, ann, package["id"], utc(JUNE_1, 10))

    twilio.down = True
    assert await send_due(sms_api.services) == 2
    [waiting] = await _sms_deliveries()
    assert waiting.status is DeliveryStatus.PENDING and waiting.attempts == 1
    assert waiting.last_error is not None
    assert waiting.last_error.startswith("SmsFailed: Twilio answered 503")
    assert len(twilio.to(NUMBER)) == 1

    twilio.down = False
    assert await send_due(sms_api.services) == 0  # not due again yet
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert await send_due(sms_api.services, later) == 1
    [sent] = await _sms_deliveries()
    assert sent.status is DeliveryStatus.SENT
    assert len(twilio.to(NUMBER)) == 2


async def test_an_sms_to_a_number_twilio_will_not_text_is_dead_at_once(sms_api: SmsApi) -> None:
    client, twilio = sms_api.client, sms_api.twilio
    tom = await _provider_with_phone(sms_api)
    package = await create_package(client, tom)
    ann = await client.member("ann@example.com", roles=("POSTER",))
    await booked(client, ann, package["id"], utc(JUNE_1, 10))

    twilio.unreachable.add(NUMBER)
    await send_due(sms_api.services)
    [refused] = await _sms_deliveries()
    # Sending again would not help: no retries, an admin sees why at once.
    assert refused.status is DeliveryStatus.DEAD and refused.attempts == 0
    assert refused.last_error is not None and "21614" in refused.last_error
    later = datetime.now(UTC) + timedelta(hours=1)
    await send_due(sms_api.services, later)
    assert twilio.refused.count(21614) == 1
