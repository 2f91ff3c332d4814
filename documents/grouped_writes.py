"""Writes of concurrent requests made together, as one command (a group commit).

On the embedded database every command has a fixed cost besides its documents' (the
profile lookup, the collection's options, its locks), and an insert or update of several
documents in one command costs about half per document of separate ones (bench/README.md,
Issue 16, third pass). `GroupedWrites` lets requests that want the same kind of write
at the same time share one: while no group is being written, an item starts one at once
(no waiting for company); items that come meanwhile queue, and go together as the next
group once it is done. Each caller waits for its own group and gets its own result.

The writing runs in a task of its own, so a caller cancelled while it waits stops nobody
else's write (its own item is still written, as it would have been had the caller not
been cancelled after sending its command). That task outlives the request that started
it, so it runs in a context of its own, not that request's (its request id, in every later
group's logs and spans); each group is written in a copy of its first caller's context:
a group of one, the usual case, is attributed to its own request.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Queue(Generic[T, R]):
    waiting: list[tuple[T, asyncio.Future[R], contextvars.Context]] = field(default_factory=list)
    writing: asyncio.Task[None] | None = None


class GroupedWrites(Generic[T, R]):
    """`write` called with the items of whoever `submit`s at the same time (in one event
    loop); it returns one result per item, in order. If it raises, every caller of that
    group gets the error."""

    def __init__(self, write: Callable[[list[T]], Awaitable[Sequence[R]]]) -> None:
        self._write = write
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue[T, R]] = (
            weakref.WeakKeyDictionary()
        )

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _Queue()
        done: asyncio.Future[R] = loop.create_future()
        # A caller cancelled meanwhile does not read its outcome: no "never retrieved".
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        queue.waiting.append((item, done, contextvars.copy_context()))
        if queue.writing is None:
            queue.writing = loop.create_task(self._write_all(queue), context=contextvars.Context())
        return await asyncio.shield(done)

    async def _write_all(self, queue: _Queue[T, R]) -> None:
        try:
            while queue.waiting:
                group, queue.waiting = queue.waiting, []
                try:
                    # A task of its own, for the group's context (cancelled with this one).
                    results = await asyncio.get_running_loop().create_task(
                        self._write_group([item for item, _, _ in group]), context=group[0][2]
                    )
                    if len(results) != len(group):
                        raise RuntimeError("a grouped write returned a result per item")
                except BaseException as error:
                    for _, done, _ in group:
                        if not done.done():
                            done.set_exception(error)
                    if isinstance(error, Exception):
                        continue
                    raise
                for (_, done, _), result in zip(group, results, strict=True):
                    if not done.done():
                        done.set_result(result)
        finally:
            queue.writing = None
            # Only if this task was cancelled (the loop is stopping): nobody writes these.
            for _, done, _ in queue.waiting:
                if not done.done():
                    done.set_exception(RuntimeError("the grouped writes were stopped"))
            queue.waiting = []

    async def _write_group(self, items: list[T]) -> Sequence[R]:
        return await self._write(items)
