"""Readiness (``/readyz``): can this process serve requests *and* keep their records, now?

``/healthz`` says the process is alive; ``/readyz`` asks every store the gateway depends on —
the control-plane store (reachable, schema at the migrations' head), the log store (reachable,
its writer not failing and not backed up past a bound), the body store and, with
``REDIS_URL``, Redis — and answers ``200`` or ``503``. A load balancer or Kubernetes uses it
to send traffic only to replicas that can do their whole job.

Three rules shape it:

* **Public, so nothing secret.** The answer names each check and a reason from a fixed
  vocabulary (``ok``, ``timeout``, ``unreachable``, ``migrations_pending``…), never an error
  text, which could name a host, a user or a bucket. The error itself goes to the log, once
  per change of state.
* **Cheap under any probe rate.** A check's result is reused for ``ttl`` seconds, concurrent
  callers share one check in flight, and a probe still running from an earlier check (a hung
  store) is not started again: it is reported as ``timeout`` until it ends. So a probe storm
  costs the stores at most one round of queries per ``ttl``.
* **Bounded.** Every probe has ``timeout`` seconds; the answer never waits longer.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from yarl import URL

from gateway.store import ControlStore
from logging_pipeline.sink import LogSink

logger = logging.getLogger("gateway.readiness")

Probe = Callable[[], Awaitable[str | None]]
"""Asks one dependency: ``None`` when it is fine, else a short reason from the fixed
vocabulary below; an exception means ``unreachable`` (the exception is logged, not shown)."""

OK = "ok"
TIMEOUT = "timeout"
UNREACHABLE = "unreachable"
MIGRATIONS_PENDING = "migrations_pending"
WRITE_FAILING = "write_failing"
BACKLOG = "backlog"
STARTING = "starting"
SHUTTING_DOWN = "shutting_down"


@dataclass(frozen=True, slots=True)
class Report:
    """One readiness answer: ready when every check is ``ok``."""

    checks: dict[str, str]
    stopping: bool = False

    @property
    def ready(self) -> bool:
        return not self.stopping and all(value == OK for value in self.checks.values())

    def body(self) -> bytes:
        status = SHUTTING_DOWN if self.stopping else ("ready" if self.ready else "not_ready")
        return orjson.dumps({"status": status, "checks": self.checks})


@dataclass(slots=True)
class _Slot:
    probe: Probe
    running: asyncio.Task[str | None] | None = None
    last: str = field(default=OK)


class Readiness:
    """Runs the probes (see the module docstring for the caching and bounding rules)."""

    def __init__(
        self,
        *,
        timeout: float = 2.0,
        ttl: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.ttl = ttl
        self._clock = clock
        self._slots: dict[str, _Slot] = {}
        self._cached: Report | None = None
        self._cached_at = 0.0
        self._checking: asyncio.Future[Report] | None = None
        self._stopping = False

    def add(self, name: str, probe: Probe) -> None:
        """Check ``probe`` under ``name`` from now on (a name added twice is replaced)."""
        self._slots[name] = _Slot(probe)
        self._cached = None

    @property
    def names(self) -> list[str]:
        return list(self._slots)

    def stop(self) -> None:
        """Not ready from now on, whatever the stores say: the process is shutting down and
        a load balancer should stop sending it new requests."""
        self._stopping = True

    async def check(self) -> Report:
        if self._stopping:
            return Report({name: SHUTTING_DOWN for name in self._slots}, stopping=True)
        cached = self._cached
        if cached is not None and self._clock() - self._cached_at < self.ttl:
            return cached
        if self._checking is None:
            self._checking = asyncio.ensure_future(self._run())
        return await asyncio.shield(self._checking)

    async def close(self) -> None:
        """Cancel probes still running (a hung store must not outlive the process's loop)."""
        self.stop()
        tasks: list[asyncio.Future[Any]] = [
            slot.running for slot in self._slots.values() if slot.running is not None
        ]
        if self._checking is not None:
            tasks.append(self._checking)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self) -> Report:
        try:
            return await self._probe_all()
        finally:
            self._checking = None

    async def _probe_all(self) -> Report:
        fresh: dict[str, asyncio.Task[str | None]] = {}
        results: dict[str, str] = {}
        for name, slot in self._slots.items():
            if slot.running is not None and not slot.running.done():
                results[name] = TIMEOUT  # still stuck from an earlier check: not started again
                continue
            task = asyncio.ensure_future(slot.probe())
            # A probe that outlives its check ends unobserved: its outcome is read here.
            task.add_done_callback(_observe)
            slot.running = fresh[name] = task
        if fresh:
            await asyncio.wait(fresh.values(), timeout=self.timeout)
        for name, task in fresh.items():
            results[name] = self._outcome(name, task)
        checks = {name: results[name] for name in self._slots}  # in the order they were added
        report = Report(checks)
        self._cached, self._cached_at = report, self._clock()
        return report

    def _outcome(self, name: str, task: asyncio.Task[str | None]) -> str:
        slot = self._slots[name]
        error: BaseException | None = None
        if not task.done():
            outcome = TIMEOUT
        elif task.cancelled():
            outcome = UNREACHABLE
        elif (error := task.exception()) is not None:
            outcome = UNREACHABLE
        else:
            outcome = task.result() or OK
        if task.done():
            slot.running = None
        if outcome != slot.last:
            if outcome == OK:
                logger.info("readiness: %s is ok again", name)
            else:
                logger.warning("readiness: %s is %s: %r", name, outcome, error)
            slot.last = outcome
        return outcome


