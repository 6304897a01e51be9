"""An organisation's own provider keys (BYOK) as the router reads them: cached, per request.

``await runtime.provider_keys.list_provider_keys(org_id, provider=None)`` returns the keys a
router may use, decrypted, in the order it should try them (the provider's default key first,
then ``ok``, ``unknown`` and ``error`` keys, most recently validated first; ``invalid`` keys
never). Each :class:`gateway.store.ProviderKeyRecord` carries the secret (``api_key``), the
deployment (Azure endpoint and deployment, Bedrock region, Vertex project and location, custom
base URL) and the ``deployment_id`` that ``model/provider/<deployment_id>`` names.

The cache keeps the rows *sealed* (still encrypted) for ``GATEWAY_PROVIDER_KEY_CACHE_TTL_SECONDS``;
:meth:`ProviderKeyCache.list_provider_keys` decrypts the ones asked for on every call (about
2 µs a key). The router's synchronous path (:meth:`ProviderKeyCache.cached`) decrypts a fresh
entry's rows once and keeps the records with the entry, next to a scratch ``memo`` the router
fills (the organisation's plans, its keys' native targets): both go when the entry does — at
the TTL, or at once when a change made through this process's API invalidates the
organisation — so nothing worked out from a rotated or revoked key outlives the TTL, and other
processes see a change within it, as before. (Decrypted keys therefore stay in the process's
memory while the entry does, not only while a request holds them.) Concurrent misses for one
organisation share one query, as :class:`gateway.auth.KeyCache` does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, Protocol

from gateway.store import ProviderKeyRecord, SealedProviderKey

_MAX_ORGS = 10_000


class SealedKeySource(Protocol):
    async def usable(self, org_id: str) -> list[SealedProviderKey]: ...

    def unseal(self, sealed: SealedProviderKey) -> ProviderKeyRecord: ...


class CachedKeys:
    """One organisation's cached rows: sealed, and (once asked for) decrypted, with the
    router's memo of what it worked out from them (dropped with the entry)."""

    __slots__ = ("expires", "memo", "rows", "unsealed")

    def __init__(self, expires: float, rows: tuple[SealedProviderKey, ...]) -> None:
        self.expires = expires
        self.rows = rows
        self.unsealed: tuple[ProviderKeyRecord, ...] | None = None
        self.memo: dict[Any, Any] = {}
        """The router's: plans and native targets made from :attr:`unsealed`."""


class ProviderKeyCache:
    """Per-organisation cache of usable provider keys (see the module doc)."""

    def __init__(
        self,
        store: SealedKeySource,
        ttl_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[str, CachedKeys] = {}
        self._inflight: dict[str, asyncio.Future[tuple[SealedProviderKey, ...]]] = {}
        self._invalidations = 0

    async def list_provider_keys(
        self, org_id: str, provider: str | None = None
    ) -> list[ProviderKeyRecord]:
        """The usable keys of ``org_id`` (of one ``provider`` slug, or all), decrypted, in
        routing order. Raises :class:`gateway.store.DecryptionError` when a key cannot be
        decrypted (a wrong ``GATEWAY_ENCRYPTION_KEY``): a loud failure, rather than quietly
        serving the organisation's traffic on the operator's keys."""
        rows = await self._sealed(org_id)
        return [
            self._store.unseal(row) for row in rows if provider is None or row.provider == provider
        ]

    def cached_keys(self, org_id: str) -> list[ProviderKeyRecord] | None:
        """:meth:`list_provider_keys` (all providers) when the organisation's rows are cached
        and fresh, without awaiting (the usual request); None when a store query is due."""
        entry = self.cached(org_id)
        return None if entry is None else list(entry.unsealed or ())

    def cached(self, org_id: str) -> CachedKeys | None:
        """The organisation's entry when it is cached and fresh, its rows decrypted (once per
        entry, the same records every time); None when a store query is due. Raises
        :class:`gateway.store.DecryptionError` as :meth:`list_provider_keys` does (nothing is
        kept then)."""
        entry = self._entries.get(org_id)
        if entry is None or entry.expires <= self._clock():
            return None
        if entry.unsealed is None:
            unseal = self._store.unseal
            entry.unsealed = tuple(unseal(row) for row in entry.rows)
        return entry

    def invalidate(self, org_id: str) -> None:
        """Forget ``org_id``'s keys (after a change made in this process); a read already
        under way is not cached either (it may predate the change)."""
        self._entries.pop(org_id, None)
        self._inflight.pop(org_id, None)
        self._invalidations += 1

    async def _sealed(self, org_id: str) -> tuple[SealedProviderKey, ...]:
        entry = self._entries.get(org_id)
        if entry is not None and entry.expires > self._clock():
            return entry.rows
        pending = self._inflight.get(org_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[tuple[SealedProviderKey, ...]] = (
            asyncio.get_running_loop().create_future()
        )
        self._inflight[org_id] = future
        invalidations = self._invalidations
        try:
            rows = tuple(await self._store.usable(org_id))
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            if self._inflight.get(org_id) is future:
                del self._inflight[org_id]
        if invalidations == self._invalidations:
            if len(self._entries) >= _MAX_ORGS:
                self._entries.clear()
            self._entries[org_id] = CachedKeys(self._clock() + self._ttl, rows)
        future.set_result(rows)
        return rows
