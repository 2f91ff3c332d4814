"""What a delivery says, on each channel: written from templates, never from user text
evaluated as a template.

Mail has an HTML part (Jinja2 with autoescaping: a title someone wrote is text in it,
never markup) and a plain-text part; SMS is one short line; a push message is JSON that
the web app's service worker shows (title, body, the page to open). The marketplace's
name and the web app's links come from settings.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from documents.notifications.catalogue import NotificationKind
from documents.notifications.deliveries import Delivery

_templates = Environment(
    loader=PackageLoader("resolvers.notifications", "templates"),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)

SMS_MAX = 320
"""Two SMS segments at most."""


@dataclass(frozen=True, slots=True)
class Message:
    subject: str
    text: str
    html: str
    sms: str
    push: bytes
    link: str


def page_of(delivery: Delivery) -> str:
    """The web app's page for what the delivery is about."""
    context = delivery.context
    if delivery.kind in (NotificationKind.PAYOUT_PAID, NotificationKind.PAYOUT_FAILED):
        return "/wallet"
    if delivery.kind is NotificationKind.CHAT_MESSAGE and "conversation_id" in context:
        return f"/messages/{context['conversation_id']}"
    if "booking_id" in context:
        return f"/bookings/{context['booking_id']}"
    if "task_id" in context:
        return f"/tasks/{context['task_id']}"
    return "/notifications"


def compose(
    delivery: Delivery,
    *,
    app_url: str,
    marketplace: str,
    lines: list[str] | None = None,
    unsubscribe: str | None = None,
) -> Message:
    """The delivery's message; `lines` add what the title alone does not say (a receipt's
    amounts), `unsubscribe` the one-click link where the kind may be turned off."""
    link = app_url.rstrip("/") + page_of(delivery)
    values = {
        "title": delivery.title,
        "lines": lines or [],
        "link": link,
        "action": "Open in the app",
        "marketplace": marketplace,
        "unsubscribe": unsubscribe,
    }
    sms = f"{marketplace}: {delivery.title} {link}"
    if len(sms) > SMS_MAX:
        sms = sms[: SMS_MAX - 1] + "…"
    push = json.dumps(
        {"title": marketplace, "body": delivery.title, "url": link, "kind": delivery.kind.value}
    ).encode()
    return Message(
        subject=delivery.title,
        text=_templates.get_template("mail.txt").render(values),
        html=_templates.get_template("mail.html").render(values),
        sms=sms,
        push=push,
        link=link,
    )
