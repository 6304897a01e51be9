"""The gateway's side of the log-writer process (see :mod:`logging_pipeline.worker`).

:class:`WriterProcess` looks like a :class:`~logging_pipeline.writer.LogWriter` to the rest
of the gateway — ``submit``, ``counters``, ``transport.query``, ``bodies.get`` — but hands
captures to a child process in batches. The request path only appends to a list; a sender
task pickles and sends the list every few milliseconds from a worker thread.

If the child dies, it is started again; its spill directory is adopted and replayed by the
new child (see :mod:`logging_pipeline.spill`). Captures that were inside the pipe at that
moment cannot be recovered — the same exposure as records queued in memory when a process
crashes.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import multiprocessing
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

_SEND_EVERY = 0.005
_TOTALS = ("written", "spilled", "replayed", "failed", "lost", "batches")
_START_TIMEOUT = 60.0


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
        self._pending: list[Capture] = []
        self._enqueued = 0
        self._stats: dict[str, Any] = {}
        self._earlier: dict[str, int] = {}  # totals of children that have exited
        self._results: dict[int, asyncio.Future[list[dict[str, Any]]]] = {}
        self._ids = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sender: asyncio.Task[None] | None = None
        self._closing = False
        self._restarts = 0

    # -- the request path -----------------------------------------------------------------

    def submit(self, capture: Capture) -> None:
        self._enqueued += 1
        self._pending.append(capture)

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
        await asyncio.to_thread(self._spawn)
        self._sender = asyncio.create_task(self._send_loop(), name="log-sender")

    def _spawn(self) -> None:
        parent, child = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=run_worker, args=(self.settings, child), name="gateway-log-writer",
            daemon=True,
        )
        process.start()
        child.close()
        if not parent.poll(_START_TIMEOUT):
            process.kill()
            raise LogStoreError("the log writer process did not start")
        ready = parent.recv()
        self.transport.name = str(ready[1])
        self._process, self._connection = process, parent
        threading.Thread(
            target=self._receive, args=(parent,), name="log-writer-recv", daemon=True
        ).start()

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
        loop = self._loop
        assert loop is not None
        loop.create_task(asyncio.to_thread(self._spawn))

    def _send(self, message: tuple[Any, ...]) -> None:
        connection = self._connection
        if connection is None:
            raise LogStoreError("the log writer process is not running")
        with self._send_lock:
            connection.send(message)

    async def _send_loop(self) -> None:
        while True:
            await asyncio.sleep(_SEND_EVERY)
            await self._send_pending()

    async def _send_pending(self) -> None:
        if not self._pending or self._connection is None:
            return
        batch, self._pending = self._pending, []
        try:
            await asyncio.to_thread(self._send, ("records", [c.to_tuple() for c in batch]))
        except (OSError, ValueError, LogStoreError) as exc:
            logger.warning("could not hand %d records to the writer yet: %r", len(batch), exc)
            self._pending[:0] = batch  # keep them, in order, for the next attempt

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
        """Hand over what is pending, let the child drain and stop, then wait for it."""
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None
        await self._send_pending()
        self._closing = True
        process = self._process
        if process is None:
            return
        try:
            await asyncio.to_thread(self._send, ("close",))
        except (OSError, ValueError, LogStoreError):
            pass
        deadline = time.monotonic() + drain_seconds
        await asyncio.to_thread(process.join, max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            logger.error("log writer process did not stop in %.0fs; killing it", drain_seconds)
            process.kill()
        for _ in range(3):  # let the receiver's last "closed" stats land on this loop
            await asyncio.sleep(0.01)
        if self._connection is not None:
            self._connection.close()
        await self.bodies.close()
