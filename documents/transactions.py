"""Multi-document transactions.

`run_in_transaction` retries the whole callback on transient conflicts (two writers on
one document), so the callback must do all of its reads and writes through the session
it is given and have no other side effects.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from pymongo.asynchronous.client_session import AsyncClientSession

from documents.accounts.users import User

T = TypeVar("T")


async def run_in_transaction(callback: Callable[[AsyncClientSession], Awaitable[T]]) -> T:
    client = User.get_pymongo_collection().database.client
    async with client.start_session() as session:
        return await session.with_transaction(callback)
