"""Which URLs a partner's webhooks may be sent to.

In production: what any stored link may be (resolvers/common/links.py), an https URL of
a public host, so that nobody can have gigql post into its own network. With
`partner_webhook_allow_private_hosts` (development only, refused in production) also
http, any port, and loopback or private hosts: a partner's app on the same machine.
The sender checks the addresses a host resolves to again when it connects
(integrations/partner_webhooks.py), since a public name can resolve to a private address.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from documents.settings import Settings
from resolvers.common.links import link_problem
from resolvers.common.validation import MAX_URL_LENGTH


def webhook_url_problem(url: str, settings: Settings) -> str | None:
    """Why partners' webhooks may not be sent to `url`, or None."""
    problem = link_problem(url, MAX_URL_LENGTH)
    if problem is None or not settings.partner_webhook_allow_private_hosts:
        return problem
    return _development_problem(url)


def _development_problem(url: str) -> str | None:
    shown = repr(url[:80])
    if len(url) > MAX_URL_LENGTH:
        return f"A link is at most {MAX_URL_LENGTH} characters."
    if any(c.isspace() or not c.isprintable() or c == "\\" for c in url):
        return f"A link has no spaces, control characters or backslashes: {shown}."
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 # reading it checks it
    except ValueError:
        return f"Not a URL: {shown}."
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return f"Not an absolute http(s) URL: {shown}."
    if parts.username is not None or parts.password is not None:
        return f"A link must not carry a user name or password: {shown}."
    return None
