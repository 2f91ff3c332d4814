"""Word search without a text index: documents keep their words, queries match prefixes.

MongoDB's `$text` is not available everywhere gigql runs (SecantusDB lacks it), and an
indexed array of lower-cased words with anchored prefix matches works on every server:
"garde" finds "gardening", and each word of a query narrows the result.
"""

from __future__ import annotations

import re
from typing import Any

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
MIN_WORD = 2
MAX_WORDS = 300
MAX_QUERY_WORDS = 8


def words(*texts: str) -> list[str]:
    found = dict.fromkeys(
        word for text in texts for word in _WORD.findall(text.casefold()) if len(word) >= MIN_WORD
    )
    return list(found)[:MAX_WORDS]


def matching(field: str, query: str) -> dict[str, Any] | None:
    """A filter for documents with a word starting with each word of `query`."""
    terms = words(query)[:MAX_QUERY_WORDS]
    if not terms:
        return None
    return {"$and": [{field: {"$regex": f"^{re.escape(term)}"}} for term in terms]}
