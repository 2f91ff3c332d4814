"""Sending one claimed delivery on its channel, as the person's choices stand now.

A delivery is sent as of the moment it goes out: to a person whose account still
exists, on a channel they still receive that kind on, outside their quiet hours (SMS and
push wait for the end of them, e-mail only if they asked), and only while it still means
something. Whatever stops it ends it as skipped, with the reason. A mail of a kind that
may be turned off carries a one-click unsubscribe link (unsubscribe.py), in its headers
and its text.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from documents.accounts.users import User, UserStatus
from documents.clock import utcnow
from documents.notifications.catalogue import Channel
from documents.notifications.deliveries import Delivery, DeliveryStatus
from documents.notifications.preferences import NotificationPreferences
from integrations.mail import Mail
from integrations.push import PushTarget, SubscriptionGone
from integrations.sms import NumberUnreachable
from resolvers.common.services import Services
from resolvers.notifications import outbox
from resolvers.notifications.details import details
from resolvers.notifications.messages import Message, compose
from resolvers.notifications.preferences import preferences_of

BATCH = 50
"""Deliveries read at once (outbox.due)."""
RUN_SECONDS = 30.0
"""How long one run of `send_due` goes on reading batches while the backlog lasts, so
that it ends now and then (the job then waits its interval)."""


async def send_due(services: Services, now: datetime | None = None) -> int:
    """Send what is due, one claimed delivery at a time; returns how many were handled.
    Candidates are read a batch at a time (outbox.due) and each is taken as its turn
    comes, unless another sender took it meanwhile. A full batch means more may wait:
    the run reads again, until a batch comes back short or `RUN_SECONDS` have gone by;
    one batch a run would cap sending at a batch per interval and instance (10 a second
    by default), far below what a busy marketplace makes."""
    handled = 0
    loop = asyncio.get_running_loop()
    ends = loop.time() + RUN_SECONDS
    while True:
        candidates = await outbox.due(now or utcnow(), BATCH)
        for candidate in candidates:
            moment = now or utcnow()
            delivery = await outbox.take(candidate, moment)
            if delivery is None:
                continue
            try:
                await send(services, delivery, moment)
            except Exception as error:  # the channel's failure is the delivery's, not the job's
                await outbox.failed(delivery, f"{type(error).__name__}: {error}", moment)
            handled += 1
        if len(candidates) < BATCH or loop.time() >= ends:
            return handled


async def send(services: Services, delivery: Delivery, now: datetime) -> None:
    user = await User.get(delivery.user_id)
    if user is None or user.status is not UserStatus.ACTIVE or not user.email:
        await outbox.finish(delivery, DeliveryStatus.SKIPPED, reason="the account is not active")
        return
    preferences = await preferences_of(delivery.user_id)
    if delivery.channel not in preferences.channels(delivery.kind):
        await outbox.finish(delivery, DeliveryStatus.SKIPPED, reason="turned off")
        return
    if delivery.drop_after is not None and now >= delivery.drop_after:
        await outbox.finish(delivery, DeliveryStatus.SKIPPED, reason="too late to mean anything")
        return
    quiet = preferences.quiet_hours
    waits = delivery.channel is not Channel.EMAIL or (quiet is not None and quiet.email_waits)
    if quiet is not None and waits and quiet.covers(now):
        later = quiet.ends_after(now)
        if delivery.drop_after is not None and later >= delivery.drop_after:
            await outbox.finish(
                delivery, DeliveryStatus.SKIPPED, reason="quiet hours last past its moment"
            )
            return
        await outbox.postpone(delivery, later)
        return
    # Only a mail can carry a one-click unsubscribe link (RFC 8058), and only of a kind
    # that may be turned off.
    unsubscribe = (
        services.unsubscribe_links.url(delivery.user_id, delivery.kind)
        if delivery.channel is Channel.EMAIL
        else None
    )
    message = compose(
        delivery,
        app_url=services.settings.app_url,
        marketplace=services.settings.marketplace_name,
        lines=await details(delivery),
        unsubscribe=unsubscribe,
    )
    if delivery.channel is Channel.EMAIL:
        await services.postman.mailer.send(_mail(user.email, delivery, message, unsubscribe))
    elif delivery.channel is Channel.SMS:
        assert preferences.phone is not None  # reachable by SMS: a verified number
        try:
            await services.sms.send(preferences.phone.number, message.sms, delivery.key)
        except NumberUnreachable as refused:
            # Sending again would not help: dead at once, for an admin (and the person's
            # number) to look at.
            await outbox.finish(
                delivery, DeliveryStatus.DEAD, reason=str(refused), last_error=str(refused)
            )
            return
    else:
        await _push(services, preferences, delivery, message)
    await outbox.finish(delivery, DeliveryStatus.SENT, sent_at=now)


def _mail(to: str, delivery: Delivery, message: Message, unsubscribe: str | None) -> Mail:
    headers = [("Message-ID", f"<{delivery.key.replace(':', '.')}@gigql>")]
    if unsubscribe is not None:
        # RFC 8058: mail programs show an unsubscribe button that POSTs to the link.
        headers += [
            ("List-Unsubscribe", f"<{unsubscribe}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ]
    return Mail(
        to=to,
        subject=message.subject,
        text=message.text,
        html=message.html,
        headers=tuple(headers),
    )


async def _push(
    services: Services, preferences: NotificationPreferences, delivery: Delivery, message: Message
) -> None:
    """To every browser the person subscribed; a subscription the push service says is
    gone is dropped."""
    gone = []
    for subscription in preferences.push_subscriptions:
        if subscription.endpoint in delivery.pushed_to:
            continue  # it has it from an earlier attempt
        target = PushTarget(subscription.endpoint, subscription.p256dh, subscription.auth)
        try:
            await services.push.send(target, message.push, delivery.key)
        except SubscriptionGone:
            gone.append(subscription.endpoint)
            continue
        await Delivery.get_pymongo_collection().update_one(
            {"_id": delivery.id}, {"$addToSet": {"pushed_to": subscription.endpoint}}
        )
    if gone:
        await NotificationPreferences.get_pymongo_collection().update_one(
            {"user_id": delivery.user_id},
            {"$pull": {"push_subscriptions": {"endpoint": {"$in": gone}}}},
        )
