"""The process's one Redis connection pool, shared by the response cache and rate limits.

A gateway process talks to Redis only through :class:`SharedRedis`: one ``redis.asyncio``
client over one blocking connection pool, created at startup from ``REDIS_URL`` and closed at
shutdown. Every call goes through :meth:`SharedRedis.run`, which is where the availability
rule lives (reference §2, "feature failures must fail-open"):

* a call that fails (connection refused or lost, a Redis error) or overruns its time budget
  raises :class:`RedisUnavailable`; the caller serves the request without the feature (no
  cache, no limit) — Redis never fails a request;
* each fault is counted, and logged at most once per ``log_interval`` (a Redis outage under
  load would otherwise write a line per request);
* after a connection fault Redis is left alone for ``retry_after`` seconds: calls in that
  window raise at once, without a connection attempt, so that a dead Redis costs requests
  nothing. The first call after the window is the probe: when it succeeds Redis is back
  (logged once), when it fails the window starts again. A timeout is a fault but does not
  open the window (one slow reply under load is not an outage);
* :meth:`health` gives the counters and the state for ``/healthz`` (numbers only: an error
  text could name internal hosts).

redis-py's own retries are off (``Retry(NoBackoff(), 0)``): its default retries with
exponential back-off of up to seconds, far past any budget a request can afford. Keys are the
callers' business; :attr:`SharedRedis.prefix` (``GATEWAY_REDIS_KEY_PREFIX``) starts every key
so that several deployments (or test runs) can share one server.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.connection import BlockingConnectionPool
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger("gateway.redis")

T = TypeVar("T")

Client = aioredis.Redis
"""The client type :meth:`SharedRedis.run` hands to an operation."""


class RedisUnavailable(Exception):
    """Redis did not serve a call (down, too slow, or in its back-off window): go on without
    the feature that needed it."""


class SharedRedis:
    """One pool to Redis per process, failing open (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "gateway:",
        max_connections: int = 64,
        connect_timeout: float = 1.0,
        retry_after: float = 1.0,
        log_interval: float = 30.0,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.retry_after = retry_after
        self.log_interval = log_interval
        self._max_connections = max_connections
        self._connect_timeout = connect_timeout
        self._client: Client | None = None
        self._down_until = 0.0
        self._down = False
        self._last_log = -float("inf")
        self._unlogged = 0
        self.calls = 0
        self.faults = 0
        self.timeouts = 0
        self.skipped = 0
        self.recoveries = 0

    async def start(self) -> None:
        """Create the pool (connections open on first use: a Redis that is down at startup
        is an outage like any other, not a reason to refuse to start)."""
        pool = BlockingConnectionPool.from_url(
            self.url,
            max_connections=self._max_connections,
            timeout=self._connect_timeout,
            socket_connect_timeout=self._connect_timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._client = aioredis.Redis(connection_pool=pool, retry=Retry(NoBackoff(), 0))

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
            await client.connection_pool.disconnect()

    @property
    def client(self) -> Client:
        """The raw client (to register a script once); send commands through :meth:`run`."""
        if self._client is None:
            raise RuntimeError("SharedRedis.start() was not called")
        return self._client

    @property
    def available(self) -> bool:
        """False inside the back-off window after a connection fault."""
        return not self._down or time.monotonic() >= self._down_until

    async def run(self, operation: Callable[[Client], Awaitable[T]], budget: float) -> T:
        """``await operation(client)`` within ``budget`` seconds; :class:`RedisUnavailable`
        when it fails, overruns, or Redis is in its back-off window."""
        if not self.available:
            self.skipped += 1
            raise RedisUnavailable("redis is in its back-off window")
        client = self.client
        self.calls += 1
        try:
            async with asyncio.timeout(budget):
                result = await operation(client)
        except (TimeoutError, RedisTimeoutError) as exc:
            self.timeouts += 1
            self._fault(exc, opens_window=False)
            raise RedisUnavailable("redis call timed out") from exc
        except (RedisConnectionError, OSError) as exc:
            self._fault(exc, opens_window=True)
            raise RedisUnavailable("redis is unreachable") from exc
        except RedisError as exc:
            self._fault(exc, opens_window=False)
            raise RedisUnavailable(f"redis error: {exc.__class__.__name__}") from exc
        if self._down:
            self._recovered()
        return result

    def _fault(self, exc: BaseException, *, opens_window: bool) -> None:
        self.faults += 1
        self._unlogged += 1
        now = time.monotonic()
        if opens_window:
            self._down = True
            self._down_until = now + self.retry_after
        if now - self._last_log >= self.log_interval:
            logger.warning(
                "redis fault (%d since the last report): %r; serving without cache and rate "
                "limits until it answers again (next try in %.1fs)",
                self._unlogged, exc, self.retry_after if opens_window else 0.0,
            )
            self._last_log = now
            self._unlogged = 0

    def _recovered(self) -> None:
        self._down = False
        self.recoveries += 1
        logger.warning("redis is reachable again; cache and rate limits resume")

    def health(self) -> dict[str, object]:
        """Counters and state for ``/healthz``: ``"down"`` inside a back-off window (or
        until the probe after it succeeds), else ``"ok"``."""
        return {
            "state": "down" if self._down else "ok",
            "calls": self.calls,
            "faults": self.faults,
            "timeouts": self.timeouts,
            "skipped": self.skipped,
            "recoveries": self.recoveries,
        }
