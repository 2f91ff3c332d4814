"""How long the event loop was held up, whatever else the machine is doing.

The in-process server (`serve` in tests/conftest.py) runs in the test's own event loop. A
ticker task there records the CPU time the loop's thread spent between two consecutive
ticks: that is how long the loop could not turn, measured in the thread's own time, so a
busy machine (which stretches wall time, not a thread's CPU time) changes nothing. Work
done in other threads (the preparation thread) is not counted: it does not hold up the
loop.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

MAX_LOOP_HOLDUP = 0.050
"""Seconds of CPU the event loop may spend without turning."""
TICK = 0.002


@dataclass
class LoopWatch:
    longest: float = 0.0
    """The most CPU time, in seconds, the loop's thread spent between two ticks."""

    def assert_never_held_up(self, what: str) -> None:
        assert self.longest <= MAX_LOOP_HOLDUP, (
            f"{what} held up the event loop for {self.longest * 1000:.0f} ms of CPU"
        )


@asynccontextmanager
async def watching_the_loop() -> AsyncIterator[LoopWatch]:
    watch = LoopWatch()
    # As `gigql serve` does after start-up: what exists now is kept out of the collector's
    # generations, so that a full collection of the test process does not count.
    gc.collect()
    gc.freeze()

    async def tick() -> None:
        last = time.thread_time()
        while True:
            await asyncio.sleep(TICK)
            now = time.thread_time()
            watch.longest = max(watch.longest, now - last)
            last = now

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(TICK * 2)  # ticking before the first request goes out
    try:
        yield watch
    finally:
        ticker.cancel()
        gc.unfreeze()
