"""The API served with SMS through Twilio, Twilio being the fake in fake_twilio.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from resolvers.common.services import Services
from server.runtime import Runtime
from tests.conftest import serve, with_settings
from tests.notifications.channels.fake_twilio import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    SENDER,
    FakeTwilio,
    fake_twilio,
)
from tests.support.graphql_client import GraphQLClient


def twilio_settings(api_base: str) -> dict[str, Any]:
    """The settings that send SMS through Twilio at `api_base`."""
    return {
        "sms_backend": "twilio",
        "twilio_account_sid": ACCOUNT_SID,
        "twilio_auth_token": SecretStr(AUTH_TOKEN),
        "twilio_from": SENDER,
        "twilio_api_base": api_base,
    }


@dataclass(frozen=True)
class SmsApi:
    twilio: FakeTwilio
    client: GraphQLClient
    """The API, texting through `twilio`."""
    services: Services
    """The same services, for the outbox's worker (`send_due`)."""


@pytest.fixture
async def sms_api(runtime: Runtime) -> AsyncIterator[SmsApi]:
    async with fake_twilio() as (twilio, twilio_url):
        changes = twilio_settings(twilio_url)
        async with (
            serve(runtime, **changes) as url,
            httpx.AsyncClient(base_url=url, timeout=30) as http,
        ):
            services = with_settings(runtime, **changes).services
            yield SmsApi(twilio, GraphQLClient(http), services)
