"""Chat: who may talk about a task or booking, and the messages they send.

Only a conversation's two members read and write it; admins may read (never write) a
conversation while its task or booking is disputed, to judge the dispute. A member an admin
removed loses both, and their live subscriptions end (`announce_access_change`).

Every write is a single conditional update or one transaction, so that concurrent
senders get distinct, gapless `seq` numbers and an edit or delete past its window, or
by someone else, changes nothing. Broker notices go out after the write has committed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from beanie import PydanticObjectId
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from documents.chat.conversations import (
    ChatMessage,
    Conversation,
    ConversationSubject,
    Member,
    booking_conversation_key,
    task_conversation_key,
)
from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode
from documents.marketplace.bookings import Booking
from documents.marketplace.offers import Offer
from documents.marketplace.tasks import Task
from realtime.signals import announce_on
from realtime.topics import conversation_topic, user_topic
from resolvers.accounts.auth.viewer import Viewer
from resolvers.chat import signals as chat_signals
from resolvers.common import text_rules
from resolvers.common.deals import deal_disputed
from resolvers.common.pagination import Page, PageRequest, paginate
from resolvers.common.services import Services
from resolvers.common.unit_of_work import UnitOfWork, transact
from resolvers.common.validation import Checked
from resolvers.notifications import chat_notices

MAX_TEXT = 4000
MAX_ATTACHMENTS = 10
NEWEST_FIRST = [("seq", -1), ("_id", -1)]
BY_ACTIVITY = [("activity_at", -1), ("_id", -1)]
NO_SUCH_CONVERSATION = "No such conversation."


async def open_task_conversation(
    viewer: Viewer, task_id: ObjectId, tasker_id: ObjectId | None
) -> Conversation:
    """The poster's conversation with one tasker who offered on the task, opened once."""
    task = await Task.get(PydanticObjectId(task_id))
    if task is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such task.", "subjectId")
    if viewer.user_id == task.poster_id:
        if tasker_id is None:
            raise DomainError(ErrorCode.INVALID_INPUT, "Choose the tasker to talk to.", "taskerId")
    elif tasker_id not in (None, viewer.user_id):
        raise DomainError(
            ErrorCode.FORBIDDEN, "Taskers can only open their own conversation.", "taskerId"
        )
    tasker = PydanticObjectId(tasker_id or viewer.user_id)
    if not await Offer.find_one({"task_id": task.id, "tasker_id": tasker}):
        raise DomainError(
            ErrorCode.FORBIDDEN,
            "Chat about a task is between its poster and the taskers who made an offer.",
            "taskerId" if viewer.user_id == task.poster_id else "subjectId",
        )
    assert task.id is not None
    return await _open(
        viewer,
        Conversation(
            subject=ConversationSubject.TASK,
            task_id=task.id,
            key=task_conversation_key(task.id, tasker),
            members=[Member(user_id=task.poster_id), Member(user_id=tasker)],
            member_ids=[task.poster_id, tasker],
        ),
    )


async def open_booking_conversation(viewer: Viewer, booking_id: ObjectId) -> Conversation:
    booking = await Booking.get(PydanticObjectId(booking_id))
    if booking is None or viewer.user_id not in booking.participants:
        raise DomainError(ErrorCode.NOT_FOUND, "No such booking.", "subjectId")
    assert booking.id is not None
    return await _open(
        viewer,
        Conversation(
            subject=ConversationSubject.BOOKING,
            booking_id=booking.id,
            key=booking_conversation_key(booking.id),
            members=[Member(user_id=p) for p in booking.participants],
            member_ids=booking.participants,
        ),
    )


async def _open(viewer: Viewer, fresh: Conversation) -> Conversation:
    """The conversation under `fresh.key`, inserted if it is the first; of racing openers,
    the unique key lets one insert and the others read what it inserted."""
    conversation = await Conversation.find_one({"key": fresh.key})
    if conversation is None:
        try:
            conversation = await fresh.insert()
        except DuplicateKeyError:
            conversation = await Conversation.find_one({"key": fresh.key})
    assert conversation is not None
    if conversation.member(viewer.user_id) is None:
        raise DomainError(ErrorCode.FORBIDDEN, "You were removed from this conversation.")
    return conversation


async def readable_conversation(viewer: Viewer, conversation_id: ObjectId) -> Conversation:
    """The conversation if the viewer may read it; NOT_FOUND otherwise, so that nobody
    learns which conversations exist."""
    conversation = await Conversation.get(PydanticObjectId(conversation_id))
    if conversation is None or not await may_read(viewer, conversation):
        raise DomainError(ErrorCode.NOT_FOUND, NO_SUCH_CONVERSATION, "conversationId")
    return conversation


async def may_read(viewer: Viewer, conversation: Conversation) -> bool:
    if conversation.member(viewer.user_id) is not None:
        return True
    return viewer.user.is_admin and await under_dispute(conversation)


