"""Dashboard sign-in sessions: an opaque cookie mapped, server-side, to a key's digest.

Signing in with a gateway key creates a session: a random id (256 bits) goes to the browser
in an ``HttpOnly; SameSite=Strict`` cookie, and the server keeps, under the id's SHA-256
digest, the *digest* of the key (never the key), a CSRF token and an expiry. Every API call
that carries the cookie instead of an ``Authorization`` header is authenticated through the
key's digest again (:meth:`gateway.auth.Authenticator.authenticate_digest`), so a revoked key
ends its sessions within ``GATEWAY_KEY_CACHE_TTL_SECONDS``, and must carry the session's CSRF
token in ``X-Gateway-CSRF``: a page on another site can neither read the token nor, with
``SameSite=Strict``, send the cookie.

Where sessions live: with ``REDIS_URL``, in Redis (:class:`RedisTable`; every worker and
replica sees every session, and a restart signs no one out), else in this process's memory
(:class:`MemoryTable`: the single-process default, where a restart signs everyone out). A
Redis that does not answer makes cookie sign-ins a 503 (never an open door); calls with a key
in the headers do not touch the table.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import Protocol, TypeVar

import orjson

from gateway.errors import GatewayError
from gateway.redisconn import Client, RedisUnavailable, SharedRedis

COOKIE_NAME = "gateway_dashboard"
CSRF_HEADER = "x-gateway-csrf"
MAX_SESSIONS = 10_000
"""The memory table's bound (the oldest sessions go first)."""
REDIS_BUDGET_SECONDS = 1.0
T = TypeVar("T")

PLAYGROUND_IDENTITY = "gateway.dashboard_key_digest"
"""The ASGI scope extension naming the key (by its SHA-256 digest) that a request the
dashboard's playground runs in process is made as (gateway/dashboard/playground.py). Only code
in the process can put it in a scope; a client's request never carries it."""


@dataclass(frozen=True, slots=True)
class DashboardSession:
    """What the server remembers of one sign-in."""

    key_digest: str
    """SHA-256 of the gateway key (:func:`gateway.keys.hash_key`): re-checked on every call."""
    key_id: str
    org_id: str
    org_name: str
    csrf: str
    expires_at: float
    """Unix time (the sessions' clock), so that every process agrees on it."""


class SessionTable(Protocol):
    """Where sessions are kept, by the digest of their id."""

    async def put(self, digest: str, session: DashboardSession, ttl: float) -> None: ...

    async def get(self, digest: str) -> DashboardSession | None: ...

    async def delete(self, digest: str) -> None: ...


class MemoryTable:
    """Sessions in this process's memory: one process only (``--workers 1``)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._sessions: dict[str, DashboardSession] = {}

    async def put(self, digest: str, session: DashboardSession, ttl: float) -> None:
        now = self._clock()
        for old in [d for d, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[old]
        while len(self._sessions) >= MAX_SESSIONS:  # dicts keep insertion order: oldest first
            del self._sessions[next(iter(self._sessions))]
        self._sessions[digest] = session

    async def get(self, digest: str) -> DashboardSession | None:
        return self._sessions.get(digest)

    async def delete(self, digest: str) -> None:
        self._sessions.pop(digest, None)


class RedisTable:
    """Sessions in Redis (``<GATEWAY_REDIS_KEY_PREFIX>dashboard:<digest>``, expiring with
    the session), shared by every worker and replica."""

    def __init__(self, redis: SharedRedis) -> None:
        self._redis = redis

    def _key(self, digest: str) -> str:
        return f"{self._redis.prefix}dashboard:{digest}"

    async def put(self, digest: str, session: DashboardSession, ttl: float) -> None:
        value = orjson.dumps(asdict(session))

        async def put(client: Client) -> None:
            await client.set(self._key(digest), value, ex=max(1, round(ttl)))

        await self._run(put)

    async def get(self, digest: str) -> DashboardSession | None:
        async def get(client: Client) -> bytes | str | None:
            value: bytes | str | None = await client.get(self._key(digest))
            return value

        raw = await self._run(get)
        if raw is None:
            return None
        try:
            return DashboardSession(**orjson.loads(raw))
        except (orjson.JSONDecodeError, TypeError):
            return None  # not a session this version wrote: signed out

    async def delete(self, digest: str) -> None:
        async def delete(client: Client) -> None:
            await client.delete(self._key(digest))

        await self._run(delete)

    async def _run(self, operation: Callable[[Client], Awaitable[T]]) -> T:
        try:
            return await self._redis.run(operation, REDIS_BUDGET_SECONDS)
        except RedisUnavailable:
            raise GatewayError(
                503, "The dashboard's session store (Redis) is unavailable; try again shortly.",
                code="session_store_unavailable",
            ) from None  # fmt: skip


class DashboardSessions:
    """The dashboard's sessions (one per :class:`gateway.runtime.Runtime`)."""

    def __init__(
        self,
        ttl_seconds: float,
        table: SessionTable | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        """Replaceable (tests move it forward to expire sessions)."""
        self.table: SessionTable = table if table is not None else MemoryTable(self._now)

    def _now(self) -> float:
        return self.clock()

    async def create(self, key_digest: str, key_id: str, org_id: str, org_name: str
                     ) -> tuple[str, DashboardSession]:  # fmt: skip
        """A new session: ``(cookie value, session)``."""
        session_id = secrets.token_urlsafe(32)
        session = DashboardSession(
            key_digest=key_digest,
            key_id=key_id,
            org_id=org_id,
            org_name=org_name,
            csrf=secrets.token_urlsafe(32),
            expires_at=self.clock() + self.ttl_seconds,
        )
        await self.table.put(_digest(session_id), session, self.ttl_seconds)
        return session_id, session

    async def get(self, session_id: str) -> DashboardSession | None:
        """The live session of a cookie value, or None (unknown or expired: then forgotten)."""
        digest = _digest(session_id)
        session = await self.table.get(digest)
        if session is None:
            return None
        if session.expires_at <= self.clock():
            await self.table.delete(digest)
            return None
        return session

    async def delete(self, session_id: str) -> None:
        await self.table.delete(_digest(session_id))

    async def from_headers(self, headers: dict[str, str]) -> DashboardSession | None:
        """The session an API call authenticates with (lower-cased ``headers``).

        None when the call carries no dashboard cookie (it then needs a key as usual); a 401
        for a cookie whose session is gone (expired, signed out); a 403 when the CSRF header
        is missing or wrong.
        """
        session_id = cookie_value(headers.get("cookie"), COOKIE_NAME)
        if session_id is None:
            return None
        session = await self.get(session_id)
        if session is None:
            raise GatewayError(
                401, "The dashboard session has expired; sign in again.",
                code="session_expired",
            )  # fmt: skip
        check_csrf(session, headers)
        return session


def check_csrf(session: DashboardSession, headers: dict[str, str]) -> None:
    """403 unless ``X-Gateway-CSRF`` carries the session's token."""
    sent = headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise GatewayError(
            403,
            "A call with the dashboard's session cookie must carry its CSRF token in the "
            "X-Gateway-CSRF header.",
            code="csrf_failed",
        )


def cookie_value(header: str | None, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header, or None."""
    if not header:
        return None
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name and value:
            return value
    return None


def _digest(session_id: str) -> str:
    """Sessions are kept under their id's digest: the table alone signs no one in."""
    return hashlib.sha256(session_id.encode()).hexdigest()
