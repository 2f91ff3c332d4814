"""The JSON of an HTTP answer, by orjson.

Strawberry's `json.dumps(data, separators=(",", ":"))` builds a JSONEncoder for every
call (its keyword arguments differ from the defaults): 4.4 µs for `{ __typename }`'s
answer, against 0.1 µs for orjson, about 6 % of such a request (bench/README.md,
"Issue 16, second pass: the edge"). The JSON is the same value, with the same keys in
the same order and no whitespace; its bytes differ only where JSON allows a choice
(README, "GraphQL over HTTP"): characters outside ASCII are written as UTF-8 rather
than `\\u` escapes (as the view's own error answers, Starlette's JSONResponse, already
were), and floats in the shortest form that reads back the same (`1e16`, not `1e+16`).

What orjson would write differently from `json.dumps`, not just in form, goes to
`json.dumps` as before: integers past 64 bits, strings with lone surrogates, keys that
are not strings, subclasses of str, int, dict and list, dates, dataclasses and the
other types orjson knows and `json` does not (which `json.dumps` refuses, as before).
Three values no GraphQL result holds (its scalars serialise to plain values, and the
Float scalar refuses NaN and infinities) are the exceptions: a UUID or a plain Enum,
which `json.dumps` refused, is written as its value, and a NaN or infinity, which it
wrote as the invalid `NaN` or `Infinity`, as `null`.
"""

from __future__ import annotations

import json

import orjson

_PLAIN_ONLY = (
    orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
)
"""With no `default`, anything but plain JSON values raises TypeError, for `json`."""


def dumps(data: object) -> bytes:
    try:
        return orjson.dumps(data, option=_PLAIN_ONLY)
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(data, separators=(",", ":")).encode()
