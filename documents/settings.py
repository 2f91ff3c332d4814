"""Runtime settings, read from the environment (and an optional `.env` file).

Every setting is `GIGQL_<NAME>` except the ones that name outside services the way their
own tooling does: `MONGODB_URL`, `REDIS_URL`, `STRIPE_SECRET_KEY`, `STRIPE_WEBHOOK_SECRET`,
`TWILIO_ACCOUNT_SID`, `TWILIO_AUTH_TOKEN`, `TWILIO_FROM`. README.md lists them all.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import timedelta
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import pycountry
from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from documents.notifications.push_keys import b64url_decode, private_key_of, public_key_text
from documents.payments.currencies import CHARGEABLE_CURRENCIES, chargeable_currency

MIN_JWT_SECRET_BYTES = 32
TRACES_EXPORTERS = frozenset({"otlp", "console", "none"})
"""The OTEL_TRACES_EXPORTER values gigql's dependencies provide (OTLP over HTTP)."""
TWILIO_SENDER = r"\+[1-9]\d{7,14}|MG[0-9a-fA-F]{32}|(?=[A-Za-z0-9 ]*[A-Za-z])[A-Za-z0-9 ]{1,11}"
"""A Twilio number (E.164), a Messaging Service SID, or an alphanumeric sender ID."""
_VAPID_SUBJECT = re.compile(
    r"mailto:[^@\s]+@(localhost|[\w%-]+(\.[\w%-]+)+)|https://(localhost|[\w-]+(\.[\w-]+)+)"
)


