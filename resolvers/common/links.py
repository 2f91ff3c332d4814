"""Which links people may store: absolute https URLs of public hosts.

Links (task images, chat attachments, dispute evidence) are opened by other people's
apps and by admins, so a stored link must not point into anyone's own network or
computer, carry a password, or read differently to different parsers:

- `https`, with a host, and nothing but printable characters: no spaces, controls or
  backslashes (browsers read `\\` as `/`, Python does not);
- no user or password before the host, no port but 443;
- a host name under a public suffix of the Public Suffix List (no `localhost`, single
  labels, `.local`, `.internal`, `.test`); a host whose last label is a number is an
  IPv4 address in a browser (`https://2130706433/` is 127.0.0.1) and is refused;
- an IP address only if it is globally reachable unicast: no private, loopback,
  link-local, shared, multicast, reserved or unspecified address, also not one wrapped
  in IPv6 (IPv4-mapped, 6to4, Teredo, NAT64).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import SplitResult, urlsplit

import regex
from publicsuffixlist import PublicSuffixList

from integrations.public_addresses import globally_reachable

_PUBLIC_SUFFIXES = PublicSuffixList(accept_unknown=False)
# Printable and not a space: no controls, separators or format characters; no backslash.
_UNPRINTABLE = regex.compile(r"[\p{C}\p{Z}\\]")
_NUMERIC_LABEL = regex.compile(r"(?:[0-9]+|0[xX][0-9a-fA-F]*)")


def link_problem(url: str, max_length: int) -> str | None:
    """Why `url` may not be stored as a link, or None."""
    shown = repr(url[:80])
    if len(url) > max_length:
        return f"A link is at most {max_length} characters."
    if has_unprintable(url):
        return f"A link has no spaces, control characters or backslashes: {shown}."
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return f"Not a URL: {shown}."
    if parts.scheme.lower() != "https" or not parts.hostname:
        return f"Not an absolute https URL: {shown}."
    if parts.username is not None or parts.password is not None:
        return f"A link must not carry a user name or password: {shown}."
    if port not in (None, 443):
        return f"A link must use the standard https port: {shown}."
    if not _public_host(parts):
        return f"Not a public host: {shown}."
    return None


def has_unprintable(url: str) -> bool:
    """Whether `url` holds a space, a control or format character, or a backslash."""
    return _UNPRINTABLE.search(url) is not None


def _public_host(parts: SplitResult) -> bool:
    host = parts.hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return _public_name(host)
    return globally_reachable(address)


def _public_name(host: str) -> bool:
    labels = host.rstrip(".").split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        return False  # a browser parses it as an IPv4 address, in any of its forms
    return _PUBLIC_SUFFIXES.privatesuffix(host.rstrip(".")) is not None
