"""The record journal and the batch writer against the real embedded ClickHouse: batching,
outages, kills and replay."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pickle
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
import uuid
import zlib
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from logging_pipeline.bodies import LocalBodyStore, decode_bodies
from logging_pipeline.capture import Capture
from logging_pipeline.clickhouse import ChdbTransport, LogStoreError, LogTransport
from logging_pipeline.journal import (
    JournalAppender,
    JournalReader,
    adopt_orphans,
    decode_record,
    encode_record,
    pending_bytes,
)
from logging_pipeline.schema import REQUEST_TABLE
from logging_pipeline.writer import LogWriter
from providers.registry import Registry

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


class Pipeline:
    """A journal (the request path's end) and a writer consuming it, as the gateway runs them."""

    def __init__(self, transport: LogTransport, tmp_path: Path, **kwargs: Any) -> None:
        options: dict[str, Any] = {"flush_rows": 20, "flush_ms": 30, "max_backoff": 0.3}
        options.update(kwargs)
        self.journal = JournalAppender(tmp_path / "journal")
        self.writer = make_writer(transport, tmp_path, own=self.journal.directory, **options)

    def submit(self, captures: Sequence[Capture]) -> None:
        for c in captures:
            self.journal.append(c)

    async def close(self) -> None:
        await self.writer.close()
        self.journal.close()


def make_writer(transport: LogTransport, tmp_path: Path, **kwargs: Any) -> LogWriter:
    options: dict[str, Any] = {"flush_rows": 20, "flush_ms": 30, "max_backoff": 0.3}
    options.update(kwargs)
    return LogWriter(
        transport, LocalBodyStore(tmp_path / "bodies"), Registry.load(), tmp_path / "journal",
        **options,
    )


def journals(tmp_path: Path) -> list[Path]:
    return sorted(p for p in (tmp_path / "journal").iterdir() if p.is_dir())


async def test_records_are_batched_and_written(transport: FlakyTransport, tmp_path: Path) -> None:
    pipeline = Pipeline(transport, tmp_path)
    writer = pipeline.writer
    await writer.start()
    captures = [capture(i) for i in range(45)]
    pipeline.submit(captures)
    await wait_until(lambda: writer.counters.written == 45)
    await pipeline.close()
    assert writer.counters.batches >= 3  # 20-row batches
    found = await rows(transport)
    assert sorted(r["request_id"] for r in found) == sorted(c.request_id for c in captures)
    assert all(r["prompt_tokens"] == 10 and r["completion_tokens"] == 5 for r in found)
    assert all(r["cost"] > 0 for r in found)  # gpt-4o-mini has a price
    blob = await LocalBodyStore(tmp_path / "bodies").get(ORG, captures[0].request_id)
    assert blob is not None
    assert decode_bodies(blob)["response"]["usage"]["total_tokens"] == 15
    assert journals(tmp_path) == []  # all written: the journal directory is gone
    assert writer.counters.pending_bytes == 0 and writer.counters.lost == 0


async def test_outage_keeps_records_journaled_then_writes_them_once_in_order(
    transport: FlakyTransport, tmp_path: Path
) -> None:
    pipeline = Pipeline(transport, tmp_path)
    writer = pipeline.writer
    await writer.start()
    transport.down = True
    first = [capture(i) for i in range(30)]
    pipeline.submit(first)
    await wait_until(lambda: writer.counters.failed >= 20)
    assert pending_bytes(tmp_path / "journal") > 0
    assert "store is down" in writer.counters.last_error  # /healthz: "degraded"
    second = [capture(100 + i) for i in range(10)]
    pipeline.submit(second)
    await asyncio.sleep(0.3)
    transport.down = False
    await wait_until(lambda: writer.counters.written == 40)
    await pipeline.close()
    assert writer.counters.last_error == ""  # written again: "ok"
    expected = [c.request_id for c in first + second]
    assert transport.inserted == expected  # each once, in submission order
    assert sorted(r["request_id"] for r in await rows(transport)) == sorted(expected)
    assert pending_bytes(tmp_path / "journal") == 0
    assert writer.counters.lost == 0


async def test_a_slow_store_keeps_memory_bounded_and_order(
    transport: FlakyTransport, tmp_path: Path
) -> None:
    """A store slower than the traffic: the backlog waits on disk, read one batch at a time."""
    pipeline = Pipeline(transport, tmp_path, flush_rows=5)
    writer = pipeline.writer
    await writer.start()
    transport.hold = asyncio.Event()
    captures = [capture(i) for i in range(35)]
    pipeline.submit(captures)
    await asyncio.sleep(0.2)  # the first batch is inside the held insert
    reader = writer._own_reader
    assert reader is not None
    # read ahead of the commit by exactly one batch; the other 30 records are only on disk
    assert reader._cursor != reader.committed
    ahead = reader._cursor.offset - reader.committed.offset
    assert pending_bytes(tmp_path / "journal") > 6 * ahead  # the rest: six batches, on disk
    transport.hold.set()
    await wait_until(lambda: writer.counters.written == 35)
    await pipeline.close()
    assert writer.counters.batches == 7
    assert writer.counters.lost == writer.counters.failed == 0
    assert transport.inserted == [c.request_id for c in captures]  # each once, in order


async def test_between_batches_waits_for_the_batch_in_flight(
    transport: FlakyTransport, tmp_path: Path
) -> None:
    """What the worker's collector waits for: a batch written, the writer pausing."""
    pipeline = Pipeline(transport, tmp_path, flush_ms=300)
    writer = pipeline.writer
    await writer.start()
    await asyncio.wait_for(writer.between_batches(30), 10)  # nothing journaled: pausing
    transport.hold = asyncio.Event()
    pipeline.submit([capture(i) for i in range(5)])
    await wait_until(lambda: writer._own_reader is not None and writer.counters.written == 0
                     and writer._own_reader._cursor != writer._own_reader.committed)
    waiting = asyncio.create_task(writer.between_batches(30))
    await asyncio.sleep(0.2)
    assert not waiting.done()  # the batch is inside the held insert
    transport.hold.set()
    await asyncio.wait_for(waiting, 10)
    assert writer.counters.written == 5
    await pipeline.close()


async def test_shutdown_leaves_what_it_cannot_write_for_the_next_start(
    transport: FlakyTransport, tmp_path: Path
) -> None:
    pipeline = Pipeline(transport, tmp_path, drain_seconds=0.5)
    await pipeline.writer.start()
    transport.down = True
    captures = [capture(i) for i in range(5)]
    pipeline.submit(captures)
    await pipeline.close()
    assert pipeline.writer.counters.written == 0
    assert len(journals(tmp_path)) == 1  # kept: nothing in it was written
    restarted = make_writer(transport, tmp_path)  # a new process: adopts the orphan
    transport.down = False
    await restarted.start()
    await wait_until(lambda: restarted.counters.replayed == 5)
    await restarted.close()
    assert transport.inserted == [c.request_id for c in captures]
    assert journals(tmp_path) == []


async def test_shutdown_with_a_hung_store_loses_nothing(
    transport: FlakyTransport, tmp_path: Path
) -> None:
    """The drain time runs out while an insert hangs: the batch stays journaled."""
    pipeline = Pipeline(transport, tmp_path, drain_seconds=0.5)
    await pipeline.writer.start()
    transport.hold = asyncio.Event()  # never set: the store hangs
    first = [capture(i) for i in range(5)]
    pipeline.submit(first)
    await asyncio.sleep(0.2)  # the batch is inside the hung insert now
    later = [capture(10 + i) for i in range(3)]
    pipeline.submit(later)
    await pipeline.close()
    assert pipeline.writer.counters.written == pipeline.writer.counters.lost == 0
    transport.hold = None
    restarted = make_writer(transport, tmp_path)
    await restarted.start()
    await wait_until(lambda: restarted.counters.replayed == 8)
    await restarted.close()
    assert transport.inserted == [c.request_id for c in first + later]


async def test_shutdown_does_not_wait_out_the_flush_interval(
    transport: FlakyTransport, tmp_path: Path
) -> None:
    pipeline = Pipeline(transport, tmp_path, flush_rows=1000, flush_ms=60_000)
    await pipeline.writer.start()
    await asyncio.sleep(0.1)  # the writer found nothing and waits out its interval
    pipeline.submit([capture(i) for i in range(3)])
    started = time.monotonic()
    await pipeline.close()
    assert time.monotonic() - started < 2.0  # not the 60 s interval, nor the 5 s drain bound
    assert pipeline.writer.counters.written == 3


_KILLED_WRITER = textwrap.dedent(
    """
    import asyncio, os, sys, uuid
    from pathlib import Path
    from logging_pipeline.bodies import LocalBodyStore
    from logging_pipeline.clickhouse import LogStoreError
    from logging_pipeline.journal import JournalAppender
    from logging_pipeline.writer import LogWriter
    from providers.registry import Registry
    from tests.test_writer import capture

    class Down:
        name = "down"
        async def command(self, *a, **k): raise LogStoreError("down")
        async def insert(self, *a, **k): raise LogStoreError("down")
        async def query(self, *a, **k): raise LogStoreError("down")
        async def close(self): pass

    async def main():
        root = Path(sys.argv[1])
        journal = JournalAppender(root / "journal")
        writer = LogWriter(Down(), LocalBodyStore(root / "bodies"), Registry.load(),
                           root / "journal", own=journal.directory, flush_rows=10,
                           flush_ms=20, max_backoff=0.1)
        await writer.start()
        ids = []
        for i in range(25):
            c = capture(i)
            ids.append(c.request_id)
            journal.append(c)
        while writer.counters.failed < 10:
            await asyncio.sleep(0.01)
        print("\\n".join(ids), flush=True)
        os.kill(os.getpid(), 9)  # killed mid-flight: no shutdown, no drain

    asyncio.run(main())
    """
)


async def test_killed_process_journal_is_replayed_on_restart(
    transport: FlakyTransport, tmp_path: Path
) -> None:
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", _KILLED_WRITER, str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False, cwd=_REPO,
    )
    assert result.returncode == -9, result.stderr
    journaled = result.stdout.split()
    assert len(journaled) == 25
    writer = make_writer(transport, tmp_path)
    await writer.start()
    await wait_until(lambda: writer.counters.replayed == 25)
    await writer.close()
    assert transport.inserted == journaled
    assert sorted(r["request_id"] for r in await rows(transport)) == sorted(journaled)
    assert journals(tmp_path) == []


