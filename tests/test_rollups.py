"""The hourly rollups answer the dashboard series exactly as the request rows do.

Rows are the analytics bench's generator (30 days, two organisations, every model, status
and stream/cache shape), then rewritten the ways the log rewrites rows: annotations (a newer
``updated_at`` with new scores and properties), journal replays (the same row twice), a
reused request id at another time (two requests), a replacement with other metrics (the same
key, newer), and a late older version (the same key, older: ``FINAL`` keeps the newer).
Every series is computed twice, from the rows (``build_series_query``) and through the
rollup (``build_rollup_series_query``), and the answers must be equal, field for field:
with every hour rolled up, with rewritten hours not yet recomputed, and after a migration
of a store that predates the rollups.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bench.analytics_data import Spec, insert_sql
from logging_pipeline.clickhouse.chdb_transport import ChdbTransport
from logging_pipeline.clickhouse.connect_transport import ClickHouseConnectTransport
from logging_pipeline.clickhouse.errors import LogStoreError
from logging_pipeline.clickhouse.migrate import MIGRATIONS_TABLE_DDL, migrate
from logging_pipeline.clickhouse.transport import LogTransport
from logging_pipeline.query.dashboard import (
    SeriesQuery,
    build_cache_savings_query,
    build_series_query,
    cache_savings,
    fits,
    series,
)
from logging_pipeline.query.rollup import (
    build_rollup_series_query,
    build_stale_hours_query,
    coalesce,
    rollup_cache_savings,
    rollup_filter,
    rollup_window,
    stale_hours,
)
from logging_pipeline.rollup import RollupRefresher, hour_runs, refresh
from logging_pipeline.schema import (
    MIGRATIONS,
    MIGRATIONS_TABLE,
    REQUEST_TABLE,
    ROLLUP_DIRTY_TABLE,
    ROLLUP_METRICS_0008,
    ROLLUP_METRICS_0009,
    ROLLUP_TABLE,
    rollup_select,
)
from tests.clickhouse_http import ChdbHttpServer

MAIN = "aaaaaaaa-0000-4000-8000-0000000000a1"
OTHER = "bbbbbbbb-0000-4000-8000-0000000000b2"
NOW = datetime(2026, 3, 20, 9, 41, 27, 345000, tzinfo=UTC)
ROWS = 6000
"""Few enough that no bucket holds more than ``quantiles``' 8,192 exact values."""


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _leaf(field: str, operator: str, value: Any, table: str = "request_response_rmt") -> Any:
    return {table: {field: {operator: value}}}


FILTERS: tuple[Any, ...] = (
    "all",
    {},
    _leaf("model", "equals", "gpt-4o"),
    _leaf("provider", "not-equals", "openai"),
    _leaf("status", "gte", 400),
    _leaf("status", "equals", 200, table="response"),
    {"left": _leaf("model", "equals", "gpt-4o-mini"), "operator": "or",
     "right": _leaf("status", "equals", 429)},
    {"left": _leaf("provider", "contains", "an"), "operator": "and",
     "right": _leaf("status", "lt", 500)},
)  # fmt: skip
RAW_ONLY_FILTERS: tuple[Any, ...] = (
    _leaf("user_id", "equals", "user-1@example.com"),
    {"request_response_rmt": {"properties": {"Environment": {"equals": "production"}}}},
    _leaf("request_created_at", "gte", _iso(NOW - timedelta(days=3))),
)
RANGES: tuple[tuple[datetime, datetime], ...] = (
    (NOW - timedelta(days=30), NOW),  # partial hours at both edges
    (datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 15, 23, 59, 59, 999000, tzinfo=UTC)),
    (NOW - timedelta(days=2, minutes=7), NOW - timedelta(hours=5, seconds=13)),
    (NOW - timedelta(minutes=40), NOW - timedelta(minutes=10)),  # no whole hour
)
SHAPES: tuple[tuple[str, int], ...] = (
    ("hour", 0), ("day", 0), ("day", 300), ("week", -120), ("month", 60), ("day", 30),
)  # fmt: skip
GROUPS: tuple[Any, ...] = (None, "model", "provider")


