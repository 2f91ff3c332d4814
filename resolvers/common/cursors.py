"""Page cursors: opaque, signed, and bound to the connection and order they came from.

A cursor carries the sort-key values of the last item of a page (resolvers/common/pagination.py),
values the client could read on that item anyway, and a tag: HMAC-SHA256 over the
connection, the order and the values, with a key derived from the JWT secret. Every
instance sharing that secret accepts the others' cursors, nothing new has to be
configured, and a new secret ends the old cursors (clients start from the first page).

A cursor changed in any way, or used with another connection or order, is
INVALID_CURSOR before any of it reaches a query. Even a correctly signed one has its
values checked against the types of the sort fields: a leaked key must not become a way
to send operators (`{"$ne": null}`) or unencodable numbers to the database.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId, json_util
from bson.errors import InvalidId

from documents.errors import DomainError, ErrorCode

KEY_LABEL = b"gigql/page-cursors/v1"
"""Derives the cursor key from the JWT secret; no other use of the secret yields it."""
TAG_BYTES = 16
"""128 bits of HMAC-SHA256: forging one is out of reach."""
MAX_CURSOR_CHARS = 512
"""Far above any cursor we make (sort keys are numbers, times and ids); longer is refused
unread."""
MAX_TEXT_KEY = 200
INT64 = range(-(2**63), 2**63)

SortKeyType = type[datetime] | type[int] | type[float] | type[str] | type[ObjectId]
"""What a sort field holds; None is allowed for every field but `_id` (a missing
value sorts as null)."""


class CursorKey:
    """The key every cursor is signed with, derived from the JWT secret."""

    def __init__(self, jwt_secret: str) -> None:
        self._key = hmac.digest(jwt_secret.encode(), KEY_LABEL, hashlib.sha256)

    def of(self, connection: str) -> Cursors:
        """The cursors of one connection, named `Type.field` (such as `Query.tasks`)."""
        return Cursors(self, connection)

    def tag(self, binding: str, payload: bytes) -> bytes:
        message = binding.encode() + b"\0" + payload
        return hmac.digest(self._key, message, hashlib.sha256)[:TAG_BYTES]


@dataclass(frozen=True, slots=True)
class Cursors:
    key: CursorKey
    connection: str

    def encode(self, order: str, values: Sequence[Any]) -> str:
        """A cursor for the item with these sort-key `values` in `order` (its fields and
        directions, spelled out)."""
        payload = json_util.dumps(list(values)).encode()
        raw = self.key.tag(self._binding(order), payload) + payload
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def decode(self, order: str, cursor: str, types: Sequence[SortKeyType]) -> list[Any]:
        """The sort-key values of a cursor this connection made for `order`, each of the
        type its field has; anything else is INVALID_CURSOR."""
        raw = _unbase64(cursor)
        tag, payload = raw[:TAG_BYTES], raw[TAG_BYTES:]
        if not hmac.compare_digest(tag, self.key.tag(self._binding(order), payload)):
            raise invalid_cursor()
        try:
            values = json_util.loads(payload)
        except (ValueError, TypeError, KeyError, InvalidId) as error:
            raise invalid_cursor() from error
        if not isinstance(values, list) or len(values) != len(types):
            raise invalid_cursor()
        if not all(_of_type(value, kind) for value, kind in zip(values, types, strict=True)):
            raise invalid_cursor()
        return values

    def _binding(self, order: str) -> str:
        return f"{self.connection}|{order}"


def invalid_cursor() -> DomainError:
    return DomainError(ErrorCode.INVALID_CURSOR, "The cursor is not valid.", "after")


def _unbase64(cursor: str) -> bytes:
    if len(cursor) > MAX_CURSOR_CHARS:
        raise invalid_cursor()
    try:
        padded = cursor.encode("ascii") + b"=" * (-len(cursor) % 4)
        raw = base64.b64decode(padded, altchars=b"-_", validate=True)
    except (UnicodeEncodeError, ValueError, binascii.Error) as error:
        raise invalid_cursor() from error
    if len(raw) <= TAG_BYTES:
        raise invalid_cursor()
    return raw


def _of_type(value: Any, kind: SortKeyType) -> bool:
    if value is None:
        return kind is not ObjectId
    if isinstance(value, bool):
        return False  # an int to Python, never a sort key here
    if kind is float and isinstance(value, float):
        return math.isfinite(value)
    if kind in (int, float):
        return isinstance(value, int) and value in INT64
    if kind is str:
        return isinstance(value, str) and len(value) <= MAX_TEXT_KEY
    return isinstance(value, kind)
