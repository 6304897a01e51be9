"""Redis stopped and started again in the middle of a test: the gateway fails open (serves
without the limit, counts the fault, logs it once, says so in ``/healthz``) and enforces the
limit again by itself once Redis is back."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.emulator import OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings
from tests.redis_server import RedisProcess

KEY = "sk-emulator"
POLICY = {"Helicone-RateLimit-Policy": "3;w=31536000"}


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


def _post(gateway: GatewayServer, key: str) -> httpx.Response:
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {key}", **POLICY},
        timeout=30,
    )


def _health(gateway: GatewayServer) -> dict[str, object]:
    body = httpx.get(gateway.url + "/healthz").json()
    health: dict[str, object] = body["ratelimit"]
    return health


def _outage_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "ratelimit" and "not enforced" in r.getMessage()]


def test_redis_down_fails_open_and_recovers(
    tmp_path: Path, redis_server: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="ratelimit")
    with OpenAIEmulator(api_key=KEY) as upstream:
        settings = make_settings(
            tmp_path / "gw",
            provider_api_keys={"openai": KEY},
            provider_base_urls={"openai": upstream.base_url},
            redis_url=redis_server.url,
        )
        key = create_key(settings)
        with GatewayServer(settings) as gateway:
            assert _health(gateway) == {
                "backend": "redis", "state": "ok", "faults": 0, "unlimited": 0
            }
            assert [_post(gateway, key).status_code for _ in range(4)] == [200, 200, 200, 429]

            redis_server.stop()
            started = time.monotonic()
            during = [_post(gateway, key) for _ in range(5)]
            elapsed = time.monotonic() - started
            assert [r.status_code for r in during] == [200] * 5  # served, without the limit
            assert all("helicone-ratelimit-limit" not in r.headers for r in during)
            assert elapsed < 2.5  # one failed connect, then Redis is not asked for a second
            health = _health(gateway)
            assert health["state"] == "degraded" and health["faults"] == 1
            assert health["unlimited"] == 5
            time.sleep(1.1)  # past the retry interval: the next request tries Redis again
            assert _post(gateway, key).status_code == 200
            assert _health(gateway)["faults"] == 2
            assert len(_outage_warnings(caplog)) == 1  # logged once per interval, not per fault

            redis_server.start()  # same port, empty (no persistence): fresh counters
            time.sleep(1.1)
            back = [_post(gateway, key) for _ in range(4)]
            assert [r.status_code for r in back] == [200, 200, 200, 429]
            assert back[0].headers["helicone-ratelimit-remaining"] == "2"
            health = _health(gateway)
            assert health["state"] == "ok" and health["unlimited"] == 6
            assert any("enforced again" in r.getMessage() for r in caplog.records)