def bodies() -> list[dict[str, Any]]:
    """A spread of combinations (not the full product: each pair of queries costs time)."""
    out: list[dict[str, Any]] = []
    combos = itertools.product(RANGES, SHAPES, GROUPS, FILTERS)
    for n, ((start, end), (increment, tz), group, node) in enumerate(combos):
        if n % 17:
            continue
        if increment == "hour" and end - start > timedelta(days=3):
            continue
        out.append(
            {"timeFilter": {"start": _iso(start), "end": _iso(end)}, "dbIncrement": increment,
             "timeZoneDifference": tz, "groupBy": group, "groupLimit": 3, "filter": node}
        )  # fmt: skip
    return out


async def _answers(transport: LogTransport, body: dict[str, Any], org: str = MAIN
                   ) -> tuple[Any, Any, list[datetime] | None]:  # fmt: skip
    """(from the rows, through the rollup path, the stale hours it read raw)."""
    query = SeriesQuery.from_body(body)
    raw_sql = build_series_query(org, query)
    raw = series(query, await transport.query(raw_sql.sql, raw_sql.params))
    if query.group_by is None:  # what cache hits saved: a statement of its own on the rows
        saved_sql = build_cache_savings_query(org, query)
        raw["cache_savings"] = cache_savings(
            await transport.query(saved_sql.sql, saved_sql.params)
        )
    window = rollup_window(query)
    if window is None:
        return raw, raw, None
    stale_sql = build_stale_hours_query(org, window)
    stale = stale_hours(await transport.query(stale_sql.sql, stale_sql.params))
    compiled = build_rollup_series_query(org, query, window, stale)
    rows = await transport.query(compiled.sql, compiled.params)
    rollup = series(query, rows)
    if query.group_by is not None:  # the one-pass form: the same answer whenever it fits
        for every in (
            build_series_query(org, query, every_group=True),
            build_rollup_series_query(org, query, window, stale, every_group=True),
        ):
            every_rows = await transport.query(every.sql, every.params)
            groups = {s["group"] for s in raw["series"] if not s["other"]}
            others = [s for s in raw["series"] if s["other"]]
            assert fits(query, every_rows) == (not others), body
            if not others:
                assert series(query, every_rows) == raw, body
            else:  # more groups than the limit: each one its own series, none "other"
                assert len(series(query, every_rows)["series"]) > len(groups), body
    if query.group_by is None:  # ... and the sums the rollup keeps
        rollup["cache_savings"] = rollup_cache_savings(rows)
    return raw, rollup, stale


async def _check_all(transport: LogTransport) -> tuple[int, int]:
    """Every body equal both ways; (bodies through the rollup, stale hours seen)."""
    rolled = stale_count = 0
    saved_somewhere = False
    for body in bodies():
        raw, rollup, stale = await _answers(transport, body)
        assert rollup == raw, body
        if stale is not None:
            rolled += 1
            stale_count += len(stale)
            if "cache_savings" in raw:
                saved_somewhere = saved_somewhere or raw["cache_savings"]["cost"] > 0
            assert any(s["totals"]["requests"] for s in raw["series"]) or body["filter"] != "all"
    assert saved_somewhere  # the data has cache hits: the savings compared are not all 0
    raw, rollup, _ = await _answers(transport, bodies()[0], org=OTHER)
    assert rollup == raw
    return rolled, stale_count


async def _generate(transport: LogTransport) -> None:
    spec = Spec(ROWS, (MAIN, OTHER), now_ms=int(NOW.timestamp() * 1000), seed=11)
    await transport.command(insert_sql(spec, 0, ROWS))


