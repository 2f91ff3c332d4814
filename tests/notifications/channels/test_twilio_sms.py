"""The Twilio backend: the official SDK talking to Twilio's Messages API (the fake), and
the settings that choose it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from documents.settings import Settings
from integrations.sms import LogSms, NumberUnreachable, SmsFailed, TwilioConfig, TwilioSms
from server.embedded import free_port
from server.runtime import create_sms
from tests.notifications.channels.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, SENDER, fake_twilio

NUMBER = "+61412345678"
SERVICE_SID = "MG" + "a" * 32


def _sms(api_base: str, *, token: str = AUTH_TOKEN, sender: str = SENDER) -> TwilioSms:
    return TwilioSms(TwilioConfig(ACCOUNT_SID, token, sender, api_base))


async def test_a_message_goes_to_the_messages_api_from_the_configured_number() -> None:
    async with fake_twilio() as (twilio, url):
        await _sms(url).send(NUMBER, "Hello from gigql", "test:1")
    [sent] = twilio.sent
    assert (sent.to, sent.body, sent.sender, sent.messaging_service_sid) == (
        NUMBER,
        "Hello from gigql",
        SENDER,
        None,
    )
    assert sent.user_agent.startswith("twilio-python/")


async def test_a_messaging_service_picks_the_sender() -> None:
    async with fake_twilio() as (twilio, url):
        await _sms(url, sender=SERVICE_SID).send(NUMBER, "Hello", "test:2")
    [sent] = twilio.sent
    assert (sent.sender, sent.messaging_service_sid) == (None, SERVICE_SID)


async def test_a_wrong_auth_token_fails_without_sending() -> None:
    async with fake_twilio() as (twilio, url):
        with pytest.raises(SmsFailed, match="401") as raised:
            await _sms(url, token="not-the-token").send(NUMBER, "Hello", "test:3")
    assert not isinstance(raised.value, NumberUnreachable)
    assert twilio.sent == [] and twilio.refused == [20003]


async def test_a_number_twilio_will_not_text_is_unreachable() -> None:
    async with fake_twilio() as (twilio, url):
        twilio.unreachable.add(NUMBER)
        with pytest.raises(NumberUnreachable, match="21614"):
            await _sms(url).send(NUMBER, "Hello", "test:4")
    assert twilio.sent == []


async def test_twilio_down_or_away_is_a_failure_to_retry() -> None:
    async with fake_twilio() as (twilio, url):
        twilio.down = True
        with pytest.raises(SmsFailed, match="503") as raised:
            await _sms(url).send(NUMBER, "Hello", "test:5")
        assert not isinstance(raised.value, NumberUnreachable)
    with pytest.raises(SmsFailed, match="did not answer"):
        await _sms(f"http://127.0.0.1:{free_port()}").send(NUMBER, "Hello", "test:6")


def test_the_twilio_backend_needs_its_credentials() -> None:
    with pytest.raises(ValidationError, match="TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN"):
        Settings(_env_file=None, sms_backend="twilio", twilio_account_sid=ACCOUNT_SID)
    with pytest.raises(ValidationError, match="TWILIO_AUTH_TOKEN"):
        Settings(
            _env_file=None,
            environment="production",
            jwt_secret="s" * 32,
            allow_sandbox_payments=True,
            sms_backend="twilio",
            twilio_account_sid=ACCOUNT_SID,
            twilio_from=SENDER,
        )
    with pytest.raises(ValidationError, match="TWILIO_FROM"):
        Settings(_env_file=None, twilio_from="not a sender id")
    with pytest.raises(ValidationError, match="GIGQL_TWILIO_API_BASE"):
        Settings(_env_file=None, twilio_api_base="api.twilio.test")
    assert isinstance(create_sms(Settings(_env_file=None)), LogSms)


def test_twilio_settings_use_twilios_own_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIGQL_SMS_BACKEND", "twilio")
    monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT_SID)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    monkeypatch.setenv("TWILIO_FROM", SERVICE_SID)
    settings = Settings(_env_file=None)
    assert settings.twilio_auth_token is not None
    assert settings.twilio_auth_token.get_secret_value() == AUTH_TOKEN
    assert AUTH_TOKEN not in repr(settings)
    assert isinstance(create_sms(settings), TwilioSms)
