"""The settings of web push: production signs with a configured key pair and contact,
or says it sends no web push; a configured pair is whole and matches."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from documents.notifications.push_keys import generate_private_key
from documents.settings import Settings
from integrations.push import LogPush, VapidKeys, VapidPush
from server.cli import main
from server.runtime import create_push

PRODUCTION: dict[str, Any] = {
    "_env_file": None,
    "environment": "production",
    "jwt_secret": "s" * 32,
    "allow_sandbox_payments": True,
}


def vapid(keys: VapidKeys, subject: str = "mailto:ops@example.com") -> dict[str, Any]:
    return {
        "vapid_private_key": keys.private_key,
        "vapid_public_key": keys.public_key,
        "vapid_subject": subject,
    }


def new_keys() -> VapidKeys:
    return VapidKeys.of(generate_private_key())


def test_production_needs_a_vapid_key_pair_and_contact_or_no_web_push() -> None:
    keys = new_keys()
    without_subject = {**vapid(keys), "vapid_subject": None}
    for missing in ({}, without_subject):
        with pytest.raises(ValidationError, match="GIGQL_VAPID_PRIVATE_KEY, GIGQL_VAPID_PUBLIC"):
            Settings(**PRODUCTION, **missing)
    configured = Settings(**PRODUCTION, **vapid(keys))
    push = create_push(configured)
    assert isinstance(push, VapidPush) and push.application_server_key == keys.public_key
    assert isinstance(create_push(Settings(**PRODUCTION, push_backend="log")), LogPush)


def test_a_configured_key_pair_is_whole_and_its_halves_match() -> None:
    keys, other = new_keys(), new_keys()
    with pytest.raises(ValidationError, match="set together"):
        Settings(_env_file=None, vapid_private_key=keys.private_key)
    with pytest.raises(ValidationError, match="must be the public key of"):
        Settings(_env_file=None, **{**vapid(keys), "vapid_public_key": other.public_key})
    for not_a_key in ("", "c2hvcnQ", "A" * 43, keys.public_key, "not base64url at all!"):
        with pytest.raises(ValidationError, match="must be a P-256 private key"):
            Settings(_env_file=None, **{**vapid(keys), "vapid_private_key": not_a_key})
    # Padding, as some tools write it, is the same key.
    padded = Settings(_env_file=None, **{**vapid(keys), "vapid_public_key": keys.public_key + "="})
    assert padded.vapid_public_key is not None


@pytest.mark.parametrize(
    "subject",
    [
        "ops@example.com",
        "mailto:ops",
        "http://example.com",
        "https://example.com/contact",
        "https://example.com:8443",
        "mailto:ops@example.com\nBcc: x@example.com",
    ],
)
def test_the_contact_is_a_mailto_address_or_an_https_host(subject: str) -> None:
    with pytest.raises(ValidationError, match="GIGQL_VAPID_SUBJECT"):
        Settings(_env_file=None, vapid_subject=subject)


def test_the_contact_defaults_to_the_mail_sender_in_development() -> None:
    assert Settings(_env_file=None).push_contact == "mailto:no-reply@localhost"
    assert Settings(_env_file=None, mail_from="Ops <ops@example.com>").push_contact == (
        "mailto:ops@example.com"
    )
    assert Settings(_env_file=None, mail_from="gigql").push_contact == "mailto:no-reply@localhost"
    for subject in ("mailto:ops@example.com", "https://gigql.example.com"):
        assert Settings(_env_file=None, vapid_subject=subject).push_contact == subject


def test_generate_vapid_keys_prints_a_pair_production_takes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    main(["generate-vapid-keys"])
    lines = dict(line.split("=", 1) for line in capsys.readouterr().out.splitlines())
    assert sorted(lines) == ["GIGQL_VAPID_PRIVATE_KEY", "GIGQL_VAPID_PUBLIC_KEY"]
    settings = Settings(
        **PRODUCTION,
        vapid_private_key=lines["GIGQL_VAPID_PRIVATE_KEY"],
        vapid_public_key=lines["GIGQL_VAPID_PUBLIC_KEY"],
        vapid_subject="https://gigql.example.com",
    )
    assert create_push(settings).application_server_key == lines["GIGQL_VAPID_PUBLIC_KEY"]
