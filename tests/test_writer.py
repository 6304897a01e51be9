"""The batch writer against the real embedded ClickHouse: batching, outages, spill and replay."""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from logging_pipeline.bodies import LocalBodyStore, decode_bodies
from logging_pipeline.capture import Capture
from logging_pipeline.clickhouse import ChdbTransport, LogStoreError, LogTransport
from logging_pipeline.schema import REQUEST_TABLE
from logging_pipeline.spill import spill_pending
from logging_pipeline.writer import LogWriter
from providers.cost import PriceTable

_REPO = Path(__file__).resolve().parents[1]
# Fixed, so the killed-writer subprocess (which imports this module) writes the same org.
ORG = "5d9f3c1e-7a2b-4c8d-9e0f-112233445566"


class FlakyTransport:
    """A real transport that can be switched off, and remembers the order of inserted ids."""

    def __init__(self, inner: LogTransport) -> None:
        self.inner = inner
        self.name = inner.name
        self.down = False
        self.inserted: list[str] = []
        self.hold: asyncio.Event | None = None
        """When set to an unset event, inserts wait for it (a slow store)."""

    async def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        if self.down:
            raise LogStoreError("store is down (test)")
        await self.inner.command(sql, params)

    async def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        if self.down:
            raise LogStoreError("store is down (test)")
        if self.hold is not None:
            await self.hold.wait()
        await self.inner.insert(table, columns, rows)
        index = list(columns).index("request_id")
        self.inserted.extend(str(row[index]) for row in rows)

    async def query(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        return await self.inner.query(sql, params)

    async def close(self) -> None:
        await self.inner.close()


def capture(n: int) -> Capture:
    body = (
        b'{"id":"c","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],'
        b'"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}'
    )
    c = Capture(
        request_id=str(uuid.uuid4()),
        organization_id=ORG,
        api_key_id="k",
        path="/v1/chat/completions",
        provider="openai",
        request_model="gpt-4o-mini",
        request_body=b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"m%d"}]}' % n,
        status=200,
        response_body=body,
    )
    c.properties = {"n": str(n)}
    c.finish()
    return c


@pytest.fixture
async def transport(tmp_path: Path) -> AsyncIterator[FlakyTransport]:
    inner = ChdbTransport(tmp_path / "clickhouse")
    flaky = FlakyTransport(inner)
    yield flaky
    await inner.close()


async def rows(transport: LogTransport) -> list[dict[str, Any]]:
    return await transport.query(
        f"SELECT request_id, prompt_tokens, completion_tokens, cost, properties "
        f"FROM {REQUEST_TABLE} FINAL WHERE organization_id = {{org:UUID}}",
        {"org": ORG},
    )


