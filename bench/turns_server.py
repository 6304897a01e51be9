"""``python -P bench/turns_server.py ARGS``: ``gateway ARGS`` with its event-loop turns counted.

:mod:`bench.loopturns` starts ``gateway serve`` (or, with ``BENCH_TURNS_FORWARDER=1``, the
reference forwarder's ``main``, :mod:`bench.forwarder`) through this wrapper to count what a
request waits for at one connection: every iteration of the event loop (one ``select`` and the
callbacks made ready by it or by the previous iteration) and every callback run, with what it
was. ``SIGUSR1`` starts counting (from zero), ``SIGUSR2`` stops and writes the counts to
``$BENCH_TURNS_OUT`` as JSON.

The server runs on asyncio's own loop instead of uvloop, for this measurement only: uvloop's
loop and handles are C, with nothing to hook, while asyncio's ``BaseEventLoop._run_once`` and
``Handle._run`` are Python. The two schedule alike — a callback made ready while the loop is
running callbacks runs in the next iteration, an I/O event's callback in the iteration of the
``select`` that saw it — so an await that really suspends a task costs an iteration on either;
the absolute times here mean nothing (and nothing is timed).

A task's callback (its first step, or its wake-up once what it awaited is done) is labelled
with where the task was suspended: the chain of its coroutines' frames (file, line, function)
down to the innermost one and the type of what that one awaited (a ``Future``…). So the
labels with a task's name are the awaits that yielded, one count per suspension.
"""

from __future__ import annotations

import asyncio
import asyncio.base_events
import asyncio.events
import functools
import inspect
import itertools
import json
import os
import signal
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any


class Turns:
    """Event-loop iterations and callbacks run while switched on, by label."""

    def __init__(self) -> None:
        self.on = False
        self.iterations = 0
        self.callbacks: Counter[str] = Counter()

    def reset(self) -> None:
        self.iterations = 0
        self.callbacks = Counter()

    def summary(self) -> dict[str, Any]:
        return {
            "iterations": self.iterations,
            "handles": sum(self.callbacks.values()),
            "callbacks": dict(self.callbacks.most_common()),
        }


class Moments:
    """When each request's socket events happened (``perf_counter``), at one connection:
    the client's request read (``in``), the writes to the upstream (``up-out``), the
    upstream's answer read (``up-in``), the writes to the client (``out``)."""

    def __init__(self) -> None:
        self.on = False
        self.events: list[tuple[str, float]] = []

    def reset(self) -> None:
        self.events = []

    def summary(self) -> dict[str, Any]:
        """Per request, the medians (µs) of: request read → first upstream write (the work
        before the upstream call), that write → the answer read (the upstream's time),
        answer read → last write to the client (the work after it), and last write → the
        next request read (the work after the answer plus the client's own turnaround)."""
        spans: dict[str, list[float]] = {
            "before_upstream": [], "upstream": [], "after_upstream": [], "to_next_request": [],
        }  # fmt: skip
        requests = split_requests(self.events)
        for this, following in itertools.pairwise(requests):
            moments = dict[str, float]()
            for kind, at in this:
                if kind == "out":
                    moments["out"] = at  # the last one
                else:
                    moments.setdefault(kind, at)  # the first one
            if not {"in", "up-out", "up-in", "out"} <= moments.keys():
                continue
            spans["before_upstream"].append(moments["up-out"] - moments["in"])
            spans["upstream"].append(moments["up-in"] - moments["up-out"])
            spans["after_upstream"].append(moments["out"] - moments["up-in"])
            spans["to_next_request"].append(following[0][1] - moments["out"])
        medians = {k: 1e6 * statistics.median(v) if v else None for k, v in spans.items()}
        return {
            "requests": len(spans["upstream"]),
            "median_us": medians,
            "sequence": typical_sequence(requests),
        }


def typical_sequence(requests: list[list[tuple[str, float]]]) -> list[tuple[str, float]]:
    """The most common order of one request's socket events, each with its median time (µs)
    after the request read, over the requests that had that order."""
    orders = Counter(tuple(kind for kind, _ in request) for request in requests)
    if not orders:
        return []
    order = orders.most_common(1)[0][0]
    alike = [r for r in requests if tuple(kind for kind, _ in r) == order]
    return [
        (kind, 1e6 * statistics.median(r[i][1] - r[0][1] for r in alike))
        for i, kind in enumerate(order)
    ]


def split_requests(events: list[tuple[str, float]]) -> list[list[tuple[str, float]]]:
    """The events cut at each client read that follows a write to the client."""
    requests: list[list[tuple[str, float]]] = []
    answered = True
    for kind, at in events:
        if kind == "in" and answered:
            requests.append([])
            answered = False
        if requests:
            requests[-1].append((kind, at))
        if kind == "out":
            answered = True
    return requests


