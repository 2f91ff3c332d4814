"""What each person chose about notifications, and where they can be reached.

One document per person, read in the transaction that makes deliveries (so that a choice
counts from the next change on) and again when a delivery is sent (quiet hours, a phone
number removed meanwhile).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from beanie import Document, PydanticObjectId
from pydantic import BaseModel, Field
from pymongo import ASCENDING, IndexModel

from documents.clock import utcnow
from documents.notifications.catalogue import CATALOGUE, Channel, NotificationKind


class QuietHours(BaseModel):
    """No SMS or push between `start` and `end`, in the person's time zone (an end before
    the start runs past midnight). E-mail waits too only if `email_waits`."""

    start: time
    end: time
    time_zone: str
    email_waits: bool = False

    def covers(self, moment: datetime) -> bool:
        local = moment.astimezone(ZoneInfo(self.time_zone)).time()
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def ends_after(self, moment: datetime) -> datetime:
        """When the quiet hours that cover `moment` end (UTC)."""
        zone = ZoneInfo(self.time_zone)
        local = moment.astimezone(zone)
        end = datetime.combine(local.date(), self.end, tzinfo=zone)
        if end <= local:
            end = datetime.combine(local.date() + timedelta(days=1), self.end, tzinfo=zone)
        return end.astimezone(UTC)


class Phone(BaseModel):
    number: str
    """E.164: + and up to 15 digits."""
    verified_at: datetime | None = None
    code_hash: str | None = None
    """The one-time code sent to confirm the number, hashed; None once used."""
    code_expires_at: datetime | None = None


class PushSubscription(BaseModel):
    """A browser's PushSubscription, as its JSON gives it."""

    endpoint: str
    p256dh: str
    auth: str
    added_at: datetime = Field(default_factory=utcnow)


class NotificationPreferences(Document):
    user_id: PydanticObjectId
    choices: dict[NotificationKind, list[Channel]] = Field(default_factory=dict)
    """The channels chosen per kind; a kind not here goes out on its defaults."""
    quiet_hours: QuietHours | None = None
    phone: Phone | None = None
    push_subscriptions: list[PushSubscription] = Field(default_factory=list)
    updated_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "notification_preferences"
        use_revision = False
        indexes = [
            IndexModel([("user_id", ASCENDING)], unique=True),
            # Registering an endpoint takes it from whoever had it (push_subscriptions.py).
            IndexModel([("push_subscriptions.endpoint", ASCENDING)]),
        ]
        # BSON has no time of day; "HH:MM" reads back as one.
        bson_encoders = {time: lambda value: value.isoformat(timespec="minutes")}

    def chosen(self, kind: NotificationKind) -> frozenset[Channel]:
        """The channels this person receives `kind` on as far as choice goes: their choice,
        else the defaults. A kind that may not be turned off keeps its defaults whatever
        they chose, and takes any channel they added."""
        entry = CATALOGUE[kind]
        choice = frozenset(self.choices.get(kind, entry.default))
        return choice if entry.optional else entry.default | choice

    def channels(self, kind: NotificationKind) -> frozenset[Channel]:
        """The channels `kind` goes out on for this person, where they can be reached."""
        wanted = self.chosen(kind)
        reachable = {Channel.EMAIL}
        if self.phone is not None and self.phone.verified_at is not None:
            reachable.add(Channel.SMS)
        if self.push_subscriptions:
            reachable.add(Channel.PUSH)
        return frozenset(wanted & reachable)
