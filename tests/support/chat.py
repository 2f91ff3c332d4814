"""Shared steps of the chat tests: people, their conversations, and their messages."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.support.graphql_client import GraphQLClient, Tokens
from tests.support.marketplace import make_offer, post_task, poster, tasker

MESSAGE_FIELDS = "id seq text attachmentUrls sentAt editedAt deletedAt deleted sender { id }"
CONVERSATION_FIELDS = "id subject lastSeq unreadCount members { user { id } lastReadSeq removed }"
MESSAGE_ADDED = f"""subscription($c: ID!, $after: Int) {{
  messageAdded(conversationId: $c, after: $after) {{ {MESSAGE_FIELDS} }} }}"""


@dataclass(frozen=True)
class TaskChat:
    poster: Tokens
    tasker: Tokens
    task_id: str
    conversation_id: str


async def open_conversation(
    client: GraphQLClient, who: Tokens, subject_id: str, tasker_id: str | None = None
) -> dict[str, Any]:
    """The openConversation payload, errors included."""
    return await client.mutate(
        "openConversation",
        {"subjectId": subject_id, "taskerId": tasker_id},
        f"conversation {{ {CONVERSATION_FIELDS} }}",
        token=who.access,
    )


async def task_chat(
    client: GraphQLClient,
    poster_email: str = "ann@example.com",
    tasker_email: str = "tom@example.com",
) -> TaskChat:
    """A poster, a tasker who offered on the poster's task, and their conversation."""
    ann = await poster(client, poster_email)
    tom = await tasker(client, tasker_email)
    task = await post_task(client, ann)
    await make_offer(client, tom, task["id"])
    opened = await open_conversation(client, tom, task["id"])
    assert opened["errors"] == [], opened
    return TaskChat(ann, tom, task["id"], opened["conversation"]["id"])


async def send(
    client: GraphQLClient, who: Tokens, conversation_id: str, text: str, **extra: Any
) -> dict[str, Any]:
    """The sendMessage payload, errors included."""
    return await client.mutate(
        "sendMessage",
        {"conversationId": conversation_id, "text": text, **extra},
        f"message {{ {MESSAGE_FIELDS} }}",
        token=who.access,
    )


async def sent(
    client: GraphQLClient, who: Tokens, conversation_id: str, text: str
) -> dict[str, Any]:
    payload = await send(client, who, conversation_id, text)
    assert payload["errors"] == [], payload
    message: dict[str, Any] = payload["message"]
    return message