async def test_orphaned_journals_of_other_processes_are_adopted(
    transport: FlakyTransport, tmp_path: Path
) -> None:
    """Several dead processes' journals are all replayed by the next writer, oldest first."""
    dead = [JournalAppender(tmp_path / "journal") for _ in range(2)]
    for number, journal in enumerate(dead):
        for i in range(3):
            journal.append(capture(10 * number + i))
        journal.close()  # its writer never ran: everything stays
    assert len(journals(tmp_path)) == 2
    live = JournalAppender(tmp_path / "journal")  # a process that is still running
    live.append(capture(99))
    heir = make_writer(transport, tmp_path)
    await heir.start()
    await wait_until(lambda: heir.counters.replayed == 6)
    await heir.close()
    assert len(await rows(transport)) == 6  # the live process's record is not the heir's
    assert journals(tmp_path) == [live.directory]
    live.close()


def test_a_journal_has_one_reader(tmp_path: Path) -> None:
    journal = JournalAppender(tmp_path / "journal")
    first = JournalReader.attach(journal.directory)
    assert first is not None
    assert JournalReader.attach(journal.directory) is None  # a second writer must not read it
    assert adopt_orphans(tmp_path / "journal") == []  # nor adopt it while its owner lives
    first.close()
    journal.close()


def test_torn_tail_waits_while_the_owner_lives_and_is_skipped_after(tmp_path: Path) -> None:
    """A half-written last frame: the rest may still come while its process runs; once the
    process is gone it never will, and it is counted as lost, once. (A plain segment, written
    with ``write(2)``: a mapped one's case is in test_journal_mapped.py.)"""
    journal = JournalAppender(tmp_path / "journal", mapped=False)
    captures = [capture(i) for i in range(3)]
    for c in captures:
        journal.append(c)
    segment = next(journal.directory.glob("*.seg"))
    with segment.open("ab") as handle:
        handle.write(b"\x00\x01\x00\x00\x12")  # a header and nothing else
    reader = JournalReader.attach(journal.directory)
    assert reader is not None
    read, position = reader.read(100)
    assert [c.request_id for c in read] == [c.request_id for c in captures]
    assert reader.read(100)[0] == [] and reader.lost == 0  # still the owner's to finish
    reader.commit(position)
    journal.close()  # the owner is gone
    assert reader.read(100)[0] == [] and reader.lost == 1
    assert reader.read(100)[0] == [] and reader.lost == 1
    reader.commit(reader.read(100)[1])
    assert reader.finished()
    reader.close(remove=True)


