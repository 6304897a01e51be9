"""The GCRA counters, the same suite in process and on the real Redis server: exact bursts,
gradual refill, reservations given back, atomicity under concurrency, idle keys expiring."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from ratelimit import (
    BackendUnavailable,
    Buckets,
    LeasedBuckets,
    MemoryBuckets,
    PooledScripts,
    RedisBuckets,
    RedisScripts,
)
from ratelimit._buckets import retry_after
from tests.redis_server import (
    RedisProcess,
    delete_prefix,
    free_port,
    new_prefix,
    shared_redis_url,
)

YEAR_US = 31_536_000 * 1_000_000


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis", "leased"])
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    yield request.param


@pytest.fixture
async def buckets(backend: str) -> AsyncIterator[tuple[Buckets, str]]:
    if backend == "memory":
        yield MemoryBuckets(), "k:"
        return
    url = shared_redis_url()
    prefix = new_prefix()
    scripts = RedisScripts(url)
    try:
        store = RedisBuckets(scripts)
        # The same suite through leases (ratelimit/_lease.py): the decisions must not change.
        yield (LeasedBuckets(store) if backend == "leased" else store), prefix
    finally:
        await scripts.close()
        delete_prefix(url, prefix)


async def test_a_burst_gets_exactly_the_quota(buckets: tuple[Buckets, str]) -> None:
    store, prefix = buckets
    decisions = [await store.take(prefix + "a", 5, YEAR_US, 1) for _ in range(7)]
    assert [d.admitted for d in decisions] == [True] * 5 + [False] * 2
    # The level counts what was taken (a year's window drains ~nothing meanwhile).
    assert [round(d.level) for d in decisions] == [1, 2, 3, 4, 5, 5, 5]
    # Counters are per key.
    assert (await store.take(prefix + "b", 5, YEAR_US, 1)).admitted


async def test_weighted_amounts_and_refunds(buckets: tuple[Buckets, str]) -> None:
    store, prefix = buckets
    key = prefix + "cents"
    assert (await store.take(key, 100, YEAR_US, 60)).admitted
    assert not (await store.take(key, 100, YEAR_US, 41)).admitted  # 101 > 100
    assert (await store.take(key, 100, YEAR_US, 40)).admitted  # exactly 100
    await store.adjust(key, 100, YEAR_US, -55)  # the first one cost 5, not 60
    decision = await store.take(key, 100, YEAR_US, 55)
    assert decision.admitted and round(decision.level) == 100
    await store.adjust(key, 100, YEAR_US, -1000)  # never below zero
    assert round((await store.take(key, 100, YEAR_US, 100)).level) == 100


async def test_concurrent_takes_never_exceed_the_quota(buckets: tuple[Buckets, str]) -> None:
    """200 takes at once admit exactly the quota (on Redis they go in batches)."""
    store, prefix = buckets
    decisions = await asyncio.gather(
        *(store.take(prefix + "burst", 37, YEAR_US, 1) for _ in range(200))
    )
    assert sum(d.admitted for d in decisions) == 37
    # Every admitted take saw a different level: no two read the same state.
    levels = sorted(round(d.level) for d in decisions if d.admitted)
    assert levels == list(range(1, 38))


async def test_two_clients_on_one_server_share_the_counter() -> None:
    """Two independent clients (two connections, each batching on its own), as two gateway
    processes would be: 200 takes interleaved between them admit exactly the quota."""
    url = shared_redis_url()
    prefix = new_prefix()
    first, second = RedisScripts(url), RedisScripts(url)
    stores = [RedisBuckets(first), RedisBuckets(second)]
    for store in stores:
        store.MAX_BATCH = 4  # small batches, so that the two clients' batches interleave
    try:
        decisions = await asyncio.gather(
            *(stores[i % 2].take(prefix + "k", 37, YEAR_US, 1) for i in range(200))
        )
        admitted = [d for d in decisions if d.admitted]
        assert len(admitted) == 37
        assert sorted(round(d.level) for d in admitted) == list(range(1, 38))
        assert {i % 2 for i, d in enumerate(decisions) if d.admitted} == {0, 1}
    finally:
        for store in stores:
            await store.close()
        await first.close()
        await second.close()
        delete_prefix(url, prefix)


async def test_the_quota_comes_back_gradually() -> None:
    clock = FakeClock()
    store = MemoryBuckets(clock)
    window_us = 60 * 1_000_000
    for _ in range(6):
        assert (await store.take("k", 6, window_us, 1)).admitted
    assert not (await store.take("k", 6, window_us, 1)).admitted
    clock.now += 9.9  # 6 per 60 s: one unit back every 10 s
    assert not (await store.take("k", 6, window_us, 1)).admitted
    clock.now += 0.1
    assert (await store.take("k", 6, window_us, 1)).admitted
    assert not (await store.take("k", 6, window_us, 1)).admitted
    clock.now += 60  # a whole window later: the full quota
    decisions = [await store.take("k", 6, window_us, 1) for _ in range(7)]
    assert sum(d.admitted for d in decisions) == 6


async def test_redis_drains_on_the_servers_clock() -> None:
    url = shared_redis_url()
    prefix = new_prefix()
    scripts = RedisScripts(url)
    store = RedisBuckets(scripts)
    try:
        # 60 per 60 s: one unit back every second (the server's TIME, not ours).
        for _ in range(60):
            assert (await store.take(prefix + "k", 60, 60_000_000, 1)).admitted
        assert not (await store.take(prefix + "k", 60, 60_000_000, 1)).admitted
        await asyncio.sleep(1.1)
        assert (await store.take(prefix + "k", 60, 60_000_000, 1)).admitted
    finally:
        await scripts.close()
        delete_prefix(url, prefix)


async def test_idle_counters_expire() -> None:
    clock = FakeClock()
    store = MemoryBuckets(clock)
    for index in range(10):
        await store.take(f"k{index}", 10, 60_000_000, 1)
    clock.now += 6.1  # one unit drains in 6 s
    store._sweep(clock() * 1_000_000)
    assert len(store) == 0

    url = shared_redis_url()
    prefix = new_prefix()
    scripts = RedisScripts(url)
    client = aioredis.Redis.from_url(url)
    try:
        await RedisBuckets(scripts).take(prefix + "k", 10, 60_000_000, 1)
        ttl = await client.pttl(prefix + "k")
        assert 5_000 < ttl <= 6_001  # the time the level takes to drain, not the window
        await RedisBuckets(scripts).adjust(prefix + "k", 10, 60_000_000, -1)
        assert await client.pttl(prefix + "k") <= 1
    finally:
        await client.aclose()
        await scripts.close()
        delete_prefix(url, prefix)


def test_retry_after() -> None:
    window = 60_000_000
    assert retry_after(6.0, 1, 6, window) == 10  # one unit back in 10 s
    assert retry_after(5.95, 1, 6, window) == 10  # 9.5 s, rounded up
    assert retry_after(5.001, 1, 6, window) == 1  # at least one second
    assert retry_after(0.0, 7, 6, window) == 60  # never fits: the whole window


async def test_an_unreachable_server_is_reported() -> None:
    scripts = RedisScripts(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(BackendUnavailable):
            await RedisBuckets(scripts).take("k", 1, YEAR_US, 1)
    finally:
        await scripts.close()


class _Pool:
    """A shared pool as main's gateway.redisconn.SharedRedis is: run(operation, budget)."""

    def __init__(self, url: str, down: bool = False) -> None:
        self.client = aioredis.Redis.from_url(url)
        self.down = down
        self.calls = 0

    async def run(self, operation: Any, budget: float) -> Any:
        self.calls += 1
        if self.down:
            raise ConnectionError("redis is in its back-off window")
        async with asyncio.timeout(budget):
            return await operation(self.client)