async def under_dispute(conversation: Conversation) -> bool:
    """Whether admins may read it: its task or booking is disputed."""
    return await deal_disputed(conversation.task_id, conversation.booking_id)


async def _writable(
    viewer: Viewer, conversation_id: ObjectId, unit: UnitOfWork | None = None
) -> Conversation:
    conversation = await Conversation.get(
        PydanticObjectId(conversation_id), session=unit.session if unit else None
    )
    if conversation is None or conversation.member(viewer.user_id) is None:
        if conversation is not None and await may_read(viewer, conversation):
            raise DomainError(
                ErrorCode.FORBIDDEN,
                "Admins read disputed conversations; they cannot write.",
                "conversationId",
            )
        raise DomainError(ErrorCode.NOT_FOUND, NO_SUCH_CONVERSATION, "conversationId")
    return conversation


def _checked_content(text: str, attachment_urls: list[str]) -> tuple[str, list[str]]:
    """Text is kept as written (never escaped or trimmed; line breaks as `\\n`) but
    may hold only characters that belong in text; links must be public https URLs."""
    checked = Checked()
    urls = checked.urls(attachment_urls, "attachmentUrls", maximum=MAX_ATTACHMENTS)
    text = checked.characters(text, "text", multiline=True)
    if len(text) > MAX_TEXT:
        checked.fail(ErrorCode.INVALID_INPUT, f"At most {MAX_TEXT} characters.", "text")
    elif text and not text_rules.has_visible(text):
        checked.fail(ErrorCode.INVALID_INPUT, text_rules.INVISIBLE, "text")
    elif not text and not urls:
        checked.fail(ErrorCode.INVALID_INPUT, "Write something or attach a link.", "text")
    checked.raise_if_any()
    return text, urls


async def send_message(
    services: Services,
    viewer: Viewer,
    conversation_id: ObjectId,
    text: str,
    attachment_urls: list[str],
) -> ChatMessage:
    text, urls = _checked_content(text, attachment_urls)

    async def work(unit: UnitOfWork) -> ChatMessage:
        conversation = await _writable(viewer, conversation_id, unit)
        message_id, now = ObjectId(), utcnow()
        # Concurrent senders conflict on this update and retry: seq has no gaps or repeats.
        bumped = await Conversation.get_pymongo_collection().find_one_and_update(
            {"_id": conversation.id},
            {
                "$inc": {"last_seq": 1},
                "$set": {"activity_at": now, "last_message_id": message_id},
            },
            return_document=ReturnDocument.AFTER,
            session=unit.session,
        )
        assert bumped is not None  # read in this same transaction
        message = ChatMessage(
            id=message_id,
            conversation_id=conversation.id,
            seq=bumped["last_seq"],
            sender_id=viewer.user_id,
            text=text,
            attachment_urls=urls,
            sent_at=now,
        )
        await message.insert(session=unit.session)
        await _read_up_to(unit, conversation, viewer.user_id, message.seq)
        # The other member hears of it beyond the app if it stays unread a while.
        await chat_notices.message_sent(
            unit.session,
            conversation,
            message,
            viewer.user.name,
            services.settings.chat_notification_delay,
        )
        return message

    message = await transact(services, work)
    await chat_signals.send(
        services.broker, message.conversation_id, chat_signals.MessageAdded(message=message)
    )
    return message


async def _read_up_to(
    unit: UnitOfWork | None, conversation: Conversation, user_id: ObjectId, seq: int
) -> Conversation | None:
    """Move the member's read position forward (never back); None when it did not move."""
    member = _member_path(conversation, user_id)
    assert member is not None, "only members read"
    raw = await Conversation.get_pymongo_collection().find_one_and_update(
        {
            "_id": conversation.id,
            f"{member}.removed_at": None,
            f"{member}.last_read_seq": {"$lt": seq},
        },
        {"$set": {f"{member}.last_read_seq": seq}},
        return_document=ReturnDocument.AFTER,
        session=unit.session if unit else None,
    )
    if raw is None:
        return None
    moved: Conversation = Conversation.model_validate(raw)
    return moved


def _member_path(conversation: Conversation, user_id: ObjectId) -> str | None:
    """Where the active member's entry is in the document. Members are never taken out
    of the list (only marked removed), so the position holds across writers."""
    for index, member in enumerate(conversation.members):
        if member.user_id == user_id and member.removed_at is None:
            return f"members.{index}"
    return None


async def edit_message(
    services: Services, viewer: Viewer, message_id: ObjectId, text: str
) -> ChatMessage:
    message = await _own_message(viewer, message_id)
    text, urls = _checked_content(text, message.attachment_urls)
    return await _change(
        services, viewer, message, {"text": text, "attachment_urls": urls, "edited_at": utcnow()}
    )


async def delete_message(services: Services, viewer: Viewer, message_id: ObjectId) -> ChatMessage:
    message = await _own_message(viewer, message_id)
    tombstone = {"text": "", "attachment_urls": [], "deleted_at": utcnow()}
    return await _change(services, viewer, message, tombstone)