def _observe(task: asyncio.Task[str | None]) -> None:
    if not task.cancelled():
        task.exception()


# --- probes -----------------------------------------------------------------------------------


def control_store_probe(store: ControlStore) -> Probe:
    """The control-plane store answers a query, and its schema is at the migrations' head."""
    head: list[str | None] = []

    async def probe() -> str | None:
        if not head:  # the migration scripts are read from disk once
            head.append(await asyncio.to_thread(ControlStore.head_revision))
        revision = await store.schema_revision()
        return None if revision == head[0] else MIGRATIONS_PENDING

    return probe


def log_store_probe(sink: Callable[[], LogSink | None], max_backlog_bytes: int) -> Probe:
    """The log store answers ``SELECT 1``; the writer's last write did not fail; the journal
    holds at most ``max_backlog_bytes`` not yet written (past it the writer is not keeping
    up, or the store has been away too long)."""

    async def probe() -> str | None:
        current = sink()
        if current is None:
            return STARTING
        counters = current.counters
        if counters.pending_bytes > max_backlog_bytes:
            return BACKLOG
        await current.transport.query("SELECT 1")
        return WRITE_FAILING if counters.last_error else None

    return probe


def body_store_probe(sink: Callable[[], LogSink | None]) -> Probe:
    """The body store answers (S3: a ``HEAD`` of the bucket; local: the store is usable)."""

    async def probe() -> str | None:
        current = sink()
        if current is None:
            return STARTING
        await current.bodies.ping()
        return None

    return probe


def redis_probe(url: str, timeout: float = 2.0) -> Probe:
    """Redis answers ``PING`` (see :func:`redis_ping`)."""

    async def probe() -> str | None:
        await redis_ping(url, timeout)
        return None

    return probe


async def redis_ping(url: str, budget: float = 2.0) -> None:
    """Open a connection to the Redis at ``url`` (``redis://`` or ``rediss://``, with
    ``user:password@`` when set), ``AUTH`` if needed, ``PING``, close.

    A fresh connection, on purpose: readiness and ``gateway doctor`` ask whether Redis answers
    now, not what the request path's pool last saw (it fails open and backs off). The RESP
    exchange is two commands, so no client library is needed for it. Raises ``OSError``
    (unreachable), ``TimeoutError`` or ``ValueError`` (a bad URL, or Redis refused).
    """
    parsed = URL(url)
    if parsed.scheme not in ("redis", "rediss") or not parsed.host:
        raise ValueError("REDIS_URL must be redis://[user:password@]host[:port][/db] or rediss://")
    context = ssl.create_default_context() if parsed.scheme == "rediss" else None
    async with asyncio.timeout(budget):
        reader, writer = await asyncio.open_connection(
            parsed.host, parsed.port or 6379, ssl=context
        )
        try:
            if parsed.password is not None:
                auth = [parsed.user, parsed.password] if parsed.user else [parsed.password]
                writer.write(_command("AUTH", *auth))
            writer.write(_command("PING"))
            await writer.drain()
            if parsed.password is not None:
                _expect(await reader.readline(), b"+OK")
            _expect(await reader.readline(), b"+PONG")
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:  # the peer went away first: the connection is closed all the same
                pass


def _command(*parts: str) -> bytes:
    encoded = [part.encode() for part in parts]
    out = [b"*%d\r\n" % len(encoded)]
    for part in encoded:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def _expect(line: bytes, wanted: bytes) -> None:
    if line.rstrip(b"\r\n") != wanted:
        # Redis's own error line (e.g. "-WRONGPASS ..."), never the password.
        raise ValueError(f"redis answered {line[:80]!r}")
