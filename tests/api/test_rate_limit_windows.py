"""The in-process rate limit counters count exactly as `limits`' sliding window counter
on its memory storage, which they stand in for when there is no Redis: the same hits
admitted and refused, the same reset times, over many windows and expiries."""

from __future__ import annotations

import random
import time

import pytest
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from schema.common.rate_limits import InProcessWindows

WINDOW = 60


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def test_counts_as_limits_sliding_window_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(time, "time", clock)
    budgets = [
        RateLimitItemPerSecond(5, WINDOW, namespace="ip-requests"),
        RateLimitItemPerSecond(40, WINDOW, namespace="ip-cost"),
    ]
    reference = SlidingWindowCounterRateLimiter(MemoryStorage())
    windows = InProcessWindows()
    draw = random.Random(16)  # noqa: S311 (a reproducible sequence, not a secret)
    refused = 0
    for _ in range(3_000):
        # Bursts, pauses within a window, and now and then a window or two of silence.
        steps = [0.05, 0.5, 3.0, 7.5, WINDOW * 1.3, WINDOW * 2.7]
        clock.now += draw.choices(steps, weights=[40, 30, 15, 10, 3, 2])[0]
        budget = draw.choice(budgets)
        key = draw.choice(["198.51.100.1", "198.51.100.2", "2001:db8::/64"])
        cost = draw.choice([1, 1, 2, 7]) if budget.amount > 5 else 1
        expected = await reference.hit(budget, key, cost=cost)
        assert windows.hit(budget, key, cost) == expected
        if not expected:
            refused += 1
            stats = await reference.get_window_stats(budget, key)
            assert windows.reset_time(budget, key) == pytest.approx(stats.reset_time)
    assert 150 < refused < 2_850  # both answers were compared often


def test_a_cost_over_the_whole_budget_is_refused_and_counts_nothing() -> None:
    budget = RateLimitItemPerSecond(5, WINDOW, namespace="ip-cost")
    windows = InProcessWindows()
    assert not windows.hit(budget, "198.51.100.1", 6)
    assert windows.hit(budget, "198.51.100.1", 5)


def test_expired_counters_are_dropped_as_others_count(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr(time, "time", clock)
    budget = RateLimitItemPerSecond(5, WINDOW, namespace="ip-requests")
    windows = InProcessWindows()
    for client in range(1_000):
        windows.hit(budget, f"198.51.{client // 256}.{client % 256}", 1)
    clock.now += 2 * WINDOW + 1
    windows.hit(budget, "203.0.113.1", 1)
    assert len(windows._counts) == 1
