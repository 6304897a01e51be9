"""Gateway-key authentication for the data plane.

Two styles, told apart by one rule: if ``Helicone-Auth`` is present it carries the gateway key
and ``Authorization`` belongs to the provider (forwarded upstream); otherwise
``Authorization`` carries the gateway key and is never forwarded. An ``Authorization`` that
carries the gateway key itself (a client sending its key in both headers) is no provider key:
it is not forwarded either (see also :func:`gateway.upstream.upstream_request_headers`).

Keys are looked up by their SHA-256 digest, so comparing happens on digests and the lookup's
timing says nothing about the key. Results (hits and misses) are cached in-process for
``GATEWAY_KEY_CACHE_TTL_SECONDS``; a revocation takes effect within that time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.errors import GatewayError
from gateway.keys import hash_key
from gateway.store import KeyIdentity

_MAX_ENTRIES = 10_000


class KeyLookup(Protocol):
    async def find_active_key(self, key_hash: str) -> KeyIdentity | None: ...


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the request carries: the gateway key and, maybe, the client's own provider key."""

    gateway_key: str | None
    provider_authorization: str | None


def _bearer(value: str) -> str:
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    return value.strip()


def bearer_token(value: str) -> str:
    """The token of ``Bearer <token>`` (any case, spacing), or the value itself."""
    return _bearer(value)


def carries_key(value: str, key: str) -> bool:
    """Whether a header value is ``key``, bare or as ``Bearer <key>`` (any case, spacing)."""
    return _bearer(value) == key


def resolve_credentials(helicone_auth: str | None, authorization: str | None) -> Credentials:
    """Apply the two-styles rule to the ``Helicone-Auth`` and ``Authorization`` values.

    Takes values, not headers: :mod:`gateway.context` is the one reader of ``Helicone-*``
    headers.
    """
    if helicone_auth:
        key = _bearer(helicone_auth)
        if authorization and carries_key(authorization, key):
            authorization = None
        return Credentials(key, authorization or None)
    return Credentials(_bearer(authorization) if authorization else None, None)


class KeyCache:
    """Resolves gateway keys to identities with a short-lived in-process cache.

    Concurrent misses for the same key share one store query, so a burst of requests with
    a freshly expired entry costs one round trip, not one per request.
    """

    def __init__(
        self,
        store: KeyLookup,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[str, tuple[float, KeyIdentity | None]] = {}
        self._inflight: dict[str, asyncio.Future[KeyIdentity | None]] = {}

    def peek(self, digest: str) -> KeyIdentity | None:
        """The identity cached for ``digest`` and not expired, without awaiting: None when
        the next step is a store query (nothing cached, expired, or a key known not to
        exist: :meth:`resolve_digest` answers those)."""
        entry = self._entries.get(digest)
        if entry is not None and entry[0] > self._clock():
            return entry[1]
        return None

    async def resolve(self, key: str) -> KeyIdentity | None:
        return await self.resolve_digest(hash_key(key))

    async def resolve_digest(self, digest: str) -> KeyIdentity | None:
        """:meth:`resolve` by the key's digest: what a dashboard session keeps instead of the
        key itself (gateway/dashboard/sessions.py), so a revoked key ends its sessions too."""
        now = self._clock()
        entry = self._entries.get(digest)
        if entry is not None and entry[0] > now:
            return entry[1]
        pending = self._inflight.get(digest)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[KeyIdentity | None] = asyncio.get_running_loop().create_future()
        self._inflight[digest] = future
        try:
            identity = await self._store.find_active_key(digest)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            self._inflight.pop(digest, None)
        if len(self._entries) >= _MAX_ENTRIES:
            self._entries.clear()
        self._entries[digest] = (self._clock() + self._ttl, identity)
        future.set_result(identity)
        return identity


class Authenticator:
    """Turns request credentials into the org identity, or a 401."""

    def __init__(self, cache: KeyCache, anonymous: KeyIdentity | None) -> None:
        self._cache = cache
        self._anonymous = anonymous

    def cached(self, credentials: Credentials) -> KeyIdentity | None:
        """The identity of ``credentials`` when the key cache has it (the usual request:
        no await, no coroutine); None when :meth:`authenticate` must decide (a store query,
        or a 401)."""
        if self._anonymous is not None:
            return self._anonymous
        key = credentials.gateway_key
        return self._cache.peek(hash_key(key)) if key else None

    async def authenticate(self, credentials: Credentials) -> KeyIdentity:
        if self._anonymous is not None:
            return self._anonymous
        key = credentials.gateway_key
        if not key:
            raise GatewayError(
                401,
                "Missing gateway key. Send 'Authorization: Bearer <gateway key>' (or "
                "'Helicone-Auth: Bearer <gateway key>' when Authorization carries a provider key).",
                code="missing_api_key",
            )
        return await self.authenticate_digest(hash_key(key))

    async def authenticate_digest(self, digest: str) -> KeyIdentity:
        """The identity of the key with SHA-256 ``digest`` (a dashboard session's key), or a
        401 once it is revoked; anonymous access answers as for any key."""
        if self._anonymous is not None:
            return self._anonymous
        try:
            identity = await self._cache.resolve_digest(digest)
        except Exception as exc:
            raise GatewayError(
                503, "The key store is unavailable; try again shortly.", code="auth_unavailable"
            ) from exc
        if identity is None:
            raise GatewayError(
                401,
                "Invalid gateway key. Keys look like 'sk-helicone-…'; create one with "
                "'gateway keys create'.",
                code="invalid_api_key",
            )
        return identity
