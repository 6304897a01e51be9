"""The dashboard series from the hourly rollups, where they give the raw rows' answer exactly.

A series query is answered from ``request_rollup_hourly`` (see :mod:`logging_pipeline.rollup`
for how the rollups stay exact) when everything it asks is made of whole rollup rows:

* the filter tests only the rollup's dimensions (model, provider, status: by any of their
  field names, e.g. ``request_response_rmt.model`` or ``response.status``);
* the grouping is none, model or provider;
* every bucket is a union of whole UTC hours: an increment of an hour or more, and a time
  zone offset of whole hours.

The range's whole hours that are clean come from the rollup (its newest generation per
hour); the partial hours at either edge and the hours written since their last rollup come
from the request rows, summed into the same per-hour shape (sums, and the ``uniq`` and
``quantiles`` inputs — the distinct user hashes and the latency and TTFT values, as arrays — which
``uniqArray``/``quantilesArray`` read as one aggregate over all the rows would: exact up to
``quantiles``' 8,192 values per bucket, as the raw query). Anything else is answered by
:func:`~logging_pipeline.query.dashboard.build_series_query` from the rows alone.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from logging_pipeline.query.aggregates import org_condition
from logging_pipeline.query.binder import ParamBinder
from logging_pipeline.query.builder import CompiledQuery
from logging_pipeline.query.compiler import MAX_DEPTH, compile_filter
from logging_pipeline.query.dashboard import QUANTILES, SeriesQuery, cache_savings, series_sql
from logging_pipeline.query.fields import FIELD_TABLES, Column
from logging_pipeline.query.timeseries import TimeRange, as_datetime
from logging_pipeline.rollup import hour_runs
from logging_pipeline.schema import (
    REQUEST_TABLE,
    ROLLUP_DIMENSIONS,
    ROLLUP_DIRTY_TABLE,
    ROLLUP_HOUR,
    ROLLUP_METRICS,
    ROLLUP_QUANTILES,
    ROLLUP_TABLE,
)

assert ", ".join(map(str, QUANTILES)) == ROLLUP_QUANTILES, "the rollup stores these quantiles"

_HOUR = timedelta(hours=1)
_MS = timedelta(milliseconds=1)
_DT64 = "DateTime64(3, 'UTC')"
_DT = "DateTime('UTC')"
_GROUPS = (None, "model", "provider")
SAVINGS = ("cache_saved_cost", "cache_saved_latency")
"""The rollup's cache-savings sums (``0009_rollup_cache_savings``)."""
MAX_RUNS = 16
"""Ranges of hours read from the rows inside the window (see :func:`coalesce`)."""
_ADDITIVE = (
    "requests", "errors", "cost", "prompt_tokens", "completion_tokens",
    "prompt_cache_read_tokens", "prompt_cache_write_tokens", "reasoning_tokens", "cache_hits",
    "threats", "latency_n", "latency_sum", "ttft_n", "ttft_sum",
)  # fmt: skip
_MERGED = (
    *(f"sum({name}) AS {name}" for name in _ADDITIVE),
    "uniqArray(users_h) AS users",
    f"quantilesArray({ROLLUP_QUANTILES})(latency_v) AS latency_q",
    f"quantilesArray({ROLLUP_QUANTILES})(ttft_v) AS ttft_q",
    *(f"sum({name}) AS {name}" for name in SAVINGS),
)
"""The series' metrics (the names ``dashboard.series`` reads) from per-hour rows, and what
the range's cache hits saved (:func:`rollup_cache_savings`): ``uniqArray`` over the hours'
distinct user hashes and ``quantilesArray`` over their values give what ``uniq`` over the
hashes and ``quantiles`` over the values of the rows give (``dashboard._SUMS``)."""
_COLUMNS = ", ".join(
    ("hour", *ROLLUP_DIMENSIONS, *(metric.rsplit(" AS ", 1)[1] for metric in ROLLUP_METRICS))
)
"""The rollup's columns in the order of the raw part's ``SELECT`` (``UNION ALL`` is by
position)."""