def _split_commas(value: object) -> object:
    """Accept `a,b,c` as well as a JSON list for list settings given in the environment."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped.startswith("["):
            import json

            return json.loads(stripped)
        return [part.strip() for part in stripped.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="GIGQL_", env_file=".env", extra="ignore", frozen=True
    )

    environment: Literal["development", "production"] = "development"
    debug: bool = False

    # Serving
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    data_dir: Path = Path("gigql-data")
    trusted_proxies: Annotated[list[str], NoDecode] = ["127.0.0.1"]
    cors_origins: Annotated[list[str], NoDecode] = []
    max_body_bytes: int = Field(1_000_000, ge=1024)
    """Request bodies and websocket messages larger than this are refused."""
    allow_development_on_network: bool = False
    """Lets `gigql serve` in development mode (GraphiQL, introspection, sandbox payments,
    a generated JWT secret) listen on an address other than loopback."""
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Outside services
    mongodb_url: str | None = Field(
        None, validation_alias=AliasChoices("MONGODB_URL", "GIGQL_MONGODB_URL")
    )
    mongodb_database: str = "gigql"
    redis_url: str | None = Field(
        None, validation_alias=AliasChoices("REDIS_URL", "GIGQL_REDIS_URL")
    )

    # Links in e-mails point at the front end, which calls back with the token.
    app_url: str = "http://localhost:3000"
    marketplace_name: str = Field("gigql", min_length=1, max_length=60, pattern=r"^[^\r\n]+$")
    """How mails, SMS and push messages sign."""

    # Links to the API itself (one-click unsubscribe) point at where it is served.
    public_url: str = "http://127.0.0.1:8000"
    """The address people reach this API at, behind any proxy (scheme, host and any path
    prefix); links in e-mails that the API answers itself are built on it."""

    # Notifications beyond the app (resolvers/notifications)
    notification_send_interval: timedelta = Field(timedelta(seconds=5), gt=timedelta(0))
    """How often each instance looks for deliveries due in the outbox, and for scheduled
    messages (reminders, review requests, chat notices) that have come due."""
    review_request_delay: timedelta = Field(timedelta(hours=2), ge=timedelta(0))
    """How long after a task or booking is completed both sides are asked for a review:
    long enough to be out of the way, soon enough to remember the work."""
    chat_notification_delay: timedelta = Field(timedelta(minutes=5), gt=timedelta(0))
    """How long a chat message waits for its recipient to read it in the app before they
    hear of it by e-mail or push; the messages after it in that time add nothing."""
    unsubscribe_link_version: int = Field(1, ge=1)
    """The key version unsubscribe links are signed with; raising it ends every link
    mailed before (a new GIGQL_JWT_SECRET ends them too)."""

    # SMS (integrations/sms.py): written to the log, or sent through Twilio.
    sms_backend: Literal["log", "twilio"] = "log"
    twilio_account_sid: str | None = Field(
        None,
        pattern=r"^AC[0-9a-fA-F]{32}$",
        validation_alias=AliasChoices("TWILIO_ACCOUNT_SID", "GIGQL_TWILIO_ACCOUNT_SID"),
    )
    twilio_auth_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("TWILIO_AUTH_TOKEN", "GIGQL_TWILIO_AUTH_TOKEN")
    )
    twilio_from: str | None = Field(
        None, validation_alias=AliasChoices("TWILIO_FROM", "GIGQL_TWILIO_FROM")
    )
    """Who messages come from: a Twilio number (E.164), an alphanumeric sender ID, or a
    Messaging Service SID (`MG...`), from whose pool of senders Twilio picks."""
    twilio_api_base: str | None = None
    """Another server speaking Twilio's Messages API instead of api.twilio.com (the tests'
    fake, a self-hosted gateway)."""

    # Web push (integrations/push.py)
    push_backend: Literal["vapid", "log"] = "vapid"
    """`vapid` sends web push to browsers (integrations/push.py); `log` only logs it."""
    vapid_private_key: SecretStr | None = None
    """The server's VAPID key (its 32 bytes, base64url); development generates one into
    the data folder. Every instance must share it: browsers subscribe to its public key."""
    vapid_public_key: str | None = None
    """The public key of `vapid_private_key` (65 bytes, base64url), checked against it."""
    vapid_subject: str | None = None
    """The contact push services may write to about our messages: a mailto: or https URL."""
    push_ttl: timedelta = Field(timedelta(hours=24), ge=timedelta(0), le=timedelta(days=28))
    """How long a push service keeps a message for a browser that is offline."""

    # Tokens
    jwt_secret: SecretStr | None = None
    jwt_issuer: str = "gigql"
    jwt_audience: str = "gigql-api"
    access_token_ttl: timedelta = timedelta(minutes=15)
    refresh_token_ttl: timedelta = timedelta(days=30)
    email_verification_ttl: timedelta = timedelta(hours=24)
    password_reset_ttl: timedelta = timedelta(hours=1)
    refresh_cookie_name: str = "gigql_refresh"
    refresh_cookie_samesite: Literal["strict", "lax", "none"] = "strict"

    # Brute-force protection
    login_max_failures: int = Field(5, ge=1)
    login_lockout: timedelta = timedelta(minutes=15)
    login_ip_max_failures: int = Field(50, ge=1)
    login_ip_window: timedelta = timedelta(minutes=15)

    # argon2id cost; changing these makes the next login rehash the password.
    argon2_time_cost: int = Field(3, ge=1)
    argon2_memory_cost_kib: int = Field(65536, ge=8)
    argon2_parallelism: int = Field(4, ge=1)
    argon2_max_concurrent: int = Field(2, ge=1)
    """Passwords hashed or checked at once per process (each holds the memory cost);
    more wait their turn, so memory stays bounded however many arrive."""

    # Mail
    mail_backend: Literal["console", "smtp", "memory"] = "console"
    mail_from: str = "gigql <no-reply@localhost>"
    smtp_host: str = "localhost"
    smtp_port: int = 587
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_starttls: bool = True
    smtp_timeout_seconds: float = 10.0

    # Payments: Stripe when a secret key is set, else the in-process sandbox gateway.
    stripe_secret_key: SecretStr | None = Field(
        None, validation_alias=AliasChoices("STRIPE_SECRET_KEY", "GIGQL_STRIPE_SECRET_KEY")
    )
    stripe_webhook_secret: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("STRIPE_WEBHOOK_SECRET", "GIGQL_STRIPE_WEBHOOK_SECRET"),
    )
    stripe_api_base: str | None = None
    """Another server speaking Stripe's API instead of api.stripe.com (the tests' fake)."""
    stripe_connect_country: str = Field("US", pattern=r"^[A-Z]{2}$")
    """Country of a provider's connected account when their profile does not say."""
    webhook_max_attempts: int = Field(8, ge=1)
    """Processing attempts of a webhook event before it is parked as dead."""
    webhook_retry_base: timedelta = Field(timedelta(seconds=30), gt=timedelta(0))
    """Wait before the first retry of a failed webhook event; it doubles each time."""
    webhook_retry_interval: timedelta = Field(timedelta(seconds=15), gt=timedelta(0))
    """How often each instance looks for webhook events due for a retry."""
    payout_retry_interval: timedelta = Field(timedelta(minutes=1), gt=timedelta(0))
    """How often each instance retries withdrawals whose gateway payout was not made
    (the gateway did not answer, or the process died); only ones at least this old."""
    allow_sandbox_payments: bool = False
    """Lets production run without STRIPE_SECRET_KEY, on the sandbox gateway: a demo that
    takes no real money, where any user may `sandboxPay`."""
    sandbox_payout_delay: timedelta = Field(timedelta(seconds=5), ge=timedelta(0))
    """How long after a sandbox payout is made the sandbox's bank pays it (or returns it,
    for the test amounts in integrations/payments/sandbox.py)."""
    idempotency_window: timedelta = Field(
        timedelta(hours=23), gt=timedelta(0), lt=timedelta(hours=24)
    )
    """How long a gateway step may be retried with its first idempotency key; Stripe
    forgets keys after 24 hours, so an older step is first looked for at the gateway."""

    # Partners (resolvers/partners): other apps' wallets on this ledger
    partner_credit_fee_bp: int = Field(290, ge=0, le=5_000)
    """A new partner's fee on card credits, in basis points (an admin may set each
    partner's own when approving it)."""
    partner_webhook_timeout: timedelta = Field(timedelta(seconds=10), gt=timedelta(0))
    """How long a partner's endpoint has to answer one delivery."""
    partner_webhook_connect_timeout: timedelta = Field(timedelta(seconds=3), gt=timedelta(0))
    """How long connecting to a partner's endpoint may take (within the timeout above):
    a host that drops packets costs this, not the whole timeout."""
    partner_webhook_pause: timedelta = Field(timedelta(minutes=5), gt=timedelta(0))
    """How long an endpoint that failed to answer several posts in a row (the sender's
    FAILURES_BEFORE_PAUSE) is left alone before it is tried again."""
    partner_webhook_retry_base: timedelta = Field(timedelta(seconds=30), gt=timedelta(0))
    """Wait before the second attempt of a delivery; it doubles each time, up to an hour."""
    partner_webhook_retry_period: timedelta = Field(timedelta(days=3), gt=timedelta(0))
    """How long a delivery is retried before it is dead (partners can redeliver it)."""
    partner_webhook_send_interval: timedelta = Field(timedelta(seconds=2), gt=timedelta(0))
    """How often each instance looks for deliveries due."""
    partner_webhook_secret_overlap: timedelta = Field(timedelta(hours=24), ge=timedelta(0))
    """After a secret is rotated, how long deliveries are signed with the old one too."""
    partner_webhook_allow_private_hosts: bool = False
    """Lets partner webhook endpoints be http(s) on loopback or private addresses: for
    development against a partner's app on the same machine; never in production."""
    rate_limit_partner_key_requests: int = Field(600, ge=0)
    """Requests a partner API key may make per rate-limit window (0: no limit)."""
    partner_gateway_retry_interval: timedelta = Field(timedelta(minutes=1), gt=timedelta(0))
    """How often each instance makes the gateway steps of partner credits and withdrawals
    that a crash or a gateway failure left unmade, and how old such a step must be."""
    partner_credit_expiry: timedelta = Field(timedelta(hours=24), gt=timedelta(0))
    """How long a card credit waits for its payment before it is cancelled (expired)."""

    # Marketplace
    categories: Annotated[list[str], NoDecode] = [
        "cleaning",
        "gardening",
        "handyman",
        "moving",
        "delivery",
        "assembly",
        "painting",
        "plumbing",
        "electrical",
        "pet-care",
        "tutoring",
        "other",
    ]
    currencies: Annotated[list[str], NoDecode] = []
    """Accepted currencies; empty accepts every currency the payment gateway can charge
    (documents/payments/currencies.py), and only those may be named."""
    customer_fee_bp: int = Field(1000, ge=0, le=10_000)
    """Service fee the customer pays on top of a deal's price (a booking's package price
    or an accepted offer), in basis points (1000 = 10 %)."""
    commission_on_hold_bp: int = Field(0, ge=0, le=10_000)
    """Commission kept from the price once the payer's money is held (staged fees)."""
    commission_on_release_bp: int = Field(1000, ge=0, le=10_000)
    """Commission kept from the price when the escrow is released to the provider; the
    provider gets the price less both commissions."""
    payment_deadline: timedelta = Field(timedelta(hours=24), gt=timedelta(0))
    """How long the payer has to pay an accepted offer or a confirmed booking (a booking's
    never runs past its start less the booking notice); unpaid then, the deal lapses."""
    auto_release_after: timedelta = Field(timedelta(hours=48), ge=timedelta(0))
    """An escrow is released this long after a task is submitted or a booking ends,
    unless a dispute is open."""
    manual_capture_within: timedelta = Field(timedelta(0), ge=timedelta(0), le=timedelta(days=6))
    """Authorise only, and capture on release, for bookings that settle within this long
    (a card authorisation lasts 7 days); 0 charges every deal at once."""
    escrow_sweep_interval: timedelta = Field(timedelta(minutes=1), gt=timedelta(0))
    """How often each instance retries unfinished escrow steps and auto-releases."""
    cancellation_full_refund_hours: int = Field(24, ge=0)
    cancellation_partial_refund_hours: int = Field(6, ge=0)
    cancellation_partial_refund_bp: int = Field(5000, ge=0, le=10_000)
    booking_start_window: timedelta = Field(timedelta(hours=2), ge=timedelta(0))
    """How long before its start time a booking may be started (on the way, arrived early);
    at least the booking notice makes the earliest slot startable as soon as it is paid."""
    slot_step_minutes: int = Field(30, ge=5, le=240)
    booking_min_notice_minutes: int = Field(60, ge=0)
    max_pending_bookings: int = Field(3, ge=1)
    """Booking requests one customer may have waiting for an answer at once, across
    providers: each holds a provider's time."""
    booking_request_expiry: timedelta = Field(timedelta(hours=24), gt=timedelta(0))
    """How long a provider has to answer a booking request (never past its start less the
    booking notice); unanswered then, it expires and frees its time."""
    review_reveal_days: int = Field(7, ge=0)
    review_publish_interval: timedelta = Field(timedelta(minutes=1), gt=timedelta(0))
    """How often each instance publishes the reviews whose reveal time has come."""
    chat_edit_window: timedelta = Field(timedelta(minutes=15), ge=timedelta(0))
    """How long after sending a message its sender may still edit or delete it."""

    # GraphQL
    graphiql: bool | None = None
    introspection: bool | None = None
    max_query_depth: int = Field(12, ge=2)
    max_query_cost: int = Field(10_000, ge=10)
    max_aliases: int = Field(30, ge=0)
    max_tokens: int = Field(5_000, ge=100)
    max_query_length: int = Field(100_000, ge=1_000)
    """Characters of one GraphQL document; comments and long strings are no tokens, but
    reading them is work all the same."""
    max_batch_operations: int = Field(10, ge=1)
    default_page_size: int = Field(20, ge=1)
    max_page_size: int = Field(100, ge=1)

    # Persisted queries and trusted documents (schema/persisted/)
    persisted_queries: bool | None = None
    """Automatic persisted queries (Apollo's protocol); on in development, off in
    production, where front ends ship a trusted-documents manifest instead."""
    persisted_queries_ttl: timedelta = Field(timedelta(hours=24), ge=timedelta(seconds=1))
    """How long Redis keeps a registered query text since it was last registered."""
    persisted_queries_shared_bytes: int = Field(10_000_000, ge=1_000_000)
    """Bytes of registered query texts (UTF-8) Redis holds for all instances; the oldest go
    first beyond it."""
    trusted_documents: Annotated[list[Path], NoDecode] = []
    """Manifests of the operations front ends were built with (JSON objects of id to text,
    as @graphql-codegen's client preset and Relay write them), checked at start-up."""
    trusted_documents_mode: Literal["off", "allow", "only"] = "allow"
    """`allow`: manifest documents by id, and any text; `only`: manifest documents only;
    `off`: the manifests are not read."""
    trusted_documents_exempt_admins: bool = True
    """In `only` mode, an access token of an admin may still send any text (their tools)."""

    # Rate limits per client IP and per account, over a sliding window; 0 turns one off.
    rate_limit_window: timedelta = Field(timedelta(minutes=1), ge=timedelta(seconds=1))
    rate_limit_ip_requests: int = Field(100, ge=0)
    rate_limit_ip_cost: int = Field(100_000, ge=0)
    """Query cost (as GIGQL_MAX_QUERY_COST measures it) an address may spend a window; at
    least the dearest request the limits let through (a full batch of the dearest
    operations), which a smaller budget would refuse for ever."""
    rate_limit_account_requests: int = Field(100, ge=0)
    rate_limit_account_cost: int = Field(100_000, ge=0)

    # Websockets
    ws_connection_init_timeout: timedelta = Field(timedelta(seconds=10), gt=timedelta(0))
    """How long a new websocket may take to send `connection_init` before it is closed (4408)."""
    ws_keep_alive_interval: timedelta = Field(timedelta(seconds=5), gt=timedelta(0))
    """How often the legacy `graphql-ws` protocol sends `ka`. Its clients close a socket
    that goes quiet: subscriptions-transport-ws (Apollo's WebSocketLink) after its
    `timeout` (30 s by default, often set lower) without one; 5 s stays well under."""
    ws_allow_anonymous: bool = False
    """Accept websockets whose `connection_init` carries no access token (for a deployment
    with public subscriptions); by default a socket is a session and needs one (4403)."""
    subscriber_queue_size: int = Field(1000, ge=1)
    """Messages a subscription may fall behind by before its websocket is closed (1013)."""

    # Metrics and traces (server/observability/)
    metrics: bool = True
    """Count requests, operations, sockets, the broker and the database for `/metrics`."""
    metrics_port: int | None = Field(None, ge=1, le=65535)
    """Serve `/metrics` only on connections to this port, which serves nothing else."""
    metrics_host: str | None = None
    """The interface of GIGQL_METRICS_PORT; GIGQL_HOST unless set."""
    metrics_token: SecretStr | None = Field(None, min_length=16)
    """A bearer token `/metrics` requires (on whichever port serves it)."""
    otel_exporter_otlp_endpoint: str | None = Field(
        None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_ENDPOINT")
    )
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        None, validation_alias=AliasChoices("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )
    otel_traces_exporter: Annotated[list[str], NoDecode] = Field(
        [], validation_alias=AliasChoices("OTEL_TRACES_EXPORTER")
    )
    """OpenTelemetry's own variables, read by its SDK; here they only decide whether
    tracing is loaded at all (`tracing_enabled`)."""
    otel_sdk_disabled: bool = Field(False, validation_alias=AliasChoices("OTEL_SDK_DISABLED"))

    @field_validator("app_url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        # Mailed links and the gateway's onboarding return links are built on it.
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("GIGQL_APP_URL must be an absolute http(s) URL")
        return value.rstrip("/")

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str) -> str:
        # Unsubscribe links are this plus a path and a query of their own.
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("GIGQL_PUBLIC_URL must be an absolute http(s) URL")
        if "?" in value or "#" in value:
            raise ValueError("GIGQL_PUBLIC_URL must have no query or fragment")
        return value.rstrip("/")

    @field_validator("twilio_from")
    @classmethod
    def _twilio_sender(cls, value: str | None) -> str | None:
        if value is None or re.fullmatch(TWILIO_SENDER, value):
            return value
        raise ValueError(
            "TWILIO_FROM must be a Twilio number (+14155550123), an alphanumeric sender ID "
            "(up to 11 letters, digits and spaces, one letter at least) or a Messaging "
            "Service SID (MG and 32 hex digits)"
        )

    @field_validator("twilio_api_base")
    @classmethod
    def _api_base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("GIGQL_TWILIO_API_BASE must be an absolute http(s) URL")
        return value.rstrip("/")

    @field_validator("vapid_subject")
    @classmethod
    def _contact(cls, value: str | None) -> str | None:
        # The forms push services (and pywebpush, before it signs) accept as `sub`.
        if value is not None and not _VAPID_SUBJECT.fullmatch(value):
            raise ValueError(
                "GIGQL_VAPID_SUBJECT must be a mailto: address or the https URL of a host "
                "(mailto:ops@example.com, https://example.com)"
            )
        return value

    @field_validator("currencies", mode="after")
    @classmethod
    def _chargeable(cls, value: list[str]) -> list[str]:
        codes = [code.strip().upper() for code in value]
        unknown = [code for code in codes if chargeable_currency(code) is None]
        if unknown:
            raise ValueError(
                f"GIGQL_CURRENCIES: the payment gateway cannot charge {', '.join(unknown)}; "
                f"it charges {', '.join(CHARGEABLE_CURRENCIES)}"
            )
        return codes

    @field_validator("stripe_connect_country", mode="after")
    @classmethod
    def _existing_country(cls, value: str) -> str:
        if pycountry.countries.get(alpha_2=value) is None:
            raise ValueError("GIGQL_STRIPE_CONNECT_COUNTRY must be an ISO 3166-1 alpha-2 code")
        return value

    _split_lists = field_validator(
        "trusted_proxies",
        "cors_origins",
        "categories",
        "currencies",
        "trusted_documents",
        mode="before",
    )(_split_commas)

    @field_validator("otel_traces_exporter", mode="before")
    @classmethod
    def _traces_exporters(cls, value: object) -> object:
        exporters = _split_commas(value)
        if isinstance(exporters, list):
            exporters = [str(name).lower() for name in exporters]
            unknown = sorted(set(exporters) - TRACES_EXPORTERS)
            if unknown:
                raise ValueError(
                    f"OTEL_TRACES_EXPORTER: gigql ships {', '.join(sorted(TRACES_EXPORTERS))}, "
                    f"not {', '.join(unknown)}"
                )
        return exporters

    @model_validator(mode="after")
    def _check_production(self) -> Settings:
        if self.default_page_size > self.max_page_size:
            raise ValueError("GIGQL_DEFAULT_PAGE_SIZE must not exceed GIGQL_MAX_PAGE_SIZE")
        dearest_request = self.max_query_cost * self.max_batch_operations
        if any(
            0 < limit < dearest_request
            for limit in (self.rate_limit_ip_cost, self.rate_limit_account_cost)
        ):
            raise ValueError(
                "a rate limit on query cost must be 0, or at least GIGQL_MAX_QUERY_COST times "
                f"GIGQL_MAX_BATCH_OPERATIONS ({dearest_request})"
            )
        if self.trusted_documents_mode == "only" and not self.trusted_documents:
            raise ValueError(
                "GIGQL_TRUSTED_DOCUMENTS_MODE=only needs GIGQL_TRUSTED_DOCUMENTS: the manifests "
                "of the operations to run"
            )
        if self.cancellation_partial_refund_hours > self.cancellation_full_refund_hours:
            raise ValueError("the partial-refund window must end before the full-refund one")
        if self.commission_on_hold_bp + self.commission_on_release_bp > 10_000:
            raise ValueError("the two commissions together must not exceed 10000 basis points")
        if self.stripe_secret_key and not self.stripe_webhook_secret:
            # Webhooks are the source of truth for payment state: unverifiable, none count.
            raise ValueError("STRIPE_WEBHOOK_SECRET must be set along with STRIPE_SECRET_KEY")
        if self.sms_backend == "twilio" and not (
            self.twilio_account_sid and self.twilio_auth_token and self.twilio_from
        ):
            raise ValueError(
                "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM must be set with "
                "GIGQL_SMS_BACKEND=twilio"
            )
        self._check_vapid_keys()
        if self.metrics_port is not None and self.metrics_port == self.port:
            raise ValueError("GIGQL_METRICS_PORT must differ from GIGQL_PORT")
        if self.environment == "production":
            secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
            if len(secret.encode()) < MIN_JWT_SECRET_BYTES:
                raise ValueError(
                    f"GIGQL_JWT_SECRET must be set to at least {MIN_JWT_SECRET_BYTES} bytes "
                    "in production"
                )
            if not self.stripe_secret_key and not self.allow_sandbox_payments:
                raise ValueError(
                    "STRIPE_SECRET_KEY must be set in production (or "
                    "GIGQL_ALLOW_SANDBOX_PAYMENTS=true for a demo that takes no real payments)"
                )
            if self.partner_webhook_allow_private_hosts:
                raise ValueError(
                    "GIGQL_PARTNER_WEBHOOK_ALLOW_PRIVATE_HOSTS is for development only"
                )
            if self.push_backend == "vapid" and not (self.vapid_private_key and self.vapid_subject):
                # Every instance must sign with the key browsers subscribed to: not one
                # generated per machine.
                raise ValueError(
                    "GIGQL_VAPID_PRIVATE_KEY, GIGQL_VAPID_PUBLIC_KEY and GIGQL_VAPID_SUBJECT "
                    "must be set in production (or GIGQL_PUSH_BACKEND=log, which sends no web "
                    "push); `gigql generate-vapid-keys` makes a key pair"
                )
        return self

    def _check_vapid_keys(self) -> None:
        """A configured VAPID key pair is a P-256 pair, whole: a public key that is not
        the private key's would have browsers subscribe to a key no message is signed with."""
        if (self.vapid_private_key is None) != (self.vapid_public_key is None):
            raise ValueError("GIGQL_VAPID_PRIVATE_KEY and GIGQL_VAPID_PUBLIC_KEY are set together")
        if self.vapid_private_key is None or self.vapid_public_key is None:
            return
        key = private_key_of(self.vapid_private_key.get_secret_value())
        if key is None:
            raise ValueError(
                "GIGQL_VAPID_PRIVATE_KEY must be a P-256 private key: its 32 bytes in base64url"
            )
        if b64url_decode(self.vapid_public_key) != b64url_decode(public_key_text(key)):
            raise ValueError(
                "GIGQL_VAPID_PUBLIC_KEY must be the public key of GIGQL_VAPID_PRIVATE_KEY "
                "(65 bytes, base64url)"
            )

    @property
    def production(self) -> bool:
        return self.environment == "production"

    @property
    def tracing_enabled(self) -> bool:
        """Whether OpenTelemetry's variables ask for traces: an OTLP endpoint, or an
        exporter other than `none`, unless OTEL_SDK_DISABLED. Off, nothing of it is
        loaded."""
        if self.otel_sdk_disabled or self.otel_traces_exporter == ["none"]:
            return False
        return bool(
            self.otel_traces_exporter
            or self.otel_exporter_otlp_endpoint
            or self.otel_exporter_otlp_traces_endpoint
        )

    @property
    def push_contact(self) -> str:
        """The VAPID `sub`: GIGQL_VAPID_SUBJECT (required in production), else the
        address mails are sent from, if it is one push services take."""
        if self.vapid_subject is not None:
            return self.vapid_subject
        sender = f"mailto:{parseaddr(self.mail_from)[1]}"
        return sender if _VAPID_SUBJECT.fullmatch(sender) else "mailto:no-reply@localhost"

    @property
    def listens_on_loopback(self) -> bool:
        """Whether `host` is a loopback address (or `localhost`): this machine only."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host.strip("[]")).is_loopback
        except ValueError:
            return False  # a host name: it may resolve to any interface

    @property
    def graphiql_enabled(self) -> bool:
        return self.graphiql if self.graphiql is not None else not self.production

    @property
    def persisted_queries_enabled(self) -> bool:
        if self.persisted_queries is not None:
            return self.persisted_queries
        return not self.production

    @property
    def introspection_enabled(self) -> bool:
        return self.introspection if self.introspection is not None else not self.production
