"""The long-lived resources of a server process, opened at start-up and closed at exit."""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, timedelta
from pathlib import Path

from beanie import init_beanie
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from documents import ALL_DOCUMENTS
from documents.accounts.profiles import ProviderProfile
from documents.geo import fill_in_areas
from documents.marketplace.tasks import Task
from documents.notifications.push_keys import generate_private_key
from documents.settings import Settings
from integrations.mail import ConsoleMailer, Mailer, MemoryMailer, Postman, SmtpConfig, SmtpMailer
from integrations.payments.factory import gateway_from_settings
from integrations.payments.gateway import PaymentGateway
from integrations.push import LogPush, PushSender, VapidKeys, VapidPush
from integrations.sms import LogSms, SmsSender, TwilioConfig, TwilioSms
from realtime.broker import Broker, InProcessBroker, RedisBroker
from realtime.cluster import ClusterBroker
from realtime.redis_urls import cluster_address
from resolvers.accounts.auth.passwords import Passwords
from resolvers.accounts.auth.tokens import AccessTokens
from resolvers.common.cursors import CursorKey
from resolvers.common.services import Services
from resolvers.common.validation import PriceRules
from resolvers.marketplace.deal_terms import DealTerms, cancellation_policy
from resolvers.notifications.unsubscribe import UnsubscribeLinks
from resolvers.payments.fees import FeePolicy
from resolvers.payments.webhooks.inbox import receive
from server.observability.mongodb import CommandDurations
from server.private_files import create_private, private_folder, tighten

log = logging.getLogger(__name__)

JWT_SECRET_FILE = "jwt-secret"  # noqa: S105 - a file name, not a secret
VAPID_KEY_FILE = "vapid-private-key"


@dataclass(frozen=True)
class Runtime:
    services: Services
    mongo: AsyncMongoClient[dict[str, object]]
    database: AsyncDatabase[dict[str, object]]


def mongo_client(url: str, *, metrics: bool = False) -> AsyncMongoClient[dict[str, object]]:
    """With `metrics`, each command's round trip is timed for `/metrics`."""
    listeners = [CommandDurations()] if metrics else []
    return AsyncMongoClient(
        url,
        tz_aware=True,
        tzinfo=UTC,
        serverSelectionTimeoutMS=5000,
        event_listeners=listeners,
    )


def jwt_secret(settings: Settings) -> str:
    """The configured secret, or one generated once and kept in the data folder.

    Keeping it on disk lets development tokens survive a restart and lets every worker
    of one `gigql serve` agree on it; production must configure GIGQL_JWT_SECRET.
    """
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value()
    path = private_folder(Path(settings.data_dir)) / JWT_SECRET_FILE
    if not create_private(path, secrets.token_urlsafe(48)):
        tighten(path)
    return path.read_text().strip()


def create_sms(settings: Settings) -> SmsSender:
    if settings.sms_backend == "twilio":
        sid, token, sender = (
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_from,
        )
        # Settings refuse the Twilio backend without these.
        assert sid is not None and token is not None and sender is not None
        return TwilioSms(
            TwilioConfig(sid, token.get_secret_value(), sender, settings.twilio_api_base)
        )
    return LogSms()


def vapid_keys(settings: Settings) -> VapidKeys:
    """The configured VAPID key pair, or one generated once and kept in the data folder.

    Browsers subscribe to the public key, so it must outlive a restart and be the same
    for every worker; production configures it (GIGQL_VAPID_PRIVATE_KEY), to share it
    between instances.
    """
    if settings.vapid_private_key is not None:
        return VapidKeys.of(settings.vapid_private_key.get_secret_value())
    path = private_folder(Path(settings.data_dir)) / VAPID_KEY_FILE
    if not create_private(path, generate_private_key()):
        tighten(path)
    try:
        return VapidKeys.of(path.read_text().strip())
    except ValueError as error:
        raise RuntimeError(
            f"{path} holds no VAPID private key; remove it to have a new one made (browsers "
            "subscribed to the old one then subscribe again)"
        ) from error


def create_push(settings: Settings) -> PushSender:
    if settings.push_backend == "log":
        return LogPush()
    return VapidPush(vapid_keys(settings), settings.push_contact, ttl=settings.push_ttl)


