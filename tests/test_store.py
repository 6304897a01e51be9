"""The control-plane store, run against SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.keys import KEY_PATTERN, hash_key, key_prefix
from gateway.settings import Settings
from gateway.store import (
    DEFAULT_ORG,
    AmbiguousKey,
    ControlStore,
    KeyIdentity,
    KeyNotFound,
)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a new SQLite file, or the module's PostgreSQL database wiped clean.

    Synchronous on purpose: it runs before the test's event loop, so the module-scoped
    PostgreSQL fixture (and the wipe) can use their own short-lived loops.
    """
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    url: str = request.getfixturevalue("postgres_database_url")
    asyncio.run(_wipe_postgres(url))
    return url


async def _wipe_postgres(url: str) -> None:
    store = ControlStore(url)
    try:
        async with store.engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    finally:
        await store.close()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[ControlStore]:
    store = ControlStore(database_url)
    await store.migrate()
    try:
        yield store
    finally:
        await store.close()


@pytest.fixture
def same_prefix_keys(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Makes ``create_key`` hand out keys that all share the display prefix sk-helicone-same."""
    counter = iter(range(1, 1000))

    def fake_generate_key() -> str:
        return f"sk-helicone-same{next(counter):03d}-0000000-0000000-0000000"

    monkeypatch.setattr("gateway.store._control.generate_key", fake_generate_key)
    yield


async def test_migrate_is_idempotent(database_url: str) -> None:
    store = ControlStore(database_url)
    try:
        assert await store.schema_revision() is None
        await store.migrate()
        assert await store.schema_revision() == ControlStore.head_revision() == "0005"
        key, _ = await store.create_key()
        await store.migrate()
    finally:
        await store.close()

    again = ControlStore(database_url)
    try:
        await again.migrate()
        assert await again.schema_revision() == "0005"
        assert await again.find_active_key(hash_key(key)) is not None
    finally:
        await again.close()


async def test_concurrent_migrations_apply_once(database_url: str) -> None:
    stores = [ControlStore(database_url) for _ in range(3)]
    try:
        await asyncio.gather(*(s.migrate() for s in stores))
        assert await stores[0].schema_revision() == "0005"
    finally:
        for s in stores:
            await s.close()


async def test_create_list_revoke(store: ControlStore) -> None:
    key, record = await store.create_key(name="ci")
    assert KEY_PATTERN.fullmatch(key)
    assert record.prefix == key_prefix(key) == key[:16]
    assert record.org_name == DEFAULT_ORG
    assert record.name == "ci"
    assert record.revoked_at is None
    assert record.created_at.tzinfo is not None
    assert record.created_at.utcoffset() == UTC.utcoffset(None)

    other_key, other = await store.create_key(org="acme")
    assert other_key != key
    assert other.name is None

    listed = await store.list_keys()
    assert [r.id for r in listed] == [record.id, other.id]
    assert listed[0] == record
    assert [r.id for r in await store.list_keys(org="acme")] == [other.id]

    revoked = await store.revoke_key(record.id)
    assert revoked.id == record.id
    assert revoked.revoked_at is not None
    assert revoked.revoked_at.tzinfo is not None
    assert revoked.revoked_at >= record.created_at
    by_id = {r.id: r for r in await store.list_keys()}
    assert by_id[record.id].revoked_at == revoked.revoked_at
    assert by_id[other.id].revoked_at is None


async def test_only_the_hash_is_stored(store: ControlStore) -> None:
    key, record = await store.create_key(name="secret-check")
    async with store.engine.connect() as connection:
        rows = (await connection.execute(text("SELECT * FROM api_keys"))).mappings().all()
    assert len(rows) == 1
    row = rows[0]
    assert row["key_hash"] == hash_key(key)
    assert row["key_prefix"] == record.prefix
    for value in row.values():
        assert key not in str(value)


async def test_find_active_key(store: ControlStore) -> None:
    key, record = await store.create_key(org="acme")
    identity = await store.find_active_key(hash_key(key))
    assert identity == KeyIdentity(key_id=record.id, org_id=record.org_id, org_name="acme")
    assert await store.find_active_key(hash_key(key + "x")) is None

    await store.revoke_key(record.id)
    assert await store.find_active_key(hash_key(key)) is None


async def test_revoke_by_prefix_or_full_key(store: ControlStore) -> None:
    _, record = await store.create_key()
    assert (await store.revoke_key(record.prefix)).id == record.id

    taken = {record.prefix[:14]}
    _, record2 = await store.create_key()
    while record2.prefix[:14] in taken:  # 2 random characters can collide
        taken.add(record2.prefix[:14])
        await store.revoke_key(record2.id)
        _, record2 = await store.create_key()
    assert (await store.revoke_key(record2.prefix[:14].upper())).id == record2.id

    key3, record3 = await store.create_key()
    assert (await store.revoke_key(f"  {key3} ")).id == record3.id
    assert await store.find_active_key(hash_key(key3)) is None


async def test_revoking_twice_keeps_the_first_timestamp(store: ControlStore) -> None:
    _, record = await store.create_key()
    first = await store.revoke_key(record.id)
    second = await store.revoke_key(record.prefix)
    assert first.revoked_at is not None
    assert second.revoked_at == first.revoked_at


@pytest.mark.usefixtures("same_prefix_keys")
async def test_ambiguous_prefix(store: ControlStore) -> None:
    key_a, a = await store.create_key()
    _, b = await store.create_key()
    assert a.prefix == b.prefix == "sk-helicone-same"

    for needle in ("sk-helicone-same", "sk-helicone-sa"):
        with pytest.raises(AmbiguousKey, match="matches 2 keys"):
            await store.revoke_key(needle)
    assert all(r.revoked_at is None for r in await store.list_keys())

    assert (await store.revoke_key(key_a)).id == a.id
    assert (await store.revoke_key(b.id)).id == b.id


@pytest.mark.parametrize(
    "needle",
    [
        "sk-helicone-zzzz",
        "sk-helicone-",
        "sk-helicone-%",
        "sk-helicone-zzzzzzz-zzzzzzz-zzzzzzz-zzzzzzz",
        "00000000-0000-0000-0000-000000000000",
        "",
    ],
)
async def test_revoke_unknown_key(store: ControlStore, needle: str) -> None:
    await store.create_key()
    with pytest.raises(KeyNotFound):
        await store.revoke_key(needle)


async def test_orgs_are_created_on_demand(store: ControlStore) -> None:
    assert await store.list_keys(org="acme") == []
    org_id = await store.ensure_org("acme")
    assert await store.ensure_org("acme") == org_id

    _, record = await store.create_key(org="acme")
    assert record.org_id == org_id
    _, fresh = await store.create_key(org="globex")
    assert fresh.org_id not in (org_id, None)
    assert await store.ensure_org("globex") == fresh.org_id

    with pytest.raises(ValueError):
        await store.ensure_org("  ")


async def test_concurrent_org_creation(store: ControlStore) -> None:
    results = await asyncio.gather(*(store.create_key(org="racy") for _ in range(5)))
    assert len({record.org_id for _, record in results}) == 1
    async with store.engine.connect() as connection:
        count = await connection.scalar(text("SELECT count(*) FROM organizations"))
    assert count == 1


async def test_has_active_key(store: ControlStore) -> None:
    assert await store.has_active_key() is False
    _, record = await store.create_key()
    assert await store.has_active_key() is True
    await store.revoke_key(record.id)
    assert await store.has_active_key() is False


async def test_from_settings_creates_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    data_dir = tmp_path / "nested" / "data"
    store = ControlStore.from_settings(Settings(data_dir=data_dir))
    try:
        assert data_dir.is_dir()
        await store.migrate()
        assert (data_dir / "gateway.db").is_file()
        async with store.engine.connect() as connection:
            mode = await connection.scalar(text("PRAGMA journal_mode"))
        assert mode == "wal"
    finally:
        await store.close()
