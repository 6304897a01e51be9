"""The server transport: a ClickHouse server over HTTP, through clickhouse-connect.

Why the async client: clickhouse-connect 1.12 ships a native aiohttp client.
It needs no thread per in-flight call, shares one keep-alive pool between the writer and
concurrent readers, and parses results in an executor. Measured against the test server
(``tests/clickhouse_http.py``, same process, so engine time dominates), async vs sync client in
``asyncio.to_thread``: 100 x 100-row inserts 2.6-2.8 s vs 2.5-2.6 s, 200 small queries
1.0-1.1 s vs 1.0-1.3 s, 50 concurrent queries 0.24-0.26 s vs 0.19-0.31 s, worst event-loop lag
6-9 ms both — a draw on speed. The sync client, though, refuses concurrent queries unless its
session ids are turned off, and borrows the loop's default thread pool for every call; the async
client has neither problem, so it is the one used.

The client is created on first use: constructing a transport never touches the network, so
the gateway starts while the server is down and the writer spills until it is back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from logging_pipeline.clickhouse.errors import LogStoreError
from logging_pipeline.clickhouse.values import bind_text, normalise

if TYPE_CHECKING:
    from clickhouse_connect.datatypes.base import ClickHouseType
    from clickhouse_connect.driver.asyncclient import AsyncClient

_DEFAULT_PORTS = {"http": 8123, "https": 8443}


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """Where and as whom to connect, parsed from ``CLICKHOUSE_URL``."""

    interface: str
    host: str
    port: int
    username: str
    password: str
    database: str | None

    @classmethod
    def parse(cls, url: str) -> ServerAddress:
        """``http[s]://user:password@host[:port][/database]``; percent-escapes are decoded.

        Raises ValueError for anything else: a wrong URL is a configuration error, reported at
        startup rather than spilled.
        """
        parts = urlsplit(url)
        interface = parts.scheme.lower()
        if interface not in _DEFAULT_PORTS:
            raise ValueError(f"CLICKHOUSE_URL must be http:// or https://, not {interface!r}")
        if not parts.hostname:
            raise ValueError("CLICKHOUSE_URL has no host")
        database = unquote(parts.path.strip("/")) or None
        if database is not None and "/" in database:
            raise ValueError(f"CLICKHOUSE_URL path must be a database name, got {database!r}")
        return cls(
            interface=interface,
            host=parts.hostname,
            port=parts.port or _DEFAULT_PORTS[interface],
            username=unquote(parts.username or "") or "default",
            password=unquote(parts.password or ""),
            database=database,
        )


class _BoundText:
    """A parameter already rendered by :func:`bind_text`.

    clickhouse-connect sends ``str(value)`` as ``param_<name>`` for any type it does not
    format itself, so wrapping the text keeps it from being escaped a second time and makes
    the server receive exactly what chdb receives.
    """

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


class ClickHouseConnectTransport:
    """The request log in a ClickHouse server at ``url``."""

    name = "clickhouse"

    def __init__(self, url: str) -> None:
        self.address = ServerAddress.parse(url)
        self._client: AsyncClient | None = None
        self._opening = asyncio.Lock()
        self._closed = False
        self._column_types: dict[tuple[str, tuple[str, ...]], Sequence[ClickHouseType]] = {}
        """Column types per (table, columns): clickhouse-connect would otherwise send a
        ``DESCRIBE TABLE`` before every batch, doubling the round trips of the writer."""

    def __repr__(self) -> str:  # never shows the password
        a = self.address
        return f"ClickHouseConnectTransport({a.interface}://{a.username}@{a.host}:{a.port})"

    # -- LogTransport ------------------------------------------------------------------------

    async def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        bound = _bind_all(params)
        client = await self._connected()
        try:
            await client.command(sql, parameters=bound)
        except Exception as exc:
            raise _failure(exc) from exc

    async def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        if not rows:
            return
        client = await self._connected()
        key = (table, tuple(columns))
        try:
            types = self._column_types.get(key)
            if types is None:
                context = await client.create_insert_context(table, list(columns))
                types = self._column_types[key] = context.column_types
            await client.insert(
                table, [list(row) for row in rows], column_names=list(columns), column_types=types
            )
        except Exception as exc:
            self._column_types.pop(key, None)  # the table may have changed: describe it again
            raise _failure(exc) from exc

    async def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        bound = _bind_all(params)
        client = await self._connected()
        try:
            # Settings travel as the HTTP request's settings: the server applies them to
            # this query only.
            result = await client.query(
                sql, parameters=bound, settings=dict(settings) if settings else None
            )
        except Exception as exc:
            raise _failure(exc) from exc
        names = result.column_names
        return [
            {name: normalise(value) for name, value in zip(names, row, strict=True)}
            for row in result.result_rows
        ]

    async def close(self) -> None:
        self._closed = True
        async with self._opening:
            client, self._client = self._client, None
        if client is not None:
            try:
                await client.close()
            except Exception as exc:
                raise _failure(exc) from exc

    # -- connection ----------------------------------------------------------------------------

    async def _connected(self) -> AsyncClient:
        """The client, created (handshake included) on first use and after a failed attempt."""
        if self._closed:
            raise LogStoreError("the ClickHouse transport is closed")
        if self._client is not None:
            return self._client
        async with self._opening:
            if self._client is None:
                import clickhouse_connect

                a = self.address
                try:
                    self._client = await clickhouse_connect.get_async_client(
                        interface=a.interface,
                        host=a.host,
                        port=a.port,
                        username=a.username,
                        password=a.password,
                        database=a.database,
                        tz_mode="aware",  # DateTime values come back timezone-aware
                        autogenerate_session_id=False,  # sessions would serialise requests
                    )
                except Exception as exc:
                    raise _failure(exc) from exc
            return self._client


def _bind_all(params: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not params:
        return None
    try:
        return {name: _BoundText(bind_text(value)) for name, value in params.items()}
    except TypeError as exc:
        raise LogStoreError(str(exc)) from exc


def _failure(exc: Exception) -> LogStoreError:
    return LogStoreError(f"clickhouse: {exc}")
