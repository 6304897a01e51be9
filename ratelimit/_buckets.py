"""The counters: GCRA in its "leaky bucket level" form, in process and on Redis.

Why GCRA (the generic cell rate algorithm): one number per counter (the level, with the time it
was read), O(1) per request, atomic as a single small Lua script, and weighted amounts come for
free, which cents policies need. A policy ``Q;w=W`` is a bucket of capacity ``Q`` that drains
continuously at ``Q/W`` per second:

* a request of amount ``a`` is admitted when ``level + a <= Q`` (then ``level += a``), else
  refused without changing anything; so a burst gets exactly ``Q`` (the ``Q+1``-th is refused),
  whatever the concurrency, as long as less than one unit drains during the burst;
* after a burst the quota comes back gradually (``Q/W`` per second), not all at once at the end
  of a fixed window: over any span ``T`` at most ``Q + Q*T/W`` is admitted, and in the long run
  ``Q`` per ``W``;
* ``Remaining`` is ``Q - level``; a refusal's ``Retry-After`` is the time until ``a`` fits.

Cents policies reserve an estimate and later :meth:`Buckets.adjust` the level by the difference
to the real cost (negative: a refund), clamped at zero.

Atomicity: on Redis the read-modify-write is one Lua script (scripts run alone on the server),
with the server's clock (``TIME``), so gateways on different hosts agree on time. In process,
:class:`MemoryBuckets` does the same arithmetic synchronously: the event loop runs one callback
at a time and nothing here awaits, so a plain dict update cannot interleave with another
request's (no lock is needed or taken). It is per process by design: several processes need
Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Decision:
    """What a counter said: admitted or not, and its level after (units)."""

    admitted: bool
    level: float


class Buckets(Protocol):
    """A set of GCRA counters by key (one backend: in process or Redis)."""

    async def take(self, key: str, quota: int, window_us: int, amount: int) -> Decision:
        """Admit ``amount`` if it fits under ``quota`` (counter units) per ``window_us``."""
        ...

    async def adjust(self, key: str, quota: int, window_us: int, delta: int) -> None:
        """Add ``delta`` (negative: give back), never going below zero."""
        ...


class BackendUnavailable(Exception):
    """The counter store cannot be reached (the limiter fails open)."""


def drained(level: float, elapsed_us: float, quota: int, window_us: int) -> float:
    """``level`` after ``elapsed_us`` microseconds of draining at ``quota`` per ``window_us``."""
    if elapsed_us <= 0:
        return level
    return max(0.0, level - elapsed_us * quota / window_us)


def retry_after(level: float, amount: int, quota: int, window_us: int) -> int:
    """Whole seconds until ``amount`` fits (at least 1); the whole window when it never will."""
    if amount > quota:
        return window_us // 1_000_000
    excess = level + amount - quota
    return max(1, math.ceil(excess * window_us / quota / 1_000_000))


class MemoryBuckets:
    """In-process counters: a dict of ``key -> [level, microsecond time]``.

    Entries that have drained to zero are dropped by a sweep every :data:`SWEEP_EVERY` takes, so
    the dict holds only counters that still matter.
    """

    SWEEP_EVERY = 4096

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._state: dict[str, tuple[float, float, float]] = {}
        """key -> (level, time µs, time µs at which the level reaches zero)."""
        self._takes = 0

    def _now(self) -> float:
        return self._clock() * 1_000_000

    async def take(self, key: str, quota: int, window_us: int, amount: int) -> Decision:
        now = self._now()
        self._takes += 1
        if self._takes % self.SWEEP_EVERY == 0:
            self._sweep(now)
        level, last, _ = self._state.get(key, (0.0, now, now))
        level = drained(level, now - last, quota, window_us)
        if level + amount > quota:
            return Decision(False, level)
        level += amount
        self._store(key, level, now, quota, window_us)
        return Decision(True, level)

    async def adjust(self, key: str, quota: int, window_us: int, delta: int) -> None:
        now = self._now()
        level, last, _ = self._state.get(key, (0.0, now, now))
        level = max(0.0, drained(level, now - last, quota, window_us) + delta)
        self._store(key, level, now, quota, window_us)

    def _store(self, key: str, level: float, now: float, quota: int, window_us: int) -> None:
        self._state[key] = (level, now, now + level * window_us / quota)

    def _sweep(self, now: float) -> None:
        empty = [key for key, (_, _, zero_at) in self._state.items() if zero_at <= now]
        for key in empty:
            del self._state[key]

    def __len__(self) -> int:
        return len(self._state)


_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local seen = {}
local written = {}
local out = {}
for i = 1, #KEYS do
  local key = KEYS[i]
  local op = ARGV[4 * i - 3]
  local quota = tonumber(ARGV[4 * i - 2])
  local window = tonumber(ARGV[4 * i - 1])
  local amount = tonumber(ARGV[4 * i])
  local state = seen[key]
  if state == nil then
    local saved = redis.call('HMGET', key, 'l', 't')
    state = {tonumber(saved[1]) or 0, tonumber(saved[2]) or now, 0, 0}
    seen[key] = state
  end
  local level = state[1]
  if now > state[2] then
    level = level - (now - state[2]) * quota / window
    if level < 0 then level = 0 end
  end
  local admitted = '1'
  if op == 'lease' then
    if level + amount <= quota / 2 then
      admitted = ARGV[4 * i]
    else
      amount = 1
    end
  end
  if op ~= 'adjust' and level + amount > quota then
    admitted = '0'
  else
    level = level + amount
    if level < 0 then level = 0 end
    if state[3] == 0 then written[#written + 1] = key end
    state[1], state[2], state[3], state[4] = level, now, quota, window
  end
  out[2 * i - 1] = admitted
  out[2 * i] = string.format('%.17g', level)
end
for _, key in ipairs(written) do
  local state = seen[key]
  redis.call('HSET', key, 'l', string.format('%.17g', state[1]),
             't', string.format('%.17g', now))
  redis.call('PEXPIRE', key, math.ceil(state[1] * state[4] / state[3] / 1000) + 1)
end
return table.concat(out, ' ')
"""
"""GCRA steps on the server (see the module docstring), one per key, in order: ``ARGV`` holds
four values per key: op (``take``, ``adjust`` or ``lease``), quota, window (µs), amount. A
``lease`` takes its whole amount only while the level stays at most half the quota with it
(ratelimit/_lease.py), else it is a ``take`` of 1; its reply's first value is the units taken.
A key may appear more than once (each step sees the one before). One ``TIME`` for the whole
batch. A level is returned as text: a Lua number becomes an integer reply, which would truncate
it. A key expires once its level has drained to zero, so idle counters cost no memory. (All
keys of a batch must live on one server: Redis Cluster is not supported.)

Why it reads each key once and writes it once, and answers one string (``admitted level``
pairs, space-separated): under load a batch is mostly steps on the same few counters (a global
policy: all of them on one), and per step an ``HMGET``, ``HSET`` and ``PEXPIRE`` cost the
server ~6 µs of CPU, which on a small machine is taken from the gateway; and a reply of two
elements per step cost the gateway a parse of each (redis-py's parser reads element by element),
where one bulk string is one read and one ``split``. The steps still run in order on the state
the one before left (the table ``seen``), within one script: the decisions are the same."""


