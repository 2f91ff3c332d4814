"""Which URLs a partner's webhooks may be sent to.

A webhook URL is a link we will make requests to ourselves, so it follows the rule for
every stored link (resolvers/common/links.py): https, a public host, no credentials, the
standard port. We must not be made to post into our own network.

With GIGQL_PARTNER_WEBHOOK_ALLOW_PRIVATE_HOSTS (development only), a partner's app
running on the same machine or network may receive them too: http or https, any port,
on a loopback or private address (or `localhost`); never a link-local one (a cloud's
metadata service). Credentials and odd characters are still refused, and public hosts
still need https.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from documents.settings import Settings
from resolvers.common.links import has_unprintable, link_problem
from resolvers.common.validation import MAX_URL_LENGTH

_LOCAL_NAMES = frozenset({"localhost"})


def webhook_url_problem(url: str, settings: Settings) -> str | None:
    """Why `url` may not receive a partner's webhooks, or None."""
    problem = link_problem(url, MAX_URL_LENGTH)
    if problem is None or not settings.partner_webhook_allow_private_hosts:
        return problem
    return problem if not _local_url(url) else None


def _local_url(url: str) -> bool:
    """An http(s) URL of a loopback or private host, printable, without credentials."""
    if len(url) > MAX_URL_LENGTH or has_unprintable(url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 # raises ValueError for a port that is not a number
    except ValueError:
        return False
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return False
    if parts.username is not None or parts.password is not None:
        return False
    host = parts.hostname
    if host.rstrip(".").lower() in _LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_loopback:
        return True
    # Python counts link-local (169.254.169.254: cloud metadata) as private: never that.
    return address.is_private and not (
        address.is_link_local
        or address.is_unspecified
        or address.is_multicast
        or address.is_reserved
    )