async def test_counters_over_a_shared_pool() -> None:
    url = shared_redis_url()
    prefix = new_prefix()
    pool = _Pool(url)
    store = RedisBuckets(PooledScripts(pool))
    try:
        decisions = await asyncio.gather(
            *(store.take(prefix + "k", 5, YEAR_US, 1) for _ in range(20))
        )
        assert sum(d.admitted for d in decisions) == 5
        assert pool.calls < 20  # batched
        pool.down = True
        with pytest.raises(BackendUnavailable):
            await store.take(prefix + "k", 5, YEAR_US, 1)
    finally:
        await store.close()
        await pool.client.aclose()
        delete_prefix(url, prefix)


async def test_scripts_reload_after_the_server_forgets_them(tmp_path: Any) -> None:
    """A restarted server has an empty script cache: ``EVALSHA`` answers NOSCRIPT, the script
    is sent whole, and the open connection, broken by the restart, is replaced at once."""
    server = RedisProcess(tmp_path).start()
    scripts = RedisScripts(server.url)
    try:
        store = RedisBuckets(scripts)
        assert (await store.take("k", 2, YEAR_US, 1)).admitted
        assert (await store.take("k", 2, YEAR_US, 1)).admitted
        assert not (await store.take("k", 2, YEAR_US, 1)).admitted
        server.stop()
        server.start()  # same port, no data, no scripts
        assert (await store.take("k", 2, YEAR_US, 1)).admitted  # no BackendUnavailable
        client = aioredis.Redis.from_url(server.url)
        try:
            await client.script_flush()
        finally:
            await client.aclose()
        assert (await store.take("k", 2, YEAR_US, 1)).admitted
        assert not (await store.take("k", 2, YEAR_US, 1)).admitted
    finally:
        await scripts.close()
        server.stop()


async def test_a_server_that_does_not_answer_is_reported_in_time() -> None:
    """A peer that accepts the connection and never answers: unavailable within the command
    timeout, not a hang; the next call works once a real server answers again."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    scripts = RedisScripts(f"redis://127.0.0.1:{port}/0")
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(BackendUnavailable, match="in time"):
            await RedisBuckets(scripts).take("k", 1, YEAR_US, 1)
        assert loop.time() - started < 5  # the 0.5 s command budget, with room for a slow CI
        assert accepted
    finally:
        await scripts.close()
        server.close()
        for writer in accepted:
            writer.close()
        await server.wait_closed()
