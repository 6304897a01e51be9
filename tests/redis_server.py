"""Redis for tests: the machine's server (``TEST_REDIS_URL``, default 127.0.0.1:6379) and
throw-away ``redis-server`` processes on free ports (for stopping one mid-test).

Tests that need the shared server skip when it is unreachable, except under CI (``CI`` set),
where a missing server is a failure rather than silently lost coverage. Each test uses its own
key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def shared_redis_url() -> str:
    """:data:`REDIS_URL` if it answers a PING, else skip (fail under CI)."""
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        reason = f"Redis is not reachable at {REDIS_URL}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    finally:
        client.close()
    return REDIS_URL


def new_prefix() -> str:
    return f"test:rl:{uuid.uuid4().hex[:12]}:"


def delete_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def keys_under(url: str, prefix: str) -> list[bytes]:
    client = redis.Redis.from_url(url)
    try:
        return list(client.scan_iter(match=prefix + "*", count=1000))
    finally:
        client.close()


@pytest.fixture
def prefixed_redis() -> Iterator[tuple[str, str]]:
    """(url, a fresh key prefix) on the shared server; the prefix's keys go afterwards."""
    url = shared_redis_url()
    prefix = new_prefix()
    yield url, prefix
    delete_prefix(url, prefix)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class RedisProcess:
    """A private ``redis-server`` (no persistence) that a test may stop and start again on the
    same port."""

    def __init__(self, workdir: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            reason = "redis-server is not installed"
            if os.environ.get("CI"):
                pytest.fail(reason)
            pytest.skip(reason)
        self.executable = executable
        self.workdir = workdir
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisProcess:
        self.process = subprocess.Popen(
            [self.executable, "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            while True:
                try:
                    client.ping()
                    return self
                except redis.exceptions.ConnectionError:
                    assert self.process.poll() is None, "redis-server exited"
                    assert time.monotonic() < deadline, "redis-server did not start"
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


async def ping(url: str) -> bool:
    client = aioredis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        return bool(await client.ping())
    except redis.exceptions.RedisError:
        return False
    finally:
        await asyncio.shield(client.aclose())