async def wait_until(predicate: Any, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


def make_writer(transport: LogTransport, tmp_path: Path, **kwargs: Any) -> LogWriter:
    options: dict[str, Any] = {"flush_rows": 20, "flush_ms": 30, "max_backoff": 0.3}
    options.update(kwargs)
    return LogWriter(
        transport, LocalBodyStore(tmp_path / "bodies"), PriceTable.load(), tmp_path / "spill",
        **options,
    )


async def test_records_are_batched_and_written(transport: FlakyTransport, tmp_path: Path) -> None:
    writer = make_writer(transport, tmp_path)
    await writer.start()
    captures = [capture(i) for i in range(45)]
    for c in captures:
        writer.submit(c)
    await wait_until(lambda: writer.counters.written == 45)
    await writer.close()
    assert writer.counters.batches >= 3  # 20-row batches
    found = await rows(transport)
    assert sorted(r["request_id"] for r in found) == sorted(c.request_id for c in captures)
    assert all(r["prompt_tokens"] == 10 and r["completion_tokens"] == 5 for r in found)
    assert all(r["cost"] > 0 for r in found)  # gpt-4o-mini has a price
    blob = await LocalBodyStore(tmp_path / "bodies").get(ORG, captures[0].request_id)
    assert blob is not None
    assert decode_bodies(blob)["response"]["usage"]["total_tokens"] == 15


async def test_outage_spills_then_replays_once_in_order(
    transport: FlakyTransport, tmp_path: Path
) -> None:
    writer = make_writer(transport, tmp_path)
    await writer.start()
    transport.down = True
    first = [capture(i) for i in range(30)]
    for c in first:
        writer.submit(c)
    await wait_until(lambda: writer.counters.spilled >= 30)
    assert spill_pending(tmp_path / "spill") > 0
    second = [capture(100 + i) for i in range(10)]
    for c in second:
        writer.submit(c)
    await asyncio.sleep(0.3)
    transport.down = False
    await wait_until(lambda: writer.counters.written == 40)
    await writer.close()
    expected = [c.request_id for c in first + second]
    assert transport.inserted == expected  # each once, in submission order
    assert sorted(r["request_id"] for r in await rows(transport)) == sorted(expected)
    assert spill_pending(tmp_path / "spill") == 0
    assert writer.counters.replayed >= 30
    assert writer.counters.lost == 0


async def test_a_full_queue_spills_and_replays_in_order(
    transport: FlakyTransport, tmp_path: Path
) -> None:
    """A store slower than the traffic: memory stays bounded, nothing is lost or reordered."""
    writer = make_writer(transport, tmp_path, flush_rows=5, queue_size=10)
    await writer.start()
    transport.hold = asyncio.Event()
    captures = [capture(i) for i in range(35)]
    for c in captures[:5]:
        writer.submit(c)
    await wait_until(lambda: writer._queue.empty())  # the first batch is being written
    for c in captures[5:]:
        writer.submit(c)  # 10 fit in the queue, 20 overflow
    assert len(writer._overflow) == 20
    transport.hold.set()
    await wait_until(lambda: writer.counters.written == 35)
    await writer.close()
    assert writer.counters.spilled == 30  # the next batch, the rest of the queue, the overflow
    assert writer.counters.replayed == 30
    assert writer.counters.lost == writer.counters.failed == 0
    assert transport.inserted == [c.request_id for c in captures]  # each once, in order
    assert spill_pending(tmp_path / "spill") == 0


async def test_shutdown_spills_what_it_cannot_write(
    transport: FlakyTransport, tmp_path: Path
) -> None:
    writer = make_writer(transport, tmp_path, drain_seconds=0.5)
    await writer.start()
    transport.down = True
    for i in range(5):
        writer.submit(capture(i))
    await writer.close()
    assert writer.counters.spilled == 5
    restarted = make_writer(transport, tmp_path)
    transport.down = False
    await restarted.start()
    await wait_until(lambda: restarted.counters.replayed == 5)
    await restarted.close()
    assert len(await rows(transport)) == 5


async def test_shutdown_spills_the_batch_stuck_in_a_hung_store(
    transport: FlakyTransport, tmp_path: Path
) -> None:
    """The drain time runs out while an insert hangs: the batch it held is spilled, not lost."""
    writer = make_writer(transport, tmp_path, drain_seconds=0.5)
    await writer.start()
    transport.hold = asyncio.Event()  # never set: the store hangs
    first = [capture(i) for i in range(5)]
    for c in first:
        writer.submit(c)
    await wait_until(lambda: writer._queue.empty() and bool(writer._batch))
    await asyncio.sleep(0.1)  # the batch is inside the hung insert now
    later = [capture(10 + i) for i in range(3)]
    for c in later:
        writer.submit(c)
    await writer.close()
    assert writer.counters.spilled == 8
    assert writer.counters.written == writer.counters.lost == 0
    transport.hold = None
    restarted = make_writer(transport, tmp_path)
    await restarted.start()
    await wait_until(lambda: restarted.counters.replayed == 8)
    await restarted.close()
    assert transport.inserted == [c.request_id for c in first + later]


async def test_shutdown_does_not_wait_out_the_flush_interval(
    transport: FlakyTransport, tmp_path: Path
) -> None:
    writer = make_writer(transport, tmp_path, flush_rows=1000, flush_ms=60_000)
    await writer.start()
    for i in range(3):
        writer.submit(capture(i))
    await asyncio.sleep(0.1)  # collected, waiting for more
    started = time.monotonic()
    await writer.close()
    assert time.monotonic() - started < 2.0  # not the 60 s interval, nor the 5 s drain bound
    assert writer.counters.written == 3
    assert writer.counters.spilled == 0


_KILLED_WRITER = textwrap.dedent(
    """
    import asyncio, os, sys, uuid
    from pathlib import Path
    from logging_pipeline.bodies import LocalBodyStore
    from logging_pipeline.clickhouse import LogStoreError
    from logging_pipeline.writer import LogWriter
    from providers.cost import PriceTable
    from tests.test_writer import capture

    class Down:
        name = "down"
        async def command(self, *a, **k): raise LogStoreError("down")
        async def insert(self, *a, **k): raise LogStoreError("down")
        async def query(self, *a, **k): raise LogStoreError("down")
        async def close(self): pass

    async def main():
        root = Path(sys.argv[1])
        writer = LogWriter(Down(), LocalBodyStore(root / "bodies"), PriceTable.load(),
                           root / "spill", flush_rows=10, flush_ms=20, max_backoff=0.1)
        await writer.start()
        ids = []
        for i in range(25):
            c = capture(i)
            ids.append(c.request_id)
            writer.submit(c)
        while writer.counters.spilled < 25:
            await asyncio.sleep(0.01)
        print("\\n".join(ids), flush=True)
        os.kill(os.getpid(), 9)  # killed mid-flight: no shutdown, no drain

    asyncio.run(main())
    """
)


async def test_killed_process_spill_is_replayed_on_restart(
    transport: FlakyTransport, tmp_path: Path
) -> None:
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _KILLED_WRITER, str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False, cwd=_REPO,
    )
    assert result.returncode == -9, result.stderr
    spilled_ids = result.stdout.split()
    assert len(spilled_ids) == 25
    writer = make_writer(transport, tmp_path)
    await writer.start()
    await wait_until(lambda: writer.counters.replayed == 25)
    await writer.close()
    assert transport.inserted == spilled_ids
    assert sorted(r["request_id"] for r in await rows(transport)) == sorted(spilled_ids)