REWRITES = (
    # An annotation: newer version, new scores and properties (the metrics unchanged).
    "* REPLACE (updated_at + toIntervalSecond(5) AS updated_at, "
    "mapUpdate(scores, map('accuracy', 0.5)) AS scores, "
    "mapUpdate(properties, map('Environment', 'staging')) AS properties) "
    "WHERE cityHash64(request_id) % 17 = 0",
    # A journal replay: the same row again.
    "* WHERE cityHash64(request_id) % 23 = 1",
    # A reused request id an hour later: another request.
    "* REPLACE (request_created_at + toIntervalMinute(61) AS request_created_at) "
    "WHERE cityHash64(request_id) % 29 = 2",
    # The same key rewritten with other metrics (a newer capture under the same id).
    "* REPLACE (updated_at + toIntervalSecond(9) AS updated_at, 'gpt-4o' AS model, "
    "toInt64(503) AS status, toNullable(toUInt64(7777)) AS cost, "
    "toNullable(toInt64(4321)) AS latency) WHERE cityHash64(request_id) % 31 = 3",
    # An older version arriving late: FINAL keeps the newer row, so must the rollup.
    "* REPLACE (updated_at - toIntervalSecond(60) AS updated_at, 'late-model' AS model, "
    "toInt64(500) AS status) WHERE cityHash64(request_id) % 37 = 4",
)


async def _rewrite(transport: LogTransport) -> None:
    for rewrite in REWRITES:
        await transport.command(
            f"INSERT INTO {REQUEST_TABLE} SELECT {rewrite.split(' WHERE ')[0]} "
            f"FROM {REQUEST_TABLE} FINAL WHERE {rewrite.split(' WHERE ')[1]}"
        )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LogTransport]:
    transport = ChdbTransport(tmp_path / "chdb")
    try:
        yield transport
    finally:
        await transport.close()


async def test_rollup_answers_equal_raw_rows(store: LogTransport) -> None:
    await migrate(store)
    await _generate(store)
    # Nothing rolled up yet: every hour is read raw through the same statement shape.
    rolled, stale = await _check_all(store)
    assert rolled > 15 and stale > 0
    count, _ = await refresh(store, settle_seconds=0)
    assert count > 700  # 30 days of hours, two organisations
    rolled, stale = await _check_all(store)
    assert rolled > 15 and stale == 0
    # Rewrites mark their hours: read raw until recomputed, and exact either way.
    await _rewrite(store)
    count, _ = await refresh(store)  # default settle: the marks are too fresh
    assert count == 0
    rolled, stale = await _check_all(store)
    assert stale > 0
    count, _ = await refresh(store, settle_seconds=0)
    assert count > 0
    rolled, stale = await _check_all(store)
    assert stale == 0
    # Merged generations (the engine's background merges, forced) change nothing.
    await store.command(f"OPTIMIZE TABLE {ROLLUP_TABLE} FINAL")
    await store.command(f"OPTIMIZE TABLE {REQUEST_TABLE} FINAL")
    await _check_all(store)


async def test_refresh_since_skips_reflected_marks(store: LogTransport) -> None:
    await migrate(store)
    await _generate(store)
    count, since = await refresh(store, settle_seconds=0)
    assert count > 0
    assert (await refresh(store, settle_seconds=0, since=since))[0] == 0
    await _rewrite(store)
    count, _ = await refresh(store, settle_seconds=0, since=since)
    assert count > 0
    await _check_all(store)


async def _store_at(store: LogTransport, migrations: int) -> None:
    """``store`` as a release with the first ``migrations`` migrations left it."""
    await store.command(MIGRATIONS_TABLE_DDL)
    for version, statements in MIGRATIONS[:migrations]:
        for statement in statements:
            await store.command(statement)
        await store.command(
            f"INSERT INTO {MIGRATIONS_TABLE} (version) SELECT {{v:String}}", {"v": version}
        )