@dataclass(frozen=True, slots=True)
class RollupWindow:
    """The whole hours ``[first, end)`` (aware UTC) of a query's range the rollup may give."""

    first: datetime
    end: datetime


def rollup_window(query: SeriesQuery) -> RollupWindow | None:
    """The window of whole hours when the rollup can answer ``query`` (else None)."""
    if query.group_by not in _GROUPS or query.buckets.increment == "min":
        return None
    if query.buckets.tz_minutes % 60 or not rollup_filter(query.filter):
        return None
    whole = whole_periods(query.time_range, _floor_hour, _HOUR)
    return RollupWindow(*whole) if whole is not None else None


def whole_periods(time_range: TimeRange, floor: Callable[[datetime], datetime],
                  step: timedelta) -> tuple[datetime, datetime] | None:  # fmt: skip
    """``(first, end)``: the whole periods (``floor``-aligned, ``step`` long; aware UTC) of
    ``time_range`` a rollup of such periods may give, or None when there is none."""
    start, end = time_range.start, time_range.end
    first = floor(start)
    if first < start:
        first += step
    # Inclusive end: the period ending at end + 1 ms is whole (the stored precision is 1 ms).
    last = floor(end + _MS) if time_range.bounds[1] == "]" else floor(end)
    return (first, last) if first < last else None


def rollup_filter(node: Any) -> bool:
    """True when ``node`` is well formed and tests only the rollup's dimension columns."""
    return tests_only(node, FIELD_TABLES, ROLLUP_DIMENSIONS.__contains__)


def tests_only(node: Any, tables: Mapping[str, Mapping[str, Any]], kept: Callable[[str], bool],
               depth: int = 0) -> bool:  # fmt: skip
    """True when the filter ``node`` is well formed and every field it tests is a plain
    column of ``tables`` whose expression a rollup keeps (``kept``): the rollup can then
    apply the same filter to its own rows."""
    if depth > MAX_DEPTH:
        return False
    if node == "all":
        return True
    if not isinstance(node, Mapping):
        return False
    if {"left", "operator", "right"} & node.keys():
        return (
            set(node) == {"left", "operator", "right"}
            and tests_only(node["left"], tables, kept, depth + 1)
            and tests_only(node["right"], tables, kept, depth + 1)
        )
    for table, fields in node.items():
        specs = tables.get(table)
        if specs is None or not isinstance(fields, Mapping):
            return False
        for field in fields:
            spec = specs.get(field)
            if not isinstance(spec, Column) or not kept(spec.expr):
                return False
    return True


def build_stale_hours_query(org_id: str, window: RollupWindow) -> CompiledQuery:
    """The hours of ``window`` whose newest rollup is older than their newest write."""
    binder = ParamBinder()
    org = org_condition(binder, org_id)
    first = binder.bind(_sql_hour(window.first), _DT)
    end = binder.bind(_sql_hour(window.end), _DT)
    where = f"{org} AND hour >= {first} AND hour < {end}"
    sql = (
        f"SELECT d.hour AS hour FROM (SELECT hour, max(marked_at) AS marked "
        f"FROM {ROLLUP_DIRTY_TABLE} WHERE {where} GROUP BY hour) AS d "
        f"LEFT JOIN (SELECT hour, max(valid_through) AS vt FROM {ROLLUP_TABLE} "
        f"WHERE {where} GROUP BY hour) AS r ON d.hour = r.hour "
        "WHERE d.marked > r.vt ORDER BY hour"
    )
    return CompiledQuery(sql, binder.params)


def stale_hours(rows: Sequence[Mapping[str, Any]]) -> list[datetime]:
    return [as_datetime(row["hour"]) for row in rows]