def test_segments_rotate_and_consumed_ones_are_deleted(tmp_path: Path) -> None:
    journal = JournalAppender(tmp_path / "journal", segment_bytes=4096)
    captures = [capture(i) for i in range(40)]
    for c in captures:
        journal.append(c)
    assert len(list(journal.directory.glob("*.seg"))) > 3
    reader = JournalReader.attach(journal.directory)
    assert reader is not None
    seen: list[str] = []
    while True:
        batch, position = reader.read(7)
        if not batch:
            break
        seen.extend(c.request_id for c in batch)
        reader.commit(position)
    assert seen == [c.request_id for c in captures]
    assert len(list(journal.directory.glob("*.seg"))) == 1  # only the one being written
    reader.close()
    journal.close()
    assert not journal.directory.exists()


def test_journal_files_are_owner_only(tmp_path: Path) -> None:
    journal = JournalAppender(tmp_path / "journal", fsync_ms=5)
    journal.append(capture(1))
    time.sleep(0.05)
    paths = [journal.directory.parent, journal.directory, *journal.directory.iterdir()]
    modes = {p.name: p.stat().st_mode & 0o777 for p in paths}
    assert all(mode in (0o700, 0o600) for mode in modes.values()), modes
    journal.close()
    assert not any(t.name == "journal-fsync" for t in threading.enumerate())


