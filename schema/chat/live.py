"""Live chat: new and changed messages, read receipts and typing, per conversation.

Each subscription starts only for someone who may read the conversation, and listens
to the viewer's own topic too: when their access may have changed (removed from the
conversation, suspended, logged out) it checks again and ends with an error if it is
gone. New messages come gapless: `after` (a seq) replays what was missed from the
database, then live ones follow, a jump in seq being filled from the database.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime
from typing import Any, TypeVar

import strawberry
from bson import ObjectId
from pydantic import BaseModel
from strawberry import relay

from documents.chat.conversations import ChatMessage, Conversation
from documents.errors import DomainError, ErrorCode
from realtime.broker import Message
from realtime.signals import is_access_change
from realtime.streams import NOT_NOW, Feed, Followed, NotNow, listen
from realtime.topics import conversation_topic, user_topic
from resolvers.accounts.auth.viewer import Viewer
from resolvers.chat import conversations as chat
from resolvers.chat import signals as chat_signals
from schema.accounts.users import UserNode, user_node
from schema.chat.conversations import MessageNode, conversation_id_of
from schema.common.context import Context, Info
from schema.common.permissions import IsAuthenticated, allow
from schema.live.framed import FramedItems
from schema.notifications.live import delivered, recheck_caller, shared_node

REPLAY_LIMIT = 500
"""Messages read from the database at once when catching up."""

S = TypeVar("S", bound=BaseModel)


@strawberry.type(description="A member read the conversation up to a message.")
class ReadReceipt:
    last_read_seq: int
    read_at: datetime
    user_id: strawberry.Private[ObjectId]

    @strawberry.field
    async def user(self, info: Info) -> UserNode | None:
        return await user_node(info, self.user_id)


@strawberry.type(description="A member started or stopped typing.")
class TypingIndicator:
    typing: bool
    at: datetime
    user_id: strawberry.Private[ObjectId]

    @strawberry.field
    async def user(self, info: Info) -> UserNode | None:
        return await user_node(info, self.user_id)


class _Watch:
    """A viewer's subscription to one conversation, checking their access as it goes."""

    __slots__ = ("context", "conversation_id", "expires_at", "topics", "user_id")

    def __init__(self, context: Context, viewer: Viewer, conversation: Conversation) -> None:
        assert conversation.id is not None
        # Not the viewer itself (their account as read at the start): a subscription lives
        # as long as its socket, and every re-check reads the caller afresh.
        self.context = context.without_caller()
        self.user_id = viewer.user_id
        self.expires_at = viewer.expires_at
        self.conversation_id = conversation.id
        self.topics = [conversation_topic(conversation.id), user_topic(viewer.user_id)]

    @classmethod
    async def start(cls, context: Context, conversation_id: relay.GlobalID) -> _Watch:
        viewer = await context.require_viewer()
        conversation = await chat.readable_conversation(viewer, conversation_id_of(conversation_id))
        return cls(context, viewer, conversation)

    async def signal(self, message: Message) -> chat_signals.ChatSignal | None:
        """The chat signal in a message, after re-checking access if told to."""
        if is_access_change(message):
            await self.recheck()
            return None
        return chat_signals.decode(message) if message.topic == self.topics[0] else None

    def added_now(self, message: Message) -> ChatMessage | NotNow | None:
        """`added`'s decode when it needs no waiting: any message but an access change,
        whose re-check must be awaited (NOT_NOW)."""
        if is_access_change(message):
            return NOT_NOW
        if message.topic != self.topics[0]:
            return None
        signal = chat_signals.decode(message)
        return signal.message if isinstance(signal, chat_signals.MessageAdded) else None

    async def recheck(self) -> None:
        viewer = await recheck_caller(self.context)
        conversation = await Conversation.get(self.conversation_id)
        if conversation is None or not await chat.may_read(viewer, conversation):
            raise DomainError(
                ErrorCode.FORBIDDEN, "You can no longer read this conversation.", "conversationId"
            )

    def added(self, after: int | None) -> AsyncGenerator[ChatMessage, None]:
        """New messages after `after` (a seq), missed ones first, in order, each once."""
        return self.following(after).stream()

    def following(self, after: int | None) -> Followed[ChatMessage, int]:
        """`added`, not started (schema/live/hub_writer.py drives it itself)."""

        async def history(last: int | None) -> list[ChatMessage]:
            return await chat.messages_after(self.conversation_id, last, REPLAY_LIMIT)

        async def decode(message: Message) -> ChatMessage | None:
            signal = await self.signal(message)
            return signal.message if isinstance(signal, chat_signals.MessageAdded) else None

        feed = Feed(
            self.topics,
            history,
            decode,
            position=_seq,
            contiguous=True,
            decode_now=self.added_now,
        )
        return Followed(self.context.services.broker, feed, after, self.expires_at)

    async def signals(self, info: Info, kind: type[S]) -> AsyncIterator[S]:
        """Live signals of one kind, from now on: what they report is not replayed."""

        async def decode(message: Message) -> S | None:
            signal = await self.signal(message)
            return signal if isinstance(signal, kind) else None

        broker = self.context.services.broker
        stream = listen(broker, self.topics, decode, expires_at=self.expires_at)
        async for signal in delivered(info, stream):
            yield signal


