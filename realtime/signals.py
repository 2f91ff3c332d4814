"""Telling live subscriptions that someone's access may have changed.

A subscription keeps the identity it was opened with. When a session ends, an account
is suspended, or a member leaves a conversation, a signal on the person's topic makes
each of their subscriptions check its access again, and end if it is gone.
"""

from __future__ import annotations

import logging

from bson import ObjectId

from realtime.broker import Broker, Message
from realtime.topics import user_topic

log = logging.getLogger(__name__)

ACCESS_CHANGED = b'{"control":"access_changed"}'


def is_access_change(message: Message) -> bool:
    return message.data == ACCESS_CHANGED


async def announce_access_change(broker: Broker, *user_ids: ObjectId) -> None:
    """Best effort: a subscription that misses it still checks access at its next event."""
    await announce_on(broker, *(user_topic(user_id) for user_id in user_ids))


async def announce_on(broker: Broker, *topics: str) -> None:
    """The same, to every subscription of some topics (such as a conversation's)."""
    for topic in topics:
        try:
            await broker.publish(topic, ACCESS_CHANGED)
        except Exception:
            log.warning("could not announce an access change on %s", topic, exc_info=True)
