"""The gateway's side of the log-writer process (see :mod:`logging_pipeline.worker`).

:class:`WriterProcess` looks like a :class:`~logging_pipeline.writer.LogWriter` to the rest
of the gateway — ``submit``, ``counters``, ``transport.query``, ``bodies.get`` — but hands
captures to a child process in batches. The request path only appends to a list; every
``_SEND_EVERY`` (20 ms), a callback on the event loop pickles the list and writes it to a
pipe through an asyncio pipe transport (non-blocking, buffered). Doing that on the loop costs a
few microseconds per record; the earlier design, a worker thread doing the send, cost the
loop several times more in interpreter-lock hand-offs and thread wake-ups.

Two channels, because they need different things: records go one way, in order, on the
record pipe, whose end of file is also the child's signal to drain and stop (so nothing
written before it can be overtaken); queries and counters use a duplex
:func:`multiprocessing.Pipe` connection, read by a thread on each side.

If the child dies, it is started again; its spill directory is adopted and replayed by the
new child (see :mod:`logging_pipeline.spill`). Captures that were inside the pipe at that
moment cannot be recovered — the same exposure as records queued in memory when a process
crashes.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import itertools
import logging
import multiprocessing
import os
import pickle
import threading
import time
from collections.abc import Mapping
from multiprocessing.connection import Connection
from typing import Any

from gateway.settings import Settings
from logging_pipeline.bodies import BodyStore
from logging_pipeline.capture import Capture
from logging_pipeline.clickhouse import LogStoreError
from logging_pipeline.worker import run_worker
from logging_pipeline.writer import WriterCounters

logger = logging.getLogger("logging_pipeline.remote")

_SEND_EVERY = 0.02
"""Seconds between pickles to the child: each write costs a system call here and a wake-up
there, so fewer, larger ones cost the request-serving process less (at 6,000 req/s, ~120
records per write instead of ~30)."""
_PIPE_BYTES = 1024 * 1024
"""Kernel buffer asked for the record pipe (Linux ``F_SETPIPE_SZ``; the default is 64 KiB),
so a write of a few hundred records completes in one call instead of queueing in the
transport. 1 MiB is the default ``/proc/sys/fs/pipe-max-size``; where it is refused the
default size is kept, which only means more, smaller writes."""
_MAX_BUFFERED = 64 * 1024 * 1024
"""Bytes of records queued in the pipe transport beyond which new ones wait in the list."""
_TOTALS = ("written", "spilled", "replayed", "failed", "lost", "batches")
_START_TIMEOUT = 60.0


class _RecordPipe(asyncio.Protocol):
    """The record pipe's protocol: only tells when the pipe is closed (or broken)."""

    def __init__(self) -> None:
        self.closed = asyncio.Event()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()


def _write_end(connection: Connection) -> Any:
    """The pipe's write end as a file object that owns its descriptor.

    The connection is closed: from here on the pipe transport alone holds the write end, so
    closing the transport is what the child reads as end of file.
    """
    try:
        pipe = open(os.dup(connection.fileno()), "wb", buffering=0)
    finally:
        connection.close()
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or above the limit
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    return pipe


