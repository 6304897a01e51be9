"""The limiter's Redis access: :class:`ScriptRunner` over ``redis.asyncio``.

One client per process, created at startup, on one connection (the batching in
:class:`ratelimit._buckets.RedisBuckets` never has two calls in flight). Timeouts are short and
there is at most one immediate retry (a pooled connection broken by a server restart fails
once, the retry opens a fresh one): a rate limit must never hold a request for seconds, so an
unreachable server is reported at once and the limiter fails open (ratelimit/_limiter.py).
The integrator may replace this with the process's shared pool: anything with the same
``eval`` will do.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ratelimit._buckets import BackendUnavailable, LuaScript

CONNECT_TIMEOUT_SECONDS = 0.5
COMMAND_TIMEOUT_SECONDS = 0.5


class RedisScripts:
    """Runs scripts with ``EVALSHA``, loading one with ``EVAL`` the first time (or after the
    server lost its script cache: a restart).

    On one redis-py :class:`~redis.asyncio.connection.Connection` (it connects, authenticates
    and selects the database from the URL), driven directly: the command is packed here and
    the whole call runs under one ``asyncio.timeout``. redis-py's client would pack argument by
    argument and, with a socket timeout, send through ``asyncio.wait_for`` (a task per call);
    at one batch per round trip that was most of the limiter's CPU (README, performance).
    """

    def __init__(self, url: str) -> None:
        pool = aioredis.ConnectionPool.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS, socket_timeout=None
        )
        # One connection, not a pool: RedisBuckets sends one batch at a time.
        self._connection = pool.make_connection()  # type: ignore[no-untyped-call]
        self._bulks: dict[str, bytes] = {}
        """Arguments already encoded as RESP bulk strings: a batch repeats the same few (the
        counters' keys, ``take``, a policy's quota and window, amount ``1``)."""

    async def eval(self, script: LuaScript, keys: list[str], args: list[str]) -> Any:
        try:
            try:
                return await self._call(self._pack(b"EVALSHA", script.sha, keys, args))
            except NoScriptError:
                return await self._call(self._pack(b"EVAL", script.source, keys, args))
        except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
            raise BackendUnavailable(f"{exc.__class__.__name__}: {exc}") from exc

    async def _call(self, command: bytes) -> Any:
        """Send ``command``, read its reply; a broken connection is retried once at once (a
        server restart breaks the open one; the retry connects afresh)."""
        for retry in (True, False):
            try:
                async with asyncio.timeout(COMMAND_TIMEOUT_SECONDS):
                    await self._connection.send_packed_command(command, check_health=False)
                    return await self._connection.read_response()
            except TimeoutError as exc:
                # Cancelled mid-call, redis-py has dropped the connection (no stray reply
                # can answer the next call); not retried: the budget is spent.
                await self._connection.disconnect(nowait=True)
                raise RedisTimeoutError("Redis did not answer in time") from exc
            except RedisConnectionError:
                if not retry:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        await self._connection.disconnect()

    def _pack(self, command: bytes, script: str, keys: list[str], args: list[str]) -> bytes:
        """``command script numkeys *keys *args`` in RESP (an array of bulk strings), in one
        buffer; each argument's bulk string taken from :attr:`_bulks` when it was seen before
        (bounded: values come from clients' headers, so the cache is dropped when full)."""
        bulks = self._bulks
        if len(bulks) > MAX_BULKS:
            bulks.clear()
        out = [b"*%d\r\n" % (len(keys) + len(args) + 3), _bulk(command), _bulk(script.encode()),
               _bulk(b"%d" % len(keys))]  # fmt: skip
        for part in (keys, args):
            for text in part:
                bulk = bulks.get(text)
                if bulk is None:
                    bulk = bulks[text] = _bulk(text.encode())
                out.append(bulk)
        return b"".join(out)


MAX_BULKS = 4096


def _bulk(data: bytes) -> bytes:
    return b"$%d\r\n%s\r\n" % (len(data), data)




T = TypeVar("T")


class RedisPool(Protocol):
    """A process-wide Redis pool that fails open: ``run`` awaits ``operation(client)`` within
    ``budget`` seconds or raises (down, too slow, backing off), having counted and logged the
    fault itself. main's ``gateway.redisconn.SharedRedis`` has this shape."""

    async def run(self, operation: Callable[[aioredis.Redis], Awaitable[T]], budget: float) -> T:
        ...


class PooledScripts:
    """:class:`~ratelimit._buckets.ScriptRunner` over a shared :class:`RedisPool` (the
    integration path: one pool for the cache and rate limits). Any failure the pool reports
    becomes :class:`BackendUnavailable`, so the limiter fails open."""

    def __init__(self, pool: RedisPool, budget: float = COMMAND_TIMEOUT_SECONDS) -> None:
        self._pool = pool
        self._budget = budget

    async def eval(self, script: LuaScript, keys: list[str], args: list[str]) -> Any:
        async def call(client: aioredis.Redis) -> Any:
            try:
                return await client.evalsha(script.sha, len(keys), *keys, *args)
            except NoScriptError:
                return await client.eval(script.source, len(keys), *keys, *args)

        try:
            return await self._pool.run(call, self._budget)
        except Exception as exc:  # the pool's "unavailable": counted and logged there
            raise BackendUnavailable(f"{exc.__class__.__name__}: {exc}") from exc

    async def close(self) -> None:
        """The pool belongs to the process, not to the limiter: nothing to close."""
