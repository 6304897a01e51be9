"""The per-day user rollups answer ``/v1/user/metrics/query`` exactly as the request rows do.

The rows are the analytics bench's generator (30 days, two organisations), rewritten the
ways the log rewrites rows (``tests.test_rollups.REWRITES``: annotations, journal replays, a
reused request id an hour later, a replacement with other metrics, a late older version).
Every page is computed twice, from the rows (``build_user_metrics_query``) and through the
rollup (``build_rollup_user_metrics_query``), and must be equal, user for user and field for
field — for filters on the user id and on user aggregates, every sort key, time zones of
whole hours east and west of UTC (``active_for`` counts *local* days), ranges with partial
days at either edge — with every day rolled up, with rewritten days not yet recomputed, and
after a migration of a store that predates the user rollups.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from logging_pipeline.clickhouse.chdb_transport import ChdbTransport
from logging_pipeline.clickhouse.migrate import migrate
from logging_pipeline.clickhouse.transport import LogTransport
from logging_pipeline.query.user_rollup import (
    active_days,
    build_rollup_user_count_query,
    build_rollup_user_metrics_query,
    build_stale_days_query,
    stale_days,
    user_rollup_window,
)
from logging_pipeline.query.users import (
    UserMetricsQuery,
    build_user_count_query,
    build_user_metrics_query,
    metrics_page,
)
from logging_pipeline.rollup import refresh
from logging_pipeline.schema import ROLLUP_DIRTY_TABLE, USER_ROLLUP_TABLE
from tests.test_rollups import MAIN, NOW, OTHER, _generate, _rewrite, _store_at

USER = "user-3@example.com"


def _uid(field: str, operator: str, value: Any, table: str = "users_view") -> Any:
    name = "user_user_id" if table == "users_view" else "user_id"
    return {table: {name: {operator: value}}}


FILTERS: tuple[Any, ...] = (
    "all",
    {},
    _uid("user_user_id", "contains", "1"),
    _uid("user_id", "equals", USER, table="request_response_rmt"),
    {"left": _uid("user_user_id", "equals", USER), "operator": "or",
     "right": _uid("user_user_id", "like", "user-2%")},
    {"users_view": {"user_total_requests": {"gte": 40}}},
    {"left": _uid("user_user_id", "contains", "2"), "operator": "and",
     "right": {"users_view": {"user_active_for": {"gte": 10}}}},
)  # fmt: skip
RAW_ONLY_FILTERS: tuple[Any, ...] = (
    {"request_response_rmt": {"model": {"equals": "gpt-4o"}}},
    {"request_response_rmt": {"properties": {"Environment": {"equals": "production"}}}},
    {"left": _uid("user_user_id", "equals", USER), "operator": "and",
     "right": {"response": {"status": {"equals": 200}}}},
)  # fmt: skip
SORTS: tuple[Any, ...] = (
    {"cost": "desc"}, {"last_active": "asc"}, {"active_for": "desc"}, {"user_id": "asc"},
    {"average_requests_per_day_active": "desc"}, {"first_active": "desc"},
    {"rate_limited_count": "desc"}, {"total_prompt_tokens": "asc"}, None,
)  # fmt: skip
ZONES = (0, 300, -120, 720, -840, 60, -60)
"""``timeZoneDifferenceMinutes`` of whole hours (UTC-5, UTC+2, UTC-12, UTC+14, ...)."""


def _seconds(moment: datetime) -> float:
    return moment.timestamp()


RANGES: tuple[tuple[float, float], ...] = (
    (_seconds(NOW - timedelta(days=30)), _seconds(NOW)),  # partial days at both edges
    (_seconds(datetime(2026, 3, 1, tzinfo=UTC)),
     _seconds(datetime(2026, 3, 16, tzinfo=UTC)) - 1),  # the last second's rest is left out
    (_seconds(datetime(2026, 3, 5, tzinfo=UTC)), _seconds(datetime(2026, 3, 12, tzinfo=UTC))),
    (_seconds(NOW - timedelta(days=2, minutes=7)), _seconds(NOW - timedelta(hours=5))),
    (_seconds(NOW - timedelta(hours=8)), _seconds(NOW)),  # no whole day
)  # fmt: skip
PAGES = ((0, 1000), (3, 7), (5000, 10))
"""(offset, limit): everything, a page, past the end (the count statement answers)."""


STRIDE = 46


def bodies(part: int = 0) -> list[dict[str, Any]]:
    """Every ``STRIDE``-th combination from the ``part``-th on: a spread, not the full product
    (each pair of statements costs time). Each state of the store a test checks reads its own
    part, so together they cover several times the combinations one shared part would."""
    out: list[dict[str, Any]] = []
    combos = itertools.product(RANGES, ZONES, FILTERS, SORTS, PAGES)
    for n, ((start, end), tz, node, sort, (offset, limit)) in enumerate(combos):
        if (n - part) % STRIDE:
            continue
        body: dict[str, Any] = {
            "filter": node, "offset": offset, "limit": limit,
            "timeFilter": {"startTimeUnixSeconds": start, "endTimeUnixSeconds": end},
            "timeZoneDifferenceMinutes": tz,
        }  # fmt: skip
        if sort is not None:
            body["sort"] = sort
        out.append(body)
    return out


async def _page(transport: LogTransport, page: Any, count: Any
                ) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
    users, total = metrics_page(await transport.query(page.sql, page.params))
    if total is None:
        counted = await transport.query(count.sql, count.params)
        total = int(counted[0]["total"])
    return users, total


async def _answers(transport: LogTransport, body: dict[str, Any], org: str = MAIN
                   ) -> tuple[Any, Any, list[datetime] | None]:  # fmt: skip
    """(from the rows, through the rollup, the stale days it read raw)."""
    query = UserMetricsQuery.from_body(body)
    raw = await _page(
        transport, build_user_metrics_query(org, query), build_user_count_query(org, query)
    )
    window = user_rollup_window(query)
    if window is None:
        return raw, raw, None
    stale_sql = build_stale_days_query(org, window)
    stale = stale_days(await transport.query(stale_sql.sql, stale_sql.params))
    rolled = await _page(
        transport,
        build_rollup_user_metrics_query(org, query, window, stale),
        build_rollup_user_count_query(org, query, window, stale),
    )
    return raw, rolled, stale


async def _check_all(transport: LogTransport, part: int) -> tuple[int, int]:
    """Every body of ``part`` equal both ways; (bodies through the rollup, stale days seen)."""
    rolled = stale_count = 0
    active_seen = users_seen = 0
    for body in bodies(part):
        raw, rollup, stale = await _answers(transport, body)
        assert rollup == raw, body
        if stale is not None:
            rolled += 1
            stale_count += len(stale)
            users_seen += len(raw[0])
            active_seen = max(active_seen, *(u["active_for"] for u in raw[0]), 0)
    assert users_seen > 100 and active_seen > 5  # the answers compared are not all empty
    raw, rollup, _ = await _answers(transport, bodies()[0], org=OTHER)
    assert rollup == raw and raw[1] > 0
    return rolled, stale_count


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LogTransport]:
    transport = ChdbTransport(tmp_path / "chdb")
    try:
        yield transport
    finally:
        await transport.close()


async def test_user_rollup_answers_equal_raw_rows(store: LogTransport) -> None:
    await migrate(store)
    await _generate(store)
    # Nothing rolled up yet: every day is read raw through the same statement shape.
    rolled, stale = await _check_all(store, 0)
    assert rolled > 20 and stale > 0
    await refresh(store, settle_seconds=0)
    days = await store.query(f"SELECT count(DISTINCT day) AS n FROM {USER_ROLLUP_TABLE}")
    assert days[0]["n"] >= 30
    rolled, stale = await _check_all(store, 9)
    assert rolled > 20 and stale == 0
    # Rewrites mark their days: read raw until recomputed, and exact either way.
    await _rewrite(store)
    count, _ = await refresh(store)  # default settle: the marks are too fresh
    assert count == 0
    rolled, stale = await _check_all(store, 18)
    assert stale > 0
    await refresh(store, settle_seconds=0)
    rolled, stale = await _check_all(store, 27)
    assert stale == 0
    # Merged generations (the engine's background merges, forced) change nothing.
    await store.command(f"OPTIMIZE TABLE {USER_ROLLUP_TABLE} FINAL")
    await _check_all(store, 36)


async def test_migration_backfills_the_user_rollup_of_an_0010_store(
    store: LogTransport,
) -> None:
    # A store as the release before the user rollups left it (0001-0010), rows written and
    # rewritten, hours rolled up: 0011 rolls every day up as of the migration.
    await _store_at(store, 10)
    await _generate(store)
    await _rewrite(store)
    # Marks older than the settle time, as a store's are (written seconds ago here).
    await store.command(f"TRUNCATE TABLE {ROLLUP_DIRTY_TABLE}")
    assert await migrate(store) == ["0011_user_rollup_daily"]
    rolled, stale = await _check_all(store, 5)
    assert rolled > 20 and stale == 0
    await _rewrite(store)  # written after the migration: marked, read raw until refreshed
    rolled, stale = await _check_all(store, 14)
    assert stale > 0
    assert await migrate(store) == []


def test_user_rollup_only_for_what_it_can_answer() -> None:
    base = {"filter": "all", "offset": 0, "limit": 10,
            "timeFilter": {"startTimeUnixSeconds": RANGES[0][0],
                           "endTimeUnixSeconds": RANGES[0][1]}}  # fmt: skip
    for node in FILTERS:
        assert user_rollup_window(UserMetricsQuery.from_body({**base, "filter": node})), node
    for extra in (*({"filter": node} for node in RAW_ONLY_FILTERS),
                  {"timeZoneDifferenceMinutes": 330}, {"timeZoneDifferenceMinutes": -1020},
                  {"timeFilter": None},
                  {"timeFilter": {"startTimeUnixSeconds": RANGES[4][0],
                                  "endTimeUnixSeconds": RANGES[4][1]}}):  # fmt: skip
        assert user_rollup_window(UserMetricsQuery.from_body({**base, **extra})) is None, extra
    window = user_rollup_window(UserMetricsQuery.from_body(base))
    assert window is not None
    assert window.first == datetime(2026, 2, 19, tzinfo=UTC)
    assert window.end == datetime(2026, 3, 20, tzinfo=UTC)
    inclusive = {"startTimeUnixSeconds": RANGES[2][0], "endTimeUnixSeconds": RANGES[2][1]}
    window = user_rollup_window(UserMetricsQuery.from_body({**base, "timeFilter": inclusive}))
    assert window is not None and window.end == datetime(2026, 3, 12, tzinfo=UTC)


async def test_active_days_from_hour_masks(store: LogTransport) -> None:
    """Two users' rows on two adjacent UTC days, in every offset the rollup reads: the local
    days the masks give are the local days of the hours they hold."""
    cases = ((0,), (23,), (0, 23), tuple(range(24)), (5, 6, 17), (11, 12))
    for tz in range(-16 * 60, 17 * 60, 60):
        for first, second in itertools.product(cases, (cases[0], cases[2], cases[4])):
            want = {
                (datetime(2026, 3, day, h, tzinfo=UTC) - timedelta(minutes=tz)).date()
                for day, hours in ((10, first), (11, second))
                for h in hours
            }
            rows = await store.query(
                f"SELECT {active_days(tz)} AS n FROM (SELECT toDate('2026-03-10') AS day, "
                "toUInt32({a:UInt32}) AS hours UNION ALL SELECT toDate('2026-03-11') AS day, "
                "toUInt32({b:UInt32}) AS hours)",
                {"a": sum(1 << h for h in first), "b": sum(1 << h for h in second)},
            )
            assert rows[0]["n"] == len(want), (tz, first, second)
