"""What a conversation's topic carries between API instances.

Messages travel whole (the stored document), so that delivering one to a thousand
subscribers costs no database read; read receipts and typing travel as small notices,
typing only ever here (it is never stored). Publishing is best effort: what the broker
loses, a subscriber reads back from the database (messages by `seq`), and the rest
(typing, receipts) is momentary or visible in the conversation itself.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Literal

from beanie import PydanticObjectId
from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from documents.chat.conversations import ChatMessage
from documents.clock import utcnow
from realtime.broker import Broker, Message
from realtime.topics import conversation_topic

log = logging.getLogger(__name__)


class MessageAdded(BaseModel):
    kind: Literal["added"] = "added"
    message: ChatMessage


class MessageChanged(BaseModel):
    kind: Literal["changed"] = "changed"
    message: ChatMessage


class ReadUpTo(BaseModel):
    kind: Literal["read"] = "read"
    user_id: PydanticObjectId
    last_read_seq: int
    at: datetime = Field(default_factory=utcnow)


class Typing(BaseModel):
    kind: Literal["typing"] = "typing"
    user_id: PydanticObjectId
    typing: bool
    at: datetime = Field(default_factory=utcnow)


ChatSignal = Annotated[
    MessageAdded | MessageChanged | ReadUpTo | Typing, Field(discriminator="kind")
]
_signal: TypeAdapter[ChatSignal] = TypeAdapter(ChatSignal)


def encode(signal: ChatSignal) -> bytes:
    return signal.model_dump_json(by_alias=True).encode()


def decode(message: Message) -> ChatSignal | None:
    """The chat signal in a broker message; None for anything else on the topic.

    Every subscriber of a conversation in this process receives the same message: it is
    decoded once for all of them, and they share the signal, which nothing changes.
    """
    return _decode(message.data)


@lru_cache(maxsize=64)
def _decode(data: bytes) -> ChatSignal | None:
    try:
        return _signal.validate_json(data)
    except ValidationError:
        return None


async def send(broker: Broker, conversation_id: PydanticObjectId, signal: ChatSignal) -> None:
    try:
        await broker.publish(conversation_topic(conversation_id), encode(signal))
    except Exception:
        log.warning("could not publish %s to conversation %s", signal.kind, conversation_id)
