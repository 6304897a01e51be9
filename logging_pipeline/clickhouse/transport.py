"""The interface the request log is written and read through."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class LogTransport(Protocol):
    """A ClickHouse engine reached one way or another (embedded chdb, or a server over HTTP).

    SQL uses ClickHouse's server-side parameter syntax ``{name:Type}`` with ``params``; values
    are never formatted into SQL text. Every failure is raised as
    :class:`~logging_pipeline.clickhouse.errors.LogStoreError`.
    """

    name: str
    """``"chdb"`` or ``"clickhouse"``."""

    async def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        """Run a statement whose result is not needed (DDL, ``ALTER``, ``OPTIMIZE``...)."""
        ...

    async def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        """Insert ``rows`` (Python values in ``columns`` order) in one statement."""
        ...

    async def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Run a ``SELECT`` and return its rows as dicts (see ``values`` for the conventions).

        ``settings`` (names to int/str values) hold for this one query: HQL's read-only caps.
        A statement given settings must be a plain ``SELECT`` without its own ``SETTINGS`` or
        ``FORMAT`` clause (the embedded engine appends them as the statement's clause).
        """
        ...

    async def close(self) -> None:
        """Release the engine or connection pool; idempotent."""
        ...
