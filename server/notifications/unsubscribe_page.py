"""`/notifications/unsubscribe?token=...`: one-click unsubscribe (RFC 8058), no login.

A POST whose body is `List-Unsubscribe=One-Click` (form-encoded or multipart, as mail
programs send it) turns off the e-mails the token names. A GET only shows a page with a
button that makes that POST: mail scanners and link previews follow every link in a
mail, and must not unsubscribe anyone by doing so. A token we did not make (changed,
made up, of an older version) is a 400 page, never a 500; a database that does not
answer is a 503, so that the mail program tries again.
"""

from __future__ import annotations

import logging
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from urllib.parse import parse_qs

from jinja2 import Environment, PackageLoader, select_autoescape
from pymongo.errors import PyMongoError
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from resolvers.notifications.unsubscribe import (
    InvalidUnsubscribeLink,
    Unsubscribing,
    unsubscribe,
)
from server.runtime import Runtime

log = logging.getLogger(__name__)

ONE_CLICK = ("List-Unsubscribe", "One-Click")
"""The one field RFC 8058's POST carries."""
MAX_BODY_BYTES = 4096
"""Far above a one-click body (26 bytes form-encoded, a few hundred as multipart)."""
MAX_FORM_FIELDS = 4
HEADERS = {
    "Cache-Control": "no-store",
    # The token in the address must not follow a click on the page's link.
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    # No script, and no framing: another site must not dress up the button.
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
}

_templates = Environment(
    loader=PackageLoader("server", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)


async def unsubscribe_page(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    links = runtime.services.unsubscribe_links
    tokens = request.query_params.getlist("token")
    try:
        if len(tokens) != 1:
            raise InvalidUnsubscribeLink("one token is needed")
        if request.method != "POST":
            return _asking(request, links.read(tokens[0]))
        body = await request.body()
        if not _asks_one_click(body, request.headers.get("content-type", "")):
            message = "This is not a one-click unsubscribe request; use the button on the page."
            return _page(request, "Bad request", message, 400)
        done = await unsubscribe(links, tokens[0])
    except InvalidUnsubscribeLink as error:
        log.info("unsubscribe link refused: %s", error)
        message = "This link is not valid. You can change your e-mails in your settings."
        return _page(request, "Link not valid", message, 400)
    except PyMongoError:
        log.exception("unsubscribe not recorded")
        message = "Your choice could not be saved just now; please try again shortly."
        return _page(request, "Try again", message, 503)
    return _page(request, "Unsubscribed", f"You will no longer get e-mails about {_named(done)}.")


def _asking(request: Request, subject: Unsubscribing) -> Response:
    message = f"Stop e-mails about {_named(subject)}? Other notifications stay as they are."
    return _page(request, "Unsubscribe", message, ask=True)


def _named(subject: Unsubscribing) -> str:
    return subject.kind.value.replace("_", " ")


def _asks_one_click(body: bytes, content_type: str) -> bool:
    """Whether `body` is RFC 8058's `List-Unsubscribe=One-Click`, in either encoding."""
    if len(body) > MAX_BODY_BYTES:
        return False
    media = content_type.partition(";")[0].strip().lower()
    if media == "multipart/form-data":
        return _multipart_fields(body, content_type) == [ONE_CLICK]
    if media not in ("", "application/x-www-form-urlencoded"):
        return False
    try:
        text = body.decode()
        fields = parse_qs(text, max_num_fields=MAX_FORM_FIELDS, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        return False
    return [(name, value) for name, values in fields.items() for value in values] == [ONE_CLICK]


def _multipart_fields(body: bytes, content_type: str) -> list[tuple[str, str]]:
    """The plain fields of a multipart/form-data body; [] when it cannot be read."""
    try:
        head = f"Content-Type: {content_type}\r\n\r\n".encode("latin-1")
        message = BytesParser(policy=HTTP).parsebytes(head + body)
        if not isinstance(message, EmailMessage) or not message.is_multipart():
            return []
        fields = []
        for part in list(message.iter_parts())[:MAX_FORM_FIELDS]:
            name = part.get_param("name", header="content-disposition")
            content = part.get_content()
            if isinstance(name, str) and isinstance(content, str):
                fields.append((name, content.strip()))
        return fields
    except (UnicodeError, ValueError, LookupError, TypeError, KeyError):
        return []


def _page(
    request: Request, title: str, message: str, status: int = 200, *, ask: bool = False
) -> Response:
    settings = request.app.state.runtime.services.settings
    page = _templates.get_template("unsubscribe.html").render(
        title=title,
        message=message,
        ask=ask,
        marketplace=settings.marketplace_name,
        app_url=settings.app_url,
    )
    return HTMLResponse(page, status_code=status, headers=HEADERS)
