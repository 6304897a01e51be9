"""The control-plane store: organisations and gateway keys in SQLite or PostgreSQL."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Row, Select, exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from gateway.keys import KEY_SCHEME, PREFIX_LENGTH, generate_key, hash_key, key_prefix
from gateway.keys import looks_like_key as _looks_like_key
from gateway.scopes import decode as decode_scopes
from gateway.scopes import encode as encode_scopes
from gateway.store._credits import CreditStore
from gateway.store._crypto import KeyRing, load_keyring
from gateway.store._engine import create_engine
from gateway.store._hql import SavedQueryStore
from gateway.store._migrate import database_revision, head_revision, upgrade_to_head
from gateway.store._prompts import PromptStore
from gateway.store._provider_keys import ProviderKeyStore
from gateway.store._records import DEFAULT_ORG, AmbiguousKey, KeyIdentity, KeyNotFound, KeyRecord
from gateway.store._schema import ApiKey, Organization, utc_now
from logging_pipeline.private import private_file

if TYPE_CHECKING:
    from gateway.settings import Settings

_PARTIAL_PREFIX = re.compile(
    rf"{re.escape(KEY_SCHEME)}[a-z0-9]{{1,{PREFIX_LENGTH - len(KEY_SCHEME)}}}"
)
"""What ``revoke_key`` accepts as a key prefix: the scheme plus one to four characters of the key,
as ``gateway keys list`` shows them. The bare scheme identifies nothing and is not accepted."""


_RecordRow = tuple[str, str, str, str | None, str, datetime, datetime | None, str | None]


def _records_query() -> Select[*_RecordRow]:
    """Key records with their organisation's name, in :class:`KeyRecord` field order."""
    return select(
        ApiKey.id,
        ApiKey.org_id,
        Organization.name,
        ApiKey.name,
        ApiKey.key_prefix,
        ApiKey.created_at,
        ApiKey.revoked_at,
        ApiKey.scopes,
    ).join(Organization, Organization.id == ApiKey.org_id)


def _to_record(row: Row[*_RecordRow]) -> KeyRecord:
    key_id, org_id, org_name, name, prefix, created_at, revoked_at, scopes = row
    return KeyRecord(
        key_id, org_id, org_name, name, prefix, created_at, revoked_at, decode_scopes(scopes)
    )


def _only_key(matches: list[KeyRecord], asked: str) -> KeyRecord:
    """The one key an id, prefix or plaintext names: none or several is an error the CLI
    shows as it is (several: their ids, so the operator can pick one)."""
    if not matches:
        raise KeyNotFound(f"no key matches {asked!r}")
    if len(matches) > 1:
        ids = ", ".join(f"{m.id} ({m.prefix})" for m in matches)
        raise AmbiguousKey(f"{asked!r} matches {len(matches)} keys: {ids}; use the key id")
    return matches[0]


