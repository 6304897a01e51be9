"""Two real ``gateway serve`` processes sharing one Redis enforce one limit, exactly: 200
concurrent requests, half to each process, against a quota of 50 → exactly 50 served (the
51st is refused, never the 52nd served, never fewer than 50), and the 50 answers saw 50
different counter states."""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.emulator import OpenAIEmulator
from tests.redis_server import delete_prefix, new_prefix, shared_redis_url
from tests.test_cli import GATEWAY, _free_port, _healthy, create_key

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-emulator"
QUOTA = 50
YEAR = 31_536_000


class GatewayProcess:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(
            [GATEWAY, "serve", "--port", str(self.port)],
            # A file, not a pipe: nobody reads a pipe until the end, and one request line
            # per request would fill it and block the gateway on its next write.
            env=env, stdout=subprocess.DEVNULL, stderr=self.log, text=True,
        )
        deadline = time.monotonic() + 60
        while not _healthy(self.url + "/healthz"):
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, "gateway did not become healthy"
            time.sleep(0.1)

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=60)
        output = self.output()
        self.log.close()
        return output

    def output(self) -> str:
        """What the gateway wrote to stderr so far."""
        self.log.seek(0)
        return self.log.read()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """Both processes: one data dir (one key store), one Redis, one key prefix, this
    checkout's code (PYTHONPATH), no request log (the embedded store is one process's)."""
    url = shared_redis_url()
    prefix = new_prefix()
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GATEWAY_") and name not in ("DATABASE_URL", "REDIS_URL")
    }
    env.update(
        GATEWAY_DATA_DIR=str(tmp_path / "data"),
        PYTHONPATH=str(ROOT),
        REDIS_URL=url,
        GATEWAY_REDIS_KEY_PREFIX=prefix,
        GATEWAY_LOGGING_ENABLED="false",
    )
    yield env
    delete_prefix(url, prefix)


async def _fire(urls: list[str], key: str) -> list[tuple[int, str, str | None]]:
    """200 requests at once, alternating between the gateways: (status, gateway, remaining)."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "one of many"}]}
    headers = {"authorization": f"Bearer {key}", "helicone-ratelimit-policy": f"{QUOTA};w={YEAR}"}
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(url: str) -> tuple[int, str, str | None]:
            async with session.post(url + "/v1/chat/completions", json=body,
                                    headers=headers) as response:
                await response.read()
                return response.status, url, response.headers.get("helicone-ratelimit-remaining")

        return await asyncio.gather(*(one(urls[i % 2]) for i in range(200)))


def test_two_processes_enforce_one_limit_exactly(env: dict[str, str]) -> None:
    with OpenAIEmulator(api_key=KEY) as upstream:
        env.update(OPENAI_BASE_URL=upstream.base_url, OPENAI_API_KEY=KEY)
        key = create_key(env, "--org", "shared")
        first = GatewayProcess(env)
        try:
            second = GatewayProcess(env)
            try:
                results = asyncio.run(_fire([first.url, second.url], key))
                after = asyncio.run(_fire([first.url, second.url], key))
            finally:
                second_log = second.stop()
        finally:
            first_log = first.stop()
        served = [r for r in results if r[0] == 200]
        assert len(served) == QUOTA, sorted({r[0] for r in results})
        assert sum(r[0] == 429 for r in results) == 200 - QUOTA
        # One counter: each admitted request saw its own state, 49 down to 0.
        assert sorted(int(r[2] or -1) for r in served) == list(range(QUOTA))
        assert {r[1] for r in results} == {first.url, second.url}
        assert len(upstream.requests) == QUOTA
        assert all(r[0] == 429 for r in after)  # spent for both processes
    for log in (first_log, second_log):
        assert "Traceback" not in log
