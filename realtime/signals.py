"""Telling live connections that someone's access may have changed.

Two kinds of change, on two kinds of topic:

- A person's sessions or account (logout, revocation, suspension, a password change or
  reset, deletion): a signal on their access topic makes each of their websockets, on
  every instance, check its session again and close if it has ended
  (resolvers/accounts/auth/socket_sessions.py).
- What one subscription may see (a member removed from a conversation): a signal on the
  topics it follows makes it check its own access again, and end if it is gone.
"""

from __future__ import annotations

import logging

from bson import ObjectId

from realtime.broker import Broker, Message
from realtime.topics import access_topic

log = logging.getLogger(__name__)

ACCESS_CHANGED = b'{"control":"access_changed"}'


def is_access_change(message: Message) -> bool:
    return message.data == ACCESS_CHANGED


async def announce_access_change(broker: Broker, *user_ids: ObjectId) -> None:
    """Best effort: a websocket that misses it (the broker was away) checks again after the
    broker reconnects, and every operation started on it is checked anyway."""
    await announce_on(broker, *(access_topic(user_id) for user_id in user_ids))


async def announce_on(broker: Broker, *topics: str) -> None:
    """An access change to every subscription of some topics (such as a conversation's)."""
    for topic in topics:
        try:
            await broker.publish(topic, ACCESS_CHANGED)
        except Exception:
            log.warning("could not announce an access change on %s", topic, exc_info=True)