async def test_migration_backfills_an_existing_store(store: LogTransport) -> None:
    # A store as the previous release left it: migrations 0001-0007, rows already written.
    await _store_at(store, 7)
    await _generate(store)
    await _rewrite(store)
    assert await migrate(store) == [
        "0008_hourly_rollups", "0009_rollup_cache_savings", "0010_rollup_value_arrays",
        "0011_user_rollup_daily",
    ]  # fmt: skip
    rows = await store.query(f"SELECT count() AS n FROM {ROLLUP_DIRTY_TABLE}")
    assert rows[0]["n"] == 0  # rows written before the view: rolled up, not marked
    rolled, stale = await _check_all(store)
    assert rolled > 15 and stale == 0
    # Written after the migration: marked, read raw until the next refresh.
    await _rewrite(store)
    rolled, stale = await _check_all(store)
    assert stale > 0
    assert await migrate(store) == []


def test_rollup_only_for_rollup_dimensions() -> None:
    for node in FILTERS:
        assert rollup_filter(node), node
    for node in (*RAW_ONLY_FILTERS, {"left": "all", "operator": "and"}, [], "none",
                 {"request_response_rmt": {"nope": {"equals": 1}}}):  # fmt: skip
        assert not rollup_filter(node), node
    base = {"timeFilter": {"start": _iso(NOW - timedelta(days=3)), "end": _iso(NOW)},
            "dbIncrement": "day"}  # fmt: skip
    assert rollup_window(SeriesQuery.from_body(base)) is not None
    for extra in ({"groupBy": "user"}, {"groupBy": {"property": "App"}},
                  {"dbIncrement": "min"}, {"timeZoneDifference": 330},
                  {"filter": RAW_ONLY_FILTERS[1]}):  # fmt: skip
        assert rollup_window(SeriesQuery.from_body({**base, **extra})) is None, extra
    window = rollup_window(SeriesQuery.from_body(base))
    assert window is not None
    assert window.first == datetime(2026, 3, 17, 10, tzinfo=UTC)
    assert window.end == datetime(2026, 3, 20, 9, tzinfo=UTC)


