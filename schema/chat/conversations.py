"""Chat in the graph: conversations, their messages, and the mutations that write them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import strawberry
from bson import ObjectId
from strawberry import relay

from documents.chat.conversations import ChatMessage, Conversation, ConversationSubject
from documents.errors import DomainError, ErrorCode
from resolvers.accounts.auth.viewer import Viewer
from resolvers.chat import conversations as chat
from schema.accounts.users import UserNode, user_node
from schema.common.context import Info
from schema.common.copying import copied
from schema.common.limits import bounded
from schema.common.payloads import Payload, mutation_payload
from schema.common.permissions import IsAdmin, IsAuthenticated, allow
from schema.common.relay import decode_id, object_id, object_ids, requested_page, to_connection
from schema.marketplace.tasks import TaskNode

if TYPE_CHECKING:
    from schema.marketplace.bookings import BookingNode


async def _readable(
    info: Info, viewer: Viewer, ids: list[ObjectId]
) -> dict[ObjectId, Conversation]:
    found = await info.context.loaders.conversations.load_many(ids)
    return {c.id: c for c in found if c and c.id and await chat.may_read(viewer, c)}


@strawberry.type(
    name="Message",
    description="A chat message. Its text is exactly what was sent: escape it when showing "
    "it. A deleted message stays as a tombstone with empty text and no attachments.",
)
class MessageNode(relay.Node):
    id: relay.NodeID[str]
    seq: int = strawberry.field(
        description="Its number in the conversation: 1, 2, 3… without gaps. Pass the last "
        "one seen as `after` to messageAdded to receive exactly what followed."
    )
    text: str
    attachment_urls: list[str]
    sent_at: datetime
    edited_at: datetime | None
    deleted_at: datetime | None
    doc: strawberry.Private[ChatMessage]

    @classmethod
    def of(cls, message: ChatMessage) -> MessageNode:
        return copied(cls, message, id=str(message.id), doc=message)

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[MessageNode | None]:
        viewer = await info.context.viewer()
        ids = object_ids(node_ids)
        if viewer is None:
            return [None for _ in ids]
        found = await info.context.loaders.messages.load_many([i for i in ids if i is not None])
        messages: dict[ObjectId | None, ChatMessage] = {m.id: m for m in found if m is not None}
        readable = await _readable(info, viewer, [m.conversation_id for m in messages.values()])
        return [
            cls.of(messages[i])
            if i in messages and messages[i].conversation_id in readable
            else None
            for i in ids
        ]

    @strawberry.field
    def deleted(self) -> bool:
        return self.doc.deleted_at is not None

    @strawberry.field(
        description="Until when its sender may edit or delete it; null once that has passed."
    )
    def editable_until(self, info: Info) -> datetime | None:
        return chat.editable_until(self.doc, info.context.services)

    @strawberry.field
    async def sender(self, info: Info) -> UserNode | None:
        return await user_node(info, self.doc.sender_id)

    @strawberry.field
    async def conversation(self, info: Info) -> ConversationNode | None:
        [conversation] = await ConversationNode.resolve_nodes(
            info=info, node_ids=[str(self.doc.conversation_id)]
        )
        return conversation


@strawberry.type
class MessageConnection(relay.Connection[MessageNode]):
    pass


@strawberry.type(name="ConversationMember")
class ConversationMemberType:
    last_read_seq: int = strawberry.field(
        description="They have read every message up to this seq: a read receipt."
    )
    removed: bool = strawberry.field(description="An admin removed them from the conversation.")
    user_id: strawberry.Private[ObjectId]

    @strawberry.field
    async def user(self, info: Info) -> UserNode | None:
        return await user_node(info, self.user_id)


@strawberry.type(
    name="Conversation",
    description="A private chat between a task's poster and one tasker who offered on it, "
    "or a booking's customer and provider.",
)
class ConversationNode(relay.Node):
    id: relay.NodeID[str]
    subject: ConversationSubject
    last_seq: int = strawberry.field(description="The seq of its latest message; 0 if none.")
    activity_at: datetime = strawberry.field(
        description="When its latest message was sent, or it was opened."
    )
    created_at: datetime
    doc: strawberry.Private[Conversation]

    @classmethod
    def of(cls, conversation: Conversation) -> ConversationNode:
        return copied(cls, conversation, id=str(conversation.id), doc=conversation)

    @classmethod
    async def resolve_nodes(  # type: ignore[override] # one signature serves all overloads
        cls, *, info: Info, node_ids: Iterable[str], required: bool = False
    ) -> list[ConversationNode | None]:
        viewer = await info.context.viewer()
        ids = object_ids(node_ids)
        if viewer is None:
            return [None for _ in ids]
        readable = await _readable(info, viewer, [i for i in ids if i is not None])
        return [cls.of(readable[i]) if i in readable else None for i in ids]

    @strawberry.field(metadata=bounded(2))
    def members(self) -> list[ConversationMemberType]:
        return [
            copied(ConversationMemberType, m, removed=m.removed_at is not None, user_id=m.user_id)
            for m in self.doc.members
        ]

    @strawberry.field(description="Messages from others I have not read yet.")
    async def unread_count(self, info: Info) -> int:
        viewer = await info.context.require_viewer()
        return self.doc.unread_for(viewer.user_id)

    @strawberry.field
    async def last_message(self, info: Info) -> MessageNode | None:
        if self.doc.last_message_id is None:
            return None
        message = await info.context.loaders.messages.load(self.doc.last_message_id)
        return MessageNode.of(message) if message else None

    @strawberry.field(description="Its history, newest first.")
    async def messages(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> MessageConnection:
        page = await chat.history(self.doc, requested_page(info, first, after))
        return to_connection(MessageConnection, page, MessageNode.of)

    @strawberry.field(description="The task it is about; null for a booking.")
    async def task(self, info: Info) -> TaskNode | None:
        if self.doc.task_id is None:
            return None
        task = await info.context.loaders.tasks.load(self.doc.task_id)
        return TaskNode.of(task) if task else None

    @strawberry.field(description="The booking it is about; null for a task.")
    async def booking(
        self, info: Info
    ) -> Annotated[BookingNode, strawberry.lazy("schema.marketplace.bookings")] | None:
        from schema.marketplace.bookings import BookingNode

        if self.doc.booking_id is None:
            return None
        [booking] = await BookingNode.resolve_nodes(info=info, node_ids=[str(self.doc.booking_id)])
        return booking


@strawberry.type
class ConversationConnection(relay.Connection[ConversationNode]):
    pass


@strawberry.type
class ChatQuery:
    @strawberry.field(
        extensions=allow(IsAuthenticated()),
        description="My conversations, the most recently active first, with unread counts.",
    )
    async def my_conversations(
        self, info: Info, first: int | None = None, after: str | None = None
    ) -> ConversationConnection:
        viewer = await info.context.require_viewer()
        page = await chat.my_conversations(viewer, requested_page(info, first, after))
        return to_connection(ConversationConnection, page, ConversationNode.of)


def conversation_id_of(global_id: relay.GlobalID) -> ObjectId:
    return decode_id(global_id, ConversationNode, "conversationId")


def _message_id(global_id: relay.GlobalID, field: str = "messageId") -> ObjectId:
    return decode_id(global_id, MessageNode, field)


@strawberry.input
class OpenConversationInput:
    subject_id: relay.GlobalID = strawberry.field(description="A Task or a Booking.")
    tasker_id: relay.GlobalID | None = strawberry.field(
        default=None,
        description="For a task's poster: the tasker (one who made an offer) to talk to.",
    )


@strawberry.type
class OpenConversationPayload(Payload):
    conversation: ConversationNode | None = None


@strawberry.input
class SendMessageInput:
    conversation_id: relay.GlobalID
    text: str = strawberry.field(description=f"Up to {chat.MAX_TEXT} characters, kept as sent.")
    attachment_urls: list[str] = strawberry.field(
        default_factory=list,
        description=f"Up to {chat.MAX_ATTACHMENTS} https links to files stored elsewhere.",
    )


@strawberry.type
class MessagePayload(Payload):
    message: MessageNode | None = None


@strawberry.input
class EditMessageInput:
    message_id: relay.GlobalID
    text: str


@strawberry.input
class DeleteMessageInput:
    message_id: relay.GlobalID


@strawberry.input
class MarkConversationReadInput:
    conversation_id: relay.GlobalID
    message_id: relay.GlobalID | None = strawberry.field(
        default=None, description="Read up to this message; the latest if not given."
    )


@strawberry.type
class ConversationPayload(Payload):
    conversation: ConversationNode | None = None


@strawberry.input
class SetTypingInput:
    conversation_id: relay.GlobalID
    typing: bool


@strawberry.type
class SetTypingPayload(Payload):
    ok: bool = False


@strawberry.input
class RemoveConversationMemberInput:
    conversation_id: relay.GlobalID
    user_id: relay.GlobalID


def _subject(global_id: relay.GlobalID) -> tuple[str, ObjectId]:
    oid = object_id(global_id.node_id)
    if global_id.type_name not in ("Task", "Booking") or oid is None:
        raise DomainError(ErrorCode.INVALID_ID, "Not the id of a Task or a Booking.", "subjectId")
    return global_id.type_name, oid


@strawberry.type
class ChatMutation:
    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="The conversation about a task or booking, opened on first use.",
    )
    @mutation_payload
    async def open_conversation(
        self, info: Info, input: OpenConversationInput
    ) -> OpenConversationPayload:
        viewer = await info.context.require_viewer()
        kind, subject_id = _subject(input.subject_id)
        if kind == "Booking":
            conversation = await chat.open_booking_conversation(viewer, subject_id)
        else:
            tasker = decode_id(input.tasker_id, UserNode, "taskerId") if input.tasker_id else None
            conversation = await chat.open_task_conversation(viewer, subject_id, tasker)
        return OpenConversationPayload(conversation=ConversationNode.of(conversation))

    @strawberry.mutation(extensions=allow(IsAuthenticated()))
    @mutation_payload
    async def send_message(self, info: Info, input: SendMessageInput) -> MessagePayload:
        viewer = await info.context.require_viewer()
        message = await chat.send_message(
            info.context.services,
            viewer,
            conversation_id_of(input.conversation_id),
            input.text,
            input.attachment_urls,
        )
        return MessagePayload(message=MessageNode.of(message))

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Change the text of one's own message, shortly after sending it.",
    )
    @mutation_payload
    async def edit_message(self, info: Info, input: EditMessageInput) -> MessagePayload:
        viewer = await info.context.require_viewer()
        message = await chat.edit_message(
            info.context.services, viewer, _message_id(input.message_id), input.text
        )
        return MessagePayload(message=MessageNode.of(message))

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Delete one's own message, shortly after sending it; a tombstone stays.",
    )
    @mutation_payload
    async def delete_message(self, info: Info, input: DeleteMessageInput) -> MessagePayload:
        viewer = await info.context.require_viewer()
        message = await chat.delete_message(
            info.context.services, viewer, _message_id(input.message_id)
        )
        return MessagePayload(message=MessageNode.of(message))

    @strawberry.mutation(extensions=allow(IsAuthenticated()))
    @mutation_payload
    async def mark_conversation_read(
        self, info: Info, input: MarkConversationReadInput
    ) -> ConversationPayload:
        viewer = await info.context.require_viewer()
        message_id = _message_id(input.message_id) if input.message_id else None
        conversation = await chat.mark_read(
            info.context.services, viewer, conversation_id_of(input.conversation_id), message_id
        )
        return ConversationPayload(conversation=ConversationNode.of(conversation))

    @strawberry.mutation(
        extensions=allow(IsAuthenticated()),
        description="Tell the other member I am (or stopped) typing. Never stored.",
    )
    @mutation_payload
    async def set_typing(self, info: Info, input: SetTypingInput) -> SetTypingPayload:
        viewer = await info.context.require_viewer()
        await chat.set_typing(
            info.context.services, viewer, conversation_id_of(input.conversation_id), input.typing
        )
        return SetTypingPayload(ok=True)

    @strawberry.mutation(
        extensions=allow(IsAdmin()),
        description="Moderation: the member can no longer read or write the conversation.",
    )
    @mutation_payload
    async def remove_conversation_member(
        self, info: Info, input: RemoveConversationMemberInput
    ) -> ConversationPayload:
        viewer = await info.context.require_viewer()
        conversation = await chat.remove_member(
            info.context.services,
            viewer,
            conversation_id_of(input.conversation_id),
            decode_id(input.user_id, UserNode, "userId"),
        )
        return ConversationPayload(conversation=ConversationNode.of(conversation))