class ControlStore:
    """Organisations, their gateway keys and their provider keys.

    Keys are stored only as a SHA-256 digest plus a short display prefix; the plaintext is
    returned once by :meth:`create_key` and never again. Provider keys (:attr:`provider_keys`)
    are encrypted with ``keyring``. One instance owns one engine (and its connection pool);
    create it at startup, pass it where needed, and :meth:`close` it on shutdown.
    """

    def __init__(self, database_url: str, keyring: KeyRing | None = None) -> None:
        self._engine = create_engine(database_url)
        self._sessions = async_sessionmaker(self._engine, expire_on_commit=False)
        self._keyring = keyring
        self.provider_keys = ProviderKeyStore(self._sessions, keyring)
        self.credits = CreditStore(self._engine)
        self.hql_queries = SavedQueryStore(self._sessions)
        self.prompts = PromptStore(self._sessions)

    @classmethod
    def from_settings(cls, settings: Settings) -> ControlStore:
        """The store configured by ``settings``; creates ``data_dir`` for the SQLite default.

        The key ring is ``GATEWAY_ENCRYPTION_KEY``, else for the SQLite default the data
        directory's generated ``encryption.key``; with a server database and no key it is
        ``None`` (:attr:`keyring`), and the server refuses to start.
        """
        if not settings.database_url:
            private_file(settings.data_dir / "gateway.db")
        return cls(settings.resolved_database_url, load_keyring(settings))

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @property
    def keyring(self) -> KeyRing | None:
        return self._keyring

    async def migrate(self) -> None:
        """Bring the schema to the newest packaged revision; a no-op when it already is."""
        await upgrade_to_head(self._engine)

    async def schema_revision(self) -> str | None:
        """The revision the database is at (``None`` before the first migration)."""
        return await database_revision(self._engine)

    @staticmethod
    def head_revision() -> str | None:
        """The newest revision shipped with this package."""
        return head_revision()

    async def ensure_org(self, name: str) -> str:
        """The id of organisation ``name``, creating it if missing (safe against races)."""
        name = name.strip()
        if not name:
            raise ValueError("organisation name must not be empty")
        existing = await self._org_id(name)
        if existing is not None:
            return existing
        org_id = str(uuid.uuid4())
        try:
            async with self._sessions.begin() as session:
                session.add(Organization(id=org_id, name=name, created_at=utc_now()))
        except IntegrityError:
            # Another process created it between our read and our insert.
            existing = await self._org_id(name)
            if existing is None:
                raise
            return existing
        return org_id

    async def create_key(
        self,
        org: str = DEFAULT_ORG,
        name: str | None = None,
        scopes: frozenset[str] | None = None,
    ) -> tuple[str, KeyRecord]:
        """A new key for ``org`` (created on demand): the plaintext, shown once, and its record.

        ``scopes``: native scopes (:func:`gateway.scopes.expand` turns names and aliases into
        them); ``None`` is full access.
        """
        org_id = await self.ensure_org(org)
        plaintext = generate_key()
        row = ApiKey(
            id=str(uuid.uuid4()),
            org_id=org_id,
            name=name,
            key_hash=hash_key(plaintext),
            key_prefix=key_prefix(plaintext),
            created_at=utc_now(),
            revoked_at=None,
            scopes=encode_scopes(scopes),
        )
        async with self._sessions.begin() as session:
            session.add(row)
        record = KeyRecord(
            id=row.id,
            org_id=org_id,
            org_name=org.strip(),
            name=name,
            prefix=row.key_prefix,
            created_at=row.created_at,
            revoked_at=None,
            scopes=scopes,
        )
        return plaintext, record

    async def list_keys(self, org: str | None = None) -> list[KeyRecord]:
        """All keys, oldest first, optionally of one organisation (an unknown one has none)."""
        query = _records_query().order_by(ApiKey.created_at, ApiKey.id)
        if org is not None:
            query = query.where(Organization.name == org.strip())
        async with self._sessions() as session:
            rows = (await session.execute(query)).all()
        return [_to_record(row) for row in rows]

    async def revoke_key(self, key_id_or_prefix: str) -> KeyRecord:
        """Revoke the key with this id, display prefix (or shorter prefix of it), or plaintext.

        Revoking a revoked key succeeds and keeps the original ``revoked_at``.
        """
        async with self._sessions.begin() as session:
            matches = await self._match_keys(session, key_id_or_prefix.strip())
            record = _only_key(matches, key_id_or_prefix)
            if record.revoked_at is not None:
                return record
            now = utc_now()
            await session.execute(
                update(ApiKey)
                .where(ApiKey.id == record.id, ApiKey.revoked_at.is_(None))
                .values(revoked_at=now)
            )
        # Re-read: a concurrent revoke may have won, and its timestamp is the one that counts.
        async with self._sessions() as session:
            matches = await self._match_keys(session, record.id)
        return matches[0]

    async def find_key(self, key_id_or_prefix: str) -> KeyRecord:
        """The key with this id, display prefix (or shorter prefix of it), or plaintext;
        raises :class:`KeyNotFound` or :class:`AmbiguousKey` as :meth:`revoke_key` does."""
        async with self._sessions() as session:
            matches = await self._match_keys(session, key_id_or_prefix.strip())
        return _only_key(matches, key_id_or_prefix)

    async def find_org(self, name_or_id: str) -> tuple[str, str] | None:
        """``(id, name)`` of the organisation with this name (else this id), or None."""
        needle = name_or_id.strip()
        async with self._engine.connect() as connection:
            for column in (Organization.name, Organization.id):
                row = (
                    await connection.execute(
                        select(Organization.id, Organization.name).where(column == needle)
                    )
                ).first()
                if row is not None:
                    return row[0], row[1]
        return None

    async def find_active_key(self, key_hash: str) -> KeyIdentity | None:
        """The identity of an unrevoked key with this digest, in one indexed query."""
        query = (
            select(ApiKey.id, ApiKey.org_id, Organization.name, ApiKey.scopes)
            .join(Organization, Organization.id == ApiKey.org_id)
            .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        )
        async with self._engine.connect() as connection:
            row = (await connection.execute(query)).first()
        if row is None:
            return None
        return KeyIdentity(
            key_id=row[0], org_id=row[1], org_name=row[2], scopes=decode_scopes(row[3])
        )

    async def has_active_key(self) -> bool:
        """Whether any unrevoked key exists (``serve`` bootstraps one when none does)."""
        query = select(exists().where(ApiKey.revoked_at.is_(None)))
        async with self._engine.connect() as connection:
            return bool((await connection.execute(query)).scalar())

    async def close(self) -> None:
        await self._engine.dispose()

    async def _org_id(self, name: str) -> str | None:
        async with self._engine.connect() as connection:
            result = await connection.execute(
                select(Organization.id).where(Organization.name == name)
            )
            return result.scalar_one_or_none()

    @staticmethod
    async def _match_keys(session: AsyncSession, needle: str) -> list[KeyRecord]:
        base = _records_query()
        if _looks_like_key(needle):
            query = base.where(ApiKey.key_hash == hash_key(needle))
        elif _PARTIAL_PREFIX.fullmatch(needle.lower()):
            query = base.where(ApiKey.key_prefix.startswith(needle.lower(), autoescape=True))
        else:
            query = base.where(ApiKey.id == needle)
        rows = (await session.execute(query.order_by(ApiKey.created_at))).all()
        return [_to_record(row) for row in rows]
