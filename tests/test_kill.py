"""Pulling the plug: the real ``gateway serve`` under load, its writer child and then the
whole process group killed with SIGKILL; after a restart every answered request is in the log
exactly once and nothing is counted as lost."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import pytest

from tests.emulator import OpenAIEmulator
from tests.test_cli import GATEWAY, _free_port, _healthy, create_key

_CONCURRENCY = 12


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return found


def _writer_child(pid: int) -> int:
    for child in _children(pid):
        command = (Path("/proc") / str(child) / "cmdline").read_bytes()
        if b"multiprocessing" in command and b"resource_tracker" not in command:
            return child
    raise AssertionError(f"no log writer child under {pid}")


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class Gateway:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile("w+")
        self.process = subprocess.Popen(
            [GATEWAY, "serve", "--port", str(self.port)],
            # A file, not a pipe: nobody reads a pipe until the end, and one request line
            # per request would fill it and block the gateway on its next write.
            env=env, stdout=subprocess.DEVNULL, stderr=self.log, text=True,
            start_new_session=True,  # its own process group: the kill takes its children too
        )
        deadline = time.monotonic() + 60
        while not _healthy(self.url + "/healthz"):
            assert self.process.poll() is None, self.output()
            assert time.monotonic() < deadline, "gateway did not become healthy"
            time.sleep(0.1)

    def kill_all(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.log.close()

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


async def _load(url: str, key: str, answered: list[str], stop: asyncio.Event) -> int:
    """Chat completions from ``_CONCURRENCY`` clients until ``stop``; ids of whole answers."""
    failures = 0
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "kill test"}]}
    headers = {"authorization": f"Bearer {key}"}

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal failures
        while not stop.is_set():
            try:
                async with session.post(url + "/v1/chat/completions", json=body,
                                        headers=headers) as response:
                    payload = await response.json()
                    if response.status == 200 and payload["choices"]:
                        answered.append(response.headers["helicone-id"])
            except (aiohttp.ClientError, ValueError):
                failures += 1
                await asyncio.sleep(0.01)

    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        await asyncio.gather(*(client(session) for _ in range(_CONCURRENCY)))
    return failures


async def _kill_under_load(gateway: Gateway, key: str) -> tuple[list[str], int, int]:
    answered: list[str] = []
    stop = asyncio.Event()
    load = asyncio.create_task(_load(gateway.url, key, answered, stop))
    await asyncio.sleep(1.0)
    writer = _writer_child(gateway.process.pid)
    os.kill(writer, signal.SIGKILL)
    at_writer_kill = len(answered)
    await asyncio.sleep(1.5)  # the gateway restarts its writer meanwhile, still under load
    at_gateway_kill = len(answered)
    await asyncio.to_thread(gateway.kill_all)
    await asyncio.sleep(0.3)
    stop.set()
    await load
    assert not _alive(writer)
    return answered, at_writer_kill, at_gateway_kill


def _query_ids(url: str, key: str, ids: list[str]) -> list[str]:
    found: list[str] = []
    with httpx.Client(timeout=30) as client:
        for start in range(0, len(ids), 500):
            response = client.post(
                url + "/v1/request/query-ids",
                headers={"authorization": f"Bearer {key}"},
                json={"requestIds": ids[start : start + 500]},
            )
            assert response.status_code == 200, response.text
            found.extend(row["request_id"] for row in response.json()["data"])
    return found


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("GATEWAY_", "OPENAI_")) and name != "DATABASE_URL"
    }
    clean["GATEWAY_DATA_DIR"] = str(tmp_path / "data")
    return clean


def test_kill_writer_then_gateway_under_load_loses_nothing(env: dict[str, str]) -> None:
    with OpenAIEmulator(api_key="sk-emulator") as upstream:
        env.update(
            OPENAI_API_KEY="sk-emulator",
            OPENAI_BASE_URL=upstream.base_url,
            GATEWAY_LOG_FLUSH_MS="200",
        )
        key = create_key(env)
        first = Gateway(env)
        answered, at_writer_kill, at_gateway_kill = asyncio.run(_kill_under_load(first, key))
        # the kills really happened under load: answers before, between and after each
        assert 0 < at_writer_kill < at_gateway_kill <= len(answered)
        assert len(set(answered)) == len(answered)

        second = Gateway(env)  # the same data directory: adopts the dead process's journal
        try:
            deadline = time.monotonic() + 60
            while True:
                found = _query_ids(second.url, key, answered)
                if len(found) >= len(answered) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            missing = set(answered) - set(found)
            assert not missing, f"{len(missing)} of {len(answered)} answered requests lost"
            assert sorted(found) == sorted(answered)  # each exactly once
            health = httpx.get(second.url + "/healthz", timeout=10).json()
            assert health["logging"]["lost"] == 0
        finally:
            stderr = second.stop()
    assert "Traceback" not in stderr
    modes = {
        path: path.stat().st_mode & 0o777
        for path in Path(env["GATEWAY_DATA_DIR"]).rglob("*")
        if not path.is_symlink()
    }
    loose = {str(p): oct(m) for p, m in modes.items() if m & 0o077}
    assert not loose, f"data files readable by others: {list(loose.items())[:5]}"
