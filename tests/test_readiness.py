"""/readyz: ready only when every store answers; bounded, cached, and never a secret or a host
in the answer (gateway/readiness.py).

Stores that are down are real: a PostgreSQL URL, a ClickHouse URL and a Redis URL at a port
nothing listens on, an S3 endpoint that was stopped, a bucket that does not exist; the log
writer's backlog and failures come from its counters.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.readiness import (
    BACKLOG,
    MIGRATIONS_PENDING,
    OK,
    SHUTTING_DOWN,
    TIMEOUT,
    UNREACHABLE,
    WRITE_FAILING,
    Readiness,
    body_store_probe,
    control_store_probe,
    log_store_probe,
    redis_ping,
    redis_probe,
)
from gateway.store import ControlStore
from logging_pipeline.bodies import S3BodyStore, SqliteBodyStore
from logging_pipeline.writer import WriterCounters
from tests.harness import GatewayServer, make_settings
from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY, MotoS3Server, free_port, moto_s3_server

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture(scope="module")
def redis_url() -> str:
    """The local Redis (the machine's service); skipped when absent, a failure under CI."""
    try:
        asyncio.run(redis_ping(REDIS_URL, 2.0))
    except (OSError, TimeoutError, ValueError) as exc:
        reason = f"Redis is not reachable at {REDIS_URL}: {exc!r}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return REDIS_URL


@pytest.fixture(scope="module")
def s3_server() -> Iterator[MotoS3Server]:
    yield from moto_s3_server()


def dead_port() -> int:
    return free_port()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# --- the checker ---------------------------------------------------------------------------------


async def test_ready_when_every_probe_is_ok_and_503_shape_otherwise() -> None:
    readiness = Readiness()

    async def fine() -> str | None:
        return None

    async def broken() -> str | None:
        raise OSError("connection refused by db.internal:5432 (user admin, password hunter2)")

    readiness.add("a", fine)
    report = await readiness.check()
    assert report.ready and orjson.loads(report.body()) == {
        "status": "ready", "checks": {"a": OK},
    }  # fmt: skip
    readiness.add("b", broken)
    report = await readiness.check()
    assert not report.ready
    body = report.body()
    assert orjson.loads(body) == {"status": "not_ready", "checks": {"a": OK, "b": UNREACHABLE}}
    for secret in (b"db.internal", b"5432", b"admin", b"hunter2", b"refused"):
        assert secret not in body


async def test_results_are_reused_for_the_ttl_and_shared_by_concurrent_callers() -> None:
    clock = Clock()
    readiness = Readiness(ttl=1.0, clock=clock)
    calls = 0

    async def counted() -> str | None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return None

    readiness.add("store", counted)
    reports = await asyncio.gather(*(readiness.check() for _ in range(50)))
    assert calls == 1 and all(r.ready for r in reports)
    clock.now += 0.5
    await readiness.check()
    assert calls == 1
    clock.now += 0.6
    await readiness.check()
    assert calls == 2


async def test_a_hung_store_is_bounded_and_not_asked_again_while_it_hangs() -> None:
    clock = Clock()
    readiness = Readiness(timeout=0.05, ttl=0.0, clock=clock)
    release = asyncio.Event()
    started = 0

    async def hangs() -> str | None:
        nonlocal started
        started += 1
        await release.wait()
        return None

    readiness.add("store", hangs)
    loop = asyncio.get_running_loop()
    began = loop.time()
    first = await readiness.check()
    assert first.checks == {"store": TIMEOUT} and loop.time() - began < 1.0
    second = await readiness.check()
    assert second.checks == {"store": TIMEOUT} and started == 1  # not piled up
    release.set()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    third = await readiness.check()
    assert third.ready and started == 2
    await readiness.close()


async def test_close_cancels_a_hung_probe_and_says_shutting_down() -> None:
    readiness = Readiness(timeout=0.01, ttl=0.0)
    cancelled = asyncio.Event()

    async def hangs() -> str | None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return None

    readiness.add("store", hangs)
    await readiness.check()
    await readiness.close()
    assert cancelled.is_set()
    report = await readiness.check()
    assert not report.ready
    assert orjson.loads(report.body()) == {
        "status": SHUTTING_DOWN, "checks": {"store": SHUTTING_DOWN},
    }  # fmt: skip


# --- the probes ----------------------------------------------------------------------------------


async def test_control_store_probe_reports_pending_migrations(tmp_path: Path) -> None:
    store = ControlStore(f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}")
    try:
        probe = control_store_probe(store)
        assert await probe() == MIGRATIONS_PENDING
        await store.migrate()
        assert await probe() is None
    finally:
        await store.close()


async def test_control_store_probe_fails_on_a_dead_postgresql() -> None:
    store = ControlStore(f"postgresql+asyncpg://gateway:pw@127.0.0.1:{dead_port()}/gateway")
    readiness = Readiness()
    readiness.add("control_store", control_store_probe(store))
    try:
        report = await readiness.check()
    finally:
        await store.close()
    assert report.checks == {"control_store": UNREACHABLE}


@dataclass
class FakeTransport:
    fails: bool = False
    queries: int = 0

    async def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        self.queries += 1
        if self.fails:
            raise ConnectionError("clickhouse at 10.0.0.7 is down")
        return [{"1": 1}]


@dataclass
class FakeSink:
    """The two things the log probe reads of a LogSink: the writer's counters and the
    transport."""

    counters: WriterCounters
    transport: FakeTransport


async def test_log_store_probe_uses_the_writer_counters_and_asks_the_store() -> None:
    sink = FakeSink(WriterCounters(), FakeTransport())
    probe = log_store_probe(lambda: sink, max_backlog_bytes=1000)
    assert await probe() is None and sink.transport.queries == 1
    sink.counters.pending_bytes = 1001
    assert await probe() == BACKLOG
    sink.counters.pending_bytes = 1000
    sink.counters.last_error = "insert failed: clickhouse at 10.0.0.7"
    assert await probe() == WRITE_FAILING
    sink.counters.last_error = ""
    sink.transport.fails = True
    with pytest.raises(ConnectionError):
        await probe()
    assert await log_store_probe(lambda: None, 1)() == "starting"


async def test_body_store_probe_against_sqlite_and_s3(
    tmp_path: Path, s3_server: MotoS3Server
) -> None:
    local = SqliteBodyStore(tmp_path / "bodies")
    bucket = "readiness-bucket"
    s3_server.client().create_bucket(Bucket=bucket)
    good = S3BodyStore(s3_server.endpoint, bucket, ACCESS_KEY, SECRET_KEY, REGION)
    missing = S3BodyStore(s3_server.endpoint, "no-such-bucket", ACCESS_KEY, SECRET_KEY, REGION)
    dead = S3BodyStore(
        f"http://127.0.0.1:{dead_port()}", bucket, ACCESS_KEY, SECRET_KEY, REGION,
        connect_timeout=0.5,
    )  # fmt: skip
    stores = {"local": local, "good": good, "missing": missing, "dead": dead}
    readiness = Readiness(timeout=10.0)
    for name, store in stores.items():
        readiness.add(name, body_store_probe(lambda store=store: FakeBodies(store)))
    try:
        report = await readiness.check()
    finally:
        for store in stores.values():
            await store.close()
    assert report.checks == {
        "local": OK, "good": OK, "missing": UNREACHABLE, "dead": UNREACHABLE,
    }  # fmt: skip
    # A probe creates nothing: the missing bucket is still missing.
    names = {b["Name"] for b in s3_server.client().list_buckets()["Buckets"]}
    assert "no-such-bucket" not in names


@dataclass
class FakeBodies:
    bodies: Any


async def test_redis_probe(redis_url: str) -> None:
    readiness = Readiness(timeout=2.0)
    readiness.add("up", redis_probe(redis_url))
    readiness.add("down", redis_probe(f"redis://127.0.0.1:{dead_port()}/0"))
    # This Redis has no password: AUTH is refused, and that is not ready either.
    readiness.add("wrong_password", redis_probe(redis_url.replace("//", "//:nope@", 1)))
    report = await readiness.check()
    assert report.checks == {"up": OK, "down": UNREACHABLE, "wrong_password": UNREACHABLE}
    with pytest.raises(ValueError, match="REDIS_URL"):
        await redis_ping("http://127.0.0.1:6379")


# --- /readyz end to end --------------------------------------------------------------------------


def _get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=10)


