"""A phone number for SMS, proven by a code texted to it, over GraphQL with SMS going
through the fake Twilio: the code is a secret check, throttled and audited, and only a
well-formed number is ever texted."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest

from documents.accounts.audit import AuditEvent, AuditKind
from documents.clock import utcnow
from resolvers.notifications import phone as phones
from tests.notifications.channels.fake_twilio import SENDER
from tests.notifications.conftest import SmsApi
from tests.support.graphql_client import GraphQLClient, Tokens, error_codes, graphql_error_codes
from tests.support.marketplace import object_id

NUMBER = "+61412345678"
OTHER_NUMBER = "+14155550123"
PHONE = "phone { number verified codeExpiresAt }"
MY_PHONE = "{ myPhone { number verified codeExpiresAt } }"


async def start(client: GraphQLClient, who: Tokens, number: str) -> dict[str, Any]:
    return await client.mutate("startPhoneVerification", {"phone": number}, PHONE, token=who.access)


async def confirm(client: GraphQLClient, who: Tokens, code: str) -> dict[str, Any]:
    return await client.mutate("confirmPhoneVerification", {"code": code}, PHONE, token=who.access)


async def my_phone(client: GraphQLClient, who: Tokens) -> dict[str, Any] | None:
    phone: dict[str, Any] | None = (await client.data(MY_PHONE, token=who.access))["myPhone"]
    return phone


def code_in(body: str) -> str:
    found = re.search(r"\b(\d{6})\b", body)
    assert found is not None, body
    return found.group(1)


async def texted_code(api: SmsApi, number: str, count: int = 1) -> str:
    """The code of the `count`-th message to `number`."""
    messages = await api.twilio.wait_for(number, count)
    return code_in(messages[-1].body)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


async def audited(kind: AuditKind) -> list[AuditEvent]:
    return await AuditEvent.find(AuditEvent.kind == kind).sort("_id").to_list()


async def verify_phone(api: SmsApi, who: Tokens, number: str = NUMBER) -> None:
    """Make `number` the verified phone of `who`, with the code texted to it."""
    assert (await start(api.client, who, number))["errors"] == []
    payload = await confirm(api.client, who, await texted_code(api, number))
    assert payload["errors"] == [] and payload["phone"]["verified"], payload


async def verified_member(api: SmsApi, email: str, number: str = NUMBER) -> Tokens:
    """A member whose `number` is verified."""
    who = await api.client.member(email)
    await verify_phone(api, who, number)
    return who


async def test_a_number_is_verified_by_the_code_texted_to_it(sms_api: SmsApi) -> None:
    client = sms_api.client
    ann = await client.member("ann@example.com")
    assert await my_phone(client, ann) is None

    started = await start(client, ann, f" {NUMBER} ")
    assert started["errors"] == [] and started["phone"]["number"] == NUMBER
    assert started["phone"]["verified"] is False and started["phone"]["codeExpiresAt"]
    [sms] = await sms_api.twilio.wait_for(NUMBER)
    assert sms.sender == SENDER and sms.body.startswith("gigql: ")
    assert "expires in 10 minutes" in sms.body
    code = code_in(sms.body)
    assert await my_phone(client, ann) == started["phone"]

    refused = await confirm(client, ann, wrong(code))
    assert refused["phone"] is None
    assert refused["errors"] == [
        {"field": "code", "code": "INVALID_CODE", "message": "This is not the code we sent."}
    ]
    [rejected] = await audited(AuditKind.PHONE_CODE_REJECTED)
    assert rejected.user_id == object_id(ann.user_id) and rejected.details == {"reason": "wrong"}
    assert code not in str(rejected.model_dump())
    assert (await my_phone(client, ann))["verified"] is False  # type: ignore[index]

    confirmed = await confirm(client, ann, f"{code[:3]} {code[3:]}")
    assert confirmed["errors"] == []
    assert confirmed["phone"] == {"number": NUMBER, "verified": True, "codeExpiresAt": None}
    assert await my_phone(client, ann) == confirmed["phone"]
    assert len(await audited(AuditKind.PHONE_VERIFIED)) == 1
    assert len(await audited(AuditKind.PHONE_CODE_SENT)) == 1

    # Used once: the same code again finds none waiting.
    assert error_codes(await confirm(client, ann, code)) == ["INVALID_STATE"]
    # The number verified already: asking again changes nothing and texts nothing.
    again = await start(client, ann, NUMBER)
    assert again["errors"] == [] and again["phone"]["verified"] is True
    assert len(sms_api.twilio.to(NUMBER)) == 1


async def test_an_expired_code_is_refused(sms_api: SmsApi, monkeypatch: pytest.MonkeyPatch) -> None:
    client = sms_api.client
    ann = await client.member("ann@example.com")
    assert (await start(client, ann, NUMBER))["errors"] == []
    code = await texted_code(sms_api, NUMBER)

    later = utcnow() + phones.CODE_TTL + timedelta(seconds=1)
    monkeypatch.setattr(phones, "utcnow", lambda: later)
    refused = await confirm(client, ann, code)
    assert refused["errors"] == [
        {
            "field": "code",
            "code": "CODE_EXPIRED",
            "message": "This code has expired; ask for a new one.",
        }
    ]
    [rejected] = await audited(AuditKind.PHONE_CODE_REJECTED)
    assert rejected.details == {"reason": "expired"}
    assert (await my_phone(client, ann))["verified"] is False  # type: ignore[index]

    # A new code, in time, verifies the number.
    assert (await start(client, ann, NUMBER))["errors"] == []
    payload = await confirm(client, ann, await texted_code(sms_api, NUMBER, 2))
    assert payload["errors"] == [] and payload["phone"]["verified"] is True


async def test_wrong_codes_are_throttled_per_account(sms_api: SmsApi) -> None:
    client = sms_api.client
    ann = await client.member("ann@example.com")
    bob = await client.member("bob@example.com")
    assert (await start(client, ann, NUMBER))["errors"] == []
    assert (await start(client, bob, OTHER_NUMBER))["errors"] == []
    code = await texted_code(sms_api, NUMBER)

    for _ in range(phones.WRONG_CODES_PER_HOUR):
        assert error_codes(await confirm(client, ann, wrong(code))) == ["INVALID_CODE"]
    # Past the limit even the right code is not checked.
    throttled = await confirm(client, ann, code)
    assert error_codes(throttled) == ["TOO_MANY_ATTEMPTS"] and throttled["phone"] is None
    assert "try again after" in throttled["errors"][0]["message"]
    assert (await my_phone(client, ann))["verified"] is False  # type: ignore[index]
    reasons = [event.details["reason"] for event in await audited(AuditKind.PHONE_CODE_REJECTED)]
    assert reasons == ["wrong"] * phones.WRONG_CODES_PER_HOUR + ["throttled"]

    # Another account's checks are its own.
    payload = await confirm(client, bob, await texted_code(sms_api, OTHER_NUMBER))
    assert payload["errors"] == [] and payload["phone"]["verified"] is True


async def test_codes_texted_are_limited_per_number_and_account(sms_api: SmsApi) -> None:
    client, twilio = sms_api.client, sms_api.twilio
    ann = await client.member("ann@example.com")
    for _ in range(phones.CODES_PER_NUMBER_PER_HOUR):
        assert (await start(client, ann, NUMBER))["errors"] == []
    first_code = await texted_code(sms_api, NUMBER, 1)
    last_code = await texted_code(sms_api, NUMBER, phones.CODES_PER_NUMBER_PER_HOUR)

    refused = await start(client, ann, NUMBER)
    assert error_codes(refused) == ["TOO_MANY_ATTEMPTS"] and refused["phone"] is None
    assert refused["errors"][0]["field"] == "phone"
    assert "to this number" in refused["errors"][0]["message"]
    assert len(twilio.to(NUMBER)) == phones.CODES_PER_NUMBER_PER_HOUR

    # Another account may not text that number either.
    bob = await client.member("bob@example.com")
    assert error_codes(await start(client, bob, NUMBER)) == ["TOO_MANY_ATTEMPTS"]

    # Ann's account has codes left for other numbers, up to its own limit.
    others = [f"+1415555{n:04d}" for n in range(1, 4)]
    left = phones.CODES_PER_ACCOUNT_PER_HOUR - phones.CODES_PER_NUMBER_PER_HOUR
    for number in others[:left]:
        assert (await start(client, ann, number))["errors"] == []
    refused = await start(client, ann, others[left])
    assert error_codes(refused) == ["TOO_MANY_ATTEMPTS"]
    assert "for this account" in refused["errors"][0]["message"]
    assert twilio.to(others[left]) == []

    # Each code replaced the one before: the number held is the last asked for.
    assert (await my_phone(client, ann))["number"] == others[left - 1]  # type: ignore[index]
    assert error_codes(await confirm(client, ann, first_code)) == ["INVALID_CODE"]
    assert error_codes(await confirm(client, ann, last_code)) == ["INVALID_CODE"]


@pytest.mark.parametrize(
    "number",
    [
        "0412345678",  # national form, no country code
        "+0412345678",  # a country code cannot start with 0
        "+1415555",  # 7 digits
        "+1415555012345678",  # 16 digits
        "+1 415 555 0123",
        "+1-415-555-0123",
        "tel:+14155550123",
        "+\u0661\u0664\u0661\u0665\u0665\u0665\u0665\u0660\u0661\u0662\u0663",  # Arabic-Indic
        "+1\u0664\u0661\u0665\u0665\u0665\u0665\u0660\u0661\u0662\u0663",
        "",
    ],
)
async def test_a_number_not_in_e164_is_refused_and_changes_nothing(
    sms_api: SmsApi, number: str
) -> None:
    client = sms_api.client
    ann = await verified_member(sms_api, "ann@example.com")
    before = await my_phone(client, ann)

    refused = await start(client, ann, number)
    assert refused["phone"] is None
    [error] = refused["errors"]
    assert (error["field"], error["code"]) == ("phone", "INVALID_INPUT")
    assert "E.164" in error["message"]
    assert await my_phone(client, ann) == before
    assert len(sms_api.twilio.sent) == 1  # the first code only


async def test_a_number_twilio_cannot_text_is_refused_and_not_held(sms_api: SmsApi) -> None:
    client = sms_api.client
    ann = await client.member("ann@example.com")
    sms_api.twilio.unreachable.add(NUMBER)
    refused = await start(client, ann, NUMBER)
    assert refused["errors"] == [
        {
            "field": "phone",
            "code": "INVALID_INPUT",
            "message": "This number cannot receive text messages.",
        }
    ]
    assert await my_phone(client, ann) is None

    sms_api.twilio.down = True
    assert error_codes(await start(client, ann, OTHER_NUMBER)) == ["SMS_UNAVAILABLE"]
    assert await my_phone(client, ann) is None


async def test_a_new_number_replaces_the_old_unverified_and_may_be_removed(
    sms_api: SmsApi,
) -> None:
    client = sms_api.client
    ann = await verified_member(sms_api, "ann@example.com")
    replaced = await start(client, ann, OTHER_NUMBER)
    assert replaced["phone"]["number"] == OTHER_NUMBER and replaced["phone"]["verified"] is False
    assert await my_phone(client, ann) == replaced["phone"]

    # The old number's code means nothing now, and the old number cannot be removed.
    stale = await client.mutate("removePhone", {"number": NUMBER}, "removed", token=ann.access)
    assert error_codes(stale) == ["NOT_FOUND"] and stale["removed"] is None
    removed = await client.mutate(
        "removePhone", {"number": OTHER_NUMBER}, "removed", token=ann.access
    )
    assert removed == {"errors": [], "removed": True}
    assert await my_phone(client, ann) is None
    assert len(await audited(AuditKind.PHONE_REMOVED)) == 1


async def test_my_phone_is_mine_alone(sms_api: SmsApi) -> None:
    client = sms_api.client
    result = await client.execute(MY_PHONE)
    assert result["data"] == {"myPhone": None}
    assert graphql_error_codes(result) == ["UNAUTHENTICATED"]
    await verified_member(sms_api, "ann@example.com")
    bob = await client.member("bob@example.com")
    assert await my_phone(client, bob) is None
