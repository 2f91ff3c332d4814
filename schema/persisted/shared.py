"""Registered query texts shared by every instance through Redis, bounded.

A text registered on one instance (an APQ request with hash and text) is found by the
others, which would otherwise each answer PERSISTED_QUERY_NOT_FOUND once. What Redis holds
is bounded whatever clients send: each text is at most GIGQL_MAX_QUERY_LENGTH characters,
lives GIGQL_PERSISTED_QUERIES_TTL since it was last registered, and all of them together
at most GIGQL_PERSISTED_QUERIES_SHARED_BYTES (UTF-8): registering past that first drops the
texts closest to expiring. One script does the bookkeeping, so concurrent registrations on
several instances keep the bound.

Redis failing never fails a request: a lookup that fails is a miss (the client sends the
text again), a registration that fails is skipped, and both are logged.
"""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError

from realtime.redis_urls import connect

log = logging.getLogger(__name__)

REDIS_TIMEOUT_SECONDS = 0.5
PREFIX = "gigql:apq"

# KEYS: 1 the index (hash -> expiry, in milliseconds), 2 the sizes (hash -> bytes), 3 the total.
# ARGV: 1 hash, 2 text, 3 ttl seconds, 4 now in milliseconds, 5 budget in bytes, 6 prefix of texts.
_REGISTER = """
local index, sizes, total = KEYS[1], KEYS[2], KEYS[3]
local hash, text, ttl, now, budget, prefix =
    ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local function drop(h)
    local size = tonumber(redis.call('HGET', sizes, h) or '0')
    redis.call('HDEL', sizes, h)
    redis.call('ZREM', index, h)
    redis.call('DEL', prefix .. h)
    redis.call('DECRBY', total, size)
end
for _, h in ipairs(redis.call('ZRANGEBYSCORE', index, '-inf', now)) do drop(h) end
drop(hash)
local size = string.len(text)
while tonumber(redis.call('GET', total) or '0') + size > budget do
    local oldest = redis.call('ZRANGE', index, 0, 0)
    if #oldest == 0 then break end
    drop(oldest[1])
end
redis.call('SET', prefix .. hash, text, 'EX', ttl)
redis.call('ZADD', index, now + ttl * 1000, hash)
redis.call('HSET', sizes, hash, size)
redis.call('INCRBY', total, size)
for _, key in ipairs({index, sizes, total}) do redis.call('EXPIRE', key, ttl) end
return size
"""


class SharedQueries:
    """The registered texts of one graph (`main`, `partner`) in Redis."""

    def __init__(
        self, redis: Redis | RedisCluster, graph: str, ttl_seconds: int, budget: int
    ) -> None:
        self._redis = redis
        # On a Redis Cluster the graph is a hash tag, so that every key of one graph's
        # bookkeeping (texts, index, sizes, total) is in one slot, as its script needs.
        # A single Redis keeps the plain names it always had.
        tag = f"{{{graph}}}" if isinstance(redis, RedisCluster) else graph
        self._prefix = f"{PREFIX}:{tag}"
        self._ttl = ttl_seconds
        self._budget = budget
        self._register = redis.register_script(_REGISTER)

    @staticmethod
    def connect(redis_url: str) -> Redis | RedisCluster:
        return connect(
            redis_url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            decode_responses=True,
        )

    async def text(self, sha256_hex: str) -> str | None:
        try:
            text = await self._redis.get(f"{self._prefix}:text:{sha256_hex}")
        except (RedisError, RedisClusterException, OSError) as error:
            log.warning("persisted query looked up in this instance only: Redis failed (%s)", error)
            return None
        return text if isinstance(text, str) else None

    async def register(self, sha256_hex: str, text: str) -> None:
        keys = [f"{self._prefix}:index", f"{self._prefix}:sizes", f"{self._prefix}:total"]
        arguments: list[str | int] = [
            sha256_hex,
            text,
            self._ttl,
            int(time.time() * 1000),  # fine enough to keep the order of registrations
            self._budget,
            f"{self._prefix}:text:",
        ]
        try:
            await self._register(keys=keys, args=arguments)
        except (RedisError, RedisClusterException, OSError) as error:
            log.warning("persisted query kept in this instance only: Redis failed (%s)", error)
