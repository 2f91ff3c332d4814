"""Conversations and their messages.

A conversation is private to two people about one deal: a task's poster and one tasker
who offered on it, or a booking's customer and provider. Its messages are numbered
1, 2, 3… per conversation (`seq`), in the same transaction that bumps the
conversation's `last_seq`, so the numbers have no holes and no repeats: a client that
knows the last number it saw can ask for exactly what it missed, and a jump in a live
stream shows that something was lost on the way.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from beanie import Document, PydanticObjectId
from bson import ObjectId
from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING, IndexModel

from documents.clock import utcnow


class ConversationSubject(StrEnum):
    TASK = "task"
    BOOKING = "booking"


class Member(BaseModel):
    user_id: PydanticObjectId
    last_read_seq: int = 0
    """Messages up to this one count as read; sending one reads everything before it."""
    removed_at: datetime | None = None
    """Set when an admin removed the member: they can no longer read or write."""


class Conversation(Document):
    subject: ConversationSubject
    task_id: PydanticObjectId | None = None
    booking_id: PydanticObjectId | None = None
    key: str
    """The deal and pair it is about, unique: one conversation however many open it."""
    members: list[Member]
    member_ids: list[PydanticObjectId]
    """Members not removed, for finding a person's conversations."""
    last_seq: int = 0
    last_message_id: PydanticObjectId | None = None
    activity_at: datetime = Field(default_factory=utcnow)
    """The last message's time, or the opening's: conversation lists sort by it."""
    created_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "conversations"
        use_revision = False
        indexes = [
            IndexModel([("key", ASCENDING)], name="one_conversation_per_pair", unique=True),
            IndexModel(
                [("member_ids", ASCENDING), ("activity_at", DESCENDING), ("_id", DESCENDING)]
            ),
        ]

    def member(self, user_id: ObjectId | None) -> Member | None:
        """The person as an active member, if they are one."""
        return next(
            (m for m in self.members if m.user_id == user_id and m.removed_at is None), None
        )

    def unread_for(self, user_id: ObjectId) -> int:
        member = self.member(user_id)
        return self.last_seq - member.last_read_seq if member else 0


def task_conversation_key(task_id: PydanticObjectId, tasker_id: PydanticObjectId) -> str:
    return f"task:{task_id}:{tasker_id}"


def booking_conversation_key(booking_id: PydanticObjectId) -> str:
    return f"booking:{booking_id}"


class ChatMessage(Document):
    conversation_id: PydanticObjectId
    seq: int
    sender_id: PydanticObjectId
    text: str
    """Exactly as sent: clients must escape it, nothing here renders it."""
    attachment_urls: list[str] = Field(default_factory=list)
    sent_at: datetime = Field(default_factory=utcnow)
    edited_at: datetime | None = None
    deleted_at: datetime | None = None
    """A deleted message stays as a tombstone, its text and attachments erased."""

    class Settings:
        name = "messages"
        use_revision = False
        indexes = [
            IndexModel(
                [("conversation_id", ASCENDING), ("seq", ASCENDING)],
                name="one_message_per_seq",
                unique=True,
            ),
        ]
