"""The log writer's own process: where request records are understood and written.

Building rows (parsing, usage, cost), gzip, and inserting are CPU work that, in the
gateway's process, competes with request handling for the interpreter lock — measured, it
cost about a third of the gateway's throughput. In a child process it runs on another core
and the gateway's event loop only hands captures over.

This module is the child side: :func:`run_worker` owns the log transport, the body store and a
:class:`~logging_pipeline.writer.LogWriter` (spill and replay included, unchanged). It has two
channels to the gateway:

* the record pipe (one way): back-to-back pickles, each a list of ``Capture.to_tuple()``
  values. Its end of file means "no more records": drain, stop.
* a :func:`multiprocessing.Pipe` connection for everything else —
  parent → child: ``("query", id, sql, params)``;
  child → parent: ``("ready", transport_name)``, ``("stats", counters)``,
  ``("result", id, rows, error)``, ``("closed", counters)``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import signal
import threading
from multiprocessing.connection import Connection
from typing import Any

from gateway.settings import Settings
from logging_pipeline.capture import Capture
from logging_pipeline.writer import open_log_writer

logger = logging.getLogger("logging_pipeline.worker")

STATS_INTERVAL = 0.1


def run_worker(settings: Settings, connection: Connection, records: Connection) -> None:
    """Entry point of the child process (``multiprocessing`` target).

    ``records`` is the read end of the record pipe (only its descriptor is used).
    """
    logging.basicConfig(level=settings.log_level.upper(), format="%(name)s: %(message)s")
    _lower_priority(settings.log_writer_nice)
    # Ctrl-C in a terminal (or a process manager signalling the whole group) reaches this
    # child too; dying here would drop its queue. The child stops only when the gateway says
    # so or goes away (end of the pipe), and drains and spills first either way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    asyncio.run(_serve(settings, connection, records))


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


async def _serve(settings: Settings, connection: Connection, records: Connection) -> None:
    loop = asyncio.get_running_loop()
    send_lock = threading.Lock()

    def send(message: tuple[Any, ...]) -> None:
        with send_lock:
            connection.send(message)

    writer = await open_log_writer(settings)
    transport, bodies = writer.transport, writer.bodies
    stop = asyncio.Event()
    tasks: set[asyncio.Task[None]] = set()

    async def answer(request_id: int, sql: str, params: Any) -> None:
        try:
            rows = await transport.query(sql, params)
        except Exception as exc:
            await asyncio.to_thread(send, ("result", request_id, None, f"{exc}"))
        else:
            await asyncio.to_thread(send, ("result", request_id, rows, None))

    def dispatch(message: tuple[Any, ...]) -> None:
        if message[0] == "query":
            task = loop.create_task(answer(message[1], message[2], message[3]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    def submit(batch: list[tuple[Any, ...]]) -> None:
        for values in batch:
            writer.submit(Capture.from_tuple(values))

    def receive() -> None:
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):  # the gateway is gone; the record pipe ends too
                return
            loop.call_soon_threadsafe(dispatch, message)

    def read_records() -> None:
        # Unpickling here, off the writer's loop; batches reach the loop in pipe order, and
        # the stop comes after the last of them.
        with open(records.fileno(), "rb", closefd=False) as pipe:
            while True:
                try:
                    batch = pickle.load(pipe)
                except EOFError:  # the gateway closed the pipe (or exited): drain and stop
                    break
                except Exception:  # a torn pickle: only when the gateway died mid-write
                    logger.exception("unreadable data on the record pipe; stopping")
                    break
                loop.call_soon_threadsafe(submit, batch)
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=receive, name="log-worker-recv", daemon=True).start()
    threading.Thread(target=read_records, name="log-worker-records", daemon=True).start()
    send(("ready", transport.name))

    async def report() -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL)
            await asyncio.to_thread(send, ("stats", writer.counters.as_dict()))

    reporter = loop.create_task(report())
    await stop.wait()
    reporter.cancel()
    await writer.close()
    await transport.close()
    await bodies.close()
    try:
        send(("closed", writer.counters.as_dict()))
    except (OSError, ValueError):
        pass
