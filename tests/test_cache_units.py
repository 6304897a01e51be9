"""The response cache's parts on their own: header policy, key, entries, backends, the
shared Redis pool's fail-open rule, and the record of a hit."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from cache.backends import BackendUnavailable, MemoryBackend, NearRedisBackend, RedisBackend
from cache.entry import CachedAnswer, EntryFormatError, Origin
from cache.key import canonical_body, request_digest, slot_keys
from cache.policy import (
    DEFAULT_TTL_SECONDS,
    MAX_TTL_SECONDS,
    CacheHeaderError,
    cache_policy,
    parse_ttl,
)
from cache.store import ResponseCache
from gateway.context import parse_options
from gateway.redisconn import RedisUnavailable, SharedRedis
from logging_pipeline.capture import Capture
from logging_pipeline.estimate import TokenEstimator
from logging_pipeline.record import build_record
from logging_pipeline.schema import INSERT_COLUMNS
from providers.registry import Registry
from tests.redis_server import delete_prefix, new_prefix, shared_redis_url

# -- policy ----------------------------------------------------------------------------------


def test_cache_is_off_without_a_switch() -> None:
    options = parse_options({"cache-control": "max-age=60", "helicone-cache-seed": "s"})
    assert options.cache is None and options.cache_error is None


@pytest.mark.parametrize(
    ("switches", "read", "write"),
    [
        ({"helicone-cache-enabled": "TRUE"}, True, True),
        ({"helicone-cache-read": "true"}, True, False),
        ({"helicone-cache-save": "true"}, False, True),
        ({"helicone-cache-read": "true", "helicone-cache-save": "true"}, True, True),
        ({"helicone-cache-enabled": "false", "helicone-cache-read": "yes"}, None, None),
    ],
)
def test_modes(switches: dict[str, str], read: bool | None, write: bool | None) -> None:
    policy = parse_options(switches).cache
    if read is None:
        assert policy is None
        return
    assert policy is not None and (policy.read, policy.write) == (read, write)


@pytest.mark.parametrize(
    ("value", "ttl"),
    [
        (None, DEFAULT_TTL_SECONDS),
        ("no-cache", DEFAULT_TTL_SECONDS),
        ("max-age=3600", 3600),
        ("public, max-age=60, s-maxage=120", 120),  # s-maxage first: the gateway is shared
        ("S-MAXAGE=5", 5),
        ("max-age=0", 0),
        ("max-age=31536000", MAX_TTL_SECONDS),
        ("max-age=99999999999", MAX_TTL_SECONDS),  # at most a year
        ("max-stale=10", DEFAULT_TTL_SECONDS),  # not max-age
        ("max-age=-5", DEFAULT_TTL_SECONDS),
    ],
)
def test_ttl_from_cache_control(value: str | None, ttl: int) -> None:
    assert parse_ttl(value) == ttl


def test_max_age_zero_reads_but_does_not_store() -> None:
    policy = cache_policy(
        enabled=True, read=False, save=False, cache_control="max-age=0", bucket_size=None,
        seed=None, ignore_keys=None,
    )
    assert policy is not None and policy.read and not policy.stores


@pytest.mark.parametrize("value", ["1", "20", " 7 "])
def test_bucket_sizes_accepted(value: str) -> None:
    options = parse_options(
        {"helicone-cache-enabled": "true", "helicone-cache-bucket-max-size": value}
    )
    assert options.cache is not None and options.cache.bucket_size == int(value)


@pytest.mark.parametrize("value", ["0", "21", "-1", "2.5", "three", "1e1"])
def test_bucket_sizes_refused(value: str) -> None:
    options = parse_options(
        {"helicone-cache-enabled": "true", "helicone-cache-bucket-max-size": value}
    )
    assert options.cache is None
    assert isinstance(options.cache_error, CacheHeaderError)
    assert options.cache_error.header == "Helicone-Cache-Bucket-Max-Size"
    assert repr(value) in options.cache_error.message


def test_seed_and_ignore_keys_parsed() -> None:
    options = parse_options(
        {
            "helicone-cache-enabled": "true",
            "helicone-cache-seed": "user-123",
            "helicone-cache-ignore-keys": " request_id, timestamp,,",
        }
    )
    assert options.cache is not None
    assert options.cache.seed == "user-123"
    assert options.cache.ignore_keys == frozenset({"request_id", "timestamp"})


# -- key -------------------------------------------------------------------------------------


def _key(body: bytes, org: str = "org-a", seed: str = "", endpoint: str = "unified /x",
         ignore: frozenset[str] = frozenset()) -> str:
    return request_digest(org, seed, endpoint, canonical_body(body, ignore))


def test_key_ignores_key_order_and_spacing_at_every_level() -> None:
    one = b'{"model":"m","messages":[{"role":"user","content":"hi"}],"n":1}'
    two = b'{ "n": 1, "messages": [ {"content": "hi", "role": "user"} ], "model": "m" }'
    assert _key(one) == _key(two)


@pytest.mark.parametrize(
    "change",
    [
        {"org": "org-b"},
        {"seed": "s"},
        {"endpoint": "unified /y"},
        {"body": b'{"model":"m","n":2}'},
        {"body": b'{"model":"m","n":1,"stream":true}'},
    ],
)
def test_every_part_changes_the_key(change: dict[str, object]) -> None:
    base: dict[str, object] = {"body": b'{"model":"m","n":1}'}
    assert _key(**base) != _key(**{**base, **change})  # type: ignore[arg-type]


def test_parts_cannot_run_together() -> None:
    """Length prefixes: moving a character from the seed to the endpoint is another key."""
    assert _key(b"{}", seed="ab", endpoint="c") != _key(b"{}", seed="a", endpoint="bc")


def test_ignore_keys_are_top_level_only() -> None:
    ignore = frozenset({"user"})
    one = b'{"model":"m","user":"a","metadata":{"user":"x"}}'
    two = b'{"model":"m","user":"b","metadata":{"user":"x"}}'
    three = b'{"model":"m","user":"b","metadata":{"user":"y"}}'
    assert _key(one, ignore=ignore) == _key(two, ignore=ignore)
    assert _key(one) != _key(two)
    assert _key(two, ignore=ignore) != _key(three, ignore=ignore)


def test_non_json_bodies_by_their_bytes() -> None:
    assert canonical_body(b"a=1&b=2", frozenset({"a"})) == b"raw:a=1&b=2"
    assert _key(b"a=1&b=2") != _key(b"b=2&a=1")
    assert canonical_body(b"", frozenset()) == b"raw:"


def test_key_holds_neither_the_body_nor_a_secret() -> None:
    body = b'{"model":"m","messages":[{"role":"user","content":"my secret sk-abc"}]}'
    keys = slot_keys(_key(body), 3)
    assert keys[0].endswith(":0") and keys[2].endswith(":2") and len(set(keys)) == 3
    assert all(b"secret" not in k.encode() and "sk-abc" not in k for k in keys)
    assert len(keys[0].split(":")[0]) == 64  # a SHA-256, whatever the body's size


# -- entries ---------------------------------------------------------------------------------


def test_entry_round_trip() -> None:
    events = [b'data: {"a":1}\n\n', b'data: {"b":2}\r\n\r\n', b"data: [DONE]\n\n"]
    answer = CachedAnswer(
        200,
        [(b"content-type", b"text/event-stream"), (b"x-\xe9", b"v\xff")],
        b"".join(events),
        Origin("0190a000-0000-7000-8000-000000000000", "openai", "gpt-4o-mini", "u", "openai", 812),
        events=tuple(len(e) for e in events),
        strip_usage=True,
    )
    back = CachedAnswer.decode(answer.encode())
    assert back == answer
    assert back.event_chunks() == events


@pytest.mark.parametrize(
    "data", [b"", b"GWC1", b"nonsense", b"GWC1\x00\x00\x00\x05{}{}x", b"GWC1\x00\x00\x00\x02{}"]
)
def test_damaged_entries_are_refused(data: bytes) -> None:
    with pytest.raises(EntryFormatError):
        CachedAnswer.decode(data)


# -- backends and bucket rule ---------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_backend_ttl_and_set_if_absent() -> None:
    clock = _Clock()
    backend = MemoryBackend(10_000, clock)
    assert await backend.add("k", b"one", 10, 0.1)
    assert not await backend.add("k", b"two", 10, 0.1)  # a full slot is never overwritten
    assert await backend.get_many(["k", "other"], 0.1) == [b"one", None]
    clock.now += 10
    assert await backend.get_many(["k"], 0.1) == [None]  # expired exactly at its TTL
    assert backend.size == 0 and len(backend) == 0
    assert await backend.add("k", b"two", 10, 0.1)


async def test_memory_backend_is_bounded_lru() -> None:
    value = b"x" * 100
    per_entry = len("k0") + len(value) + 96
    backend = MemoryBackend(per_entry * 3, _Clock())
    for n in range(3):
        assert await backend.add(f"k{n}", value, 60, 0.1)
    await backend.get_many(["k0"], 0.1)  # k0 is now the most recently used
    assert await backend.add("k3", value, 60, 0.1)
    found = await backend.get_many(["k0", "k1", "k2", "k3"], 0.1)
    assert found == [value, None, value, value]  # k1 was the least recently used
    assert backend.evictions == 1 and backend.size <= backend.max_bytes
    assert not await backend.add("huge", b"y" * per_entry * 4, 60, 0.1)


async def test_bucket_fills_before_it_serves() -> None:
    cache = ResponseCache(
        MemoryBackend(1 << 20), max_entry_bytes=1 << 20, read_timeout=0.1, write_timeout=0.1
    )
    keys = slot_keys("d", 3)
    served: set[int] = set()
    for expected_slot in range(3):
        lookup = await cache.lookup(keys, read=True)
        assert lookup.answer is None and lookup.index == expected_slot
        entry = CachedAnswer(200, [], str(expected_slot).encode(), Origin("id"))
        assert await cache.store(keys, lookup.free, entry.encode(), 60) == expected_slot
    for _ in range(40):
        lookup = await cache.lookup(keys, read=True)
        assert lookup.answer is not None and lookup.index is not None
        assert lookup.answer.body == str(lookup.index).encode()
        served.add(lookup.index)
    assert served == {0, 1, 2}
    assert (cache.hits, cache.misses, cache.stores) == (40, 3, 3)


async def test_concurrent_misses_take_different_slots() -> None:
    """Two misses that both saw slot 0 free: the second store moves to slot 1."""
    cache = ResponseCache(
        MemoryBackend(1 << 20), max_entry_bytes=1 << 20, read_timeout=0.1, write_timeout=0.1
    )
    keys = slot_keys("d", 2)
    first, second = await cache.lookup(keys, True), await cache.lookup(keys, True)
    data = CachedAnswer(200, [], b"a", Origin("id")).encode()
    assert await cache.store(keys, first.free, data, 60) == 0
    assert await cache.store(keys, second.free, data, 60) == 1
    assert await cache.store(keys, second.free, data, 60) is None  # bucket full: not stored


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_shared_redis_fails_open_fast_and_backs_off() -> None:
    redis = SharedRedis(f"redis://127.0.0.1:{_free_port()}/0", retry_after=0.3)
    await redis.start()
    try:
        started = time.perf_counter()
        with pytest.raises(RedisUnavailable):
            await redis.run(lambda client: client.ping(), 0.5)
        assert time.perf_counter() - started < 0.5  # refused, not waited for
        assert redis.health()["state"] == "down" and not redis.available
        backend = RedisBackend(redis)
        with pytest.raises(BackendUnavailable):  # inside the window: no connection attempt
            await backend.get_many(["k"], 0.1)
        assert (redis.faults, redis.skipped) == (1, 1)
        await asyncio.sleep(0.35)
        assert redis.available  # the window is over: the next call probes again
        with pytest.raises(RedisUnavailable):
            await redis.run(lambda client: client.ping(), 0.5)
        assert redis.faults == 2
    finally:
        await redis.close()


# -- the near copy of Redis entries -------------------------------------------------------------


async def test_near_copy_answers_full_buckets_without_redis_and_never_outlives_an_entry() -> None:
    """A bucket whose every slot this process holds is answered here (an operator's deletion
    on Redis goes unseen until the copy's bound); a copy lives no longer than the entry's
    remaining lifetime on Redis (PTTL) nor ``max_seconds``; a bucket with an empty slot is
    always read on Redis, where another process may have filled it."""
    url, prefix = shared_redis_url(), new_prefix()
    redis = SharedRedis(url, prefix=prefix)
    await redis.start()
    clock = _Clock()
    far = RedisBackend(redis)
    backend = NearRedisBackend(far, MemoryBackend(1 << 20, clock), max_seconds=30)
    raw = aioredis.Redis.from_url(url)
    try:
        await raw.set(f"{prefix}cache:a", b"A", px=1500)  # written by another process
        assert await backend.get_many(["a"], 0.5) == [b"A"]
        await raw.delete(f"{prefix}cache:a")
        assert await backend.get_many(["a"], 0.5) == [b"A"]  # the copy: no round trip
        assert backend.near_hits == 1
        clock.now += 1.6  # past the entry's lifetime on Redis when it was read (1.5 s)
        assert await backend.get_many(["a"], 0.5) == [None]  # so read on Redis again

        assert await backend.add("b", b"B", 3600, 0.5)  # this process's own write
        await raw.delete(f"{prefix}cache:b")
        assert await backend.get_many(["b"], 0.5) == [b"B"]
        clock.now += 30  # max_seconds: an entry of an hour is re-read after 30 s
        assert await backend.get_many(["b"], 0.5) == [None]

        assert await backend.add("c0", b"C0", 3600, 0.5)
        assert await backend.get_many(["c0", "c1"], 0.5) == [b"C0", None]
        await raw.set(f"{prefix}cache:c1", b"C1", ex=3600)  # another process fills slot 1
        assert await backend.get_many(["c0", "c1"], 0.5) == [b"C0", b"C1"]
        hits = backend.near_hits
        assert await backend.get_many(["c0", "c1"], 0.5) == [b"C0", b"C1"]
        assert backend.near_hits == hits + 1  # now full here: answered without Redis
    finally:
        await raw.aclose()
        await redis.close()
        delete_prefix(url, prefix)


async def test_near_copy_of_a_full_bucket_serves_while_redis_is_down() -> None:
    """Held slots are answered even when Redis is unreachable; anything else is a MISS."""
    url, prefix = shared_redis_url(), new_prefix()
    redis = SharedRedis(url, prefix=prefix, retry_after=5)
    await redis.start()
    backend = NearRedisBackend(RedisBackend(redis), MemoryBackend(1 << 20), max_seconds=30)
    try:
        assert await backend.add("k", b"V", 60, 0.5)
    finally:
        await redis.close()
        delete_prefix(url, prefix)
    down = SharedRedis(f"redis://127.0.0.1:{_free_port()}/0", prefix=prefix, retry_after=5)
    await down.start()
    backend.far = RedisBackend(down)
    try:
        assert await backend.get_many(["k"], 0.1) == [b"V"]
        with pytest.raises(BackendUnavailable):
            await backend.get_many(["k", "other"], 0.1)
    finally:
        await down.close()


# -- the record of a hit ---------------------------------------------------------------------


def test_record_of_a_hit(tmp_path: Path) -> None:
    request = orjson.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    response = orjson.dumps(
        {
            "id": "c", "object": "chat.completion", "model": "gpt-4o-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "y"},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 2000, "total_tokens": 3000},
        }
    )

    def capture(**extra: object) -> Capture:
        return Capture(
            request_id="0190a000-0000-7000-8000-0000000000aa", organization_id="o",
            api_key_id="k", path="/v1/chat/completions", provider="openai", status=200,
            request_body=request, response_body=response, cache_enabled=True,
            **extra,  # type: ignore[arg-type]
        )

    prices, estimator = Registry.load(), TokenEstimator(tmp_path)
    miss = dict(zip(INSERT_COLUMNS, build_record(capture(), prices, estimator).row, strict=True))
    reference = "0190a000-0000-7000-8000-0000000000bb"
    hit_capture = capture(cache_reference_id=reference, cache_saved_latency_ms=1234)
    hit = dict(zip(INSERT_COLUMNS, build_record(hit_capture, prices, estimator).row, strict=True))
    assert miss["cost"] > 0 and miss["cache_reference_id"] is None
    assert miss["cache_saved_cost"] == 0 and miss["cache_saved_latency"] == 0
    assert hit["cost"] == 0 and hit["cost_known"] is True
    assert hit["cache_saved_cost"] == miss["cost"]
    assert hit["cache_saved_latency"] == 1234
    assert hit["cache_reference_id"] == reference and hit["cache_enabled"] is True
    assert hit["prompt_tokens"] == 1000  # the answer's usage, as served


async def test_a_read_past_its_budget_is_a_miss() -> None:
    """A Redis that accepts connections but never answers: the read gives up at its budget
    (a MISS, not a failed request), counted as a timeout that does not stop later tries."""
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(16)  # connections complete in the backlog; nothing is ever read or sent
    port = silent.getsockname()[1]
    redis = SharedRedis(f"redis://127.0.0.1:{port}/0", retry_after=5)
    await redis.start()
    cache = ResponseCache(
        RedisBackend(redis), max_entry_bytes=1 << 20, read_timeout=0.05, write_timeout=0.05
    )
    try:
        started = time.perf_counter()
        lookup = await cache.lookup(slot_keys("d", 2), read=True)
        elapsed = time.perf_counter() - started
        assert lookup.answer is None and lookup.free is None
        assert 0.04 <= elapsed < 0.5
        assert (cache.misses, cache.unavailable) == (1, 1)
        assert redis.timeouts == 1 and redis.available  # a slow reply is not an outage
        assert redis.health()["state"] == "ok"
    finally:
        await redis.close()
        silent.close()