def build_rollup_series_query(org_id: str, query: SeriesQuery, window: RollupWindow,
                              stale: Sequence[datetime], every_group: bool = False
                              ) -> CompiledQuery:  # fmt: skip
    """The series of :mod:`~logging_pipeline.query.dashboard`: clean whole hours from the
    rollup, the rest of the range from the request rows (``stale``: the window's hours to
    read raw, from :func:`build_stale_hours_query`)."""
    binder = ParamBinder()
    org = org_condition(binder, org_id)
    runs = coalesce(hour_runs([h for h in stale if window.first <= h < window.end]), MAX_RUNS)
    # Bound once, used by both copies of the source (the top groups' and the series').
    first = binder.bind(_sql_hour(window.first), _DT)
    end = binder.bind(_sql_hour(window.end), _DT)
    in_window = f"hour >= {first} AND hour < {end}"
    clean = "".join(
        f" AND NOT (hour >= {binder.bind(_sql_hour(lo), _DT)} "
        f"AND hour < {binder.bind(_sql_hour(hi), _DT)})"
        for lo, hi in runs
    )
    raw_parts = [
        f"request_created_at < {binder.bind(_sql_ms(window.first), _DT64)}",
        f"request_created_at >= {binder.bind(_sql_ms(window.end), _DT64)}",
        *(
            f"(request_created_at >= {binder.bind(_sql_ms(lo), _DT64)} AND "
            f"request_created_at < {binder.bind(_sql_ms(hi), _DT64)})"
            for lo, hi in runs
        ),
    ]

    def source() -> str:  # compiled once per use: each copy binds its own filter parameters
        rolled = (
            f"SELECT {_COLUMNS} FROM {ROLLUP_TABLE} WHERE {org} AND {in_window}{clean} "
            f"AND (hour, valid_through) IN (SELECT hour, max(valid_through) FROM {ROLLUP_TABLE} "
            f"WHERE {org} AND {in_window} GROUP BY hour) "
            f"AND ({compile_filter(query.filter, binder)})"
        )
        raw_where = " AND ".join(
            (
                org,
                query.time_range.condition(binder),
                f"({' OR '.join(raw_parts)})",
                f"({compile_filter(query.filter, binder)})",
            )
        )
        raw = (
            f"SELECT {ROLLUP_HOUR} AS hour, {', '.join(ROLLUP_DIMENSIONS)}, "
            f"{', '.join(ROLLUP_METRICS)} FROM {REQUEST_TABLE} FINAL WHERE {raw_where} "
            f"GROUP BY hour, {', '.join(ROLLUP_DIMENSIONS)}"
        )
        return f"({rolled} UNION ALL {raw})"

    bucket = query.buckets.expr(binder, column="hour")
    return series_sql(binder, query, source, bucket, _MERGED, "sum(requests)", every_group)


def coalesce(runs: list[tuple[datetime, datetime]], limit: int
             ) -> list[tuple[datetime, datetime]]:  # fmt: skip
    """At most ``limit`` runs covering ``runs``: the narrowest gaps closed first.

    A closed gap's hours are read from the rows although their rollup is clean — exact all
    the same (each hour comes from one side) — so that a store with many scattered stale
    hours (a bulk annotation, a fresh migration) gives a statement of bounded size.
    """
    if len(runs) <= limit:
        return runs
    gaps = sorted(range(len(runs) - 1), key=lambda i: (runs[i + 1][0] - runs[i][1], i))
    closed = set(gaps[: len(runs) - limit])
    out = [runs[0]]
    for i in range(1, len(runs)):
        if i - 1 in closed:
            out[-1] = (out[-1][0], runs[i][1])
        else:
            out.append(runs[i])
    return out


def _floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _sql_hour(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def _sql_ms(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}"
    )


def rollup_cache_savings(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """What the range's cache hits saved (``{cost, latency_ms}``, as
    :func:`~logging_pipeline.query.dashboard.cache_savings` gives it), summed over the buckets
    of an *ungrouped* :func:`build_rollup_series_query` answer: the same sums, under the same
    filter and range, as :func:`~logging_pipeline.query.dashboard.build_cache_savings_query`
    reads from the rows, without a second statement over them."""
    total = {"cost": 0, "latency_ms": 0}
    for row in rows:
        total["cost"] += int(row.get("cache_saved_cost") or 0)
        total["latency_ms"] += int(row.get("cache_saved_latency") or 0)
    return cache_savings([total])
