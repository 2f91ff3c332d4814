"""A partner's metadata on wallets and transactions: its own tracking data, kept as given
and shown back, never interpreted.

A JSON object of at most 50 keys, each of 1 to 40 characters, whose values are strings
(at most 500 characters), numbers or booleans: nothing nested, no null, so that it stays
small and safe to echo in webhooks. Keys and strings follow the text rules of everything
else stored (resolvers/common/text_rules.py); keys hold no `.` and start with no `$`,
which the database would read as paths and operators, and integers fit in 64 bits, as
the database stores them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from documents.errors import ErrorCode
from resolvers.common import text_rules
from resolvers.common.validation import Checked

MAX_KEYS = 50
MAX_KEY_LENGTH = 40
MAX_VALUE_LENGTH = 500
_INT64 = 2**63


def checked_metadata(checked: Checked, value: object, field: str = "metadata") -> dict[str, Any]:
    """`value` as stored; every problem added to `checked` on `field` (or `field.<key>`)."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        checked.fail(ErrorCode.INVALID_INPUT, "Metadata must be a JSON object.", field)
        return {}
    if len(value) > MAX_KEYS:
        checked.fail(ErrorCode.INVALID_INPUT, f"Metadata has at most {MAX_KEYS} keys.", field)
        return {}
    kept: dict[str, Any] = {}
    for key, item in value.items():
        problem = _key_problem(key)
        if problem is not None:
            checked.fail(ErrorCode.INVALID_INPUT, problem, field)
            continue
        problem = _value_problem(item)
        if problem is not None:
            checked.fail(ErrorCode.INVALID_INPUT, problem, f"{field}.{key}")
            continue
        kept[key] = item
    return kept


def _key_problem(key: object) -> str | None:
    if not isinstance(key, str) or not 0 < len(key) <= MAX_KEY_LENGTH:
        return f"A metadata key has 1 to {MAX_KEY_LENGTH} characters."
    if text_rules.problem(key, multiline=False) is not None or not text_rules.has_visible(key):
        return f"The metadata key {key[:MAX_KEY_LENGTH]!r} has characters not allowed in text."
    if "." in key or key.startswith("$"):
        return f"The metadata key {key!r} must not contain '.' or start with '$'."
    return None


def _value_problem(value: object) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return None if -_INT64 <= value < _INT64 else "A metadata integer fits in 64 bits."
    if isinstance(value, float):
        return None if math.isfinite(value) else "A metadata number must be finite."
    if isinstance(value, str):
        if len(value) > MAX_VALUE_LENGTH:
            return f"A metadata value has at most {MAX_VALUE_LENGTH} characters."
        return text_rules.problem(value, multiline=False)
    return "A metadata value is a string, a number or a boolean."
