"""Provider keys (BYOK) in the control-plane store, encrypted at rest.

The secret and the deployment fields are one AES-GCM blob per row (:mod:`._crypto`), bound to
the row's organisation and id. What lists and routing need without the secret (provider, name,
deployment id, mask, state) is in clear columns. Reads hand out :class:`SealedProviderKey`
(the row as stored) or :class:`ProviderKeyRecord` (decrypted): the router's cache keeps the
sealed form and decrypts per use, so decrypted keys live only as long as a request needs them.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import case, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.store._crypto import MISSING_KEY_MESSAGE, EncryptionKeyError, KeyRing
from gateway.store._records import (
    PROVIDER_KEY_STATES,
    Deployment,
    ProviderKeyConflict,
    ProviderKeyNotFound,
    ProviderKeyRecord,
)
from gateway.store._schema import ProviderKey, utc_now

DEPLOYMENT_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
"""A deployment id: what may follow ``model/provider/`` in a model string (no ``/``, ``,``,
``!`` or spaces, which the grammar uses)."""

_SLUG_RUNS = re.compile(r"[^a-z0-9._-]+")
_ATTEMPTS = 5


def mask_key(key: str) -> str:
    """PostHog's mask: the first and last four characters, when there are more than eight."""
    return f"{key[:4]}...{key[-4:]}" if len(key) > 8 else "****"


def _slug(name: str, provider: str) -> str:
    slug = _SLUG_RUNS.sub("-", name.lower()).strip("-._")[:48].rstrip("-._")
    return slug or provider


def _context(org_id: str, key_id: str) -> bytes:
    return f"provider_key\x00{org_id}\x00{key_id}".encode()


@dataclass(frozen=True, slots=True)
class SealedProviderKey:
    """A provider-key row as stored: everything but the secret and deployment in clear."""

    id: str
    org_id: str
    provider: str
    name: str
    deployment_id: str
    config_ciphertext: bytes
    api_key_masked: str
    state: str
    error_message: str | None
    is_default: bool
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None
    last_validated_at: datetime | None

    @classmethod
    def of(cls, row: ProviderKey) -> SealedProviderKey:
        return cls(
            id=row.id,
            org_id=row.org_id,
            provider=row.provider,
            name=row.name,
            deployment_id=row.deployment_id,
            config_ciphertext=row.config_ciphertext,
            api_key_masked=row.api_key_masked,
            state=row.state,
            error_message=row.error_message,
            is_default=row.is_default,
            created_at=row.created_at,
            updated_at=row.updated_at,
            last_used_at=row.last_used_at,
            last_validated_at=row.last_validated_at,
        )


_UNSET: Any = object()


