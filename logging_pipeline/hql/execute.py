"""Running a prepared HQL query: the read-only settings, the error mapping, the result shapes.

:class:`HqlEngine` is what the API calls. It reads the table's columns once a minute (the
schema endpoint and the rewrite both need them), prepares the query
(:func:`~logging_pipeline.hql.validate.prepare`) and runs it with :func:`hql_settings`
through the log transport's ``query(..., settings=...)``: on the embedded engine the settings
become the statement's own ``SETTINGS`` clause, on a server they travel as the HTTP request's
settings, and in both cases they hold for that one query only.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson

from logging_pipeline.clickhouse.errors import LogStoreError
from logging_pipeline.hql.errors import HqlError
from logging_pipeline.hql.validate import DEFAULT_LIMIT, TABLE, prepare

EXECUTE_MAX_ROWS = 10_000
"""The interactive cap: a larger LIMIT is clamped to it (``max_result_rows`` backs it up)."""
DOWNLOAD_MAX_ROWS = 300_000
"""The documented "300,000 rows maximum per query": a CSV export's cap and its default."""
TIMEOUT_SECONDS = 30
MAX_MEMORY_BYTES = 4_000_000_000
MAX_ROWS_TO_READ = 1_000_000_000
ORG_SETTING = "SQL_helicone_organization_id"
"""The custom setting a server's row policy reads (``getSetting``); see README "HQL"."""
COLUMNS_TTL_SECONDS = 60.0

RunQuery = Callable[
    [str, Mapping[str, Any], Mapping[str, Any] | None], Awaitable[list[dict[str, Any]]]
]
"""``(sql, params, settings) -> rows``: the log transport's ``query``."""


def hql_settings(max_rows: int, org_id: str | None = None) -> dict[str, Any]:
    """The per-query settings of an HQL statement.

    ``readonly=1`` (no writes, no DDL, no setting changes inside the query), a 30 s engine
    timeout, memory and scan caps, and the result cap. ``org_id``: also pass the org as the
    custom setting a server-side row policy filters on (only when one is configured: the
    embedded engine has no custom settings).
    """
    settings: dict[str, Any] = {
        "readonly": 1,
        "max_execution_time": TIMEOUT_SECONDS,
        "max_memory_usage": MAX_MEMORY_BYTES,
        "max_rows_to_read": MAX_ROWS_TO_READ,
        "max_result_rows": max_rows,
        "result_overflow_mode": "throw",
    }
    if org_id is not None:
        settings[ORG_SETTING] = org_id
    return settings


_AVAILABILITY_CODES = frozenset({202, 209, 210, 394})
"""TOO_MANY_SIMULTANEOUS_QUERIES, SOCKET_TIMEOUT, NETWORK_ERROR, QUERY_WAS_CANCELLED."""
_CODE = re.compile(r"Code: (\d+)")
_VERSION = re.compile(r"\s*\(version [^)]*\)\.?")


_LIMIT_CODES = {
    159: "HQL_QUERY_TIMEOUT",  # TIMEOUT_EXCEEDED
    241: "HQL_MEMORY_LIMIT_EXCEEDED",  # MEMORY_LIMIT_EXCEEDED
    158: "HQL_ROW_LIMIT_EXCEEDED",  # TOO_MANY_ROWS (max_rows_to_read)
    396: "HQL_RESULT_LIMIT_EXCEEDED",  # TOO_MANY_ROWS_OR_BYTES (max_result_rows)
}
_LIMIT_TEXTS = (
    ("max_execution_time", "HQL_QUERY_TIMEOUT"),
    ("timeout exceeded", "HQL_QUERY_TIMEOUT"),
    ("max_memory_usage", "HQL_MEMORY_LIMIT_EXCEEDED"),
    ("memory limit", "HQL_MEMORY_LIMIT_EXCEEDED"),
    ("max_rows_to_read", "HQL_ROW_LIMIT_EXCEEDED"),
    ("max_result_rows", "HQL_RESULT_LIMIT_EXCEEDED"),
    ("limit for result exceeded", "HQL_RESULT_LIMIT_EXCEEDED"),
)


def map_engine_error(exc: BaseException) -> HqlError:
    """The HQL error for a failed query: by the engine's error code, else (no code) by
    substrings of its message as the reference maps them (``max_execution_time`` ->
    timeout...), else by the transport's failure. Codes first because a message may echo the
    statement, which holds the gateway's own settings (``max_execution_time = 30``)."""
    if isinstance(exc, TimeoutError):
        return HqlError("HQL_QUERY_TIMEOUT", "no answer in time")
    text = str(exc)
    message = _clean(text)
    code_match = _CODE.search(text)
    code = int(code_match.group(1)) if code_match else None
    if code in _LIMIT_CODES:
        return HqlError(_LIMIT_CODES[code], message)
    lowered = message.lower()
    for needle, hql_code in _LIMIT_TEXTS if code is None else ():
        if needle in lowered:
            return HqlError(hql_code, message)
    if isinstance(exc, LogStoreError) and "DB::Exception" in text:
        if code in _AVAILABILITY_CODES:
            return HqlError("HQL_STORE_UNAVAILABLE", "the store is busy")
        if code in (164, 497):  # READONLY, ACCESS_DENIED
            return HqlError("HQL_INVALID_STATEMENT", message)
        # Everything the gateway controls is fixed; what the engine refuses is the query's
        # own fault (an unknown column, a type mismatch, a syntax error): the caller's to fix.
        return HqlError("HQL_SYNTAX_ERROR", message)
    if isinstance(exc, LogStoreError | OSError):
        return HqlError("HQL_STORE_UNAVAILABLE", "the request log store did not answer")
    return HqlError("HQL_EXECUTION_FAILED", type(exc).__name__)


