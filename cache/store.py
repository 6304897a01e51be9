"""The response cache of one gateway process: bucket reads and writes over a backend.

Bucket rule (reference §2.5): a request with bucket size *n* owns *n* slots. A read fetches
all of them in one round trip; while any slot is empty the request is a MISS (the provider
answers, and the answer goes to the first empty slot); once every slot is full, hits pick a
slot at random. Size 1 is a plain cache: the first answer is the one every hit gets.

Budgets: a read that takes longer than ``read_timeout`` is a MISS (a slow cache must not be
slower than the provider it stands in for); a write has ``write_timeout`` and runs after the
client has its answer. Answers larger than ``max_entry_bytes`` are served but not stored.
A backend fault is a MISS and nothing is stored (:class:`cache.backends.BackendUnavailable`);
the fault itself is counted where it happened (Redis: ``gateway/redisconn.py``).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass

from cache.backends import BackendUnavailable, CacheBackend
from cache.entry import CachedAnswer, EntryFormatError

logger = logging.getLogger("gateway.cache")


@dataclass(frozen=True, slots=True)
class Lookup:
    """What a read found."""

    answer: CachedAnswer | None
    """The answer to serve (a HIT), else None."""
    index: int | None
    """The slot served (HIT), or the first free one a MISS will fill (None: no free slot)."""
    free: tuple[int, ...] | None
    """Free slots in order (None: unknown, the read failed or was skipped)."""


class ResponseCache:
    """Bucketed entries over one backend, with the budgets and counters."""

    def __init__(
        self,
        backend: CacheBackend,
        *,
        max_entry_bytes: int,
        read_timeout: float,
        write_timeout: float,
        rng: random.Random | None = None,
    ) -> None:
        self.backend = backend
        self.max_entry_bytes = max_entry_bytes
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self._rng = rng or random.Random()
        self.hits = 0
        self.misses = 0
        self.stores = 0
        self.too_large = 0
        self.unavailable = 0
        self.damaged = 0

    async def lookup(self, keys: Sequence[str], read: bool) -> Lookup:
        """Read a bucket's slots. ``read``: serve a full bucket (False for write-only
        requests, which only need to know the free slots)."""
        try:
            values = await self.backend.get_many(keys, self.read_timeout)
        except BackendUnavailable:
            self.unavailable += 1
            if read:
                self.misses += 1
            return Lookup(None, 0, None)
        free = tuple(index for index, value in enumerate(values) if value is None)
        if read and not free:
            index = self._rng.randrange(len(values))
            value = values[index]
            assert value is not None
            try:
                answer = CachedAnswer.decode(value)
            except EntryFormatError as exc:
                logger.warning("cache entry %s unreadable: %s", keys[index], exc)
                self.damaged += 1
            else:
                self.hits += 1
                return Lookup(answer, index, ())
        if read:
            self.misses += 1
        return Lookup(None, free[0] if free else None, free)

    async def store(
        self, keys: Sequence[str], free: tuple[int, ...] | None, data: bytes, ttl: int
    ) -> int | None:
        """Put ``data`` (an encoded entry) in the first slot still free; the slot used, or
        None (no free slot left, or the backend could not be reached)."""
        candidates = range(len(keys)) if free is None else free
        try:
            for index in candidates:
                if await self.backend.add(keys[index], data, ttl, self.write_timeout):
                    self.stores += 1
                    return index
        except BackendUnavailable:
            self.unavailable += 1
        return None

    def fits(self, size: int) -> bool:
        """Whether an answer of ``size`` bytes may be stored (else counted as too large)."""
        if size <= self.max_entry_bytes:
            return True
        self.too_large += 1
        return False

    def health(self) -> dict[str, object]:
        return {
            "backend": self.backend.name,
            "hits": self.hits,
            "misses": self.misses,
            "stores": self.stores,
            "too_large": self.too_large,
            "unavailable": self.unavailable,
            "damaged": self.damaged,
        }
