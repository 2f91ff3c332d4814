"""Partners' idempotency keys: the same key with the same request gives the first
result; with a different request it is IDEMPOTENCY_KEY_REUSED.

A request is identified by a digest of what it asks for (`request_digest`), stored on the
transaction it made. Inside the transaction that would make a new one, `replay` looks
for the key first. Two requests racing with one key both find none; the unique index on
(partner, key) lets one insert, and the other's transaction conflicts (retried, it finds
the first) or, if the first committed already, fails with a duplicate key, which
`once` answers by running the work again, now finding the first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from bson import ObjectId
from pydantic_core import to_jsonable_python
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import DuplicateKeyError

from documents.errors import DomainError, ErrorCode
from documents.partners.transactions import PartnerTransaction

T = TypeVar("T")
MAX_KEY_LENGTH = 255


def key_problem(key: str) -> str | None:
    if not 0 < len(key) <= MAX_KEY_LENGTH or not key.isprintable() or key != key.strip():
        return f"An idempotency key has 1 to {MAX_KEY_LENGTH} printable characters."
    return None


def request_digest(kind: str, **request: Any) -> str:
    """A digest of a request's content: equal for equal requests, whatever their order."""
    canonical = json.dumps(
        [kind, to_jsonable_python(request, fallback=str)],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


async def replay(
    session: AsyncClientSession, partner_id: ObjectId, key: str, digest: str
) -> PartnerTransaction | None:
    """The transaction an earlier request with this key made, if it asked the same; raises
    IDEMPOTENCY_KEY_REUSED if it asked something else."""
    found = await PartnerTransaction.find_one(
        {"partner_id": partner_id, "idempotency_key": key}, session=session
    )
    if found is not None and found.request_hash != digest:
        raise DomainError(
            ErrorCode.IDEMPOTENCY_KEY_REUSED,
            "This idempotency key was used for a different request; use a new key.",
            "idempotencyKey",
        )
    return found


async def once(run: Callable[[], Awaitable[T]]) -> T:
    """Run `run` (a whole `transact`), once more if it lost a race to insert the same
    idempotency key, so the second run finds the first's transaction."""
    try:
        return await run()
    except DuplicateKeyError:
        return await run()