def _clean(text: str) -> str:
    """The engine's message without the transport prefix, stack or version suffix."""
    start = text.find("DB::Exception:")
    if start >= 0:
        text = text[start + len("DB::Exception:") :]
        again = text.find("DB::Exception:")  # chdb nests "Code: N. DB::Exception: ..."
        if again >= 0:
            text = text[again + len("DB::Exception:") :]
    text = _VERSION.sub("", text.split("\n", 1)[0]).strip()
    scope = text.find(" In scope ")
    if scope >= 0:  # the rewritten statement: the caller's own text is theirs already
        text = text[:scope] + " " + text[text.rfind("(") :] if text.endswith(")") else text[:scope]
    return text[:2000]


@dataclass(frozen=True, slots=True)
class HqlResult:
    """``POST /execute``'s ``data``: rows as JSON values, and their measures."""

    rows: list[dict[str, Any]]
    elapsed_ms: int
    size: int
    """Byte length of the JSON rows."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "elapsedMilliseconds": self.elapsed_ms,
            "size": self.size,
            "rowCount": len(self.rows),
        }


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, set | tuple):
        return list(value)
    raise TypeError(f"cannot encode {type(value).__name__}")


class HqlEngine:
    """Prepares and runs HQL against the request log through ``query``.

    ``row_policy``: pass the org as :data:`ORG_SETTING` too (a server whose HQL user has the
    row policy of README "HQL"). One per process; its only state is the column cache.
    """

    def __init__(self, query: RunQuery, *, row_policy: bool = False) -> None:
        self._query = query
        self._row_policy = row_policy
        self._columns: list[dict[str, Any]] = []
        self._columns_at = -COLUMNS_TTL_SECONDS

    async def describe(self) -> list[dict[str, Any]]:
        """``DESCRIBE TABLE request_response_rmt`` without ``organization_id`` (cached)."""
        now = time.monotonic()
        if not self._columns or now - self._columns_at > COLUMNS_TTL_SECONDS:
            try:
                rows = await self._query(f"DESCRIBE TABLE {TABLE}", {}, None)
            except Exception as exc:
                raise _describe_error(exc) from exc
            self._columns = [row for row in rows if row.get("name") != "organization_id"]
            self._columns_at = now
        return self._columns

    async def schema(self) -> list[dict[str, Any]]:
        """``GET /schema``'s ``data``: the table and its columns."""
        columns = [
            {
                key: row.get(key)
                for key in (
                    "name",
                    "type",
                    "default_type",
                    "default_expression",
                    "comment",
                    "codec_expression",
                    "ttl_expression",
                )
            }
            for row in await self.describe()
        ]
        return [{"table_name": TABLE, "columns": columns}]

    async def run(
        self,
        sql: object,
        org_id: str,
        max_rows: int,
        default_limit: int = DEFAULT_LIMIT,
        *,
        as_json: bool = True,
    ) -> HqlResult:
        """Validate, scope and run ``sql`` for ``org_id``; raises :class:`HqlError`.

        ``as_json``: rows as JSON values and ``size`` measured (``execute``); else the
        transport's Python values and ``size`` 0 (a CSV export: no second copy of up to
        300,000 rows). Large results are converted off the event loop.
        """
        columns = [str(row["name"]) for row in await self.describe()]
        prepared = prepare(sql, org_id, columns, max_rows, default_limit)
        settings = hql_settings(max_rows, org_id if self._row_policy else None)
        started = time.perf_counter()
        try:
            rows = await self._query(prepared.sql, prepared.params, settings)
        except Exception as exc:
            raise map_engine_error(exc) from exc
        elapsed = int((time.perf_counter() - started) * 1000)
        if not as_json:
            return HqlResult(rows, elapsed, 0)
        if len(rows) > _INLINE_ROWS:
            return await asyncio.to_thread(_json_result, rows, elapsed)
        return _json_result(rows, elapsed)


_INLINE_ROWS = 1000
"""Results up to this size are converted on the event loop (cheaper than a thread hop)."""


def _json_result(rows: list[dict[str, Any]], elapsed_ms: int) -> HqlResult:
    try:
        payload = orjson.dumps(rows, default=_json_default)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits (UInt128, Int256...)
        payload = orjson.dumps(_wide_ints_as_text(rows), default=_json_default)
    return HqlResult(orjson.loads(payload), elapsed_ms, len(payload))


def _wide_ints_as_text(value: Any) -> Any:
    """``value`` with integers JSON cannot carry exactly (beyond 64 bits) as strings."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**64 else str(value)
    if isinstance(value, dict):
        return {key: _wide_ints_as_text(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_wide_ints_as_text(item) for item in value]
    return value


def _describe_error(exc: BaseException) -> HqlError:
    mapped = map_engine_error(exc)
    if mapped.code == "HQL_STORE_UNAVAILABLE":
        return mapped
    return HqlError("HQL_SCHEMA_FETCH_FAILED", mapped.details)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value, default=_json_default).decode()
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, str):
        # A spreadsheet runs a cell starting with = + - @ as a formula (CSV injection): such
        # text is exported with a leading apostrophe, which spreadsheets hide.
        return "'" + value if value.startswith(_FORMULA_START) else value
    return str(value)


def rows_to_csv(rows: list[dict[str, Any]]) -> bytes:
    """RFC 4180 CSV (header from the first row's columns, CRLF line ends), UTF-8."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    if rows:
        names = list(rows[0])
        writer.writerow(names)
        for row in rows:
            writer.writerow([_cell(row.get(name)) for name in names])
    return buffer.getvalue().encode()
