"""What the HQL API needs from one gateway process: the engine and the export store.

Both are made on first use: the engine reads through the log writer (the process that owns the
embedded engine, or the server transport) unless ``GATEWAY_HQL_CLICKHOUSE_URL`` names the
row-policy HQL user of a ClickHouse server, which then gets its own transport (closed with the
runtime); exports go where the bodies go (S3, or a local directory).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from logging_pipeline.bodies import BodyStore, BodyStoreError, S3BodyStore
from logging_pipeline.clickhouse import ClickHouseConnectTransport, LogStoreError
from logging_pipeline.hql import HqlEngine
from logging_pipeline.hql.exports import ExportStore, LocalExports, S3Exports
from logging_pipeline.query import bodies_of

QueryLog = Callable[
    [str, Mapping[str, Any], Mapping[str, Any] | None], Awaitable[list[dict[str, Any]]]
]
GetBodies = Callable[[str, str], Awaitable[dict[str, Any] | None]]

BODY_ROWS = 100
"""How many rows of an ``execute`` answer get their bodies from the body store."""
_BODY_COLUMNS = {"request_body": "request", "response_body": "response"}


class HqlService:
    """The process's HQL engine and export store (see the module docstring)."""

    def __init__(
        self,
        query_log: QueryLog,
        bodies: Callable[[], BodyStore | None],
        get_bodies: GetBodies,
        *,
        data_dir: Any,
        link_ttl_seconds: int,
        clickhouse_url: str | None = None,
    ) -> None:
        self._query_log = query_log
        self._bodies = bodies
        self._get_bodies = get_bodies
        self._data_dir = data_dir
        self._ttl = link_ttl_seconds
        self._transport: ClickHouseConnectTransport | None = None
        if clickhouse_url:
            self._transport = ClickHouseConnectTransport(clickhouse_url)
            self._engine = HqlEngine(self._transport.query, row_policy=True)
        else:
            self._engine = HqlEngine(self._query)
        self._exports: ExportStore | None = None
        self.local_exports = LocalExports(
            data_dir / "hql-exports", data_dir / "hql-links.key", link_ttl_seconds
        )

    async def _query(
        self, sql: str, params: Mapping[str, Any], settings: Mapping[str, Any] | None
    ) -> list[dict[str, Any]]:
        return await self._query_log(sql, params, settings)

    def unavailable(self) -> str | None:
        """Why HQL cannot run in this process (no request log), or None."""
        if self._transport is None and self._bodies() is None:
            return "request logging is disabled (GATEWAY_LOGGING_ENABLED=false)"
        return None

    @property
    def engine(self) -> HqlEngine:
        return self._engine

    def exports(self) -> ExportStore:
        """S3 when the body store is S3, else the local directory with signed links."""
        if self._exports is None:
            bodies = self._bodies()
            if isinstance(bodies, S3BodyStore):
                self._exports = S3Exports(bodies, self._ttl)
            else:
                self._exports = self.local_exports
        return self._exports

    async def add_bodies(self, org_id: str, rows: list[dict[str, Any]]) -> bool:
        """Fill empty ``request_body``/``response_body`` cells from the body store.

        The log table's body columns are empty (bodies live in the body store), so when a
        result has one of them and ``request_id``, the first :data:`BODY_ROWS` rows get the
        stored request/response (JSON values), read with the caller's organization (as the
        reference enriches HQL results from S3). Returns whether anything was added.
        """
        if not rows or "request_id" not in rows[0] or not _BODY_COLUMNS.keys() & rows[0].keys():
            return False
        gate = asyncio.Semaphore(8)
        added = False

        async def one(row: dict[str, Any]) -> None:
            nonlocal added
            request_id = row.get("request_id")
            if not isinstance(request_id, str):
                return
            async with gate:
                try:
                    document = await self._get_bodies(org_id, request_id)
                except (BodyStoreError, OSError):
                    return  # not a request id, or the store is away: the cell stays empty
            parts = bodies_of(row, document)
            for column, part in _BODY_COLUMNS.items():
                if row.get(column) == "" and parts[part] is not None:
                    row[column] = parts[part]
                    added = True

        await asyncio.gather(*(one(row) for row in rows[:BODY_ROWS]))
        return added

    async def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            try:
                await transport.close()
            except LogStoreError:
                pass
