"""Async engine construction for the supported backends (SQLite via aiosqlite, PostgreSQL via
asyncpg)."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

SQLITE_BUSY_TIMEOUT_MS = 5000
"""How long a SQLite writer waits for another process's write lock (the CLI and a running
server share one file) before giving up with "database is locked"."""

PG_CONNECT_TIMEOUT_S = 10.0
"""asyncpg waits 60 s by default; an unreachable server should fail a CLI command sooner."""

SUPPORTED_BACKENDS = frozenset({"sqlite", "postgresql"})


def is_sqlite(url: str | URL) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def display_url(url: str) -> str:
    """``url`` with any password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<unparseable database URL>"


def create_engine(url: str) -> AsyncEngine:
    """An engine for ``url``; SQLite files get WAL and a busy timeout.

    Raises ``ValueError`` for other backends and ``sqlalchemy.exc.ArgumentError`` for a URL that
    does not parse.

    WAL lets readers (the server's key lookups) proceed while another process (``gateway keys
    create``) writes, and the busy timeout turns write-write contention into a short wait. An
    in-memory SQLite database exists per connection, so it is pinned to one shared connection.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise ValueError(
            f"unsupported database {backend!r}; use SQLite (sqlite+aiosqlite://) "
            "or PostgreSQL (postgresql+asyncpg://)"
        )
    if backend != "sqlite":
        return create_async_engine(parsed, connect_args={"timeout": PG_CONNECT_TIMEOUT_S})
    database = parsed.database
    if not database or database == ":memory:" or "mode=memory" in str(parsed):
        engine = create_async_engine(parsed, poolclass=StaticPool)
    else:
        engine = create_async_engine(parsed)
    event.listen(engine.sync_engine, "connect", _configure_sqlite_connection)
    return engine


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        # The busy timeout goes first: writers that meet another process's lock wait for it.
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        _enable_wal(cursor)
        cursor.execute("PRAGMA foreign_keys=ON")
        # Durable at every checkpoint; with WAL this only risks the last commits on power loss.
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def _enable_wal(cursor: Any) -> None:
    """Switch the file to WAL once (the mode is persistent, later connections see it).

    Switching needs an exclusive lock, and SQLite answers "database is locked" at once —
    without consulting the busy handler — when another connection opening the same fresh file
    holds a shared lock meanwhile. So the switch is retried for up to the busy timeout.
    """
    cursor.execute("PRAGMA journal_mode")
    if str(cursor.fetchone()[0]).lower() == "wal":
        return
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
