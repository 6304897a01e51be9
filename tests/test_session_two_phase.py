"""``/v1/session/query`` in two phases answers what the one-statement query answers.

The API picks the page's sessions from narrow columns, then aggregates those sessions only
(logging_pipeline/query/sessions.py); on the bench generator's rows (sessions spread over
days, rewritten rows read with ``FINAL``) every page, filter, search and name test must give
the same results, in the same order, as :func:`build_session_query`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bench.analytics_data import SESSION_NAMES, Spec, insert_sql
from logging_pipeline.clickhouse.chdb_transport import ChdbTransport
from logging_pipeline.clickhouse.migrate import migrate
from logging_pipeline.clickhouse.transport import LogTransport
from logging_pipeline.query.sessions import (
    SessionQuery,
    build_session_page_query,
    build_session_query,
    build_session_rows_query,
    session_page,
    session_result,
)
from logging_pipeline.schema import REQUEST_TABLE

MAIN = "aaaaaaaa-0000-4000-8000-0000000000a1"
OTHER = "bbbbbbbb-0000-4000-8000-0000000000b2"
NOW = datetime(2026, 3, 20, 9, 41, 27, 345000, tzinfo=UTC)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _session(field: str, operator: str, value: Any) -> Any:
    return {"sessions_request_response_rmt": {field: {operator: value}}}


def _row(field: str, operator: str, value: Any) -> Any:
    return {"request_response_rmt": {field: {operator: value}}}


FILTERS: tuple[Any, ...] = (
    "all",
    _session("session_total_cost", "gt", 0.001),
    _session("session_total_requests", "gte", 5),
    _row("model", "equals", "gpt-4o"),
    {"left": _row("status", "equals", 200), "operator": "and",
     "right": _session("session_total_tokens", "lt", 2000)},
    _session("session_session_name", "contains", "agent"),
)  # fmt: skip
EXTRAS: tuple[dict[str, Any], ...] = (
    {},
    {"offset": 100, "limit": 50},
    {"offset": 3000, "limit": 100},
    {"limit": 0},
    {"search": "research"},
    {"search": "a1"},
    {"nameEquals": SESSION_NAMES[1]},
    {"timeFilter": {"startTimeUnixMs": _ms(NOW - timedelta(days=9, minutes=3)),
                    "endTimeUnixMs": _ms(NOW - timedelta(days=2))}},
)  # fmt: skip


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LogTransport]:
    transport = ChdbTransport(tmp_path / "chdb")
    try:
        await migrate(transport)
        spec = Spec(20_000, (MAIN, OTHER), now_ms=_ms(NOW), seed=5)
        await transport.command(insert_sql(spec, 0, spec.rows))
        # Annotation-like rewrites and replays: FINAL must see one row per request.
        await transport.command(
            f"INSERT INTO {REQUEST_TABLE} SELECT * REPLACE (updated_at + toIntervalSecond(3) "
            "AS updated_at) FROM request_response_rmt FINAL WHERE cityHash64(request_id) % 7 = 0"
        )
        yield transport
    finally:
        await transport.close()


async def _two_phase(transport: LogTransport, query: SessionQuery) -> list[dict[str, Any]]:
    page_sql = build_session_page_query(MAIN, query)
    page = await transport.query(page_sql.sql, page_sql.params)
    rows_sql = build_session_rows_query(MAIN, query, page)
    rows = [] if rows_sql is None else await transport.query(rows_sql.sql, rows_sql.params)
    return session_page(page, rows)


async def test_two_phases_equal_one_statement(store: LogTransport) -> None:
    default_time = {"startTimeUnixMs": _ms(NOW - timedelta(days=30)), "endTimeUnixMs": _ms(NOW)}
    nonempty = 0
    for node in FILTERS:
        for extra in EXTRAS:
            body = {"timeFilter": default_time, "filter": node, "limit": 100, **extra}
            query = SessionQuery.from_body(body)
            one = build_session_query(MAIN, query)
            expected = [session_result(r) for r in await store.query(one.sql, one.params)]
            assert await _two_phase(store, query) == expected, body
            nonempty += bool(expected)
    assert nonempty > len(FILTERS) * 3
