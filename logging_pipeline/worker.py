"""The log writer's own process: where request records are understood and written.

Building rows (parsing, usage, cost), gzip, and inserting are CPU work that, in the
gateway's process, competes with request handling for the interpreter lock — measured, it
cost about a third of the gateway's throughput. In a child process it runs on another core
and the gateway's event loop only hands captures over.

This module is the child side: :func:`run_worker` owns the log transport, the body store and a
:class:`~logging_pipeline.writer.LogWriter` (spill and replay included, unchanged), and speaks a
small message protocol over a :func:`multiprocessing.Pipe` connection:

* parent → child: ``("records", [Capture.to_tuple(), ...])``, ``("query", id, sql, params)``,
  ``("close",)``
* child → parent: ``("ready", transport_name)``, ``("stats", counters)``,
  ``("result", id, rows, error)``, ``("closed", counters)``
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from multiprocessing.connection import Connection
from typing import Any

from gateway.settings import Settings
from logging_pipeline.capture import Capture
from logging_pipeline.writer import open_log_writer

logger = logging.getLogger("logging_pipeline.worker")

STATS_INTERVAL = 0.1


def run_worker(settings: Settings, connection: Connection) -> None:
    """Entry point of the child process (``multiprocessing`` target)."""
    logging.basicConfig(level=settings.log_level.upper(), format="%(name)s: %(message)s")
    # Ctrl-C in a terminal (or a process manager signalling the whole group) reaches this
    # child too; dying here would drop its queue. The child stops only when the gateway says
    # so or goes away (end of the pipe), and drains and spills first either way.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    asyncio.run(_serve(settings, connection))


async def _serve(settings: Settings, connection: Connection) -> None:
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
        kind = message[0]
        if kind == "records":
            for values in message[1]:
                writer.submit(Capture.from_tuple(values))
        elif kind == "query":
            task = loop.create_task(answer(message[1], message[2], message[3]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        elif kind == "close":
            stop.set()

    def receive() -> None:
        while True:
            try:
                message = connection.recv()
            except (EOFError, OSError):  # the gateway is gone: drain and stop
                loop.call_soon_threadsafe(stop.set)
                return
            loop.call_soon_threadsafe(dispatch, message)
            if message[0] == "close":
                return

    threading.Thread(target=receive, name="log-worker-recv", daemon=True).start()
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
