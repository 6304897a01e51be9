"""Shared pytest fixtures."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import pytest

# --- PostgreSQL test databases ------------------------------------------------------------
# Tests that run against PostgreSQL get a fresh, uniquely named database per test module on the
# server at TEST_POSTGRES_DSN (default: the local server, user postgres, trust auth). When the
# server is unreachable those tests are skipped, except under CI (the CI environment variable
# is set), where a missing server is a failure rather than silently lost coverage.

POSTGRES_ADMIN_DSN = os.environ.get(
    "TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres"
)


async def _postgres_admin(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(POSTGRES_ADMIN_DSN, timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="module")
def postgres_database_url() -> Iterator[str]:
    """An async SQLAlchemy URL of an empty database that is dropped after the module."""
    name = f"gateway_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_postgres_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, ImportError) as exc:  # TimeoutError is an OSError
        reason = f"PostgreSQL is not reachable at {POSTGRES_ADMIN_DSN}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    admin_base = POSTGRES_ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{admin_base.replace('postgresql://', 'postgresql+asyncpg://', 1)}/{name}"
    finally:
        asyncio.run(_postgres_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