class _QueryProxy:
    """``transport.query`` answered by the child that owns the log store."""

    def __init__(self, owner: WriterProcess) -> None:
        self._owner = owner
        self.name = ""

    async def query(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        return await self._owner.query(sql, params)


class WriterProcess:
    """Runs the log writer in a child process and feeds it."""

    def __init__(self, settings: Settings, bodies: BodyStore) -> None:
        self.settings = settings
        self.bodies = bodies  # read side (the query API); the child writes its own
        self.transport = _QueryProxy(self)
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._connection: Connection | None = None
        self._send_lock = threading.Lock()
        self._records: asyncio.WriteTransport | None = None
        self._records_pipe: _RecordPipe | None = None
        self._attached = asyncio.Event()
        self._flush_handle: asyncio.TimerHandle | None = None
        self._pending: list[Capture] = []
        self._enqueued = 0
        self._stats: dict[str, Any] = {}
        self._earlier: dict[str, int] = {}  # totals of children that have exited
        self._results: dict[int, asyncio.Future[list[dict[str, Any]]]] = {}
        self._ids = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._restarts = 0

    # -- the request path -----------------------------------------------------------------

    def submit(self, capture: Capture) -> None:
        self._enqueued += 1
        self._pending.append(capture)
        self._schedule_flush()

    def _flush(self) -> None:
        """Pickle what is pending and write it to the record pipe (runs on the loop)."""
        self._flush_handle = None
        if not self._pending or self._closing:
            return
        records = self._records
        if (
            records is None
            or records.is_closing()
            or records.get_write_buffer_size() > _MAX_BUFFERED
        ):
            # No child to take them right now (starting, restarting, or far behind): keep
            # them, in order, and try again shortly.
            self._schedule_flush()
            return
        batch, self._pending = self._pending, []
        records.write(
            pickle.dumps([c.to_tuple() for c in batch], protocol=pickle.HIGHEST_PROTOCOL)
        )

    def _schedule_flush(self) -> None:
        if self._flush_handle is None and self._loop is not None:
            self._flush_handle = self._loop.call_later(_SEND_EVERY, self._flush)

    def _total(self, name: str) -> int:
        return self._earlier.get(name, 0) + int(self._stats.get(name, 0))

    @property
    def counters(self) -> WriterCounters:
        """Enqueued here; the rest as last reported by the children, restarts included."""
        return WriterCounters(
            enqueued=self._enqueued,
            written=self._total("written"),
            spilled=self._total("spilled"),
            replayed=self._total("replayed"),
            failed=self._total("failed"),
            lost=self._total("lost"),
            batches=self._total("batches"),
            last_error=str(self._stats.get("last_error", "")),
        )

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self._start_child()

    async def _start_child(self) -> None:
        loop = asyncio.get_running_loop()
        records_end = await asyncio.to_thread(self._spawn)
        # The write end of the record pipe, driven by the loop (non-blocking).
        records, protocol = await loop.connect_write_pipe(_RecordPipe, _write_end(records_end))
        self._records, self._records_pipe = records, protocol
        self._attached.set()
        if self._pending:
            self._schedule_flush()

    def _spawn(self) -> Connection:
        """Start a child; returns the write end of its record pipe (blocking: in a thread)."""
        parent, child = self._context.Pipe(duplex=True)
        records_in, records_out = self._context.Pipe(duplex=False)
        process = self._context.Process(
            target=run_worker, args=(self.settings, child, records_in),
            name="gateway-log-writer", daemon=True,
        )  # fmt: skip
        process.start()
        child.close()
        records_in.close()
        if not parent.poll(_START_TIMEOUT):
            process.kill()
            records_out.close()
            raise LogStoreError("the log writer process did not start")
        ready = parent.recv()
        self.transport.name = str(ready[1])
        self._process, self._connection = process, parent
        threading.Thread(
            target=self._receive, args=(parent,), name="log-writer-recv", daemon=True
        ).start()
        return records_out

    def _detach(self) -> None:
        """Drop the record pipe of a child that is gone (what is still buffered is lost)."""
        self._attached.clear()
        records, self._records, self._records_pipe = self._records, None, None
        if records is not None and not records.is_closing():
            records.abort()

    def _receive(self, connection: Connection) -> None:
        loop = self._loop
        assert loop is not None
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):
                if not self._closing:
                    loop.call_soon_threadsafe(self._child_died)
                return
            loop.call_soon_threadsafe(self._dispatch, message)
            if message[0] == "closed":
                return

    def _dispatch(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind in ("stats", "closed"):
            self._stats = message[1]
        elif kind == "result":
            future = self._results.pop(message[1], None)
            if future is not None and not future.done():
                if message[3] is not None:
                    future.set_exception(LogStoreError(message[3]))
                else:
                    future.set_result(message[2])

    def _child_died(self) -> None:
        for future in self._results.values():
            if not future.done():
                future.set_exception(LogStoreError("the log writer process exited"))
        self._results.clear()
        for name in _TOTALS:
            self._earlier[name] = self._total(name)
        self._stats = {}
        if self._closing:
            return
        self._restarts += 1
        logger.error("log writer process exited; starting it again (restart %d)", self._restarts)
        self._connection = None
        self._detach()
        loop = self._loop
        assert loop is not None
        task = loop.create_task(self._start_child(), name="log-writer-restart")
        task.add_done_callback(_log_failure)

    def _send(self, message: tuple[Any, ...]) -> None:
        connection = self._connection
        if connection is None:
            raise LogStoreError("the log writer process is not running")
        with self._send_lock:
            connection.send(message)

    async def query(
        self, sql: str, params: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        request_id = next(self._ids)
        future: asyncio.Future[list[dict[str, Any]]] = loop.create_future()
        self._results[request_id] = future
        try:
            await asyncio.to_thread(self._send, ("query", request_id, sql, dict(params or {})))
        except (OSError, ValueError) as exc:
            self._results.pop(request_id, None)
            raise LogStoreError(f"the log writer process is unreachable: {exc}") from exc
        return await future

    async def close(self, drain_seconds: float = 30.0) -> None:
        """Hand over what is pending, let the child drain and stop, then wait for it.

        Closing the record pipe is the stop signal: the child reads every record written
        before the end of file, drains its queue (spilling what it cannot write), and exits.
        """
        deadline = time.monotonic() + drain_seconds
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._pending and self._records is None:  # a restart in progress: let it finish
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._attached.wait(), _remaining(deadline))
        self._flush()
        self._closing = True
        if self._pending:  # no child came up to take them: count them, never drop silently
            logger.error("%d records could not be handed to the writer", len(self._pending))
            self._earlier["lost"] = self._earlier.get("lost", 0) + len(self._pending)
            self._pending = []
        records, pipe = self._records, self._records_pipe
        if records is not None and pipe is not None:
            records.close()  # flushes the buffer, then closes the pipe: end of file
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(pipe.closed.wait(), _remaining(deadline))
        process = self._process
        if process is not None:
            await asyncio.to_thread(process.join, _remaining(deadline))
            if process.is_alive():
                logger.error("log writer process did not stop in %.0fs; killing it", drain_seconds)
                process.kill()
            for _ in range(3):  # let the receiver's last "closed" stats land on this loop
                await asyncio.sleep(0.01)
        self._detach()
        if self._connection is not None:
            self._connection.close()
        await self.bodies.close()


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("could not start the log writer process again: %r", task.exception())
