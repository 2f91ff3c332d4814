"""Periods for reconciling against a gateway that tests share for the whole session."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta


async def next_second() -> datetime:
    """The start of the next whole second, once it has come: gateway times are whole
    seconds, so nothing made before this call falls in a period starting there."""
    now = datetime.now(UTC)
    start = now.replace(microsecond=0) + timedelta(seconds=1)
    await asyncio.sleep((start - now).total_seconds())
    return start


def until_now() -> datetime:
    """The end of a period taking in everything made so far."""
    return datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