class _DownStore:
    name = "down"

    async def query(self, *args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        raise LogStoreError("store is down (test)")

    async def command(self, *args: Any, **kwargs: Any) -> None:
        raise LogStoreError("store is down (test)")


async def test_refresher_rolls_up_when_due_and_survives_a_down_store(
    store: LogTransport, caplog: pytest.LogCaptureFixture
) -> None:
    await migrate(store)
    await _generate(store)
    refresher = RollupRefresher(store, interval=3600, settle_seconds=0)
    await refresher.maybe_refresh()
    rolled = await store.query(f"SELECT count() AS n FROM {ROLLUP_TABLE}")
    assert rolled[0]["n"] > 0
    await _rewrite(store)
    await refresher.maybe_refresh()  # not due for an hour: the rewrites stay stale
    query = SeriesQuery.from_body(
        {"timeFilter": {"start": _iso(RANGES[0][0]), "end": _iso(NOW)}, "dbIncrement": "day"}
    )
    window = rollup_window(query)
    assert window is not None
    compiled = build_stale_hours_query(MAIN, window)
    assert stale_hours(await store.query(compiled.sql, compiled.params))
    down = RollupRefresher(_DownStore(), settle_seconds=0)  # type: ignore[arg-type]
    await down.maybe_refresh()
    assert "rollup refresh failed" in caplog.text


async def test_rollups_through_clickhouse_connect(tmp_path: Path) -> None:
    """The server transport: the migration's view, the refresh's parameterised inserts and
    the two statements of a query, over ClickHouse's HTTP interface."""
    http = ChdbHttpServer(tmp_path / "clickhouse").start()
    transport = ClickHouseConnectTransport(http.url)
    try:
        await migrate(transport)
        await _generate(transport)
        count, _ = await refresh(transport, settle_seconds=0)
        assert count > 700
        await _rewrite(transport)
        rolled, stale = await _check_all(transport)
        assert rolled > 15 and stale > 0
        await refresh(transport, settle_seconds=0)
        rolled, stale = await _check_all(transport)
        assert rolled > 15 and stale == 0
    finally:
        await transport.close()
        http.stop()


def test_coalesce_bounds_the_raw_ranges() -> None:
    hour = timedelta(hours=1)
    base = datetime(2026, 3, 1, tzinfo=UTC)
    hours = [base + n * hour for n in (0, 1, 3, 10, 11, 12, 14, 30)]
    runs = hour_runs(hours)
    assert runs == [(base, base + 2 * hour), (base + 3 * hour, base + 4 * hour),
                    (base + 10 * hour, base + 13 * hour), (base + 14 * hour, base + 15 * hour),
                    (base + 30 * hour, base + 31 * hour)]  # fmt: skip
    assert coalesce(runs, 5) == runs
    three = coalesce(runs, 3)  # the 1-hour gaps close first
    assert three == [(base, base + 4 * hour), (base + 10 * hour, base + 15 * hour),
                     (base + 30 * hour, base + 31 * hour)]  # fmt: skip
    assert coalesce(runs, 1) == [(base, base + 31 * hour)]


async def test_savings_migration_recomputes_rollups_of_an_0008_store(
    store: LogTransport,
) -> None:
    # A store as the release with rollups but no savings in them left it (0001-0008), its
    # hours rolled up: the generation 0009 writes carries the savings, exactly.
    await _store_at(store, 8)
    await _generate(store)
    await store.command(f"TRUNCATE TABLE {ROLLUP_DIRTY_TABLE}")
    await store.command(
        f"INSERT INTO {ROLLUP_TABLE} "
        + rollup_select("1", "now64(6, 'UTC') - toIntervalSecond(120)", ROLLUP_METRICS_0008)
    )
    assert await migrate(store) == [
        "0009_rollup_cache_savings", "0010_rollup_value_arrays", "0011_user_rollup_daily",
    ]  # fmt: skip
    rolled, stale = await _check_all(store)
    assert rolled > 15 and stale == 0


async def test_value_arrays_migration_recomputes_rollups_of_an_0009_store(
    store: LogTransport,
) -> None:
    # A store as the release with state columns (users, latency_q, ttft_q) left it (0001-0009),
    # every hour rolled up with them: 0010 drops the states, adds the value arrays and writes
    # a generation that carries them, so the series stay exact and nothing reads raw.
    await _store_at(store, 9)
    await _generate(store)
    await store.command(f"TRUNCATE TABLE {ROLLUP_DIRTY_TABLE}")
    await store.command(
        f"INSERT INTO {ROLLUP_TABLE} "
        + rollup_select("1", "now64(6, 'UTC') - toIntervalSecond(120)", ROLLUP_METRICS_0009)
    )
    assert await migrate(store) == ["0010_rollup_value_arrays", "0011_user_rollup_daily"]
    columns = await store.query(
        "SELECT name FROM system.columns WHERE database = currentDatabase() "
        f"AND table = '{ROLLUP_TABLE}'"
    )
    names = {row["name"] for row in columns}
    assert {"users_h", "latency_v", "ttft_v"} <= names
    assert not {"users", "latency_q", "ttft_q"} & names
    rolled, stale = await _check_all(store)
    assert rolled > 15 and stale == 0
    # The arrays hold what the rows do: every latency of the organisation's rows, once.
    counted = await store.query(
        f"SELECT sum(length(latency_v)) AS n FROM {ROLLUP_TABLE} WHERE organization_id = "
        f"{{org:UUID}} AND (hour, valid_through) IN (SELECT hour, max(valid_through) "
        f"FROM {ROLLUP_TABLE} WHERE organization_id = {{org:UUID}} GROUP BY hour)",
        {"org": MAIN},
    )
    rows = await store.query(
        f"SELECT count(latency) AS n FROM {REQUEST_TABLE} FINAL "
        "WHERE organization_id = {org:UUID}",
        {"org": MAIN},
    )
    assert counted[0]["n"] == rows[0]["n"] > 0