def test_readyz_end_to_end(tmp_path: Path, redis_url: str) -> None:
    """A gateway with every store (SQLite, chdb, SQLite bodies, Redis) is ready, without any
    authentication; with Redis at a dead port it is not, and says which store."""
    settings = make_settings(
        tmp_path / "up", logging_enabled=True, log_writer_process=False, redis_url=redis_url
    )
    with GatewayServer(settings) as server:
        response = _get(server.url + "/readyz")
        assert response.status_code == 200, response.text
        assert response.json() == {
            "status": "ready",
            "checks": {"control_store": OK, "log_store": OK, "body_store": OK, "redis": OK},
        }
        assert response.headers["cache-control"] == "no-store"
        assert _get(server.url + "/healthz").status_code == 200

    port = dead_port()
    settings = make_settings(tmp_path / "down", redis_url=f"redis://:s3cret@127.0.0.1:{port}/0")
    with GatewayServer(settings) as server:
        response = _get(server.url + "/readyz")
        assert response.status_code == 503
        assert response.json() == {
            "status": "not_ready", "checks": {"control_store": OK, "redis": UNREACHABLE},
        }  # fmt: skip
        assert "s3cret" not in response.text and str(port) not in response.text
        assert _get(server.url + "/healthz").status_code == 200  # alive all the same


def test_readyz_not_ready_while_clickhouse_is_down(tmp_path: Path) -> None:
    port = dead_port()
    settings = make_settings(
        tmp_path,
        logging_enabled=True,
        log_writer_process=False,
        clickhouse_url=f"http://gateway:hunter2@127.0.0.1:{port}/default",
    )
    with GatewayServer(settings) as server:
        response = _get(server.url + "/readyz")
        assert response.status_code == 503
        assert response.json()["checks"] == {
            "control_store": OK, "log_store": UNREACHABLE, "body_store": OK,
        }  # fmt: skip
        assert "hunter2" not in response.text and "127.0.0.1" not in response.text
