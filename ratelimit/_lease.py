"""Quota leases: a process takes a block of a counter's units from Redis and admits requests
from it without a round trip, while the counter is far from its limit.

Why: on Redis every admitted request cost the gateway a share of a round trip (batched, ~5
requests per ``EVALSHA`` under load), ~30 µs of CPU per request, a seventh of what the whole
request costs; a lease of ``n`` units costs one round trip for ``n`` requests. At one
connection it also takes the round trip out of most requests' latency.

Why it stays exact (never more than the quota, whatever the number of processes): a lease's
units are *taken* in Redis when it is granted (the GCRA script's ``lease`` step,
ratelimit/_buckets.py), so every request admitted from a lease had its unit counted before it
was admitted; other processes see the counter with the whole lease in it. A lease is granted
only while the counter's level stays at most half the quota with it; past that every request
goes to Redis on its own (batched), as before, so the limit's edge is decided request by
request, in order, in one script. What a lease changes:

* units leased and not used yet are counted as used: another process may be refused while
  this one still holds some. A lease lasts :data:`LEASE_SECONDS` at most; the units left of an
  expired one are given back (with the key's next step), and a lease of a counter never
  exceeds what was granted while the level was at most half the quota, so near the limit at
  most :data:`MAX_LEASE` units per process can be held that way (and every one of them is
  still admitted if that process gets the requests);
* a unit is counted from the lease's grant, not from the request's arrival (at most
  :data:`LEASE_SECONDS` earlier): it starts draining that much sooner;
* ``Remaining`` for a request served from a lease is the counter's state at its unit's place
  in the lease (the level at the grant, plus the lease's units used before it): the other
  processes' requests since the grant are not in it, as if this process's had all come at the
  grant. Each unit still has its own state (two requests never report the same one).

Only single units are leased (request policies and gateway quotas); cents policies (weighted
amounts, settled later) go to Redis each time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from ratelimit._buckets import BackendUnavailable, Decision, RedisBuckets

LEASE_SECONDS = 0.1
"""A lease's longest life: how stale ``Remaining`` and how long unused units are held."""
MIN_LEASE = 4
MAX_LEASE = 256
"""A lease's size: doubled each time one is used up before it expires, down to what was used
when one expires (so a key at a few requests a second leases few units)."""
MAX_LEASES = 4096
"""Keys with a lease kept at once; beyond, expired ones are dropped (their units given back)."""


@dataclass(slots=True)
class _Lease:
    left: int
    """Units not used yet."""
    level: float
    """The counter's level for the next unit served from the lease."""
    expires: float
    size: int
    quota: int
    window_us: int
    edge: bool = False
    """No lease to be had (the counter is past half its quota): until it expires, requests go
    to Redis one by one, without asking for a lease first."""


class LeasedBuckets:
    """:class:`~ratelimit._buckets.Buckets` over :class:`RedisBuckets` with per-process leases
    (module docstring). ``adjust`` and weighted takes go straight to Redis.

    One lease request per key at a time: requests arriving meanwhile wait for it and are served
    from it (a burst's requests must not go around a lease just granted, or its units would be
    held unused while the limit refuses others); when it comes back without a lease (the
    counter is near its limit) they go to Redis each, batched as before.
    """

    def __init__(self, inner: RedisBuckets, clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self._clock = clock
        self._leases: dict[str, _Lease] = {}
        self._asking: dict[str, list[asyncio.Future[None]]] = {}
        """Keys with a lease request on its way, and the requests waiting for it."""
        self.granted = 0
        """Leases granted (for tests and the README's measurements)."""

    async def take(self, key: str, quota: int, window_us: int, amount: int) -> Decision:
        if amount != 1:
            return await self.inner.take(key, quota, window_us, amount)
        while True:
            lease = self._leases.get(key)
            size = MIN_LEASE
            if lease is not None:
                if self._clock() < lease.expires:
                    if lease.left > 0:
                        lease.left -= 1
                        level = lease.level
                        lease.level = level + 1
                        return Decision(True, level)
                    if lease.edge:
                        return await self.inner.take(key, quota, window_us, 1)
                    size = min(MAX_LEASE, 2 * lease.size)  # used up in time: lease more
                else:
                    size = max(MIN_LEASE, lease.size - lease.left)  # what was used of it
                    self._give_back(lease, key)
                del self._leases[key]
            waiting = self._asking.get(key)
            if waiting is None:
                break
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            waiting.append(waiter)
            await waiter  # then look again: served from the new lease, or ask for the next
        return await self._ask(key, quota, window_us, size)

    async def _ask(self, key: str, quota: int, window_us: int, size: int) -> Decision:
        waiters: list[asyncio.Future[None]] = []
        self._asking[key] = waiters
        try:
            granted, level = await self.inner.lease(key, quota, window_us, size)
        except asyncio.CancelledError:
            # This request is gone (its client left); the others look again, one asks anew. A
            # lease the server granted meanwhile is lost: its units drain like used ones.
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            raise
        except BaseException as exc:
            for waiter in waiters:  # the store is unreachable for them too: fail open at once
                if not waiter.done():
                    waiter.set_exception(BackendUnavailable(repr(exc)))
            raise
        finally:
            del self._asking[key]
        if len(self._leases) >= MAX_LEASES:
            self._sweep()
        expires = self._clock() + LEASE_SECONDS
        first = level - granted + 1  # this request's unit, the lease's first
        if granted > 1:
            self._leases[key] = _Lease(granted - 1, first + 1, expires, granted, quota, window_us)
            self.granted += 1
        else:  # near the limit (or refused): no lease until it expires, a smaller one then
            smaller = max(MIN_LEASE, size // 2)
            self._leases[key] = _Lease(0, 0.0, expires, smaller, quota, window_us, edge=True)
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        if granted == 0:
            return Decision(False, level)
        return Decision(True, first)

    async def adjust(self, key: str, quota: int, window_us: int, delta: int) -> None:
        await self.inner.adjust(key, quota, window_us, delta)

    def _give_back(self, lease: _Lease, key: str) -> None:
        if lease.left > 0:
            self.inner.adjust_later(key, lease.quota, lease.window_us, -lease.left)
            lease.left = 0

    def _sweep(self) -> None:
        now = self._clock()
        for key, lease in list(self._leases.items()):
            if lease.expires <= now:
                self._give_back(lease, key)
                del self._leases[key]

    async def close(self) -> None:
        """Give back what the leases still hold (best effort), then stop sending."""
        for key, lease in self._leases.items():
            self._give_back(lease, key)
        self._leases.clear()
        await self.inner.flush()
        await self.inner.close()