async def test_spill_files_of_older_versions_are_replayed(
    transport: FlakyTransport, tmp_path: Path
) -> None:
    directory = tmp_path / "spill" / "0123abcd"
    directory.mkdir(parents=True)
    captures = [capture(i) for i in range(4)]
    (directory / "records.jsonl").write_bytes(
        b"".join(orjson.dumps(c.to_json()) + b"\n" for c in captures)
    )
    writer = make_writer(transport, tmp_path, spill_root=tmp_path / "spill")
    await writer.start()
    await wait_until(lambda: writer.counters.replayed == 4)
    await writer.close()
    assert transport.inserted == [c.request_id for c in captures]
    assert not directory.exists()


async def test_writer_process_survives_its_child_dying(tmp_path: Path) -> None:
    """The gateway's writer process: records flow; a killed child is replaced and the new one
    writes what the old one had not — nothing lost, nothing twice."""
    from gateway.logconfig import log_config
    from logging_pipeline.bodies import SqliteBodyStore
    from logging_pipeline.remote import WriterProcess
    from logging_pipeline.sink import LogSink
    from tests.harness import make_settings

    config = log_config(make_settings(tmp_path, logging_enabled=True, log_flush_ms=20))
    journal = JournalAppender(tmp_path / "journal")
    process = WriterProcess(config, SqliteBodyStore(tmp_path / "bodies"), journal.directory)
    sink = LogSink(journal, process)
    await process.start()
    try:
        first = [capture(i) for i in range(20)]
        for c in first:
            sink.submit(c)
        await wait_until(lambda: sink.counters.written == 20)
        assert process.transport.name == "chdb"
        old = process._process
        # The child yields the CPU to request serving (GATEWAY_LOG_WRITER_NICE, default 10).
        own = os.getpriority(os.PRIO_PROCESS, 0)
        assert os.getpriority(os.PRIO_PROCESS, old.pid) == min(19, own + 10)
        os.kill(old.pid, signal.SIGINT)  # a terminal's Ctrl-C reaches the child too…
        os.kill(old.pid, signal.SIGTERM)
        await asyncio.sleep(0.3)
        assert old.is_alive()  # …but only the gateway stops it (after draining)
        second = [capture(100 + i) for i in range(1000)]
        for c in second[:500]:
            sink.submit(c)
        old.kill()  # while it may hold a batch it has read and not committed
        for c in second[500:]:
            sink.submit(c)  # the child is down: they wait in the journal
        await wait_until(lambda: process._process is not old and process._connection is not None)
        await wait_until(lambda: sink.counters.written >= 1020)
        found = await process.transport.query(
            f"SELECT request_id FROM {REQUEST_TABLE} FINAL WHERE organization_id = {{org:UUID}}",
            {"org": ORG},
        )
        assert sorted(r["request_id"] for r in found) == sorted(
            c.request_id for c in first + second
        )
        blob = await process.bodies.get(ORG, second[0].request_id)
        assert blob is not None and decode_bodies(blob)["request"]["messages"]
        assert sink.counters.enqueued == 1020 and sink.counters.lost == 0
    finally:
        await sink.close()
    assert not process._process.is_alive()
    assert journals(tmp_path) == []


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
            sink = server.runtime.writer
            assert sink is not None
            writer = sink.writer
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
    """What the gateway journals for the writer child rebuilds the same capture, every field."""
    original = capture(7)
    original.is_stream, original.first_byte_at = True, original.started + 0.01
    original.country_code, original.omit_response = "DE", True
    original.wire = "anthropic"
    original.attempts = [("m/openai/credits", 429, 12), ("m/groq/credits", 200, 40)]
    original.cache_reference_id = "0190a000-0000-7000-8000-0000000000bb"
    original.cache_saved_latency_ms = 812
    original.reported_usage = {"prompt_tokens": 3}
    original.prompt_id, original.prompt_version = "abc123", "0190a000-0000-7000-8000-0000000000cc"
    original.prompt_inputs, original.prompt_environment = '{"name":"Ann"}', "staging"
    original.reported_cost, original.first_token_reported = 1234, True
    original.request_headers = [(b"host", b"gw"), (b"authorization", b"Bearer sk-x")]
    original.response_headers = ((b"Content-Type", b"application/json"),)
    values = original.to_tuple()
    assert values == tuple(getattr(original, f.name) for f in dataclasses.fields(Capture))
    assert Capture.from_tuple(values) == original
    # A frame journaled before ``wire``, ``attempts``, the cache fields, reported usage,
    # the prompt fields, the reported cost and first token and the headers existed (an
    # upgrade with records on disk) still reads.
    older = Capture.from_tuple(values[:-13])
    assert older.wire == "openai" and older.attempts == [] and older.country_code == "DE"
    assert older.cache_reference_id is None and older.cache_saved_latency_ms == 0
    assert older.reported_usage is None and older.prompt_id == older.prompt_inputs == ""
    assert older.reported_cost is None and not older.first_token_reported
    before_cost = Capture.from_tuple(values[:-4])
    assert before_cost.prompt_environment == "staging" and before_cost.reported_cost is None
    before_headers = Capture.from_tuple(values[:-2])
    assert before_headers.first_token_reported and before_headers.reported_cost == 1234
    assert before_headers.request_headers == () and before_headers.response_headers == ()
    with pytest.raises(ValueError, match="fields"):
        Capture.from_tuple(values[:5])
    with pytest.raises(ValueError, match="fields"):
        Capture.from_tuple((*values, "extra"))


