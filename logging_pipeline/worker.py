"""The log writer's own process: where request records are understood and written.

Building rows (parsing, usage, cost), gzip, and inserting are CPU work that, in the
gateway's process, competes with request handling for the interpreter lock — measured, it
cost about a third of the gateway's throughput. In a child process it runs on another core
and the gateway's event loop only hands captures over.

This module is the child side: :func:`run_worker` owns the log transport, the body store and a
:class:`~logging_pipeline.writer.LogWriter` that consumes the gateway's record journal (and any
journal left by a process that is gone). Records never travel over a pipe: the journal is the
hand-off, so killing this process loses nothing — the next child reads from the last commit.
One :func:`multiprocessing.Pipe` connection carries everything else —
parent → child: ``("query", id, sql, params, settings)``, ``("annotate", id, annotation)``,
``("stop",)``;
child → parent: ``("ready", transport_name)``, ``("stats", counters)``,
``("result", id, rows, error)``, ``("closed", counters)``.
The end of that connection (the gateway is gone) also means "write what is journaled, stop".
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from logging_pipeline import logformat
from logging_pipeline.config import LogConfig
from logging_pipeline.private import restrict_umask
from logging_pipeline.writer import open_log_writer

logger = logging.getLogger("logging_pipeline.worker")

STATS_INTERVAL = 0.1
COLLECT_SECONDS = 1.0
"""How often the child collects its youngest generation (:func:`collect_periodically`): its
automatic collection is off (:func:`settle_collector`)."""
FULL_COLLECTION_EVERY = 30
"""Every this many collections, a full one instead."""


def run_worker(config: LogConfig, connection: Connection, journal: Path) -> None:
    """Entry point of the child process (``multiprocessing`` target).

    ``config`` is all the child is told (pickled at ``spawn``: no provider keys, see
    :mod:`logging_pipeline.config`); ``journal`` is the directory the parent appends its
    records to.
    """
    restrict_umask()
    logformat.configure(config.log_level, config.log_format)
    _lower_priority(config.writer_nice)
    # Ctrl-C in a terminal (or a process manager signalling the whole group) reaches this
    # child too; dying here would drop its queue. The child stops only when the gateway says
    # so or goes away (end of the connection), and writes what is journaled first either way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    asyncio.run(_serve(config, connection, journal))


def _lower_priority(increment: int) -> None:
    """Give the gateway's request handling precedence over this process on a busy machine.

    Logging competes with request serving only for CPU, and a record written a few hundred
    milliseconds later costs no one anything, while a request served later does. Threads
    started afterwards (the engine's, the stores') inherit the niceness. Where it cannot be
    changed (a restricted container), the writer runs at normal priority.
    """
    if increment:
        try:
            os.nice(increment)
        except OSError as exc:
            logger.warning("could not lower the log writer's priority: %s", exc)


def settle_collector() -> None:
    """Collect once, freeze what startup allocated (imports, the price table, the engine's
    Python side: never garbage, and never walked again) and turn automatic collection off.

    A batch holds a thousand or more captures (each a tuple of ~35 values with its header
    tuples) and their rows until it is written; then reference counting frees all of it. The
    writer makes no reference cycles per record — a full collection after 40,000 records
    written with the collector off found nothing to free (``bench.writer``) — so automatic
    collections only ever walked live batches: at CPython's young threshold of 700 ~10 µs
    per record, and still ~5-10 µs at 20,000 (``bench.writer`` with the main bench's
    headers: 84-96 µs per record in all with it, 75-85 without). What a rare path might
    leave in a cycle (an exception's traceback, the event loop's internals) is collected by
    :func:`collect_periodically` (every second, its youngest generation)."""
    gc.collect()
    gc.freeze()
    gc.disable()


async def collect_periodically(
    quiet: Callable[[float], Awaitable[None]],
    seconds: float = COLLECT_SECONDS,
    full_every: int = FULL_COLLECTION_EVERY,
) -> None:
    """The only collections the child runs once :func:`settle_collector` has turned the
    automatic ones off: every ``seconds`` the youngest generation — what was allocated since
    the last collection and is still alive — and every ``full_every``-th time a full one.
    Each waits for ``quiet`` (:meth:`LogWriter.between_batches`, at most ``seconds``): between
    two batches the young generation is all but empty, during one it holds the batch. Cyclic
    garbage so lives up to two periods (what survives a young collection, ``full_every``)."""
    count = 0
    while True:
        await asyncio.sleep(seconds)
        await quiet(seconds)
        count += 1
        gc.collect(2 if count % full_every == 0 else 0)


async def _serve(config: LogConfig, connection: Connection, journal: Path) -> None:
    loop = asyncio.get_running_loop()
    send_lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with send_lock:
            connection.send(message)

    writer = await open_log_writer(config, journal)
    settle_collector()
    transport, bodies = writer.transport, writer.bodies
    stop = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    async def answer(request_id: int, sql: str, params: Any, settings: Any) -> None:
        try:
            rows = await transport.query(sql, params, settings or None)
        except Exception as exc:
            await asyncio.to_thread(send, ("result", request_id, None, f"{exc}"))
        else:
            await asyncio.to_thread(send, ("result", request_id, rows, None))

    async def annotate(request_id: int, annotation: Any) -> None:
        try:
            state = await writer.annotate(annotation)
        except Exception as exc:
            await asyncio.to_thread(send, ("result", request_id, None, f"{exc}"))
        else:
            await asyncio.to_thread(send, ("result", request_id, [{"state": state}], None))

    def dispatch(message: tuple[Any, ...]) -> None:
        if message[0] in ("query", "annotate"):
            if message[0] == "query":
                task = loop.create_task(answer(*message[1:5]))
            else:
                task = loop.create_task(annotate(message[1], message[2]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        elif message[0] == "stop":
            stop.set()

    def receive() -> None:
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):  # the gateway is gone: write what is journaled, stop
                loop.call_soon_threadsafe(stop.set)
                return
            loop.call_soon_threadsafe(dispatch, message)
            if message[0] == "stop":
                return

    receiver = threading.Thread(target=receive, name="log-worker-recv", daemon=True)
    receiver.start()
    send(("ready", transport.name))

    async def report() -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            await asyncio.to_thread(send, ("stats", writer.counters.as_dict()))

    reporter = loop.create_task(report())
    collector = loop.create_task(collect_periodically(writer.between_batches))
    await stop.wait()
    collector.cancel()
    reporter.cancel()
    with contextlib.suppress(asyncio.CancelledError, OSError, ValueError):
        await reporter
    with contextlib.suppress(asyncio.CancelledError):
        await collector
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await writer.close()
    await transport.close()
    await bodies.close()
    with contextlib.suppress(OSError, ValueError):
        send(("closed", writer.counters.as_dict()))
    await asyncio.to_thread(receiver.join)  # it has returned: "stop" or the end of the pipe
    connection.close()
