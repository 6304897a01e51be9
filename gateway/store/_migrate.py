"""Applying the packaged Alembic migrations from async code.

No ``alembic.ini`` is needed: the configuration is built here with ``script_location`` pointing
at the migrations inside the installed package, and the caller's connection is handed to
``env.py`` through ``Config.attributes`` (Alembic's documented pattern for running migrations
inside an application's own connection and event loop).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

_PG_MIGRATION_LOCK = 0x67_77_6D_69_67  # arbitrary constant ("gwmig"), one per application
"""Advisory lock key that serialises concurrent ``migrate`` calls on PostgreSQL."""


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection) -> None:
    """Runs inside one transaction that also holds a database-wide lock, so two processes
    starting at once (CLI and server, or several replicas) apply each migration exactly once."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
    elif dialect == "sqlite":
        # pysqlite leaves DDL outside transactions unless one is opened explicitly; IMMEDIATE
        # takes the write lock now, so the version check and the DDL are atomic.
        connection.exec_driver_sql("BEGIN IMMEDIATE")
    command.upgrade(alembic_config(connection), "head")


async def upgrade_to_head(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)


async def database_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as connection:
        return await connection.run_sync(current_revision)
