"""Beanie documents: the data model, its indexes and the invariants of the data."""

from beanie import Document

from documents.accounts.audit import AuditEvent
from documents.accounts.one_time_tokens import OneTimeToken
from documents.accounts.profiles import CustomerProfile, ProviderProfile
from documents.accounts.sessions import RefreshToken, Session
from documents.accounts.throttle import FailureWindow, PasswordLock
from documents.accounts.users import User
from documents.chat.conversations import ChatMessage, Conversation
from documents.events import DomainEvent, Notification
from documents.leases import JobLease
from documents.marketplace.bookings import Booking
from documents.marketplace.offers import Offer
from documents.marketplace.packages import ServicePackage
from documents.marketplace.reviews import Review
from documents.marketplace.tasks import Task
from documents.notifications.deliveries import Delivery
from documents.notifications.preferences import NotificationPreferences
from documents.notifications.scheduled import ScheduledMessage
from documents.partners.api_keys import PartnerApiKey
from documents.partners.partners import Partner
from documents.partners.transactions import PartnerGatewayObject, PartnerTransaction
from documents.partners.wallets import PartnerWallet, WalletEntry
from documents.partners.webhooks import (
    PartnerWebhookDelivery,
    PartnerWebhookEndpoint,
    PartnerWebhookEvent,
)
from documents.payments.disputes import Dispute
from documents.payments.escrow import Escrow
from documents.payments.ledger import AccountBalance, LedgerTransaction
from documents.payments.payouts import Withdrawal
from documents.payments.webhooks import WebhookEvent

ALL_DOCUMENTS: list[type[Document]] = [
    User,
    Session,
    RefreshToken,
    OneTimeToken,
    AuditEvent,
    FailureWindow,
    PasswordLock,
    DomainEvent,
    Notification,
    ProviderProfile,
    CustomerProfile,
    Task,
    Offer,
    ServicePackage,
    Booking,
    Review,
    Conversation,
    ChatMessage,
    LedgerTransaction,
    AccountBalance,
    Withdrawal,
    WebhookEvent,
    Escrow,
    Dispute,
    JobLease,
    Delivery,
    NotificationPreferences,
    ScheduledMessage,
    Partner,
    PartnerApiKey,
    PartnerWallet,
    WalletEntry,
    PartnerTransaction,
    PartnerGatewayObject,
    PartnerWebhookEndpoint,
    PartnerWebhookEvent,
    PartnerWebhookDelivery,
]
