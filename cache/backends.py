"""Where entries live: in the process (the default, no service needed) or on Redis.

A backend stores opaque bytes under a key with a lifetime, and knows two operations:

* ``get_many(keys)`` — the values of a bucket's slots in one round trip (``MGET``);
* ``add(key, value, ttl)`` — store only if the slot is empty (``SET NX EX``), so that two
  concurrent misses of one request never overwrite each other's answer: the loser moves on to
  the next free slot (or stores nothing when there is none).

A backend that cannot answer raises :class:`BackendUnavailable`; the cache then treats the
request as a miss (and does not store), never as a failed request.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Protocol, cast

from gateway.redisconn import Client, RedisUnavailable, SharedRedis

_ENTRY_OVERHEAD = 96
"""Bytes counted per in-process entry beyond its key and value (dict slot, tuple, floats)."""


class BackendUnavailable(Exception):
    """The backend could not serve the call (Redis down or too slow)."""


class CacheBackend(Protocol):
    name: str

    async def get_many(self, keys: Sequence[str], budget: float) -> list[bytes | None]: ...

    async def add(self, key: str, value: bytes, ttl: int, budget: float) -> bool: ...


class MemoryBackend:
    """Bounded in-process store: least recently used entries go first once ``max_bytes``
    (keys and values, plus a fixed overhead each) would be exceeded; expired entries are
    dropped when met. Per process: gateway workers do not share it (use Redis for that)."""

    name = "memory"

    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[bytes, float]] = OrderedDict()
        self.size = 0
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def get_many(self, keys: Sequence[str], budget: float) -> list[bytes | None]:
        now = self._clock()
        found: list[bytes | None] = []
        entries = self._entries
        for key in keys:
            item = entries.get(key)
            if item is None:
                found.append(None)
            elif item[1] <= now:
                self._drop(key)
                found.append(None)
            else:
                entries.move_to_end(key)
                found.append(item[0])
        return found

    async def add(self, key: str, value: bytes, ttl: int, budget: float) -> bool:
        now = self._clock()
        item = self._entries.get(key)
        if item is not None:
            if item[1] > now:
                return False
            self._drop(key)
        cost = _cost(key, value)
        if cost > self.max_bytes:
            return False
        self._entries[key] = (value, now + ttl)
        self.size += cost
        while self.size > self.max_bytes:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.evictions += 1
        return True

    def _drop(self, key: str) -> None:
        value, _ = self._entries.pop(key)
        self.size -= _cost(key, value)


def _cost(key: str, value: bytes) -> int:
    return len(key) + len(value) + _ENTRY_OVERHEAD


class RedisBackend:
    """Entries on Redis, under ``<prefix>cache:<key>``, through the process's shared pool
    (:class:`gateway.redisconn.SharedRedis`: faults are counted and logged there)."""

    name = "redis"

    def __init__(self, redis: SharedRedis) -> None:
        self.redis = redis
        self._prefix = redis.prefix + "cache:"

    async def get_many(self, keys: Sequence[str], budget: float) -> list[bytes | None]:
        names = [self._prefix + key for key in keys]

        async def mget(client: Client) -> list[bytes | None]:
            values = await client.mget(names)  # bytes (decode_responses is off) or None
            return cast(list[bytes | None], values)

        try:
            return await self.redis.run(mget, budget)
        except RedisUnavailable as exc:
            raise BackendUnavailable(str(exc)) from exc

    async def add(self, key: str, value: bytes, ttl: int, budget: float) -> bool:
        name = self._prefix + key

        async def set_new(client: Client) -> bool:
            return bool(await client.set(name, value, ex=ttl, nx=True))

        try:
            return await self.redis.run(set_new, budget)
        except RedisUnavailable as exc:
            raise BackendUnavailable(str(exc)) from exc
