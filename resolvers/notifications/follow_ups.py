"""What a deal's new status schedules: a booking's reminders, and requests for reviews.

`deal_moved` is called by `transition` (resolvers/common/transitions.py), the one way a
task's or booking's status changes, inside the move's transaction: the messages are
scheduled and cancelled exactly when the move commits, whichever path made it (either
side, the expiry and lapse jobs, an admin deciding a dispute, an account closing).

- A booking confirmed schedules its reminders: 24 hours before its start to both sides,
  1 hour before to the provider, 30 minutes before to the customer (the channels are the
  catalogue's). One whose time has already passed is skipped; each is dropped if it comes
  due after the start, or once the booking is no longer confirmed (relevance.py).
- A booking leaving confirmed (cancelled, lapsed, started, disputed), or declined or
  expired before it, has its pending reminders cancelled.
- A task or booking completed asks both sides for a review GIGQL_REVIEW_REQUEST_DELAY
  later; a side that has reviewed by then is not asked.

Bookings cannot be rescheduled (another time is another booking), so no reminder is
ever moved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from beanie import Document, PydanticObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.accounts.profiles import ProviderProfile
from documents.marketplace.bookings import Booking, BookingStatus
from documents.marketplace.tasks import Task, TaskStatus
from documents.notifications.catalogue import NotificationKind as K
from documents.notifications.scheduled import ScheduledMessage
from documents.settings import Settings
from resolvers.notifications import scheduled


@dataclass(frozen=True, slots=True)
class Reminder:
    kind: K
    before: timedelta
    """How long before the booking's start it is due."""
    to_customer: bool
    to_provider: bool
    wording: str
    """Its title, with `{name}` the package and `{day}`, `{time}` the local start."""

    def recipients(self, booking: Booking) -> list[PydanticObjectId]:
        return [
            person
            for person, wanted in (
                (booking.customer_id, self.to_customer),
                (booking.provider_id, self.to_provider),
            )
            if wanted
        ]


REMINDERS = (
    Reminder(
        K.BOOKING_REMINDER_DAY,
        timedelta(hours=24),
        to_customer=True,
        to_provider=True,
        wording="Reminder: “{name}” is booked for {day} at {time}",
    ),
    Reminder(
        K.BOOKING_REMINDER_HOUR,
        timedelta(hours=1),
        to_customer=False,
        to_provider=True,
        wording="“{name}” starts in an hour, at {time}",
    ),
    Reminder(
        K.BOOKING_REMINDER_SOON,
        timedelta(minutes=30),
        to_customer=True,
        to_provider=False,
        wording="“{name}” starts in 30 minutes, at {time}",
    ),
)
REMINDER_KINDS = [reminder.kind.value for reminder in REMINDERS]


async def deal_moved(
    session: AsyncClientSession | None,
    settings: Settings,
    deal: Document,
    previous: StrEnum,
    now: datetime,
) -> None:
    """Within the move's transaction: what `deal` (a task or booking as it is after the
    move made at `now` from `previous`) schedules or cancels; nothing for other documents
    and moves."""
    if isinstance(deal, Booking):
        await _booking_moved(session, settings, deal, previous, now)
    elif isinstance(deal, Task) and deal.status is TaskStatus.COMPLETED:
        await ask_for_reviews(
            session, settings, deal.title, deal.participants, now, task_id=deal.id
        )


async def _booking_moved(
    session: AsyncClientSession | None,
    settings: Settings,
    booking: Booking,
    previous: StrEnum,
    now: datetime,
) -> None:
    assert booking.id is not None
    if booking.status is BookingStatus.CONFIRMED:
        await schedule_reminders(session, booking, now)
        return
    if previous is BookingStatus.CONFIRMED:
        # Reminders are made on confirming and ended on leaving it: only then are any
        # pending, so no other move need look.
        await scheduled.cancel(
            session,
            {"booking_id": booking.id, "kind": {"$in": REMINDER_KINDS}},
            f"the booking is {booking.status.value.replace('_', ' ')}",
            now,
        )
    if booking.status is BookingStatus.COMPLETED:
        await ask_for_reviews(
            session,
            settings,
            booking.package.name,
            booking.participants,
            now,
            booking_id=booking.id,
        )


async def schedule_reminders(
    session: AsyncClientSession | None, booking: Booking, now: datetime
) -> int:
    """The confirmed booking's reminders whose time is still ahead of `now`; how many."""
    profile = await ProviderProfile.get(booking.provider_id, session=session)
    # The provider's clock: where the work is done.
    local = booking.start_at.astimezone(ZoneInfo(profile.time_zone) if profile else UTC)
    written = 0
    for reminder in REMINDERS:
        due = booking.start_at - reminder.before
        if due <= now:
            continue
        title = reminder.wording.format(
            name=booking.package.name, day=f"{local:%a %d %b %Y}", time=f"{local:%H:%M %Z}"
        )
        for person in reminder.recipients(booking):
            message = ScheduledMessage(
                key=f"{reminder.kind.value}:{booking.id}:{person}",
                kind=reminder.kind,
                user_id=person,
                due_at=due,
                drop_after=booking.start_at,
                booking_id=booking.id,
                title=title,
                context={"booking_id": str(booking.id), "start_at": booking.start_at.isoformat()},
                created_at=now,
            )
            written += await scheduled.schedule(session, message)
    return written


async def ask_for_reviews(
    session: AsyncClientSession | None,
    settings: Settings,
    title: str,
    sides: list[PydanticObjectId],
    now: datetime,
    *,
    task_id: PydanticObjectId | None = None,
    booking_id: PydanticObjectId | None = None,
) -> None:
    """Each side of the completed task or booking asked for a review
    GIGQL_REVIEW_REQUEST_DELAY from `now` (again, after a dispute, if not asked yet)."""
    subject, subject_id = ("task", task_id) if task_id is not None else ("booking", booking_id)
    for person in sides:
        message = ScheduledMessage(
            key=f"{K.REVIEW_REQUEST.value}:{subject}:{subject_id}:{person}",
            kind=K.REVIEW_REQUEST,
            user_id=person,
            due_at=now + settings.review_request_delay,
            task_id=task_id,
            booking_id=booking_id,
            title=f"How did “{title}” go? Leave a review",
            context={f"{subject}_id": str(subject_id)},
            created_at=now,
        )
        await scheduled.schedule_again(session, message)
