"""User metrics from the per-day user rollups, where they give the raw rows' answer exactly.

``/v1/user/metrics/query`` groups every request of the range by user; over a month of a busy
organization that is most of its cost (README "Analytics (issue 15)"). ``user_rollup_daily``
(migration 0011, kept exact by :mod:`logging_pipeline.rollup`) holds one row per
organization, UTC day and user with the sums the query adds up, the first and last request
time, and ``hours``: the 24-bit mask of the UTC hours the user was active that day. A query
is answered from it when:

* the filter's per-request part tests only the user id (the Users view's search, or
  ``request_response_rmt.user_id``); its per-user part (``users_view`` aggregates, Helicone's
  ``HAVING``) is tested on the same per-user columns either way;
* the time zone is a whole number of hours within ±16 h: ``active_for`` counts *local* days,
  and an offset of whole hours moves each UTC hour into exactly one local day, so a day row's
  mask, shifted by the offset, tells which (at most two) local days it touches;
* the range has a time filter (whole UTC days of it come from the rollup).

The range's whole UTC days that are clean come from the rollup (each day's newest
generation); the partial days at either edge and the days written since their last rollup
come from the request rows, summed into the same per-(day, user) shape. Anything else is
answered by :func:`~logging_pipeline.query.users.build_user_metrics_query` from the rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from logging_pipeline.query.aggregates import org_condition, split_filter
from logging_pipeline.query.binder import ParamBinder
from logging_pipeline.query.builder import CompiledQuery
from logging_pipeline.query.compiler import compile_filter
from logging_pipeline.query.errors import FilterError
from logging_pipeline.query.rollup import coalesce, tests_only, whole_periods
from logging_pipeline.query.users import (
    ROW_TABLES,
    USER_AGGREGATES,
    USERS_TABLE,
    UserMetricsQuery,
    is_user_aggregate,
    metrics_page_query,
)
from logging_pipeline.rollup import day_start, period_runs
from logging_pipeline.schema import (
    REQUEST_TABLE,
    ROLLUP_DIRTY_TABLE,
    USER_ROLLUP_DAY,
    USER_ROLLUP_METRICS,
    USER_ROLLUP_TABLE,
)

_DAY = timedelta(days=1)
_DT64 = "DateTime64(3, 'UTC')"
MAX_SHIFT_HOURS = 16
"""The largest time zone offset (hours) read from the masks: 24 + 16 bits fit a UInt64."""
MAX_RUNS = 16
"""Ranges of stale days read from the rows inside the window (see ``query.rollup.coalesce``)."""
_COLUMNS = ", ".join(
    ("day", "user_id", *(metric.rsplit(" AS ", 1)[1] for metric in USER_ROLLUP_METRICS))
)
"""The rollup's columns in the order of the raw part's ``SELECT`` (``UNION ALL`` is by
position)."""


@dataclass(frozen=True, slots=True)
class DayWindow:
    """The whole UTC days ``[first, end)`` (aware UTC midnights) the rollup may give."""

    first: datetime
    end: datetime


def user_rollup_window(query: UserMetricsQuery) -> DayWindow | None:
    """The window of whole UTC days when the rollup can answer ``query`` (else None)."""
    if query.time_range is None or query.tz_minutes % 60:
        return None
    if abs(query.tz_minutes // 60) > MAX_SHIFT_HOURS:
        return None
    try:
        row_filter, _ = split_filter(query.filter, is_user_aggregate)
    except FilterError:
        return None  # the raw builder reports it
    if not user_id_filter(row_filter):
        return None
    whole = whole_periods(query.time_range, _floor_day, _DAY)
    return DayWindow(*whole) if whole is not None else None


def user_id_filter(node: Any) -> bool:
    """True when ``node`` is well formed and tests only the user id (a rollup column)."""
    return tests_only(node, ROW_TABLES, "user_id".__eq__)


def build_stale_days_query(org_id: str, window: DayWindow) -> CompiledQuery:
    """The days of ``window`` whose newest user rollup is older than their newest write."""
    binder = ParamBinder()
    org = org_condition(binder, org_id)
    first, end = _day(window.first), _day(window.end)
    sql = (
        f"SELECT d.day AS day FROM (SELECT toDate(hour) AS day, max(marked_at) AS marked "
        f"FROM {ROLLUP_DIRTY_TABLE} WHERE {org} "
        f"AND hour >= toDateTime({binder.bind(first, 'Date')}, 'UTC') "
        f"AND hour < toDateTime({binder.bind(end, 'Date')}, 'UTC') GROUP BY day) AS d "
        f"LEFT JOIN (SELECT day, max(valid_through) AS vt FROM {USER_ROLLUP_TABLE} "
        f"WHERE {org} AND day >= {binder.bind(first, 'Date')} "
        f"AND day < {binder.bind(end, 'Date')} GROUP BY day) AS r ON d.day = r.day "
        "WHERE d.marked > r.vt ORDER BY day"
    )
    return CompiledQuery(sql, binder.params)


def stale_days(rows: Sequence[Mapping[str, Any]]) -> list[datetime]:
    return [day_start(row["day"]) for row in rows]


def build_rollup_user_metrics_query(org_id: str, query: UserMetricsQuery, window: DayWindow,
                                    stale: Sequence[datetime]) -> CompiledQuery:  # fmt: skip
    """:func:`~logging_pipeline.query.users.build_user_metrics_query`'s page, its per-user
    metrics from the rollup's clean whole days and the rows of the rest of the range
    (``stale``: the window's days to read raw, from :func:`build_stale_days_query`)."""
    binder = ParamBinder()
    inner, outer = _per_user(binder, org_id, query, window, stale)
    return metrics_page_query(binder, query, inner, outer)


def build_rollup_user_count_query(org_id: str, query: UserMetricsQuery, window: DayWindow,
                                  stale: Sequence[datetime]) -> CompiledQuery:  # fmt: skip
    """Users matching (``build_user_count_query``), through the rollup."""
    binder = ParamBinder()
    inner, outer = _per_user(binder, org_id, query, window, stale)
    return CompiledQuery(f"SELECT count() AS total FROM ({inner}) WHERE {outer}", binder.params)


def active_days(tz_minutes: int) -> str:
    """``u_active`` (distinct local days) over per-(UTC day, user) rows.

    Local time is UTC minus ``tz_minutes`` (JavaScript's ``getTimezoneOffset``); with ``k``
    whole hours, UTC hour ``h`` of day ``D`` is local hour ``h - k``. Shifted left by
    ``24 - k``, the mask's bit of that hour lands at ``24 * j + (local hour)`` for the local
    day ``D - 1 + j``: each 24-bit slice that is not empty is a local day the row touches.
    """
    shift = 24 - tz_minutes // 60
    if shift == 24:
        return "uniqExact(day)"
    return (
        "uniqExactArray(arrayMap(i -> day - 1 + i, arrayFilter(i -> bitAnd(bitShiftRight("
        f"bitShiftLeft(toUInt64(hours), {shift}), 24 * i), 16777215) != 0, [0, 1, 2])))"
    )


def _per_user(binder: ParamBinder, org_id: str, query: UserMetricsQuery, window: DayWindow,
              stale: Sequence[datetime]) -> tuple[str, str]:  # fmt: skip
    """(inner per-user SELECT, outer aggregate condition), as ``aggregates.per_group_query``
    gives them for the rows, with the same columns."""
    assert query.time_range is not None
    row_filter, aggregate_filter = split_filter(query.filter, is_user_aggregate)
    org = org_condition(binder, org_id)
    runs = coalesce(
        period_runs([d for d in stale if window.first <= d < window.end], _DAY), MAX_RUNS
    )
    first = binder.bind(_day(window.first), "Date")
    end = binder.bind(_day(window.end), "Date")
    in_window = f"day >= {first} AND day < {end}"
    clean = "".join(
        f" AND NOT (day >= {binder.bind(_day(lo), 'Date')} "
        f"AND day < {binder.bind(_day(hi), 'Date')})"
        for lo, hi in runs
    )
    rolled = (
        f"SELECT {_COLUMNS} FROM {USER_ROLLUP_TABLE} WHERE {org} AND {in_window}{clean} "
        f"AND (day, valid_through) IN (SELECT day, max(valid_through) FROM {USER_ROLLUP_TABLE} "
        f"WHERE {org} AND {in_window} GROUP BY day) "
        f"AND user_id != '' AND ({compile_filter(row_filter, binder, ROW_TABLES)})"
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
    raw_where = " AND ".join(
        (
            org,
            "user_id != ''",
            query.time_range.condition(binder),
            f"({' OR '.join(raw_parts)})",
            f"({compile_filter(row_filter, binder, ROW_TABLES)})",
        )
    )
    raw = (
        f"SELECT {USER_ROLLUP_DAY} AS day, user_id, {', '.join(USER_ROLLUP_METRICS)} "
        f"FROM {REQUEST_TABLE} FINAL WHERE {raw_where} GROUP BY day, user_id"
    )
    columns = ", ".join(
        (
            "user_id",
            "min(first_at) AS u_first",
            "max(last_at) AS u_last",
            f"{active_days(query.tz_minutes)} AS u_active",
            "sum(requests) AS u_requests",
            "sum(prompt_tokens) AS u_prompt",
            "sum(completion_tokens) AS u_completion",
            "sum(cost) AS u_cost",
            "sum(rate_limited) AS u_rate_limited",
        )
    )
    inner = f"SELECT {columns} FROM ({rolled} UNION ALL {raw}) GROUP BY user_id"
    outer = compile_filter(aggregate_filter, binder, {USERS_TABLE: USER_AGGREGATES})
    return inner, outer


def _floor_day(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def _day(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d")


def _sql_ms(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}"
    )
