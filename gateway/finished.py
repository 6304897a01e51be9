"""What the gateway keeps of each finished request for ``/metrics`` and the request line, and
when it hands them over.

A request that is over costs the request path one small tuple (:class:`RequestFacts`); the
metrics' tallies (gateway/metrics.py) and the request lines (gateway/accesslog.py) are made
from a batch of them at most :data:`FLUSH_SECONDS` later — or at once when
:data:`FLUSH_REQUESTS` are waiting, before every scrape (so ``/metrics`` never misses a request
that was answered) and at shutdown. Measured in the bench's gateway under load: counting and
writing a line per request cost ~14 µs of cache-cold work and a system call (some 8% of a
request's CPU); in batches, a few microseconds. The price: a process killed outright loses
its last 50 ms of request lines and counts (never a record of the request log, which has its
own journal).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from gateway.context import Route

if TYPE_CHECKING:
    from gateway.context import RequestContext
    from gateway.errors import GatewayError

FLUSH_SECONDS = 0.05
"""How long a finished request may wait to be counted and written with the others."""
FLUSH_REQUESTS = 512
"""Finished requests that are handed over at once, without waiting for :data:`FLUSH_SECONDS`."""


class RequestFacts(NamedTuple):
    """One finished request, as the metrics and the request line see it."""

    when: float
    """``time.time()`` at its end."""
    request_id: str
    org: str | None
    route: Route
    provider: str
    model: str
    status: int
    latency: float
    """Seconds from its arrival to its end."""
    upstream: float
    """Seconds spent waiting on providers (every attempt)."""
    first_byte: float | None
    """Seconds from its arrival to the provider's first chunk (streams only)."""
    cache_hit: bool | None
    attempts: int
    retries: int
    error: str | None
    """The gateway's error code when it answered with one of its own errors."""

    @classmethod
    def of(
        cls, ctx: RequestContext, error: GatewayError | None, now: float, when: float
    ) -> RequestFacts:
        """The facts of ``ctx`` (``now``: ``time.perf_counter()`` at its end; ``when``:
        ``time.time()``)."""
        identity = ctx.identity
        first = ctx.first_byte_at
        # tuple.__new__ is what the NamedTuple's generated __new__ calls: one Python frame
        # (with 14 arguments) fewer on every request
        return _new_tuple(cls, (
            when,
            ctx.options.request_id,
            identity.org_id if identity is not None else None,
            ctx.route,
            ctx.provider,
            ctx.model,
            ctx.status or (error.status if error is not None else 499),
            now - ctx.started,
            ctx.upstream_seconds,
            None if first is None else first - ctx.started,
            ctx.cache_hit,
            ctx.attempts,
            ctx.retries,
            error.code if error is not None else None,
        ))  # fmt: skip


_new_tuple = tuple.__new__

Consumer = Callable[[Sequence[RequestFacts]], None]


class FinishedRequests:
    """Collects :class:`RequestFacts` and hands them to ``consumers`` in batches."""

    def __init__(self, consumers: Sequence[Consumer]) -> None:
        self.consumers = tuple(consumers)
        self._pending: list[RequestFacts] = []
        self._timer: asyncio.TimerHandle | None = None

    def add(self, ctx: RequestContext, error: GatewayError | None) -> None:
        """Keep the facts of a request that is over (the data plane calls this once per
        request, after its last byte)."""
        pending = self._pending
        pending.append(RequestFacts.of(ctx, error, time.perf_counter(), time.time()))
        if len(pending) >= FLUSH_REQUESTS:
            self.flush()
        elif self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop to wait on (a script, a test): hand it over now
                self.flush()
                return
            self._timer = loop.call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Hand every waiting request to the consumers now."""
        timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        pending, self._pending = self._pending, []
        if pending:
            for consume in self.consumers:
                consume(pending)
