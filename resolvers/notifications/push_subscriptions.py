"""The browsers a person receives web push in: registering and removing subscriptions.

The web app subscribes with `pushManager.subscribe` (the application server key from
`push_public_key`) and registers the PushSubscription it gets, as its JSON gives it. An
endpoint is a link the server posts to, so it is held to the rules of stored links
(resolvers/common/links.py: https, a public host), and the keys must be what a browser
makes: a P-256 point and a 16-byte secret.

A person keeps at most MAX_PUSH_SUBSCRIPTIONS; registering another drops the one
registered longest ago, never refusing the browser in hand. The web app registers its
subscription again on each visit (replacing its keys, which a browser may renew), so
browsers in use stay recent, and the oldest is the likeliest to be gone: one whose push
service answers that it is gone is dropped anyway when next sent to.

An endpoint is one browser's: registering it for one person takes it from whoever had it
before (someone else who used that browser), so that their messages no longer show there.
"""

from __future__ import annotations

from pymongo.asynchronous.client_session import AsyncClientSession

from documents.clock import utcnow
from documents.errors import DomainError, ErrorCode, Problem
from documents.notifications.preferences import NotificationPreferences, PushSubscription
from documents.notifications.push_keys import (
    AUTH_SECRET_BYTES,
    b64url_decode,
    b64url_encode,
    p256_point,
)
from documents.transactions import run_in_transaction
from resolvers.accounts.auth.viewer import Viewer
from resolvers.common.links import link_problem
from resolvers.common.services import Services
from resolvers.common.validation import MAX_URL_LENGTH

MAX_PUSH_SUBSCRIPTIONS = 10


def push_public_key(services: Services) -> str | None:
    """The application server key browsers subscribe with; None when the server sends
    no web push (GIGQL_PUSH_BACKEND=log)."""
    return services.push.application_server_key


async def register(viewer: Viewer, endpoint: str, p256dh: str, auth: str) -> PushSubscription:
    """Receive web push at `endpoint` from now on; the same endpoint again replaces its
    keys. Refused, changing nothing, when the endpoint or a key is not a browser's."""
    subscription = _checked(endpoint.strip(), p256dh.strip(), auth.strip())
    collection = NotificationPreferences.get_pymongo_collection()

    async def write(session: AsyncClientSession) -> None:
        await collection.update_many(
            {
                "user_id": {"$ne": viewer.user_id},
                "push_subscriptions.endpoint": subscription.endpoint,
            },
            {"$pull": {"push_subscriptions": {"endpoint": subscription.endpoint}}},
            session=session,
        )
        mine = await NotificationPreferences.find_one(
            NotificationPreferences.user_id == viewer.user_id, session=session
        )
        kept = [
            s
            for s in (mine.push_subscriptions if mine else [])
            if s.endpoint != subscription.endpoint
        ]
        kept = [*kept, subscription][-MAX_PUSH_SUBSCRIPTIONS:]
        await collection.update_one(
            {"user_id": viewer.user_id},
            {
                "$set": {
                    "push_subscriptions": [s.model_dump() for s in kept],
                    "updated_at": utcnow(),
                }
            },
            upsert=True,
            session=session,
        )

    await run_in_transaction(write)
    return subscription


async def remove(viewer: Viewer, endpoint: str) -> bool:
    """Receive no more web push at `endpoint` (the web app unsubscribed, or its person
    signs out); whether it was registered."""
    done = await NotificationPreferences.get_pymongo_collection().update_one(
        {"user_id": viewer.user_id, "push_subscriptions.endpoint": endpoint.strip()},
        {
            "$pull": {"push_subscriptions": {"endpoint": endpoint.strip()}},
            "$set": {"updated_at": utcnow()},
        },
    )
    return bool(done.modified_count)


def _checked(endpoint: str, p256dh: str, auth: str) -> PushSubscription:
    problems = []
    where = link_problem(endpoint, MAX_URL_LENGTH)
    if where is not None:
        problems.append(Problem(ErrorCode.INVALID_INPUT, where, "endpoint"))
    point = p256_point(p256dh)
    if point is None:
        message = "Not a browser's push key: a P-256 public key (65 bytes) in base64url."
        problems.append(Problem(ErrorCode.INVALID_INPUT, message, "keys.p256dh"))
    secret = b64url_decode(auth)
    if secret is None or len(secret) != AUTH_SECRET_BYTES:
        message = f"Not a push authentication secret: {AUTH_SECRET_BYTES} bytes in base64url."
        problems.append(Problem(ErrorCode.INVALID_INPUT, message, "keys.auth"))
    if problems:
        raise DomainError.of(problems)
    assert point is not None and secret is not None
    # Kept as browsers write them, whatever padding the caller added.
    return PushSubscription(
        endpoint=endpoint, p256dh=b64url_encode(point), auth=b64url_encode(secret)
    )
