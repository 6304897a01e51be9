"""The batch writer: the only way a request record reaches storage.

The request path appends each finished request to the record journal
(:mod:`logging_pipeline.journal`) and moves on. The writer consumes journals: every
``flush_ms`` milliseconds (at once when ``flush_rows`` records are waiting) it reads a batch,
builds rows and body documents, writes the bodies, inserts the rows in one statement, and only
then commits the journal position. Nothing is held only in memory:

* a store fails → the batch stays uncommitted in the journal; the writer backs off and writes
  it again, and newer records wait behind it on disk — order is kept, memory stays bounded;
* the writer (or the whole gateway) is killed → the next writer reads from the last commit: at
  worst a batch is inserted twice, which ``ReplacingMergeTree`` collapses (reads use
  ``FINAL``) — exactly once as far as queries can tell;
* the journals of processes that are gone are adopted (at start, then every few seconds) and
  replayed oldest first, then deleted; so are spill files left by versions of the gateway
  before the journal (:mod:`logging_pipeline.spill`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import operator
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from logging_pipeline.annotations import Annotation, Annotator
from logging_pipeline.bodies import BodyStore, body_store_from_config, compress_json
from logging_pipeline.capture import Capture
from logging_pipeline.clickhouse import LogTransport, migrate, transport_from_config
from logging_pipeline.config import LogConfig
from logging_pipeline.estimate import TokenEstimator
from logging_pipeline.journal import Backlog, JournalReader, Position, adopt_orphans
from logging_pipeline.record import BuiltRecord, build_record, fallback_record
from logging_pipeline.rollup import RollupRefresher
from logging_pipeline.schema import INSERT_COLUMNS, REQUEST_TABLE
from logging_pipeline.spill import SpillFile, adopt_spills
from providers.labels import MetricLabels
from providers.registry import Registry

logger = logging.getLogger("logging_pipeline.writer")

_MAX_BACKOFF = 30.0
_SLICE = 32
_READ_SLICE = 256
_EMPTY, _PART, _FULL = 0, 1, 2
"""What one reader's turn of the loop wrote: nothing, a batch, a full batch (read again at once)."""
_ORPHAN_SCAN = 5.0
"""Seconds between looks for journals whose process is gone."""
_USAGE_VALUES = operator.itemgetter(
    *(INSERT_COLUMNS.index(name)
      for name in ("provider", "model", "prompt_tokens", "completion_tokens", "cost"))
)  # fmt: skip
"""A row → (provider, model, prompt tokens, completion tokens, cost in nano-USD)."""
_NO_USAGE = (0, 0, 0)

Usage = dict[tuple[str, str], tuple[int, int, int]]
"""Tokens and cost by (provider, model) label: (prompt tokens, completion tokens, nano-USD)."""


@dataclass(slots=True)
class WriterCounters:
    """Where every submitted record went.

    ``enqueued`` counts records journaled by this process; ``written`` rows inserted (replayed
    ones included: ``replayed`` is the subset that came from the journal or spill of a process
    that is gone); ``failed`` records in failed write attempts (each written again later);
    ``lost`` records that could not be journaled (disk full) or were torn in the journal by a
    power loss — the only ways a record is lost; ``pending_bytes`` journal bytes not yet
    written; ``last_error`` the last write's failure, empty once a write succeeds again;
    ``usage`` the tokens and cost of the rows written, by provider and model folded into
    bounded metric labels (providers/labels.py), for the gateway's ``/metrics``: they are
    known only here, where the answers are read. ``annotations_*``: feedback, scores and
    properties stored (``accepted``), applied to their record (``applied``), dropped because
    the record never came (``expired``), and waiting for it now (``pending``, a gauge;
    logging_pipeline/annotations.py).
    """

    enqueued: int = 0
    written: int = 0
    replayed: int = 0
    failed: int = 0
    lost: int = 0
    batches: int = 0
    pending_bytes: int = 0
    last_error: str = ""
    usage: Usage = field(default_factory=dict)
    annotations_accepted: int = 0
    annotations_applied: int = 0
    annotations_expired: int = 0
    annotations_pending: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "enqueued": self.enqueued,
            "written": self.written,
            "replayed": self.replayed,
            "failed": self.failed,
            "lost": self.lost,
            "batches": self.batches,
            "pending_bytes": self.pending_bytes,
            "last_error": self.last_error,
            "usage": dict(self.usage),
            "annotations_accepted": self.annotations_accepted,
            "annotations_applied": self.annotations_applied,
            "annotations_expired": self.annotations_expired,
            "annotations_pending": self.annotations_pending,
        }

    def count_usage(self, rows: Sequence[tuple[object, ...]], labels: MetricLabels) -> None:
        """Add the tokens and cost of ``rows`` (written) to :attr:`usage`."""
        usage = self.usage
        for row in rows:
            provider, model, prompt, completion, cost = _USAGE_VALUES(row)
            key = (labels.provider(str(provider or "")), labels.model(str(model or "")))
            p, c, n = usage.get(key, _NO_USAGE)
            usage[key] = (p + int(prompt or 0), c + int(completion or 0), n + int(cost or 0))


