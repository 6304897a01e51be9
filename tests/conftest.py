"""Shared pytest fixtures."""

from __future__ import annotations

import asyncio
import gc
import os
import resource
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from logging_pipeline.journal import mappable

# --- leaks are errors of the test that leaked ---------------------------------------------
# A ResourceWarning from a finaliser (an unclosed socket, transport, file or event loop found by
# the garbage collector) cannot raise: Python hands it to sys.unraisablehook, which pytest turns
# into a PytestUnraisableExceptionWarning, an error under the "error" filter in pyproject.toml.
# Objects in reference cycles are only finalised when the collector runs, which can be tests
# later; collecting right after each test (before pytest looks for unraisable exceptions) fails
# the test that leaked instead. A full collection of this process (~190k objects: chdb, boto3,
# the app) takes ~120 ms, so after each collection the survivors are frozen (gc.freeze) and the
# next one only looks at what later tests made: microseconds. Frozen objects are unfrozen at the
# end of the session, before pytest's last collection, so whatever leaks later still fails.


@pytest.fixture(autouse=True)
def _collect_garbage_after_test() -> Iterator[None]:
    # Autouse: set up first, so torn down after the test's other function-scoped fixtures,
    # and still inside the teardown that pytest then checks for unraisable exceptions.
    yield
    gc.collect()
    gc.freeze()


def pytest_sessionfinish() -> None:
    gc.unfreeze()


# --- descriptors ---------------------------------------------------------------------------
# The embedded ClickHouse engine (chdb) keeps a pool of worker threads for the life of the
# process, and each of them holds three /proc files open (its stat, schedstat and io). Over a
# full run the many embedded stores' concurrent queries grow that pool to a few hundred threads,
# so this process holds well over 1,024 descriptors: a test must never watch a socket with
# select() (it cannot take a descriptor above 1,023: use poll), and the soft limit is raised to
# the hard one so that a machine with a low default does not fail tests with EMFILE.


def pytest_configure() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


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


@pytest.fixture
def mapped_root(tmp_path: Path) -> Iterator[Path]:
    """A journal root where segments are mapped: under the test's directory, or in /dev/shm
    (tmpfs) when that is on a file system the journal only writes (a copy-on-write one)."""
    if mappable(tmp_path):
        yield tmp_path / "journal"
        return
    with tempfile.TemporaryDirectory(dir="/dev/shm") as directory:
        yield Path(directory) / "journal"