@strawberry.type
class ChatSubscription:
    @strawberry.subscription(
        extensions=allow(IsAuthenticated()),
        description="New messages of a conversation. With `after` (the last seq seen), the "
        "ones missed come first: nothing is lost or repeated across a reconnect.",
    )
    async def message_added(
        self, info: Info, conversation_id: relay.GlobalID, after: int | None = None
    ) -> AsyncGenerator[MessageNode, None]:
        watch = await _Watch.start(info.context, conversation_id)
        stream = watch.added(after)
        async for message in delivered(info, stream):
            yield shared_node(message, MessageNode.of)

    @strawberry.subscription(
        extensions=allow(IsAuthenticated()),
        description="Messages of a conversation as they are edited or deleted.",
    )
    async def message_changed(
        self, info: Info, conversation_id: relay.GlobalID
    ) -> AsyncGenerator[MessageNode, None]:
        watch = await _Watch.start(info.context, conversation_id)
        async for signal in watch.signals(info, chat_signals.MessageChanged):
            yield MessageNode.of(signal.message)

    @strawberry.subscription(
        extensions=allow(IsAuthenticated()),
        description="Read receipts: how far each member has read.",
    )
    async def read_receipts(
        self, info: Info, conversation_id: relay.GlobalID
    ) -> AsyncGenerator[ReadReceipt, None]:
        watch = await _Watch.start(info.context, conversation_id)
        async for signal in watch.signals(info, chat_signals.ReadUpTo):
            yield ReadReceipt(
                last_read_seq=signal.last_read_seq, read_at=signal.at, user_id=signal.user_id
            )

    @strawberry.subscription(
        extensions=allow(IsAuthenticated()),
        description="The other member starting and stopping typing.",
    )
    async def typing(
        self, info: Info, conversation_id: relay.GlobalID
    ) -> AsyncGenerator[TypingIndicator, None]:
        watch = await _Watch.start(info.context, conversation_id)
        async for signal in watch.signals(info, chat_signals.Typing):
            if signal.user_id != watch.user_id:
                yield TypingIndicator(typing=signal.typing, at=signal.at, user_id=signal.user_id)


async def framed_message_added(context: Context, arguments: dict[str, Any]) -> FramedItems:
    """`messageAdded` for a selection that cannot depend on the viewer
    (schema/live/framed.py): authorised here as the resolver authorises it, then the
    same stream; each live message's node is one object for all its subscribers."""
    watch = await _Watch.start(context, arguments["conversation_id"])
    return watch.following(arguments.get("after")), _message_node


def _seq(message: ChatMessage) -> int:
    return message.seq


def _message_node(message: ChatMessage) -> MessageNode:
    return shared_node(message, MessageNode.of)