class LogWriter:
    """Consumes record journals in batches and writes them to the log and body stores."""

    def __init__(
        self,
        transport: LogTransport,
        bodies: BodyStore,
        prices: Registry,
        journal_root: Path,
        *,
        own: Path | None = None,
        spill_root: Path | None = None,
        flush_rows: int = 1000,
        flush_ms: int = 500,
        drain_seconds: float = 5.0,
        max_backoff: float = _MAX_BACKOFF,
        orphan_scan_seconds: float = _ORPHAN_SCAN,
        annotation_expiry_seconds: float = 86_400.0,
    ) -> None:
        self.transport = transport
        self.bodies = bodies
        self.prices = prices
        self.journal_root = journal_root
        self.own = own
        """The journal of the process this writer serves (None: only adopt orphans)."""
        self.spill_root = spill_root
        self.estimator = TokenEstimator(journal_root.parent / "tiktoken")
        self.flush_rows = flush_rows
        self.flush_interval = flush_ms / 1000
        self.drain_seconds = drain_seconds
        self.max_backoff = max_backoff
        self.orphan_scan_seconds = orphan_scan_seconds
        self.counters = WriterCounters()
        self.annotator = Annotator(transport, annotation_expiry_seconds, self.counters)
        self.rollups = RollupRefresher(transport)
        self._reconciler: asyncio.Task[None] | None = None
        self._own_fresh = True
        """The own journal's first batch may have been inserted by a writer killed before it
        committed: its records are checked for annotations to put back."""
        self._labels = MetricLabels(prices)
        self._own_reader: JournalReader | None = None
        self._orphans: list[JournalReader] = []
        self._backlog = Backlog()
        self._next_scan = 0.0
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._between = asyncio.Event()
        """Set while the loop waits for its next flush: no batch is in memory then."""
        self._closing = False
        self._migrated = False
        self._backoff = 0.0

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        """Apply the schema if the store is up (else later), then run."""
        try:
            await migrate(self.transport)
            self._migrated = True
        except Exception as exc:
            logger.warning("log store not ready at startup (records wait in the journal): %s", exc)
        self._task = asyncio.create_task(self._run(), name="log-writer")
        self._reconciler = asyncio.create_task(self._reconcile(), name="log-annotations")

    async def close(self) -> None:
        """Write what the journals hold (bounded by ``drain_seconds``), then stop.

        Whatever could not be written stays in the journal, uncommitted, for the next writer.
        The caller stops appending first.
        """
        self._closing = True
        self._wake.set()
        reconciler, self._reconciler = self._reconciler, None
        if reconciler is not None:
            reconciler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reconciler
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.drain_seconds)
            except TimeoutError:
                logger.error("log writer did not drain in %.1fs; the rest stays journaled",
                             self.drain_seconds)
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None
        for reader in [*self._orphans, self._own_reader]:
            if reader is not None:
                reader.close(remove=reader is not self._own_reader and reader.finished())
        self._orphans, self._own_reader = [], None
        self.counters.pending_bytes = self._backlog.measure(self.journal_root)

    # -- the loop -----------------------------------------------------------------------------

    def _readers(self) -> list[JournalReader]:
        """Orphans first (their records are older), then this process's own journal."""
        if self._own_reader is None and self.own is not None:
            self._own_reader = JournalReader.attach(self.own)  # None while a dying child holds it
        now = time.monotonic()
        if now >= self._next_scan:
            self._next_scan = now + self.orphan_scan_seconds
            self._orphans.extend(adopt_orphans(self.journal_root, skip=self.own))
        readers = list(self._orphans)
        if self._own_reader is not None:
            readers.append(self._own_reader)
        return readers

    async def between_batches(self, at_most: float) -> None:
        """Return once the writer waits between two batches, or after ``at_most`` seconds.

        The worker process collects garbage then (``worker.collect_periodically``): its
        youngest generation is all but empty between batches, while during one it holds the
        whole batch's captures and rows. Measured under the bench's load: 15-110 ms per
        collection during a batch, 0.03 ms between batches; ~4 µs less CPU per record.
        """
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._between.wait(), at_most)

    async def _run(self) -> None:
        await self._replay_spills()
        while True:
            full = False
            progressed = False
            for reader in self._readers():
                done = await self._write_batch(reader)
                if done is None:
                    return  # closing while the store fails: the journal keeps the batch
                progressed = progressed or done != _EMPTY
                full = full or done == _FULL
                if reader is not self._own_reader and reader.finished():
                    reader.close(remove=True)
                    self._orphans.remove(reader)
            self.counters.pending_bytes = self._backlog.measure(self.journal_root)
            if self._closing and not progressed:
                return
            if not full:
                self._between.set()
                try:
                    await self._pause(self.flush_interval)
                finally:
                    self._between.clear()

    async def _write_batch(self, reader: JournalReader) -> int | None:
        """Read one batch from ``reader`` and write it: :data:`_EMPTY`, :data:`_PART` or
        :data:`_FULL` (``flush_rows`` records), or None when told to close while the store
        fails (the batch stays in the journal). The batch is gone when this returns."""
        captures, position = await self._read_batch(reader)
        self.counters.lost += reader.lost
        reader.lost = 0
        if not captures:
            if position != reader.committed:
                reader.commit(position)  # skipped a torn record
            return _EMPTY
        replayed = reader is not self._own_reader
        suspect = replayed or self._own_fresh
        if not await self._write_until_done(captures, replayed, suspect):
            reader.rewind()
            return None
        reader.commit(position)
        if not replayed:
            self._own_fresh = False
        return _FULL if len(captures) >= self.flush_rows else _PART

    async def _read_batch(self, reader: JournalReader) -> tuple[list[Capture], Position]:
        """Up to ``flush_rows`` records, read in slices with a yield between them.

        Unpickling a full batch (10,000 records) takes tens of milliseconds; in slices the
        event loop — the gateway's own, when the writer runs in-process — never waits more
        than about a millisecond for it.
        """
        captures, position = reader.read(min(_READ_SLICE, self.flush_rows))
        while len(captures) < self.flush_rows:
            await asyncio.sleep(0)
            more, position = reader.read(min(_READ_SLICE, self.flush_rows - len(captures)))
            if not more:
                break
            captures.extend(more)
        return captures, position

    async def _pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the writer is told to close."""
        if self._closing or seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _write_until_done(
        self, captures: Sequence[Capture], replayed: bool, suspect: bool = False
    ) -> bool:
        """Write a batch, retrying with backoff; False if told to close while it fails.

        ``suspect``: the batch may have been written before (see :meth:`_annotate_landed`).
        """
        while not await self._write(captures):
            if self._closing:
                return False
            await self._pause(self._backoff)
        if replayed:
            self.counters.replayed += len(captures)
        await self._annotate_landed(captures, suspect or replayed)
        return True

    async def _annotate_landed(self, captures: Sequence[Capture], suspect: bool) -> None:
        """Apply the annotations that waited for these records (a set lookup per record).

        A failure here does not fail the batch (its rows are in): the annotations stay
        pending in the store and the next reconcile pass applies them.
        """
        try:
            await self.annotator.landed(captures, suspect)
        except Exception as exc:
            logger.warning("could not apply annotations to records just written: %s", exc)

    async def annotate(self, annotation: Annotation) -> str:
        """Store an annotation and apply it when its record exists (``"applied"``/``"pending"``).

        Raises ``LogStoreError`` when the store does not take it (the API answers 503).
        """
        if not self._migrated:
            await migrate(self.transport)
            self._migrated = True
        return await self.annotator.accept(annotation)

    async def _reconcile(self) -> None:
        """Every few seconds: expire, apply and resolve the store's pending annotations; and
        recompute the hourly rollups of the hours written since (at most every 30 s)."""
        while True:
            if self._migrated:
                try:
                    await self.annotator.reconcile()
                except Exception as exc:
                    logger.warning("annotation pass failed (retried): %s", exc)
                await self.rollups.maybe_refresh()
            await asyncio.sleep(self.annotator.reconcile_seconds)

    async def _replay_spills(self) -> None:
        """Write the spill files an older version of the gateway left, then delete them."""
        if self.spill_root is None:
            return
        spills = await asyncio.to_thread(adopt_spills, self.spill_root)
        for spill in spills:
            if not await self._replay_spill(spill):
                for rest in spills:
                    rest.release()
                return
            spill.release(remove=True)

    async def _replay_spill(self, spill: SpillFile) -> bool:
        while await asyncio.to_thread(spill.pending):
            captures, offset = await asyncio.to_thread(spill.read_batch, self.flush_rows)
            if captures and not await self._write_until_done(captures, replayed=True):
                return False
            await asyncio.to_thread(spill.commit, offset)
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
            logger.warning("log write failed (%d records, retry in %.1fs): %s",
                           len(captures), self._backoff, self.counters.last_error)
            return False
        self._backoff = 0.0
        self.counters.last_error = ""  # the store is back: /healthz says "ok" again
        self.counters.batches += 1
        self.counters.written += len(captures)
        self.counters.count_usage(rows, self._labels)
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


async def open_log_writer(
    config: LogConfig, own: Path | None, prices: Registry | None = None
) -> LogWriter:
    """The writer for ``config`` consuming journal ``own``, its task started.

    ``prices``: the model registry, when the caller already built one (the gateway's own,
    for a writer in its process); else it is built here, off the event loop.
    Fails open: a store that is down now only means records wait in the journal until it is
    back.
    """
    if prices is None:
        prices = await asyncio.to_thread(Registry.load)
    bodies = body_store_from_config(config.body_store)
    try:
        await bodies.start()
    except Exception as exc:
        logger.warning("body store not ready yet (records wait in the journal): %r", exc)
    writer = LogWriter(
        transport_from_config(config.log_store),
        bodies,
        prices,
        config.journal_root,
        own=own,
        spill_root=config.spill_root,
        flush_rows=config.flush_rows,
        flush_ms=config.flush_ms,
        drain_seconds=config.drain_seconds,
        annotation_expiry_seconds=config.annotation_expiry_seconds,
    )
    await writer.start()
    return writer