_FULL_DISK = textwrap.dedent(
    """
    import resource, signal, sys
    from pathlib import Path
    from logging_pipeline.journal import JournalAppender
    from tests.test_writer import capture

    mapped = sys.argv[2] == "mapped"
    if not mapped:
        journal = JournalAppender(Path(sys.argv[1]), mapped=False)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))  # the kernel refuses more
    if mapped:  # a segment cannot be allocated: it is written instead, until the disk is full
        journal = JournalAppender(Path(sys.argv[1]))
        assert not journal.mapped
    for i in range(20):
        journal.append(capture(i))
    print(journal.appended, journal.lost, journal.directory)
    """
)


class _Label(str):
    """A ``str`` subclass: marshal refuses it, so its record is pickled instead."""


def _full_capture(index: int) -> Capture:
    """A capture with every kind of value a field can hold set to something non-default."""
    c = capture(index)
    c.is_stream, c.first_byte_at = True, c.started + 0.01
    c.properties = {"env": "prod", "ünïcode": "✓"}
    c.attempts = [("m/openai/credits", 429, 12), ("m/groq/credits", 200, 40)]
    c.reported_usage = {"prompt_tokens": 3}
    c.reported_cost = 2**70  # past 64 bits: still exact
    c.request_headers = [(b"host", b"gw"), (b"authorization", b"REDACTED")]
    c.response_headers = ((b"Content-Type", b"application/json"),)
    return c


