"""Quota leases on the real Redis server (ratelimit/_lease.py): far from the limit a process
admits from a block of units taken in Redis, with few round trips; near it every request goes
to Redis; and across two processes (two clients, two connections) the limit stays exact:
never more than the quota, and units held in a lease are still admitted by their holder."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from ratelimit import BackendUnavailable, LeasedBuckets, LuaScript, RedisBuckets, RedisScripts
from ratelimit._lease import LEASE_SECONDS
from tests.redis_server import delete_prefix, free_port, new_prefix, shared_redis_url

YEAR_US = 31_536_000 * 1_000_000


class CountingScripts(RedisScripts):
    """The real runner, counting its round trips."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.calls = 0

    async def eval(self, script: LuaScript, keys: list[str], args: list[str]) -> Any:
        self.calls += 1
        return await super().eval(script, keys, args)


class Clock:
    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def redis_prefix() -> AsyncIterator[tuple[str, str]]:
    url, prefix = shared_redis_url(), new_prefix()
    yield url, prefix
    delete_prefix(url, prefix)


async def test_far_from_the_limit_leases_save_round_trips(
    redis_prefix: tuple[str, str],
) -> None:
    url, prefix = redis_prefix
    scripts = CountingScripts(url)
    store = LeasedBuckets(RedisBuckets(scripts))
    try:
        decisions = [await store.take(prefix + "k", 10_000, YEAR_US, 1) for _ in range(1000)]
        assert all(d.admitted for d in decisions)
        # Every request still has its own counter state, in order.
        assert [round(d.level) for d in decisions] == list(range(1, 1001))
        # Leases of 4, 8, 16, ... up to 256 units: a dozen round trips, not a thousand.
        assert scripts.calls <= 12, scripts.calls
        assert store.granted >= 6
    finally:
        await scripts.close()


async def test_near_the_limit_every_request_goes_to_redis(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    scripts = CountingScripts(url)
    store = LeasedBuckets(RedisBuckets(scripts))
    try:
        # Quota 20: no lease may take the level past 10.
        decisions = [await store.take(prefix + "k", 20, YEAR_US, 1) for _ in range(25)]
        assert [d.admitted for d in decisions] == [True] * 20 + [False] * 5
        assert [round(d.level) for d in decisions] == [*range(1, 21), *[20] * 5]
        # One lease of 4 (level 4), then one of 8 would pass 10: every other request alone.
        assert scripts.calls == 1 + (25 - 4), scripts.calls
    finally:
        await scripts.close()


async def test_two_processes_never_exceed_the_quota_and_held_units_are_served(
    redis_prefix: tuple[str, str],
) -> None:
    """Process A holds a lease while B spends the rest: B is refused at the limit (A's unused
    units count), A still admits its units, and the total is exactly the quota."""
    url, prefix = redis_prefix
    first, second = RedisScripts(url), RedisScripts(url)
    a, b = LeasedBuckets(RedisBuckets(first)), LeasedBuckets(RedisBuckets(second))
    key = prefix + "k"
    try:
        assert (await a.take(key, 20, YEAR_US, 1)).admitted  # a lease of 4: 3 held
        from_b = [await b.take(key, 20, YEAR_US, 1) for _ in range(20)]
        assert sum(d.admitted for d in from_b) == 16
        from_a = [await a.take(key, 20, YEAR_US, 1) for _ in range(5)]
        assert [d.admitted for d in from_a] == [True] * 3 + [False] * 2
        levels = sorted(round(d.level) for d in [*from_b, *from_a] if d.admitted)
        assert levels == list(range(2, 21))  # each unit its own state (1 was A's first)
    finally:
        await first.close()
        await second.close()


async def test_a_burst_on_two_processes_admits_exactly_the_quota(
    redis_prefix: tuple[str, str],
) -> None:
    url, prefix = redis_prefix
    first, second = RedisScripts(url), RedisScripts(url)
    stores = [LeasedBuckets(RedisBuckets(first)), LeasedBuckets(RedisBuckets(second))]
    try:
        decisions = await asyncio.gather(
            *(stores[i % 2].take(prefix + "k", 101, YEAR_US, 1) for i in range(400))
        )
        admitted = [d for d in decisions if d.admitted]
        assert len(admitted) == 101
        assert sorted(round(d.level) for d in admitted) == list(range(1, 102))
        assert stores[0].granted + stores[1].granted >= 2
    finally:
        await first.close()
        await second.close()


async def test_an_expired_lease_gives_its_units_back(redis_prefix: tuple[str, str]) -> None:
    url, prefix = redis_prefix
    clock = Clock()
    scripts = RedisScripts(url)
    store = LeasedBuckets(RedisBuckets(scripts), clock)
    client = aioredis.Redis.from_url(url)
    key = prefix + "k"
    try:
        await store.take(key, 1000, YEAR_US, 1)  # a lease of 4: level 4, 3 of them unused
        assert round(float(await client.hget(key, "l") or 0)) == 4
        clock.now += LEASE_SECONDS + 0.01
        decision = await store.take(key, 1000, YEAR_US, 1)  # gives 3 back, leases 4 again
        assert round(decision.level) == 2  # its unit comes right after the one used
        await store.inner.flush()
        assert round(float(await client.hget(key, "l") or 0)) == 5  # 1 used + the new 4
    finally:
        await client.aclose()
        await scripts.close()


async def test_an_unreachable_server_fails_every_waiting_request_at_once() -> None:
    scripts = RedisScripts(f"redis://127.0.0.1:{free_port()}/0")
    store = LeasedBuckets(RedisBuckets(scripts))
    try:
        started = time.monotonic()
        results = await asyncio.gather(
            *(store.take("k", 1000, YEAR_US, 1) for _ in range(20)), return_exceptions=True
        )
        assert all(isinstance(r, BackendUnavailable) for r in results), results
        assert time.monotonic() - started < 2  # not one connect timeout after another
    finally:
        await scripts.close()
