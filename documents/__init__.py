"""Beanie documents: the data model, its indexes and the invariants of the data."""

from beanie import Document

from documents.audit import AuditEvent
from documents.bookings import Booking
from documents.chat import ChatMessage, Conversation
from documents.disputes import Dispute
from documents.escrow import Escrow
from documents.events import DomainEvent, Notification
from documents.ledger import AccountBalance, LedgerTransaction
from documents.offers import Offer
from documents.one_time_tokens import OneTimeToken
from documents.packages import ServicePackage
from documents.payouts import Withdrawal
from documents.profiles import CustomerProfile, ProviderProfile
from documents.reviews import Review
from documents.sessions import RefreshToken, Session
from documents.tasks import Task
from documents.throttle import FailureWindow, PasswordLock
from documents.users import User
from documents.webhooks import WebhookEvent

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
]
