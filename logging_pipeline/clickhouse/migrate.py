"""Applying the versioned schema of ``logging_pipeline.schema`` to a log store."""

from __future__ import annotations

from logging_pipeline.clickhouse.errors import LogStoreError
from logging_pipeline.clickhouse.transport import LogTransport
from logging_pipeline.schema import MIGRATIONS, MIGRATIONS_TABLE

MIGRATIONS_TABLE_DDL = f"""
CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE}
(
    version    String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version
"""
"""One row per applied version; ReplacingMergeTree so a version recorded twice (two
processes migrating at once against a server) still reads back as one row with ``FINAL``."""


async def migrate(transport: LogTransport) -> list[str]:
    """Apply the migrations not yet recorded, in order; return the versions applied now.

    Safe at every startup and idempotent: applied versions are skipped, and each migration's
    statements are themselves idempotent (``IF NOT EXISTS``), so a crash between a migration
    and its record, or two processes racing, only re-runs harmless statements. A version is
    recorded only after all its statements succeeded (with ``command``: ``insert`` is left to
    request rows, which wrappers such as the writer's tests count). Failures raise
    ``LogStoreError``.
    """
    await transport.command(MIGRATIONS_TABLE_DDL)
    done = await _recorded(transport)
    applied: list[str] = []
    for version, statements in MIGRATIONS:
        if version in done:
            continue
        try:
            for statement in statements:
                await transport.command(statement)
        except LogStoreError:
            # Two processes migrating one server at once (workers starting together): the
            # other may have gone past this version and changed what its statements assume
            # (0010 drops the columns 0008's backfill names). It recorded this version before
            # starting the next, so when the record is there now, nothing is left to do.
            if version not in await _recorded(transport):
                raise
            continue
        await transport.command(
            f"INSERT INTO {MIGRATIONS_TABLE} (version) SELECT {{version:String}}",
            {"version": version},
        )
        applied.append(version)
    return applied


async def _recorded(transport: LogTransport) -> set[str]:
    rows = await transport.query(f"SELECT version FROM {MIGRATIONS_TABLE} FINAL")
    return {row["version"] for row in rows}