class ProviderKeyStore:
    """Create, read, update and delete an organisation's provider keys.

    Shares the :class:`gateway.store.ControlStore`'s engine; reach it as
    ``ControlStore.provider_keys``. Every method that touches a secret raises
    :class:`gateway.store.EncryptionKeyError` when no key ring is configured, and reads raise
    :class:`gateway.store.DecryptionError` for a row the ring cannot open (a wrong
    ``GATEWAY_ENCRYPTION_KEY``): an error, never garbage.
    """

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], keyring: KeyRing | None
    ) -> None:
        self._sessions = sessions
        self._keyring = keyring

    @property
    def keyring(self) -> KeyRing:
        if self._keyring is None:
            raise EncryptionKeyError(MISSING_KEY_MESSAGE)
        return self._keyring

    # -- sealing -----------------------------------------------------------------------

    def _seal(self, org_id: str, key_id: str, api_key: str, deployment: Deployment) -> bytes:
        payload = orjson.dumps({"api_key": api_key, **deployment.as_dict()})
        return self.keyring.encrypt(payload, _context(org_id, key_id))

    def unseal(self, sealed: SealedProviderKey) -> ProviderKeyRecord:
        """Decrypt one row (about 2 µs): the record with its secret and deployment."""
        plain = self.keyring.decrypt(sealed.config_ciphertext, _context(sealed.org_id, sealed.id))
        config: dict[str, str] = orjson.loads(plain)
        api_key = config.pop("api_key")
        return ProviderKeyRecord(
            id=sealed.id,
            org_id=sealed.org_id,
            provider=sealed.provider,
            name=sealed.name,
            deployment_id=sealed.deployment_id,
            api_key=api_key,
            api_key_masked=sealed.api_key_masked,
            deployment=Deployment(**config),
            state=sealed.state,
            error_message=sealed.error_message,
            is_default=sealed.is_default,
            created_at=sealed.created_at,
            updated_at=sealed.updated_at,
            last_used_at=sealed.last_used_at,
            last_validated_at=sealed.last_validated_at,
        )

    # -- writes ------------------------------------------------------------------------

    async def create(
        self,
        org_id: str,
        *,
        provider: str,
        name: str,
        api_key: str,
        deployment: Deployment | None = None,
        deployment_id: str | None = None,
        state: str = "unknown",
        error_message: str | None = None,
        validated: bool = False,
        make_default: bool = False,
        created_by_key_id: str | None = None,
    ) -> ProviderKeyRecord:
        """Store a new key. ``deployment_id``: given (must be free, else
        :class:`ProviderKeyConflict`) or derived from ``name`` (``-2``, ``-3``… when taken).
        ``make_default``: it becomes the provider's default key (the previous one stops
        being). ``validated``: ``state`` comes from a live check made just now."""
        _check_state(state)
        if deployment_id is not None and not DEPLOYMENT_ID_PATTERN.fullmatch(deployment_id):
            raise ValueError(f"invalid deployment id {deployment_id!r}")
        deployment = deployment or Deployment()
        for _attempt in range(_ATTEMPTS):
            key_id = str(uuid.uuid4())
            now = utc_now()
            try:
                async with self._sessions.begin() as session:
                    chosen = deployment_id or await self._free_deployment_id(
                        session, org_id, provider, _slug(name, provider)
                    )
                    if deployment_id is not None and await self._taken(
                        session, org_id, provider, deployment_id
                    ):
                        raise ProviderKeyConflict(
                            f"deployment id {deployment_id!r} is taken for {provider}"
                        )
                    if make_default:
                        await self._clear_default(session, org_id, provider)
                    row = ProviderKey(
                        id=key_id,
                        org_id=org_id,
                        provider=provider,
                        name=name,
                        deployment_id=chosen,
                        config_ciphertext=self._seal(org_id, key_id, api_key, deployment),
                        encryption_key_id=self.keyring.current_id,
                        api_key_masked=mask_key(api_key),
                        state=state,
                        error_message=error_message,
                        is_default=make_default,
                        created_by_key_id=created_by_key_id,
                        created_at=now,
                        updated_at=now,
                        last_used_at=None,
                        last_validated_at=now if validated else None,
                    )
                    session.add(row)
            except IntegrityError:
                # A concurrent create took the derived id or the default slot: try again.
                if deployment_id is not None and not make_default:
                    raise ProviderKeyConflict(
                        f"deployment id {deployment_id!r} is taken for {provider}"
                    ) from None
                continue
            return self.unseal(SealedProviderKey.of(row))
        raise ProviderKeyConflict("could not store the key after several concurrent conflicts")

    async def update(
        self,
        org_id: str,
        key_id: str,
        *,
        name: str | None = None,
        api_key: str | None = None,
        deployment: Deployment | None = None,
        state: str | None = None,
        error_message: str | None = _UNSET,
        validated: bool = False,
        make_default: bool = False,
    ) -> ProviderKeyRecord:
        """Change what is given (``deployment`` replaces the stored one whole); raises
        :class:`ProviderKeyNotFound`."""
        if state is not None:
            _check_state(state)
        async with self._sessions.begin() as session:
            row = await self._row(session, org_id, key_id, lock=True)
            if api_key is not None or deployment is not None:
                current = self.unseal(SealedProviderKey.of(row))
                secret = api_key if api_key is not None else current.api_key
                target = deployment if deployment is not None else current.deployment
                row.config_ciphertext = self._seal(org_id, key_id, secret, target)
                row.encryption_key_id = self.keyring.current_id
                row.api_key_masked = mask_key(secret)
            if name is not None:
                row.name = name
            if state is not None:
                row.state = state
            if error_message is not _UNSET:
                row.error_message = error_message
            if validated:
                row.last_validated_at = utc_now()
            if make_default and not row.is_default:
                await self._clear_default(session, org_id, row.provider)
                row.is_default = True
            row.updated_at = utc_now()
            sealed = SealedProviderKey.of(row)
        return self.unseal(sealed)

    async def set_state(
        self, org_id: str, key_id: str, state: str, error_message: str | None
    ) -> ProviderKeyRecord:
        """Record a validation's outcome (the validate endpoint; a router seeing the provider
        refuse the key sets ``"invalid"``, ``"Invalid API key"``)."""
        return await self.update(
            org_id, key_id, state=state, error_message=error_message, validated=True
        )

    async def delete(self, org_id: str, key_id: str) -> None:
        """Delete (hard, as PostHog does); raises :class:`ProviderKeyNotFound`."""
        async with self._sessions.begin() as session:
            result = await session.execute(
                delete(ProviderKey).where(ProviderKey.org_id == org_id, ProviderKey.id == key_id)
            )
            if _rowcount(result) == 0:
                raise ProviderKeyNotFound(key_id)

    async def mark_used(self, key_ids: list[str]) -> None:
        """Set ``last_used_at`` to now for these keys (a router calls it, debounced)."""
        if not key_ids:
            return
        async with self._sessions.begin() as session:
            await session.execute(
                update(ProviderKey).where(ProviderKey.id.in_(key_ids)).values(
                    last_used_at=utc_now()
                )
            )

    async def reencrypt(self) -> int:
        """Re-encrypt every row not under the ring's current key; returns how many.

        The rotation step between adding a new key (first) and dropping the old ones.
        """
        current = self.keyring.current_id
        changed = 0
        async with self._sessions.begin() as session:
            rows = (
                await session.execute(
                    select(ProviderKey)
                    .where(ProviderKey.encryption_key_id != current)
                    .with_for_update()
                )
            ).scalars()
            for row in rows:
                context = _context(row.org_id, row.id)
                plain = self.keyring.decrypt(row.config_ciphertext, context)
                row.config_ciphertext = self.keyring.encrypt(plain, context)
                row.encryption_key_id = current
                changed += 1
        return changed

    # -- reads -------------------------------------------------------------------------

    async def get(self, org_id: str, key_id: str) -> ProviderKeyRecord:
        async with self._sessions() as session:
            row = await self._row(session, org_id, key_id)
            sealed = SealedProviderKey.of(row)
        return self.unseal(sealed)

    async def list_keys(
        self,
        org_id: str,
        provider: str | None = None,
        *,
        limit: int | None = None,
        offset: int = 0,
    ) -> list[ProviderKeyRecord]:
        """Newest first (PostHog's order), decrypted."""
        query = self._query(org_id, provider).order_by(
            ProviderKey.created_at.desc(), ProviderKey.id
        )
        if limit is not None:
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        async with self._sessions() as session:
            rows = [SealedProviderKey.of(row) for row in (await session.execute(query)).scalars()]
        return [self.unseal(row) for row in rows]

    async def count(self, org_id: str, provider: str | None = None) -> int:
        query = select(func.count()).select_from(ProviderKey).where(ProviderKey.org_id == org_id)
        if provider is not None:
            query = query.where(ProviderKey.provider == provider)
        async with self._sessions() as session:
            return int((await session.execute(query)).scalar_one())

    async def usable(self, org_id: str) -> list[SealedProviderKey]:
        """The organisation's keys a router may use, sealed, in the router's order: the
        provider's default first, then ``ok``, ``unknown``, ``error`` keys, each most
        recently validated (then created) first. ``invalid`` keys are left out."""
        rank = case(
            (ProviderKey.state == "ok", 0), (ProviderKey.state == "unknown", 1), else_=2
        )
        query = (
            self._query(org_id, None)
            .where(ProviderKey.state != "invalid")
            .order_by(
                ProviderKey.provider,
                ProviderKey.is_default.desc(),
                rank,
                func.coalesce(ProviderKey.last_validated_at, ProviderKey.created_at).desc(),
                ProviderKey.created_at.desc(),
                ProviderKey.id,
            )
        )
        async with self._sessions() as session:
            return [SealedProviderKey.of(row) for row in (await session.execute(query)).scalars()]

    # -- helpers -----------------------------------------------------------------------

    @staticmethod
    def _query(org_id: str, provider: str | None) -> Any:
        query = select(ProviderKey).where(ProviderKey.org_id == org_id)
        if provider is not None:
            query = query.where(ProviderKey.provider == provider)
        return query

    @staticmethod
    async def _row(
        session: AsyncSession, org_id: str, key_id: str, lock: bool = False
    ) -> ProviderKey:
        query = select(ProviderKey).where(ProviderKey.org_id == org_id, ProviderKey.id == key_id)
        if lock:
            query = query.with_for_update()
        row = (await session.execute(query)).scalar_one_or_none()
        if row is None:
            raise ProviderKeyNotFound(key_id)
        return row

    @staticmethod
    async def _taken(session: AsyncSession, org_id: str, provider: str, slug: str) -> bool:
        query = select(ProviderKey.id).where(
            ProviderKey.org_id == org_id,
            ProviderKey.provider == provider,
            ProviderKey.deployment_id == slug,
        )
        return (await session.execute(query)).first() is not None

    async def _free_deployment_id(
        self, session: AsyncSession, org_id: str, provider: str, base: str
    ) -> str:
        query = select(ProviderKey.deployment_id).where(
            ProviderKey.org_id == org_id, ProviderKey.provider == provider
        )
        taken = set((await session.execute(query)).scalars())
        candidate, suffix = base, 1
        while candidate in taken:
            suffix += 1
            candidate = f"{base}-{suffix}"
        return candidate

    @staticmethod
    async def _clear_default(session: AsyncSession, org_id: str, provider: str) -> None:
        await session.execute(
            update(ProviderKey)
            .where(
                ProviderKey.org_id == org_id,
                ProviderKey.provider == provider,
                ProviderKey.is_default.is_(True),
            )
            .values(is_default=False)
        )
        await session.flush()


def _check_state(state: str) -> None:
    if state not in PROVIDER_KEY_STATES:
        raise ValueError(f"invalid provider key state {state!r}")


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
