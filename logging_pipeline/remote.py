"""The gateway's side of the log-writer process (see :mod:`logging_pipeline.worker`).

Records do not pass through here: the request path appends them to this process's record
journal (:mod:`logging_pipeline.journal`) and the child reads that directory on its own. What
is left for :class:`WriterProcess` is the child's life and the questions asked of it:

* start the child (``spawn``: a clean interpreter, no inherited event loop or sockets), tell
  it which journal is its, and start it again if it dies — the new child reads the journal
  from the last commit, so a killed child loses nothing;
* answer ``transport.query`` (the query API) and ``annotate`` (feedback, scores, properties:
  writes) through the child that owns the log store, and keep the counters it reports;
* at shutdown, ask it to write what the journal holds and stop; whatever it could not write
  in time stays in the journal for the next start.

The connection is a duplex :func:`multiprocessing.Pipe`, read by one thread on each side.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import multiprocessing
import threading
import time
from collections.abc import Mapping
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from logging_pipeline.annotations import Annotation
from logging_pipeline.bodies import BodyStore
from logging_pipeline.clickhouse import LogStoreError
from logging_pipeline.config import LogConfig
from logging_pipeline.worker import run_worker
from logging_pipeline.writer import Usage, WriterCounters

logger = logging.getLogger("logging_pipeline.remote")

_TOTALS = (
    "written", "replayed", "failed", "lost", "batches",
    "annotations_accepted", "annotations_applied", "annotations_expired",
)  # fmt: skip
_START_TIMEOUT = 60.0
STOP_MARGIN_SECONDS = 5.0
"""What a stopping child gets past its drain to close its stores before it is killed."""


class _QueryProxy:
    """``transport.query`` answered by the child that owns the log store."""

    def __init__(self, owner: WriterProcess) -> None:
        self._owner = owner
        self.name = ""

    async def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        return await self._owner.query(sql, params, settings)


class WriterProcess:
    """Runs the log writer in a child process that consumes ``journal``.

    The child is given ``config`` and nothing else of the gateway's (no provider keys).
    """

    def __init__(self, config: LogConfig, bodies: BodyStore, journal: Path) -> None:
        self.config = config
        self.bodies = bodies  # read side (the query API); the child writes its own
        self.journal = journal
        self.transport = _QueryProxy(self)
        self._context = multiprocessing.get_context("spawn")
        self._process: Any = None
        self._connection: Connection | None = None
        self._receiver: threading.Thread | None = None
        self._send_lock = threading.Lock()
        self._restart: asyncio.Task[None] | None = None
        self._stats: dict[str, Any] = {}
        self._earlier: dict[str, int] = {}  # totals of children that have exited
        self._earlier_usage: Usage = {}
        self._results: dict[int, asyncio.Future[list[dict[str, Any]]]] = {}
        self._ids = itertools.count()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._restarts = 0

    def _total(self, name: str) -> int:
        return self._earlier.get(name, 0) + int(self._stats.get(name, 0))

    @property
    def counters(self) -> WriterCounters:
        """As last reported by the children, restarts included (``enqueued`` is the journal's)."""
        return WriterCounters(
            written=self._total("written"),
            replayed=self._total("replayed"),
            failed=self._total("failed"),
            lost=self._total("lost"),
            batches=self._total("batches"),
            pending_bytes=int(self._stats.get("pending_bytes", 0)),
            last_error=str(self._stats.get("last_error", "")),
            usage=self._usage(),
            annotations_accepted=self._total("annotations_accepted"),
            annotations_applied=self._total("annotations_applied"),
            annotations_expired=self._total("annotations_expired"),
            annotations_pending=int(self._stats.get("annotations_pending", 0)),
        )

    def _usage(self) -> Usage:
        """Token and cost totals, the children that have exited included."""
        current: Usage = self._stats.get("usage") or {}
        if not self._earlier_usage:
            return current
        merged = dict(self._earlier_usage)
        for key, (p, c, n) in current.items():
            ep, ec, en = merged.get(key, (0, 0, 0))
            merged[key] = (ep + p, ec + c, en + n)
        return merged

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.to_thread(self._spawn)

    def _spawn(self) -> None:
        """Start a child and wait for it to be ready (blocking: runs in a thread)."""
        parent, child = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=run_worker, args=(self.config, child, self.journal),
            name="gateway-log-writer", daemon=True,
        )  # fmt: skip
        process.start()
        child.close()
        if not parent.poll(_START_TIMEOUT):
            process.kill()
            process.join()
            parent.close()
            raise LogStoreError("the log writer process did not start")
        ready = parent.recv()
        self.transport.name = str(ready[1])
        self._process, self._connection = process, parent
        self._receiver = threading.Thread(
            target=self._receive, args=(parent,), name="log-writer-recv", daemon=True
        )
        self._receiver.start()

    def _receive(self, connection: Connection) -> None:
        loop = self._loop
        assert loop is not None
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):
                if not self._closing:
                    with contextlib.suppress(RuntimeError):  # the loop is already closed
                        loop.call_soon_threadsafe(self._child_died)
                return
            with contextlib.suppress(RuntimeError):
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
        self._earlier_usage = self._usage()
        self._stats = {}
        if self._closing:
            return
        self._restarts += 1
        logger.error("log writer process exited; starting it again (restart %d)", self._restarts)
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
        process, self._process = self._process, None
        loop = self._loop
        assert loop is not None
        self._restart = loop.create_task(self._start_again(process), name="log-writer-restart")

    async def _start_again(self, dead: Any) -> None:
        """Reap the dead child, then start a new one (which replays the journal)."""
        if dead is not None:
            await asyncio.to_thread(dead.join, 5.0)
        while not self._closing:
            try:
                await asyncio.to_thread(self._spawn)
                return
            except Exception as exc:
                logger.error("could not start the log writer process again: %r", exc)
                await asyncio.sleep(1.0)

    def _send(self, message: tuple[Any, ...]) -> None:
        connection = self._connection
        if connection is None:
            raise LogStoreError("the log writer process is not running")
        with self._send_lock:
            connection.send(message)

    async def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        return await self._ask("query", sql, dict(params or {}), dict(settings or {}))

    async def annotate(self, annotation: Annotation) -> str:
        """Have the child store (and, if it can, apply) ``annotation``; its state."""
        rows = await self._ask("annotate", annotation)
        return str(rows[0]["state"]) if rows else "pending"

    async def _ask(self, kind: str, *args: Any) -> list[dict[str, Any]]:
        """Send one request to the child and wait for its ``result``."""
        loop = asyncio.get_running_loop()
        request_id = next(self._ids)
        future: asyncio.Future[list[dict[str, Any]]] = loop.create_future()
        self._results[request_id] = future
        try:
            await asyncio.to_thread(self._send, (kind, request_id, *args))
        except (OSError, ValueError) as exc:
            self._results.pop(request_id, None)
            raise LogStoreError(f"the log writer process is unreachable: {exc}") from exc
        except LogStoreError:
            self._results.pop(request_id, None)
            raise
        return await future

    async def close(self, drain_seconds: float | None = None) -> None:
        """Ask the child to write what the journal holds and stop; wait for it (bounded).

        The caller has stopped appending. The child drains for the configured
        ``drain_seconds``, then closes its stores; one that has not stopped
        :data:`STOP_MARGIN_SECONDS` after that is killed: what it had not committed stays in
        the journal, and the next start writes it.
        """
        if drain_seconds is None:
            drain_seconds = self.config.drain_seconds + STOP_MARGIN_SECONDS
        deadline = time.monotonic() + drain_seconds
        self._closing = True
        restart, self._restart = self._restart, None
        if restart is not None:
            restart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await restart
        with contextlib.suppress(OSError, ValueError, LogStoreError):
            await asyncio.to_thread(self._send, ("stop",))
        process = self._process
        if process is not None:
            await asyncio.to_thread(process.join, _remaining(deadline))
            if process.is_alive():
                logger.error("log writer process did not stop in %.0fs; killing it", drain_seconds)
                process.kill()
                await asyncio.to_thread(process.join, 5.0)
        receiver, self._receiver = self._receiver, None
        if receiver is not None:
            await asyncio.to_thread(receiver.join, 5.0)
        for _ in range(3):  # let the receiver's last "closed" stats land on this loop
            await asyncio.sleep(0)
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        await self.bodies.close()


def _remaining(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
