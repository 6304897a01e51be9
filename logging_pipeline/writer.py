"""The batch writer: the only way a request record reaches storage.

The request path calls :meth:`LogWriter.submit` (a non-blocking queue put) and moves on. A
background task collects records into batches — flushed every ``flush_rows`` records or
``flush_ms`` milliseconds, whichever comes first — builds rows and body documents, writes the
bodies, then inserts the rows in one statement.

Nothing is silently dropped:

* queue full (the store is slower than the traffic) → the record goes to an overflow list, and
  as soon as the write in progress ends, everything waiting is spilled in arrival order;
* a store fails → the whole batch is spilled (append-only file) and the writer backs off;
* while spilled records exist, new batches are spilled behind them, and the backlog is
  replayed oldest first when a write succeeds again — order is kept;
* at shutdown the queue is drained for a bounded time and whatever is left is spilled;
* on start, a spill left by an earlier process (crash, kill) is replayed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gateway.settings import Settings
from logging_pipeline.bodies import BodyStore, body_store_from_settings, compress_json
from logging_pipeline.capture import Capture
from logging_pipeline.clickhouse import LogTransport, migrate, transport_from_settings
from logging_pipeline.estimate import TokenEstimator
from logging_pipeline.record import BuiltRecord, build_record, fallback_record
from logging_pipeline.schema import INSERT_COLUMNS, REQUEST_TABLE
from logging_pipeline.spill import SpillFile, claim_spill
from providers.cost import PriceTable

logger = logging.getLogger("logging_pipeline.writer")

_MAX_BACKOFF = 30.0
_SLICE = 32
_POLL = 0.1


@dataclass(slots=True)
class WriterCounters:
    """Where every submitted record went.

    ``written`` counts rows inserted, replayed ones included (``replayed`` is that subset);
    ``failed`` counts records in failed write attempts (each then spilled); ``lost`` counts
    records that could not even be spilled (disk full) — the only way a record is lost.
    """

    enqueued: int = 0
    written: int = 0
    spilled: int = 0
    replayed: int = 0
    failed: int = 0
    lost: int = 0
    batches: int = 0
    last_error: str = ""

    def as_dict(self) -> dict[str, int | float | str]:
        return {
            "enqueued": self.enqueued,
            "written": self.written,
            "spilled": self.spilled,
            "replayed": self.replayed,
            "failed": self.failed,
            "lost": self.lost,
            "batches": self.batches,
            "last_error": self.last_error,
        }


class LogWriter:
    """Bounded queue + background batch writer with spill-to-disk and replay."""

    def __init__(
        self,
        transport: LogTransport,
        bodies: BodyStore,
        prices: PriceTable,
        spill_dir: Path,
        *,
        flush_rows: int = 1000,
        flush_ms: int = 500,
        queue_size: int = 10_000,
        drain_seconds: float = 5.0,
        max_backoff: float = _MAX_BACKOFF,
    ) -> None:
        self.transport = transport
        self.bodies = bodies
        self.prices = prices
        self.spill_root = spill_dir
        self.spill: SpillFile | None = None
        self._orphans: list[SpillFile] = []
        self.estimator = TokenEstimator(spill_dir.parent / "tiktoken")
        self.flush_rows = flush_rows
        self.flush_interval = flush_ms / 1000
        self.drain_seconds = drain_seconds
        self.max_backoff = max_backoff
        self.counters = WriterCounters()
        self._queue: asyncio.Queue[Capture] = asyncio.Queue(maxsize=queue_size)
        self._overflow: list[Capture] = []
        self._batch: list[Capture] = []
        """The batch being collected or written (see :meth:`_collect`)."""
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._migrated = False
        self._backoff = 0.0
        self._retry_at = 0.0

    # -- request path -------------------------------------------------------------------------

    def submit(self, capture: Capture) -> None:
        """Hand one finished request to the writer. Never blocks, never raises."""
        self.counters.enqueued += 1
        try:
            self._queue.put_nowait(capture)
        except asyncio.QueueFull:
            self._overflow.append(capture)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Claim a spill directory, apply the schema if the store is up, then run."""
        self.spill, self._orphans = await asyncio.to_thread(claim_spill, self.spill_root)
        try:
            await migrate(self.transport)
            self._migrated = True
        except Exception as exc:
            logger.warning("log store not ready at startup (records spill until it is): %s", exc)
        self._task = asyncio.create_task(self._run(), name="log-writer")

    async def close(self) -> None:
        """Drain the queue (bounded by ``drain_seconds``), spill what is left, stop."""
        self._closing = True
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.drain_seconds)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        # The batch the cancelled task held (collecting, or writing to a hung store) is older
        # than anything queued. If its insert landed after all, the replay collapses under FINAL.
        rest = self._batch + self._take_all()
        if rest:
            await self._spill(rest)
        for spill in [self.spill, *self._orphans]:
            if spill is not None:
                spill.release()
        self._orphans = []
    # -- the loop -----------------------------------------------------------------------------

    def _take_all(self) -> list[Capture]:
        """Everything waiting, in arrival order: the queue, then what overflowed it."""
        batch: list[Capture] = []
        while True:
            try:
                batch.append(self._queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        batch.extend(self._overflow)
        self._overflow = []
        return batch

    async def _collect(self) -> list[Capture]:
        """Wait for records; return a batch when full or when the flush interval passes.

        The batch is ``self._batch`` until it is written or spilled, so a shutdown that has to
        cancel this task still finds (and spills) the records it held. At shutdown it stops
        waiting for more as soon as the queue is empty (checked at least every ``_POLL`` s).
        """
        batch = self._batch
        deadline = time.monotonic() + self.flush_interval
        while len(batch) < self.flush_rows:
            timeout = deadline - time.monotonic()
            if timeout <= 0 or (self._closing and self._queue.empty()):
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), min(timeout, _POLL)))
            except TimeoutError:
                continue
            while len(batch) < self.flush_rows:
                try:
                    batch.append(self._queue.get_nowait())
                except asyncio.QueueEmpty:
                    break
        return batch

    async def _run(self) -> None:
        await self._replay_backlog()
        while True:
            if self._closing and self._queue.empty() and not self._overflow:
                return
            batch = await self._collect()
            if self._overflow:
                # The queue filled up while the last batch was being written (the store is
                # slower than the traffic): this batch, the queue and the overflow go to the
                # spill file at once, in arrival order, so memory stays bounded; the next
                # cycle replays them ahead of anything newer.
                await self._spill(batch + self._take_all())
                continue
            await self._cycle(batch)
            self._batch = []  # written (or spilled): no longer this writer's to hand over

    async def _cycle(self, batch: list[Capture]) -> None:
        if self._backoff and time.monotonic() < self._retry_at:
            if batch:
                await self._spill(batch)
            return
        backlog = bool(self._orphans) or await asyncio.to_thread(self._own_spill().pending)
        if backlog:
            if not await self._replay_backlog():
                if batch:
                    await self._spill(batch)
                return
        if batch and not await self._write(batch):
            await self._spill(batch)

    def _own_spill(self) -> SpillFile:
        if self.spill is None:
            raise RuntimeError("LogWriter.start() was not called")
        return self.spill

    async def _replay_backlog(self) -> bool:
        """Replay spilled records, orphans first, each oldest first; False if still failing."""
        while self._orphans:
            orphan = self._orphans[0]
            if not await self._replay(orphan):
                return False
            await asyncio.to_thread(orphan.release, True)
            self._orphans.pop(0)
        return await self._replay(self._own_spill())

    async def _replay(self, spill: SpillFile) -> bool:
        while await asyncio.to_thread(spill.pending):
            captures, offset = await asyncio.to_thread(spill.read_batch, self.flush_rows)
            if captures and not await self._write(captures):
                return False
            await asyncio.to_thread(spill.commit, offset)
            self.counters.replayed += len(captures)
        return True

    async def _write(self, captures: Sequence[Capture]) -> bool:
        try:
            if not self._migrated:
                await migrate(self.transport)
                self._migrated = True
            rows, blobs = await self._prepare(captures)
            if blobs:
                await self.bodies.put_many(blobs)
            await self.transport.insert(REQUEST_TABLE, INSERT_COLUMNS, rows)
        except Exception as exc:  # any store failure: the caller spills, never drops
            self.counters.failed += len(captures)
            self.counters.last_error = f"{type(exc).__name__}: {exc}"[:500]
            self._backoff = min(self.max_backoff, max(0.25, self._backoff * 2))
            self._retry_at = time.monotonic() + self._backoff
            logger.warning("log write failed (%d records, retry in %.1fs): %s",
                           len(captures), self._backoff, self.counters.last_error)
            return False
        self._backoff = 0.0
        self.counters.batches += 1
        self.counters.written += len(captures)
        return True

    async def _prepare(
        self, captures: Sequence[Capture]
    ) -> tuple[list[tuple[object, ...]], list[tuple[str, str, bytes]]]:
        """Rows and gzipped bodies of a batch, built on the event loop in small slices.

        Parsing, cost and gzip are the CPU-heavy part of logging. In a worker thread they
        would contend for the interpreter lock, and every time the event loop wanted it back
        it could wait a whole switch interval (5 ms) — measured as multi-millisecond p99
        spikes at one connection. Slices of ``_SLICE`` records with a yield between them keep
        each pause near a millisecond and cost no lock hand-offs.
        """
        rows: list[tuple[object, ...]] = []
        blobs: list[tuple[str, str, bytes]] = []
        for start in range(0, len(captures), _SLICE):
            for capture in captures[start : start + _SLICE]:
                record = self._build(capture)
                rows.append(record.row)
                if record.document is not None:
                    blobs.append(
                        (capture.organization_id, capture.request_id,
                         compress_json(record.document))
                    )
            await asyncio.sleep(0)
        return rows, blobs

    def _build(self, capture: Capture) -> BuiltRecord:
        try:
            return build_record(capture, self.prices, self.estimator, self.bodies.location)
        except Exception:
            logger.exception("could not interpret request %s; logging it without usage",
                             capture.request_id)
            return fallback_record(capture)

    async def _spill(self, captures: list[Capture]) -> None:
        # From here on the records are the spill file's: a cancelled spill still finishes
        # appending in its thread, so close() must not spill the batch a second time.
        self._batch = []
        try:
            await asyncio.to_thread(self._own_spill().append, captures)
            self.counters.spilled += len(captures)
        except OSError:
            self.counters.lost += len(captures)
            logger.exception("could not spill %d records: they are lost", len(captures))


async def open_log_writer(settings: Settings) -> LogWriter:
    """The writer for ``settings``, its stores opened and its task started.

    Fails open: a store that is down now only means the writer spills until it is back.
    """
    bodies = body_store_from_settings(settings)
    try:
        await bodies.start()
    except Exception as exc:
        logger.warning("body store not ready yet (records will spill until it is): %r", exc)
    writer = LogWriter(
        transport_from_settings(settings),
        bodies,
        PriceTable.load(),
        settings.data_dir / "spill",
        flush_rows=settings.log_flush_rows,
        flush_ms=settings.log_flush_ms,
        queue_size=settings.log_queue_size,
    )
    await writer.start()
    return writer
