"""Media types of `/graphql` over HTTP, by the GraphQL-over-HTTP specification.

Answers are `application/graphql-response+json` or `application/json`, whichever the
client's `Accept` ranks higher (RFC 9110 §12.5.1: the most specific range naming a type
gives its q-value; of equal q-values the type whose range is listed first wins, and a
wildcard (`*/*`, `application/*`) picks `application/json`, which clients from before the
new type understand). No `Accept` at all is treated as `application/graphql-response+json`,
as the specification asks from its legacy watershed (1 January 2025) on; an `Accept` that
allows neither is 406. Both are UTF-8: a range naming another charset does not match.

Request bodies are JSON: `application/json`, or `application/graphql-response+json`,
UTF-8 when a charset is named.

Negotiation runs per request on the hot path, so its answer is remembered per distinct
`Accept` value (clients send a handful); long values, which only odd clients send, are
worked out each time and not kept, so the memory it holds stays small.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache

from cross_web import StarletteRequestAdapter

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"

_REMEMBERED_LENGTH = 256
"""`Accept` values up to this length are remembered with their answer."""
_UTF_8 = frozenset({"utf-8", "utf8"})


def response_media_type(accept: str | None) -> str | None:
    """The media type to answer a GraphQL request in, or None if `accept` allows neither."""
    if not accept or accept.isspace():
        return GRAPHQL_RESPONSE
    if len(accept) > _REMEMBERED_LENGTH:
        return _negotiate(accept)
    return _remembered(accept)


def error_media_type(headers: Mapping[str, str]) -> str:
    """The media type of an error answer: the negotiated one, else `application/json` (the
    client accepts neither, and this is the one more clients read)."""
    return response_media_type(headers.get("accept")) or JSON


def content_type(media_type: str) -> str:
    """The `Content-Type` header of an answer in `media_type` (always UTF-8)."""
    return f"{media_type}; charset=utf-8"


def body_problem(header: str | None) -> str | None:
    """Why a POST body with this `Content-Type` is not read, or None."""
    if header is None:
        return "Send GraphQL requests as application/json: the Content-Type is missing."
    media_type, parameters = _split(header)
    if media_type not in (JSON, GRAPHQL_RESPONSE):
        return "Send GraphQL requests as application/json."
    charset = parameters.get("charset")
    if charset is not None and charset not in _UTF_8:
        return "GraphQL requests are read as UTF-8 only."
    return None


class JSONBodyRequestAdapter(StarletteRequestAdapter):
    """Strawberry reads a body as JSON only when its Content-Type says `application/json`;
    a body `body_problem` lets through is JSON in either of the types it reads."""

    @property
    def content_type(self) -> str | None:
        header = self.headers.get("content-type")
        return JSON if header is not None and body_problem(header) is None else header


@lru_cache(maxsize=512)
def _remembered(accept: str) -> str | None:
    return _negotiate(accept)


def _negotiate(accept: str) -> str | None:
    ranges = list(_media_ranges(accept.split(",")))
    best: tuple[float, int, int] | None = None
    chosen = None
    # application/json first: on a wildcard both match the same range, and it wins ties.
    for preference, media_type in enumerate((JSON, GRAPHQL_RESPONSE)):
        match = _most_specific(media_type, ranges)
        if match is None:
            continue
        q, position = match
        # Higher q, then the range listed first, then the preference above.
        rank = (q, -position, -preference)
        if q > 0 and (best is None or rank > best):
            best, chosen = rank, media_type
    return chosen


def _most_specific(media_type: str, ranges: list[tuple[str, float]]) -> tuple[float, int] | None:
    """The q-value of the most specific range matching `media_type`, and its position."""
    main = media_type.split("/")[0]
    found: tuple[int, float, int] | None = None
    for position, (media_range, q) in enumerate(ranges):
        if media_range == media_type:
            specificity = 3
        elif media_range == f"{main}/*":
            specificity = 2
        elif media_range == "*/*":
            specificity = 1
        else:
            continue
        if found is None or specificity > found[0]:
            found = (specificity, q, position)
    return None if found is None else (found[1], found[2])


def _media_ranges(parts: Iterable[str]) -> Iterable[tuple[str, float]]:
    """Each well-formed range of an `Accept` value that may match a UTF-8 JSON answer, with
    its q-value; the others (no `type/subtype`, a bad q-value, another charset) are
    skipped, as if not listed."""
    for part in parts:
        media_range, parameters = _split(part)
        main, slash, sub = media_range.partition("/")
        if not (main and slash and sub) or (main == "*" and sub != "*"):
            continue
        charset = parameters.get("charset")
        if charset is not None and charset not in _UTF_8:
            continue
        q = _q_value(parameters.get("q", "1"))
        if q is not None:
            yield media_range, q


def _q_value(text: str) -> float | None:
    """RFC 9110's qvalue: 0 to 1 with at most three decimals; None if not one."""
    whole, _, decimals = text.partition(".")
    if whole not in ("0", "1") or len(decimals) > 3 or not (decimals.isdigit() or not decimals):
        return None
    if whole == "1" and decimals.strip("0"):
        return None
    return float(text)


def _split(header: str) -> tuple[str, dict[str, str]]:
    """A media type or range, lower-cased, and its parameters (names lower-cased, values
    unquoted; charset values lower-cased)."""
    media_type, *rest = header.split(";")
    parameters = {}
    for parameter in rest:
        name, _, value = parameter.partition("=")
        name = name.strip().lower()
        value = value.strip().strip('"')
        parameters[name] = value.lower() if name == "charset" else value
    return media_type.strip().lower(), parameters
