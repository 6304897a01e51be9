"""Redis stopped and started again under a caching gateway: fail open, then recover.

Runs its own ``redis-server`` on a free port (never the shared one, which other tests use):
stopped mid-test, the gateway must keep answering (from the provider, ``Helicone-Cache:
MISS``), count the faults, log them once, and say ``down`` in ``/healthz``; started again, it
must use Redis again by itself, without a restart.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from tests.emulator import OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings

KEY = "sk-emulator"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisProcess:
    """A throwaway ``redis-server`` (no persistence) that a test can stop and start again."""

    def __init__(self, directory: Path) -> None:
        self.port = _free_port()
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.skip("redis-server is not installed")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_redis_down_fails_open_and_recovers(
    tmp_path: Path, redis_process: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    with OpenAIEmulator(api_key=KEY) as upstream:
        settings = make_settings(
            tmp_path / "gw",
            provider_api_keys={"openai": KEY},
            provider_base_urls={"openai": upstream.base_url},
            redis_url=redis_process.url,
            redis_retry_seconds=0.3,
            # Every read on Redis: the near copy would answer the cached prompt through the
            # outage (tests/test_cache_units.py shows that); this is Redis' own failure path.
            cache_near_seconds=0,
        )
        key = create_key(settings)
        body = orjson.dumps(
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": str(uuid.uuid4())}]}
        )
        headers = {
            "authorization": f"Bearer {key}",
            "content-type": "application/json",
            "helicone-cache-enabled": "true",
        }
        with GatewayServer(settings) as server, httpx.Client(base_url=server.url) as client:

            def post() -> httpx.Response:
                response = client.post("/v1/chat/completions", content=body, headers=headers)
                assert response.status_code == 200, response.text
                return response

            def health() -> dict[str, object]:
                redis: dict[str, object] = client.get("/healthz").json()["redis"]
                return redis

            assert post().headers["helicone-cache"] == "MISS"
            assert post().headers["helicone-cache"] == "HIT"
            assert health()["state"] == "ok"

            redis_process.stop()
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="gateway.redis"):
                during = [post() for _ in range(5)]
                time.sleep(0.35)  # past the back-off window: the next request probes again
                during += [post() for _ in range(3)]
            assert all(r.headers["helicone-cache"] == "MISS" for r in during)
            state = health()
            assert state["state"] == "down"
            assert isinstance(state["faults"], int) and state["faults"] >= 2
            assert isinstance(state["skipped"], int) and state["skipped"] >= 1
            faults_logged = [r for r in caplog.records if "redis fault" in r.getMessage()]
            assert len(faults_logged) == 1  # once per interval, not once per request
            calls_before = len(upstream.requests)
            assert calls_before == 1 + len(during)  # every request was served by the provider

            redis_process.start()  # same port, empty (no persistence)
            time.sleep(0.35)
            deadline = time.monotonic() + 5
            while health()["state"] != "ok" and time.monotonic() < deadline:
                post()
                time.sleep(0.1)
            assert health()["state"] == "ok" and health()["recoveries"] == 1
            first = post()  # a MISS that stores (or a HIT if a probe above stored already)
            second = post()
            assert second.headers["helicone-cache"] == "HIT"
            assert second.content == first.content
