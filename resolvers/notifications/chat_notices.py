"""Chat messages someone has not read, told beyond the app a few minutes later, once
per unread stretch.

A message schedules, in the transaction that sends it, a CHAT_MESSAGE notice to each
other member of the conversation, due GIGQL_CHAT_NOTIFICATION_DELAY later. Its key is
the conversation, the recipient and their read position: the window is the stretch of
messages they have not read yet, so the messages after the first one in it find the
key taken and add nothing (however many arrive, and however long they stay unread).
Reading the conversation, or writing in it, moves the position and opens a new window.
A notice whose recipient has read the conversation by the time it comes due is
dropped (relevance.py).

This stands in for "while the recipient has no live subscription": someone in the app
with the conversation open reads the message within the delay and hears nothing more.
"""

from __future__ import annotations

from datetime import timedelta

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession

from documents.chat.conversations import ChatMessage, Conversation
from documents.notifications.catalogue import NotificationKind
from documents.notifications.scheduled import ScheduledMessage
from resolvers.notifications import scheduled


def notice_key(conversation: Conversation, recipient: ObjectId, read_up_to: int) -> str:
    """One notice per conversation, recipient and unread stretch."""
    return f"{NotificationKind.CHAT_MESSAGE.value}:{conversation.id}:{recipient}:{read_up_to}"


async def message_sent(
    session: AsyncClientSession | None,
    conversation: Conversation,
    message: ChatMessage,
    sender_name: str,
    delay: timedelta,
) -> int:
    """Within the sending transaction (`conversation` as read in it): the notice of
    `message` to each other member who has none pending for their unread stretch; how
    many were scheduled."""
    written = 0
    for member in conversation.members:
        if member.removed_at is not None or member.user_id == message.sender_id:
            continue
        notice = ScheduledMessage(
            key=notice_key(conversation, member.user_id, member.last_read_seq),
            kind=NotificationKind.CHAT_MESSAGE,
            user_id=member.user_id,
            due_at=message.sent_at + delay,
            title=f"You have unread messages from {sender_name}",
            context={
                "conversation_id": str(conversation.id),
                "read_up_to": member.last_read_seq,
                "seq": message.seq,
            },
            created_at=message.sent_at,
        )
        written += await scheduled.schedule(session, notice)
    return written
