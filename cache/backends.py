"""Where entries live: in the process (the default, no service needed) or on Redis.

A backend stores opaque bytes under a key with a lifetime, and knows two operations:

* ``get_many(keys)`` — the values of a bucket's slots in one round trip (``MGET``);
* ``add(key, value, ttl)`` — store only if the slot is empty (``SET NX EX``), so that two
  concurrent misses of one request never overwrite each other's answer: the loser moves on to
  the next free slot (or stores nothing when there is none).

A backend that cannot answer raises :class:`BackendUnavailable`; the cache then treats the
request as a miss (and does not store), never as a failed request.

On Redis, each process also keeps a near copy of the entries it has read or written
(:class:`NearRedisBackend`): a slot, once filled, never changes until it expires (``SET NX``),
so a copy kept no longer than the entry's remaining lifetime on Redis (``PTTL``, read with the
values) is the entry itself, and a bucket whose every slot is held here is answered without a
round trip. Redis-side removals the gateway does not make (an operator's ``FLUSHDB``, eviction
under ``maxmemory``) are seen within ``GATEWAY_CACHE_NEAR_SECONDS`` at most.
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
        item = self._entries.get(key)
        if item is not None and item[1] > self._clock():
            return False  # a full slot is never overwritten
        return self.put(key, value, ttl)

    def _drop(self, key: str) -> None:
        value, _ = self._entries.pop(key)
        self.size -= _cost(key, value)

    def get_all(self, keys: Sequence[str]) -> list[bytes] | None:
        """Every key's value, or None as soon as one is missing or expired (no await: the
        near copy's read)."""
        now = self._clock()
        entries = self._entries
        found: list[bytes] = []
        for key in keys:
            item = entries.get(key)
            if item is None or item[1] <= now:
                return None
            entries.move_to_end(key)
            found.append(item[0])
        return found

    def put(self, key: str, value: bytes, ttl: float) -> bool:
        """Keep ``value`` for ``ttl`` seconds, replacing what ``key`` held, least recently
        used entries going first past ``max_bytes``; False when the entry alone is larger.
        (The near copy's write: the far store has already decided what the slot holds.)"""
        if key in self._entries:
            self._drop(key)
        cost = _cost(key, value)
        if cost > self.max_bytes:
            return False
        self._entries[key] = (value, self._clock() + ttl)
        self.size += cost
        while self.size > self.max_bytes:
            self._drop(next(iter(self._entries)))
            self.evictions += 1
        return True


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

    async def get_with_ttls(
        self, keys: Sequence[str], budget: float
    ) -> tuple[list[bytes | None], list[int]]:
        """The slots' values and their remaining lifetimes in milliseconds (``PTTL``: -2 for
        a missing key), in one round trip."""
        names = [self._prefix + key for key in keys]

        async def mget_pttl(client: Client) -> list[object]:
            async with client.pipeline(transaction=False) as pipe:
                pipe.mget(names)
                for name in names:
                    pipe.pttl(name)
                return cast(list[object], await pipe.execute())

        try:
            replies = await self.redis.run(mget_pttl, budget)
        except RedisUnavailable as exc:
            raise BackendUnavailable(str(exc)) from exc
        return cast(list[bytes | None], replies[0]), [int(cast(int, t)) for t in replies[1:]]

    async def add(self, key: str, value: bytes, ttl: int, budget: float) -> bool:
        name = self._prefix + key

        async def set_new(client: Client) -> bool:
            return bool(await client.set(name, value, ex=ttl, nx=True))

        try:
            return await self.redis.run(set_new, budget)
        except RedisUnavailable as exc:
            raise BackendUnavailable(str(exc)) from exc


class NearRedisBackend:
    """:class:`RedisBackend` with this process's near copy of the entries (module docstring).

    ``max_seconds`` bounds how long a copy is kept whatever the entry's lifetime on Redis;
    the copies share ``near``'s byte bound, least recently used first."""

    name = "redis"

    def __init__(self, far: RedisBackend, near: MemoryBackend, max_seconds: float) -> None:
        self.far = far
        self.near = near
        self.max_seconds = max_seconds
        self.near_hits = 0

    async def get_many(self, keys: Sequence[str], budget: float) -> list[bytes | None]:
        held = self.near.get_all(keys)
        if held is not None:
            self.near_hits += 1
            return list(held)
        values, ttls = await self.far.get_with_ttls(keys, budget)
        for key, value, ttl_ms in zip(keys, values, ttls, strict=True):
            if value is not None and ttl_ms > 0:
                self.near.put(key, value, min(ttl_ms / 1000, self.max_seconds))
        return values

    async def add(self, key: str, value: bytes, ttl: int, budget: float) -> bool:
        added = await self.far.add(key, value, ttl, budget)
        if added:
            self.near.put(key, value, min(float(ttl), self.max_seconds))
        return added