async def _own_message(viewer: Viewer, message_id: ObjectId) -> ChatMessage:
    message = await ChatMessage.get(PydanticObjectId(message_id))
    if message is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such message.", "messageId")
    await _writable(viewer, message.conversation_id)
    if message.sender_id != viewer.user_id:
        raise DomainError(ErrorCode.FORBIDDEN, "Only its sender can change a message.", "messageId")
    return message


async def _change(
    services: Services, viewer: Viewer, message: ChatMessage, changes: dict[str, Any]
) -> ChatMessage:
    """Apply an edit or deletion, only if it is still the sender's, not deleted, and
    within the edit window at the moment of writing."""
    window_start = utcnow() - services.settings.chat_edit_window
    raw = await ChatMessage.get_pymongo_collection().find_one_and_update(
        {
            "_id": message.id,
            "sender_id": viewer.user_id,
            "deleted_at": None,
            "sent_at": {"$gt": window_start},
        },
        {"$set": changes},
        return_document=ReturnDocument.AFTER,
    )
    if raw is None:
        reason = (
            "The message was deleted."
            if message.deleted_at
            else "Messages can only be changed for a short while after sending."
        )
        raise DomainError(ErrorCode.INVALID_STATE, reason, "messageId")
    changed: ChatMessage = ChatMessage.model_validate(raw)
    await chat_signals.send(
        services.broker, changed.conversation_id, chat_signals.MessageChanged(message=changed)
    )
    return changed


async def mark_read(
    services: Services, viewer: Viewer, conversation_id: ObjectId, message_id: ObjectId | None
) -> Conversation:
    """Everything up to the message (or the latest) counts as read for the viewer."""
    conversation = await _writable(viewer, conversation_id)
    seq = conversation.last_seq
    if message_id is not None:
        message = await ChatMessage.get(PydanticObjectId(message_id))
        if message is None or message.conversation_id != conversation.id:
            raise DomainError(
                ErrorCode.NOT_FOUND, "No such message in this conversation.", "messageId"
            )
        seq = message.seq
    moved = await _read_up_to(None, conversation, viewer.user_id, seq)
    if moved is None:
        return conversation
    assert moved.id is not None
    await chat_signals.send(
        services.broker, moved.id, chat_signals.ReadUpTo(user_id=viewer.user_id, last_read_seq=seq)
    )
    return moved


async def set_typing(
    services: Services, viewer: Viewer, conversation_id: ObjectId, typing: bool
) -> None:
    conversation = await _writable(viewer, conversation_id)
    assert conversation.id is not None
    await chat_signals.send(
        services.broker, conversation.id, chat_signals.Typing(user_id=viewer.user_id, typing=typing)
    )


async def remove_member(
    services: Services, viewer: Viewer, conversation_id: ObjectId, user_id: ObjectId
) -> Conversation:
    """Admin moderation: the member can no longer read or write, from this moment on."""
    if not viewer.user.is_admin:
        raise DomainError(ErrorCode.FORBIDDEN, "Only admins can remove members.")
    found = await Conversation.get(PydanticObjectId(conversation_id))
    member = _member_path(found, user_id) if found else None
    raw = None
    if member is not None:
        # Conditional on the member still being there: of two racing removals, one wins.
        raw = await Conversation.get_pymongo_collection().find_one_and_update(
            {"_id": conversation_id, f"{member}.removed_at": None},
            {"$set": {f"{member}.removed_at": utcnow()}, "$pull": {"member_ids": user_id}},
            return_document=ReturnDocument.AFTER,
        )
    if raw is None:
        raise DomainError(ErrorCode.NOT_FOUND, "No such member in this conversation.", "userId")
    conversation: Conversation = Conversation.model_validate(raw)
    await announce_on(services.broker, user_topic(user_id), conversation_topic(conversation_id))
    return conversation


async def history(conversation: Conversation, request: PageRequest) -> Page[ChatMessage]:
    return await paginate(ChatMessage, {"conversation_id": conversation.id}, NEWEST_FIRST, request)


async def messages_after(
    conversation_id: ObjectId, seq: int | None, limit: int
) -> list[ChatMessage]:
    """Messages after `seq`, oldest first (none for None: the caller starts from now)."""
    if seq is None:
        return []
    return (
        await ChatMessage.find({"conversation_id": conversation_id, "seq": {"$gt": seq}})
        .sort("seq")
        .limit(limit)
        .to_list()
    )


async def my_conversations(viewer: Viewer, request: PageRequest) -> Page[Conversation]:
    return await paginate(Conversation, {"member_ids": viewer.user_id}, BY_ACTIVITY, request)


def editable_until(message: ChatMessage, services: Services) -> datetime | None:
    """Until when its sender may still edit or delete it; None once that has passed."""
    until = message.sent_at + services.settings.chat_edit_window
    return until if until > utcnow() and message.deleted_at is None else None