def create_mailer(settings: Settings) -> Mailer:
    if settings.mail_backend == "memory":
        return MemoryMailer()
    if settings.mail_backend == "smtp":
        return SmtpMailer(
            SmtpConfig(
                host=settings.smtp_host,
                port=settings.smtp_port,
                sender=settings.mail_from,
                username=settings.smtp_username,
                password=settings.smtp_password.get_secret_value()
                if settings.smtp_password
                else None,
                starttls=settings.smtp_starttls,
                timeout=settings.smtp_timeout_seconds,
            )
        )
    return ConsoleMailer()


def create_broker(settings: Settings) -> Broker:
    size = settings.subscriber_queue_size
    if not settings.redis_url:
        return InProcessBroker(size)
    cluster = cluster_address(settings.redis_url)
    return (
        RedisBroker(settings.redis_url, size) if cluster is None else ClusterBroker(cluster, size)
    )


class Loopback:
    """Hands the sandbox gateway's events to this process's webhook inbox, the way Stripe
    posts its own to `/webhooks/stripe`: the same verification, storage and handlers."""

    def __init__(self) -> None:
        self.services: Services | None = None

    async def __call__(self, payload: bytes, signature: str) -> None:
        if self.services is None:
            raise RuntimeError("a sandbox event arrived before the services were made")
        await receive(self.services, payload, signature)


def deal_terms(settings: Settings) -> DealTerms:
    return DealTerms(
        payment_deadline=settings.payment_deadline,
        auto_release_after=settings.auto_release_after,
        manual_capture_within=settings.manual_capture_within,
        booking_min_notice=timedelta(minutes=settings.booking_min_notice_minutes),
        slot_step=timedelta(minutes=settings.slot_step_minutes),
        booking_start_window=settings.booking_start_window,
        booking_request_expiry=settings.booking_request_expiry,
        max_pending_bookings=settings.max_pending_bookings,
        cancellation_policy=cancellation_policy(
            full_refund_hours=settings.cancellation_full_refund_hours,
            partial_refund_hours=settings.cancellation_partial_refund_hours,
            partial_refund_bp=settings.cancellation_partial_refund_bp,
        ),
    )


def fee_policy(settings: Settings) -> FeePolicy:
    return FeePolicy(
        customer_fee_bp=settings.customer_fee_bp,
        commission_on_hold_bp=settings.commission_on_hold_bp,
        commission_on_release_bp=settings.commission_on_release_bp,
    )


def make_services(
    settings: Settings, postman: Postman, broker: Broker, payments: PaymentGateway
) -> Services:
    """The use cases' services. The rules of deals are read from the settings here, once,
    so that each rule takes the few values it keeps to, not every setting there is."""
    fees = fee_policy(settings)
    return Services(
        settings=settings,
        terms=deal_terms(settings),
        fees=fees,
        price_rules=PriceRules.of(settings.currencies, fees),
        passwords=Passwords(
            settings.argon2_time_cost,
            settings.argon2_memory_cost_kib,
            settings.argon2_parallelism,
            settings.argon2_max_concurrent,
        ),
        tokens=AccessTokens(
            jwt_secret(settings),
            settings.jwt_issuer,
            settings.jwt_audience,
            settings.access_token_ttl,
        ),
        postman=postman,
        sms=create_sms(settings),
        push=create_push(settings),
        broker=broker,
        payments=payments,
        cursors=CursorKey(jwt_secret(settings)),
        unsubscribe_links=UnsubscribeLinks(
            jwt_secret(settings), settings.public_url, settings.unsubscribe_link_version
        ),
    )


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    if not settings.mongodb_url:
        raise RuntimeError("MONGODB_URL is not set (gigql serve starts an embedded database)")
    mongo = mongo_client(settings.mongodb_url, metrics=settings.metrics)
    database: AsyncDatabase[dict[str, object]] = mongo[settings.mongodb_database]
    broker = create_broker(settings)
    postman = Postman(create_mailer(settings))
    loopback = Loopback()
    payments = gateway_from_settings(settings, loopback, database)
    services: Services | None = None
    try:
        await init_beanie(database=database, document_models=ALL_DOCUMENTS)
        # Places saved before places had an area: searches find them once they have one.
        for searched in (Task, ProviderProfile):
            await fill_in_areas(searched)
        services = make_services(settings, postman, broker, payments)
        loopback.services = services
        yield Runtime(services=services, mongo=mongo, database=database)
    finally:
        # The sandbox's last events go through the inbox, which needs the database.
        await payments.aclose()
        await postman.drain()
        if services is not None:
            services.passwords.close()
        await broker.close()
        await mongo.close()