@dataclass(frozen=True, slots=True)
class LuaScript:
    """A script's text and its SHA-1 (``EVALSHA`` sends the digest, not the text)."""

    source: str
    sha: str

    @classmethod
    def of(cls, source: str) -> LuaScript:
        return cls(source, hashlib.sha1(source.encode()).hexdigest())


GCRA = LuaScript.of(_SCRIPT)


class ScriptRunner(Protocol):
    """The one Redis operation the limiter needs: run a script atomically.

    Raises :class:`BackendUnavailable` when the server cannot be reached or does not answer
    in time. Kept this small so the Redis client can be swapped for the process's shared pool.
    """

    async def eval(self, script: LuaScript, keys: list[str], args: list[str]) -> Any: ...


class RedisBuckets:
    """Counters on a Redis server; concurrent steps share one :data:`GCRA` script run.

    Why batch: a round trip through ``redis.asyncio`` costs ~100 µs of this process's CPU,
    a quarter of what a whole request costs the gateway at full load. Steps issued while
    a batch is on its way are queued and go together in the next one (at most
    :data:`MAX_BATCH`), so under load the cost per request shrinks with the load, and a lone
    request still goes at once. The script runs the steps in queue order, atomically, so
    batching changes no decision.
    """

    MAX_BATCH = 128

    def __init__(self, runner: ScriptRunner) -> None:
        self._runner = runner
        self._queue: list[tuple[str, list[str], asyncio.Future[tuple[int, float]]]] = []
        self._sender: asyncio.Task[None] | None = None

    async def take(self, key: str, quota: int, window_us: int, amount: int) -> Decision:
        admitted, level = await self._step(key, "take", quota, window_us, amount)
        return Decision(bool(admitted), level)

    async def adjust(self, key: str, quota: int, window_us: int, delta: int) -> None:
        await self._step(key, "adjust", quota, window_us, delta)

    async def lease(self, key: str, quota: int, window_us: int, units: int) -> tuple[int, float]:
        """Take ``units`` at once if the level stays at most half the quota, else 1 (if it
        fits): the units taken (0: refused) and the level after."""
        return await self._step(key, "lease", quota, window_us, units)

    def adjust_later(self, key: str, quota: int, window_us: int, delta: int) -> None:
        """:meth:`adjust` without waiting for it (with the next batch; a failure is ignored:
        what is not given back drains like any other units)."""
        self._step(key, "adjust", quota, window_us, delta).add_done_callback(_ignore_failure)

    def _step(
        self, key: str, op: str, quota: int, window_us: int, amount: int
    ) -> asyncio.Future[tuple[int, float]]:
        """Queue a step; the future is its ``(admitted, level)`` (a plain function returning
        it, not a coroutine: one frame fewer per request)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[int, float]] = loop.create_future()
        self._queue.append((key, [op, str(quota), str(window_us), str(amount)], future))
        if self._sender is None:
            self._sender = loop.create_task(self._send())
        return future

    async def _send(self) -> None:
        """Send queued steps, a batch at a time, until the queue is empty."""
        try:
            while self._queue:
                batch = self._queue[: self.MAX_BATCH]
                del self._queue[: self.MAX_BATCH]
                keys = [key for key, _, _ in batch]
                args = [arg for _, step, _ in batch for arg in step]
                try:
                    reply = await self._runner.eval(GCRA, keys, args)
                except BackendUnavailable as exc:
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(BackendUnavailable(str(exc)))
                    continue
                except BaseException as exc:
                    for _, _, future in batch:
                        if not future.done():
                            future.set_exception(BackendUnavailable(repr(exc)))
                    raise
                fields = reply.split()
                for index, (_, _, future) in enumerate(batch):
                    if not future.done():
                        future.set_result((int(fields[2 * index]), float(fields[2 * index + 1])))
        finally:
            self._sender = None

    async def flush(self) -> None:
        """Wait until every queued step has been sent and answered (or has failed)."""
        sender = self._sender
        if sender is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(sender)

    async def close(self) -> None:
        """Stop sending (queued steps fail as unavailable)."""
        sender = self._sender
        if sender is not None:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sender
        for _, _, future in self._queue:
            if not future.done():
                future.set_exception(BackendUnavailable("closed"))
        self._queue.clear()


def _ignore_failure(future: asyncio.Future[tuple[int, float]]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: not logged as "never retrieved"
