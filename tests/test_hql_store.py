"""Saved HQL queries in the control-plane store, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import uuid

import pytest

from gateway.store import ControlStore, SavedQueryNameExists
from tests import test_store

# The control store on a fresh SQLite file and on the wiped PostgreSQL database, as in
# tests/test_store.py (the same fixtures, not a copy).
database_url = test_store.database_url
store = test_store.store


async def test_crud_is_scoped_to_the_organization(store: ControlStore) -> None:
    acme, globex = await store.ensure_org("acme"), await store.ensure_org("globex")
    queries = store.hql_queries
    first = await queries.create(acme, "by model", "SELECT 1")
    second = await queries.create(acme, "errors", "SELECT 2")
    await queries.create(globex, "by model", "SELECT 3")  # same name, other org: fine
    assert [q.name for q in await queries.list_all(acme)] == ["errors", "by model"]
    assert await queries.get(acme, first.id) == first
    assert await queries.get(globex, first.id) is None
    assert await queries.get(acme, "not-a-uuid") is None
    assert await queries.update(globex, first.id, "stolen", None) is None
    assert not await queries.delete(globex, first.id)

    updated = await queries.update(acme, first.id, None, "SELECT 42")
    assert updated is not None and updated.sql == "SELECT 42" and updated.name == "by model"
    assert updated.updated_at >= first.updated_at and updated.created_at == first.created_at
    assert next(q.name for q in await queries.list_all(acme)) == "by model"
    with pytest.raises(SavedQueryNameExists):
        await queries.create(acme, "errors", "SELECT 5")
    with pytest.raises(SavedQueryNameExists):
        await queries.update(acme, first.id, "errors", None)

    assert await queries.delete(acme, second.id)
    assert not await queries.delete(acme, second.id)
    assert await queries.get(acme, str(uuid.uuid4())) is None
    assert [q.id for q in await queries.list_all(acme)] == [first.id]
    assert first.as_dict()["organization_id"] == acme
