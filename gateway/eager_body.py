"""The upstream request's body written at once, not one event-loop turn later (issue 10).

aiohttp (3.14) sends a request's headers and body from a task of its own
(``ClientRequest.write_bytes``), which it starts eagerly on Python 3.12 and later and with
``create_task`` before: on this project's Python 3.11 the request leaves for the provider
only at the next turn of the event loop, after the caller has suspended to wait for the
answer — at one connection, a trip through the loop (a poll and the other ready callbacks)
on every request's latency, which ``python -m bench.loopturns`` shows as the task step
``ClientRequest.write_bytes`` between the request's arrival and its write upstream.

:class:`EagerBodyRequest` (the upstream session's ``request_class``) does what Python 3.12's
eager start does: :func:`started` runs aiohttp's ``write_bytes`` coroutine at once, up to its
first real suspension. The usual request body (bytes, the transport not paused) is written
whole without suspending, so what aiohttp's task then runs is an empty coroutine, during the
wait for the answer; a body that has to wait (a paused transport, ``Expect: 100-continue``)
is handed to that task where it stopped, and goes on exactly as it would have. Errors are
aiohttp's own (it turns write failures into the response's exception either way).
"""

from __future__ import annotations

import types
from collections.abc import Coroutine, Generator
from typing import Any

import aiohttp
from aiohttp.abc import AbstractStreamWriter
from aiohttp.connector import Connection


class EagerBodyRequest(aiohttp.ClientRequest):
    """aiohttp's request, its body written before the caller waits for the answer."""

    def write_bytes(
        self, writer: AbstractStreamWriter, conn: Connection, content_length: int | None = None
    ) -> Coroutine[Any, Any, None]:
        return started(super().write_bytes(writer, conn, content_length))


def started(coro: Coroutine[Any, Any, None]) -> Coroutine[Any, Any, None]:
    """Run ``coro`` now, up to its first suspension; the coroutine returned (for a task)
    finishes it — at once if ``coro`` has finished, else from where it stopped — and ends
    as ``coro`` would have, with its result or its exception."""
    try:
        awaited = coro.send(None)
    except StopIteration:
        return _finished()
    except Exception as exc:  # ends the task with it, as if raised there
        return _raising(exc)
    return _rest(coro, awaited)


async def _finished() -> None:
    return None


async def _raising(exc: Exception) -> None:
    raise exc


async def _rest(coro: Coroutine[Any, Any, None], awaited: Any) -> None:
    await _resume(coro, awaited)


@types.coroutine
def _resume(coro: Coroutine[Any, Any, None], awaited: Any) -> Generator[Any, Any, None]:
    """Drive ``coro``, suspended on ``awaited``, as the task running this would: hand the
    task each thing ``coro`` waits on, and send it (or throw in it) what the task receives."""
    while True:
        try:
            sent = yield awaited
        except BaseException as exc:  # a cancellation thrown in by the task
            try:
                awaited = coro.throw(exc)
            except StopIteration:
                return
        else:
            try:
                awaited = coro.send(sent)
            except StopIteration:
                return
