"""Whether a scheduled message still means something when it comes due.

A message is scheduled for how things stood when it was made; by its time the booking
may have been cancelled or started, the review written, the chat read. Such a message is
dropped rather than sent late or needlessly, and each check here says why, for the
record (`ScheduledMessage.ended_reason`). Every read goes through the transaction that
settles the message (scheduled.py), so a change committed before it counts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime

from beanie import PydanticObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.chat.conversations import Conversation
from documents.marketplace.bookings import Booking, BookingStatus
from documents.marketplace.reviews import Review
from documents.marketplace.tasks import Task, TaskStatus
from documents.notifications.catalogue import NotificationKind as K
from documents.notifications.scheduled import ScheduledMessage

Check = Callable[[ScheduledMessage, AsyncClientSession | None], Awaitable[str | None]]


async def drop_reason(
    message: ScheduledMessage, now: datetime, session: AsyncClientSession | None
) -> str | None:
    """Why `message`, due by `now`, is not to be sent; None if it is."""
    if message.drop_after is not None and now > message.drop_after:
        return "it came due after the moment it was about"
    check = _CHECKS.get(message.kind)
    return None if check is None else await check(message, session)


async def _booking_confirmed(
    message: ScheduledMessage, session: AsyncClientSession | None
) -> str | None:
    """A reminder is for a booking still going ahead as confirmed (not cancelled, not
    already started, not disputed)."""
    booking = await Booking.get(message.booking_id, session=session) if message.booking_id else None
    if booking is None or booking.status is not BookingStatus.CONFIRMED:
        return "the booking is no longer confirmed"
    return None


async def _review_owed(message: ScheduledMessage, session: AsyncClientSession | None) -> str | None:
    """A review request is for completed work its recipient has not reviewed yet."""
    subject_id = message.booking_id or message.task_id
    completed = False
    if message.booking_id is not None:
        booking = await Booking.get(message.booking_id, session=session)
        completed = booking is not None and booking.status is BookingStatus.COMPLETED
    elif message.task_id is not None:
        task = await Task.get(message.task_id, session=session)
        completed = task is not None and task.status is TaskStatus.COMPLETED
    if not completed:
        return "the work is no longer completed"
    if await Review.find_one(
        {"subject_id": subject_id, "author_id": message.user_id}, session=session
    ):
        return "they have reviewed it already"
    return None


async def _chat_unread(message: ScheduledMessage, session: AsyncClientSession | None) -> str | None:
    """A chat notice is for someone still in the conversation who has not read anything
    in it since the message that scheduled the notice (chat_notices.py)."""
    conversation_id = PydanticObjectId(message.context["conversation_id"])
    conversation = await Conversation.get(conversation_id, session=session)
    member = conversation.member(message.user_id) if conversation is not None else None
    if member is None:
        return "they are no longer in the conversation"
    if member.last_read_seq > message.context["read_up_to"]:
        return "they have read the conversation since"
    return None


_CHECKS: dict[K, Check] = {
    K.BOOKING_REMINDER_DAY: _booking_confirmed,
    K.BOOKING_REMINDER_HOUR: _booking_confirmed,
    K.BOOKING_REMINDER_SOON: _booking_confirmed,
    K.REVIEW_REQUEST: _review_owed,
    K.CHAT_MESSAGE: _chat_unread,
}
