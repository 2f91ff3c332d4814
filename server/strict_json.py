"""JSON from outside, decoded strictly: request bodies, GET parameters, websocket
messages and webhook bodies all come through `loads`.

Python's json module lets through what fails later, deep inside, as a 500: bytes that
are not UTF-8, lone surrogates (`"\\ud800"`, which no encoder or database can store),
numbers out of a double's range (`1e400`, or 10^400 written out, which cannot even be
printed back), `NaN`, and nesting deep enough to exhaust the interpreter's stack.
orjson refuses all of them while parsing, in time linear in the input and never deeper
than 1024 levels. What the API reads is never nested more than a few levels, and code
after decoding (input coercion, encoders, logging) recurses, so anything nested deeper
than MAX_DEPTH is refused as well.
"""

from __future__ import annotations

import json

import orjson

MAX_DEPTH = 32
"""Objects and arrays within each other; a request of the API needs about six."""


class MalformedJSON(json.JSONDecodeError):
    """Not JSON that we accept. A `json.JSONDecodeError`, so that Strawberry's transports
    treat it as any other unparsable message; `reason` says what was wrong."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason, "", 0)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


def loads(data: str | bytes) -> object:
    """The value `data` holds; MalformedJSON if it is not JSON we accept."""
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as error:
        raise MalformedJSON(error.msg) from None
    if _deeper_than(value, MAX_DEPTH):
        raise MalformedJSON(f"objects and arrays are nested more than {MAX_DEPTH} deep")
    return value


def _deeper_than(value: object, limit: int) -> bool:
    """Level by level, without recursion: each container is looked at once."""
    level: list[dict[str, object] | list[object]] = (
        [value] if isinstance(value, dict | list) else []
    )
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        inner: list[dict[str, object] | list[object]] = []
        for container in level:
            items = container.values() if isinstance(container, dict) else container
            inner.extend(item for item in items if isinstance(item, dict | list))
        level = inner
    return False