def test_journal_records_are_marshalled_and_read_back_exactly(tmp_path: Path) -> None:
    """Every field comes back equal and of the same type; a record marshal cannot take (a
    ``str`` subclass) is pickled and reads back too; and a journal written with pickles by
    an earlier version (every record of it) is still read, in order with the new ones."""
    plain = _full_capture(1)
    odd = _full_capture(2)
    odd.provider = _Label("openai")
    assert encode_record(plain)[:1] == b"("  # marshal, format 2
    assert encode_record(odd)[:2] == b"\x80\x05"  # pickle
    back = decode_record(encode_record(plain))
    assert back == plain
    assert [type(v) for v in back.to_tuple()] == [type(v) for v in plain.to_tuple()]
    assert decode_record(encode_record(odd)) == odd

    journal = JournalAppender(tmp_path / "journal", mapped=False)  # appended to below
    older = _full_capture(3)
    payload = pickle.dumps(older.to_tuple(), protocol=pickle.HIGHEST_PROTOCOL)
    segment = next(journal.directory.glob("*.seg"))
    with segment.open("ab") as handle:  # what the earlier version appended
        handle.write(struct.pack("<II", len(payload), zlib.crc32(payload)) + payload)
    journal.append(plain)
    journal.append(odd)
    reader = JournalReader.attach(journal.directory)
    assert reader is not None
    read, _ = reader.read(10)
    assert read == [older, plain, odd] and reader.lost == 0
    reader.close()
    journal.close()


@pytest.mark.parametrize("kind", ["plain", "mapped"])
def test_a_record_that_cannot_be_journaled_is_counted_lost(mapped_root: Path, kind: str) -> None:
    """A full disk (the kernel's file-size limit here) is the one way to lose a record: the
    request still succeeds, and ``lost`` says so. A mapped segment's space is allocated
    before it is used; when even that fails, the segment is written like a plain one."""
    result = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(mapped_root), kind],
        capture_output=True, text=True, timeout=60, check=False, cwd=_REPO,
    )
    assert result.returncode == 0, result.stderr
    appended, lost, directory = result.stdout.split()
    assert int(lost) > 0 and int(appended) > 0 and int(appended) + int(lost) == 20
    assert "it is lost" in result.stderr
    assert ("not mapped" in result.stderr) == (kind == "mapped")
    reader = JournalReader.attach(Path(directory))
    assert reader is not None
    read, _ = reader.read(100)
    assert len(read) == int(appended) and reader.lost == 0  # what was journaled is whole
    reader.close()


async def test_a_batch_is_read_in_slices_but_written_in_one_insert(
    transport: FlakyTransport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unpickling 10,000 records at once would stall the event loop (the gateway's own, in
    in-process mode) for tens of milliseconds: reads come in slices, the insert stays whole."""
    sizes: list[int] = []
    original = JournalReader.read

    def read(self: JournalReader, limit: int) -> Any:
        sizes.append(limit)
        return original(self, limit)

    monkeypatch.setattr(JournalReader, "read", read)
    pipeline = Pipeline(transport, tmp_path, flush_rows=1000, flush_ms=200)
    pipeline.submit([capture(i) for i in range(1000)])  # waiting before the writer starts
    await pipeline.writer.start()
    await wait_until(lambda: pipeline.writer.counters.written == 1000)
    await pipeline.close()
    assert pipeline.writer.counters.batches == 1
    assert max(sizes) <= 256 and len(sizes) >= 4
