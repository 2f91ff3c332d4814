"""Replies from Redis are parsed by hiredis, redis-py's C parser, which it picks by itself
when installed: a dependency of ours for the fan-out's sake (pyproject.toml)."""

from __future__ import annotations

from redis._parsers import _AsyncHiredisParser

from realtime.broker import RedisBroker


async def test_the_broker_reads_redis_with_hiredis() -> None:
    broker = RedisBroker("redis://127.0.0.1:1")  # connects only when used
    try:
        pool = broker._redis.connection_pool
        connection = pool.connection_class(**pool.connection_kwargs)
        assert isinstance(connection._get_parser(), _AsyncHiredisParser)
    finally:
        await broker.close()