async def test_orphaned_spills_of_other_processes_are_adopted(
    transport: FlakyTransport, tmp_path: Path
) -> None:
    """Several dead workers' spill directories are all replayed by the next writer."""
    transport.down = True
    workers = [make_writer(transport, tmp_path, drain_seconds=0.2) for _ in range(2)]
    for number, worker in enumerate(workers):  # both alive at once: one directory each
        await worker.start()
        for i in range(3):
            worker.submit(capture(10 * number + i))
    await wait_until(lambda: all(w.counters.spilled == 3 for w in workers))
    for worker in workers:
        await worker.close()
    assert len([d for d in (tmp_path / "spill").iterdir() if d.is_dir()]) == 2
    transport.down = False
    heir = make_writer(transport, tmp_path)
    await heir.start()
    await wait_until(lambda: heir.counters.replayed == 6)
    await heir.close()
    assert len(await rows(transport)) == 6
    assert spill_pending(tmp_path / "spill") == 0


async def test_a_live_writer_keeps_its_spill_to_itself(tmp_path: Path) -> None:
    from logging_pipeline.spill import claim_spill

    mine, orphans = claim_spill(tmp_path / "spill")
    other, other_orphans = claim_spill(tmp_path / "spill")  # a second live process
    assert mine.directory != other.directory
    assert orphans == [] and other_orphans == []
    mine.release()
    other.release()


