"""Settings from the environment."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from documents.settings import Settings


def test_lists_accept_commas_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GIGQL_CORS_ORIGINS", "https://a.example.com, https://b.example.com")
    assert Settings(_env_file=None).cors_origins == [
        "https://a.example.com",
        "https://b.example.com",
    ]
    monkeypatch.setenv("GIGQL_CORS_ORIGINS", '["https://c.example.com"]')
    assert Settings(_env_file=None).cors_origins == ["https://c.example.com"]


def test_outside_services_use_their_usual_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONGODB_URL", "mongodb://db.example.com/")
    monkeypatch.setenv("REDIS_URL", "redis://cache.example.com/0")
    settings = Settings(_env_file=None)
    assert settings.mongodb_url == "mongodb://db.example.com/"
    assert settings.redis_url == "redis://cache.example.com/0"


def test_production_needs_a_real_jwt_secret() -> None:
    with pytest.raises(ValidationError, match="GIGQL_JWT_SECRET"):
        Settings(_env_file=None, environment="production")
    with pytest.raises(ValidationError, match="GIGQL_JWT_SECRET"):
        Settings(_env_file=None, environment="production", jwt_secret="short")
    settings = Settings(
        _env_file=None,
        environment="production",
        jwt_secret="s" * 32,
        allow_sandbox_payments=True,
        push_backend="log",
    )
    assert not settings.graphiql_enabled and not settings.introspection_enabled


def test_production_refuses_the_sandbox_gateway_unless_allowed() -> None:
    with pytest.raises(ValidationError, match="GIGQL_ALLOW_SANDBOX_PAYMENTS"):
        Settings(_env_file=None, environment="production", jwt_secret="s" * 32)
    stripe = Settings(
        _env_file=None,
        environment="production",
        jwt_secret="s" * 32,
        stripe_secret_key="sk_live_x",
        stripe_webhook_secret="whsec_x",
        push_backend="log",
    )
    assert stripe.stripe_secret_key is not None and not stripe.allow_sandbox_payments


def test_development_defaults_to_graphiql_and_introspection() -> None:
    settings = Settings(_env_file=None)
    assert settings.graphiql_enabled and settings.introspection_enabled
    assert not Settings(_env_file=None, graphiql=False).graphiql_enabled


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),  # noqa: S104
        ("::", False),
        ("192.168.1.20", False),
        ("gigql.example.com", False),
    ],
)
def test_which_hosts_are_loopback(host: str, loopback: bool) -> None:
    assert Settings(_env_file=None, host=host).listens_on_loopback is loopback
