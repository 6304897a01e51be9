"""The embedded transport: the ClickHouse engine in this process, through chdb.

Why a dedicated thread: chdb calls block for the whole query, so every call runs in ONE
worker thread owned by the transport (a single-thread executor). The event loop never blocks,
calls are serialised in submission order (an insert queued before a query is visible to it),
and the session is only ever touched from that thread.

Limits of the engine (chdb 4.x), which shape this class:

* **One engine per process, bound to one data path.** chdb starts one embedded server per
  process; opening a second session on a *different* path while the first is open fails
  ("EmbeddedServer already initialized with path ..."). That surfaces here as a
  :class:`LogStoreError` naming both causes. Closing a transport releases the engine, so
  transports on different paths work one after the other (as the test suite does).
  Two transports on the *same* path share the engine and work side by side.
* **Single process.** The data directory belongs to the process that opened it, so a gateway
  using embedded storage must run one worker; several workers need a ClickHouse server.
* The session is opened lazily, on the first call, so constructing a transport never fails
  and costs nothing (chdb's library is ~500 MB and is only imported then). Close the
  transport: an abandoned one keeps the engine bound to its path until garbage collection.
* A cancelled call cannot stop the engine: the statement finishes in the worker thread (an
  insert may land although its caller was cancelled; ReplacingMergeTree absorbs a replay).
* A failed query can leave partial output in the session (see :func:`_drain`).
* Inserts use ``Session.send_insert`` (streaming insert, chdb 4.x): one statement per batch,
  the rows as JSONCompactEachRow data, never as SQL literals.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

from logging_pipeline.clickhouse.errors import LogStoreError
from logging_pipeline.clickhouse.values import (
    bind_text,
    decode_json_compact,
    json_rows,
    quote_identifier,
)
from logging_pipeline.private import private_dir

T = TypeVar("T")


class _Result(Protocol):
    def bytes(self) -> bytes: ...


class _Inserter(Protocol):
    def append(self, data: bytes) -> None: ...
    def finish(self) -> object: ...
    def __enter__(self) -> _Inserter: ...
    def __exit__(self, *exc: object) -> None: ...


class Session(Protocol):
    """The part of ``chdb.session.Session`` used here (chdb ships no annotations for it)."""

    def query(self, sql: str, fmt: str = ..., params: dict[str, str] | None = ...) -> _Result: ...
    def send_insert(self, query: str, fmt: str = ...) -> _Inserter: ...
    def close(self) -> None: ...


RESULT_FORMAT = "JSONCompactEachRowWithNamesAndTypes"
"""Names and types first, then rows: the types drive :func:`decode_json_compact`."""

SESSION_SETTINGS: tuple[str, ...] = (
    "output_format_json_quote_64bit_integers = 0",
    "output_format_json_quote_decimals = 1",
    "output_format_decimal_trailing_zeros = 1",
    "output_format_json_quote_denormals = 1",
    "output_format_json_named_tuples_as_objects = 0",
    "date_time_output_format = 'iso'",
    "date_time_input_format = 'best_effort'",
)
"""Applied once per session: the output conventions ``decode_json_compact`` relies on, and
RFC 3339 datetime input for JSON inserts."""


EMBEDDED_MISSING = (
    "the embedded ClickHouse engine (chdb) is not installed, and CLICKHOUSE_URL is not set: "
    "set CLICKHOUSE_URL to a ClickHouse server, install the engine with "
    "pip install 'llm-gateway[embedded]', or turn the request log off with "
    "GATEWAY_LOGGING_ENABLED=false"
)
"""Why no log store can be opened: chdb is an optional extra (``embedded``), left out of the
server image, where ``CLICKHOUSE_URL`` names the store."""


def embedded_available() -> bool:
    """Whether chdb is installed, without importing it (its library is ~500 MB)."""
    return importlib.util.find_spec("chdb") is not None


class ChdbTransport:
    """The request log in the embedded ClickHouse engine under ``path``."""

    name = "chdb"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="chdb")
        self._session: Session | None = None  # only touched in the worker thread
        self._released = False  # set in the worker thread once the session is closed
        self._closed = False  # set on the event loop: no new calls

    # -- LogTransport ------------------------------------------------------------------------

    async def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        bound = _bind_all(params)
        await self._call(lambda session: session.query(sql, "TabSeparated", params=bound))

    async def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]
    ) -> None:
        if not rows:
            return
        statement = (
            f"INSERT INTO {quote_identifier(table)} "
            f"({', '.join(quote_identifier(column) for column in columns)})"
        )

        def run(session: Session) -> None:
            data = json_rows(columns, rows)
            with session.send_insert(statement, "JSONCompactEachRow") as inserter:
                inserter.append(data)
                inserter.finish()

        await self._call(run)

    async def query(
        self,
        sql: str,
        params: Mapping[str, Any] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        bound = _bind_all(params)
        if settings:
            # A SETTINGS clause, not SET: it holds for this statement only, and readonly=1
            # could not be undone on the session afterwards.
            sql = f"{sql} SETTINGS {settings_clause(settings)}"

        def run(session: Session) -> list[dict[str, Any]]:
            payload = session.query(sql, RESULT_FORMAT, params=bound).bytes()
            return decode_json_compact(payload)

        return await self._call(run)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            # Queued calls run first: the executor is FIFO.
            await asyncio.get_running_loop().run_in_executor(self._executor, self._release)
        finally:
            # Joined (off the loop), not abandoned: the transport owns its thread until it has
            # ended, so nothing still runs in (or holds) the engine after close() returns.
            await asyncio.to_thread(self._executor.shutdown, True)

    # -- worker thread -------------------------------------------------------------------------

    async def _call(self, work: Callable[[Session], T]) -> T:
        if self._closed:
            raise LogStoreError("the chdb transport is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, self._run, work)
        except LogStoreError:
            raise
        except Exception as exc:
            raise LogStoreError(f"chdb: {exc}") from exc

    def _run(self, work: Callable[[Session], T]) -> T:
        if self._released:
            raise LogStoreError("the chdb transport is closed")
        if self._session is None:
            self._session = self._open()
        try:
            return work(self._session)
        except Exception:
            _drain(self._session)
            raise

    def _open(self) -> Session:
        try:
            from chdb import session as chdb_session
        except ImportError as exc:
            raise LogStoreError(EMBEDDED_MISSING) from exc

        open_session = cast(Callable[[str], Session], chdb_session.Session)
        directory = self.path.resolve()  # chdb compares engine paths literally
        try:
            private_dir(directory)
            session = open_session(str(directory))
        except Exception as exc:
            raise LogStoreError(
                f"cannot open the embedded ClickHouse at {directory}: {exc} — chdb runs one "
                "engine per process on one data path; close the transport using the other "
                "path first, or set CLICKHOUSE_URL to use a server"
            ) from exc
        try:
            for setting in SESSION_SETTINGS:
                session.query(f"SET {setting}")
        except Exception:
            session.close()
            raise
        return session

    def _release(self) -> None:
        self._released = True
        session, self._session = self._session, None
        if session is not None:
            session.close()


def _drain(session: Session) -> None:
    """Swallow what a failed query left behind in the session.

    chdb 4.4 keeps the output a query produced before failing (a format's header, whole blocks
    of rows) and prepends it to the result of the next successful query on the session. One
    throw-away query after every failure takes that debris, so real results stay clean.
    """
    with contextlib.suppress(Exception):  # a session too broken for this fails the next call
        session.query("SELECT 1", "TabSeparated")


_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def settings_clause(settings: Mapping[str, Any]) -> str:
    """``name = value, ...`` with names checked and strings quoted (never raw text)."""
    parts: list[str] = []
    for name, value in settings.items():
        if not _SETTING_NAME.fullmatch(name):
            raise LogStoreError(f"invalid setting name {name!r}")
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise LogStoreError(f"setting {name}: expected int or str, got {type(value).__name__}")
        text = str(value) if isinstance(value, int) else "'" + bind_text(value) + "'"
        parts.append(f"{name} = {text}")
    return ", ".join(parts)


def _bind_all(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    """Parameter texts for ``Session.query(params=...)``; chdb parses them like a server."""
    if not params:
        return None
    try:
        return {name: bind_text(value) for name, value in params.items()}
    except TypeError as exc:
        raise LogStoreError(str(exc)) from exc