def label(handle: asyncio.Handle) -> str:
    """What a ready callback is: a task resumed where it waited, or the function called."""
    callback = handle._callback  # type: ignore[attr-defined]
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        return "task " + suspended_at(owner)
    kind = "timer " if isinstance(handle, asyncio.TimerHandle) else "call "
    function = getattr(callback, "func", callback)  # a functools.partial's function
    name = getattr(function, "__qualname__", None) or type(function).__qualname__
    module = getattr(function, "__module__", None) or ""
    return f"{kind}{module}.{name}"


def suspended_at(task: asyncio.Task[Any]) -> str:
    """Where ``task`` waits: its coroutines' frames, outermost first, then what the innermost
    one awaits (``start`` for a task not started yet)."""
    coro: Any = task.get_coro()
    places: list[str] = []
    awaited: Any = coro
    while awaited is not None:
        frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)
        if frame is None:
            break
        code = frame.f_code
        places.append(f"{Path(code.co_filename).name}:{frame.f_lineno}({code.co_name})")
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    if inspect.iscoroutine(coro) and inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
        return f"start {getattr(coro, '__qualname__', type(coro).__qualname__)}"
    what = type(awaited).__name__ if awaited is not None else "?"
    return " > ".join(places) + f" [{what}]"


def install(turns: Turns) -> Callable[[], None]:
    """Count every loop iteration and every callback run (asyncio's Python loop); returns
    what puts asyncio back as it was."""
    base = asyncio.base_events.BaseEventLoop
    run_once = base._run_once  # type: ignore[attr-defined]
    run_handle = asyncio.events.Handle._run

    def counted_run_once(self: asyncio.base_events.BaseEventLoop) -> None:
        if turns.on:
            turns.iterations += 1
        run_once(self)

    def counted_run(self: asyncio.Handle) -> None:
        if turns.on:
            turns.callbacks[label(self)] += 1
        run_handle(self)

    base._run_once = counted_run_once  # type: ignore[attr-defined]
    asyncio.events.Handle._run = counted_run  # type: ignore[method-assign]

    def restore() -> None:
        base._run_once = run_once  # type: ignore[attr-defined]
        asyncio.events.Handle._run = run_handle  # type: ignore[method-assign]

    return restore


def watch_sockets(moments: Moments) -> None:
    """Note every socket read and write of asyncio's transports while ``moments.on``: the
    upstream's by their protocol (aiohttp's ``ResponseHandler``), the rest are the client's."""
    from asyncio import selector_events

    transport: Any = selector_events._SelectorSocketTransport  # type: ignore[attr-defined]
    read_ready, write, writelines = transport._read_ready, transport.write, transport.writelines

    def upstream(self: Any) -> bool:
        return type(self._protocol).__name__ == "ResponseHandler"

    @functools.wraps(read_ready)
    def noted_read_ready(self: Any) -> None:
        if moments.on:
            moments.events.append(("up-in" if upstream(self) else "in", time.perf_counter()))
        read_ready(self)

    @functools.wraps(write)
    def noted_write(self: Any, data: Any) -> None:
        if moments.on:
            moments.events.append(("up-out" if upstream(self) else "out", time.perf_counter()))
        write(self, data)

    @functools.wraps(writelines)
    def noted_writelines(self: Any, data: Any) -> None:
        if moments.on:
            moments.events.append(("up-out" if upstream(self) else "out", time.perf_counter()))
        writelines(self, data)

    transport._read_ready = noted_read_ready
    transport.write = noted_write
    transport.writelines = noted_writelines


def asyncio_loop() -> None:
    """Make uvicorn's ``loop="uvloop"`` (what the gateway and the forwarder ask for) build
    asyncio's loop instead."""
    from uvicorn import config

    config.LOOP_FACTORIES["uvloop"] = config.LOOP_FACTORIES["asyncio"]


def main() -> int:
    out = os.environ["BENCH_TURNS_OUT"]
    turns = Turns()

    moments = Moments()
    mode = Path(out + ".mode")

    def start(signum: int, frame: FrameType | None) -> None:
        # what to record this time: "count" (loop turns) or "time" (the socket events);
        # never both, so that labelling callbacks does not show in the times
        recorder = moments if mode.read_text().strip() == "time" else turns
        recorder.reset()
        recorder.on = True

    def stop(signum: int, frame: FrameType | None) -> None:
        recorder = moments if moments.on else turns
        recorder.on = False
        Path(out + ".tmp").write_text(json.dumps(recorder.summary()))
        os.replace(out + ".tmp", out)

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    install(turns)
    watch_sockets(moments)
    asyncio_loop()
    # imported after the handlers are set: an early signal never kills the process
    if os.environ.get("BENCH_TURNS_FORWARDER") == "1":
        from bench.forwarder import main as served
    else:
        from gateway.cli import main as served
    return served(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