async def test_writer_process_survives_its_child_dying(tmp_path: Path) -> None:
    """The gateway's writer process: records flow; a killed child is replaced, nothing lost
    that had been handed over and written or spilled."""
    from logging_pipeline.bodies import SqliteBodyStore
    from logging_pipeline.remote import WriterProcess
    from tests.harness import make_settings

    settings = make_settings(tmp_path, logging_enabled=True, log_flush_ms=20)
    process = WriterProcess(settings, SqliteBodyStore(tmp_path / "bodies"))
    await process.start()
    try:
        first = [capture(i) for i in range(20)]
        for c in first:
            process.submit(c)
        await wait_until(lambda: process.counters.written == 20)
        assert process.transport.name == "chdb"
        # Records travel in few, large writes: the pipe's kernel buffer is raised to 1 MiB.
        assert process._records is not None
        pipe = process._records.get_extra_info("pipe")
        assert fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ) == 1024 * 1024
        old = process._process
        # The child yields the CPU to request serving (GATEWAY_LOG_WRITER_NICE, default 10).
        own = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, old.pid) == min(19, own + 10)
        os.kill(old.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the child too…
        os.kill(old.pid, signal.SIGTERM)
        await asyncio.sleep(0.3)
        assert old.is_alive()  # …but only the gateway stops it (after draining)
        old.kill()
        await wait_until(lambda: process._process is not old and process._connection is not None)
        # a burst larger than one default pipe buffer (64 KiB) goes through in one flush
        second = [capture(100 + i) for i in range(1000)]
        for c in second:
            process.submit(c)
        await wait_until(lambda: process.counters.written == 1020)
        found = await process.transport.query(
            f"SELECT request_id FROM {REQUEST_TABLE} FINAL WHERE organization_id = {{org:UUID}}",
            {"org": ORG},
        )
        assert sorted(r["request_id"] for r in found) == sorted(
            c.request_id for c in first + second
        )
        blob = await process.bodies.get(ORG, second[0].request_id)
        assert blob is not None and decode_bodies(blob)["request"]["messages"]
    finally:
        await process.close()
    assert not process._process.is_alive()


def test_in_process_writer_mode_end_to_end(tmp_path: Path) -> None:
    """``GATEWAY_LOG_WRITER_PROCESS=false``: the same records, written by a task in-process."""
    import openai

    from tests.emulator import OpenAIEmulator
    from tests.harness import GatewayServer, create_key, make_settings

    with OpenAIEmulator(api_key="sk-emulator") as upstream:
        settings = make_settings(
            tmp_path,
            provider_api_keys={"openai": "sk-emulator"},
            provider_base_urls={"openai": upstream.base_url},
            logging_enabled=True,
            log_writer_process=False,
        )
        key = create_key(settings)
        with GatewayServer(settings) as server:
            writer = server.runtime.writer
            assert isinstance(writer, LogWriter)
            sdk = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
            raw = sdk.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "in process"}]
            )
            request_id = raw.headers["helicone-id"]
            deadline = time.monotonic() + 10
            while writer.counters.written < 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            found = server.call(
                writer.transport.query(
                    f"SELECT prompt_tokens FROM {REQUEST_TABLE} FINAL "
                    "WHERE request_id = {id:UUID}",
                    {"id": request_id},
                )
            )
    assert found and found[0]["prompt_tokens"] > 0


def test_capture_tuple_round_trip() -> None:
    """What the gateway pickles to the writer child rebuilds the same capture, every field."""
    original = capture(7)
    original.is_stream, original.first_byte_at = True, original.started + 0.01
    original.country_code, original.omit_response = "DE", True
    values = original.to_tuple()
    assert values == tuple(getattr(original, f.name) for f in dataclasses.fields(Capture))
    assert Capture.from_tuple(values) == original
    with pytest.raises(ValueError, match="fields"):
        Capture.from_tuple(values[:-1])
