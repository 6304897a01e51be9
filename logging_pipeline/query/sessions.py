"""``/v1/session/query`` and ``/v1/session/metrics/query`` (reference §2.12, §4.1).

A session is every row of the organization sharing ``Helicone-Session-Id`` (the materialized
``session_id`` column). Both statements aggregate per session in an inner query — whose
``WHERE`` holds the org scope, the time range and the filter's per-request conditions — and
test the filter's ``sessions_request_response_rmt`` aggregates (``session_total_cost``...)
on its result, as Helicone's ``HAVING`` does (see :func:`split_filter`). The session query
runs in two phases (:func:`build_session_page_query`, then :func:`build_session_rows_query`):
the page from narrow columns, then the page's sessions alone. Costs are USD.
Timestamps are returned as UTC instants (ISO, ``Z``); ``timezoneDifference`` is validated
(minutes, ±1440) but does not shift an instant that already says its zone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from logging_pipeline.query.aggregates import (
    GroupShape,
    body_object,
    clipped_histograms,
    finite,
    histogram_rows,
    limit_offset,
    optional_bool,
    optional_str,
    paging,
    per_group_query,
    psize,
    split_filter,
    usd,
    whole,
)
from logging_pipeline.query.binder import ParamBinder
from logging_pipeline.query.builder import CompiledQuery
from logging_pipeline.query.errors import FilterError
from logging_pipeline.query.fields import (
    SESSIONS_REQUEST_RESPONSE_RMT,
    Column,
    FieldSpec,
    SessionAggregate,
)
from logging_pipeline.query.operators import Family
from logging_pipeline.query.rows import iso_timestamp
from logging_pipeline.query.timeseries import (
    TimeRange,
    as_datetime,
    parse_timezone,
    parse_unix_range,
)

SESSIONS_TABLE = "sessions_request_response_rmt"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

SESSION_AGGREGATES: Mapping[str, FieldSpec] = MappingProxyType(
    {
        "session_total_cost": Column("s_cost / 1000000000", Family.NUMBER),
        "session_total_tokens": Column("(s_prompt + s_completion)", Family.NUMBER),
        "session_prompt_tokens": Column("s_prompt", Family.NUMBER),
        "session_completion_tokens": Column("s_completion", Family.NUMBER),
        "session_total_requests": Column("s_requests", Family.NUMBER),
        "session_created_at": Column("s_created", Family.TIMESTAMP),
        "session_latest_request_created_at": Column("s_latest", Family.TIMESTAMP),
    }
)
"""The aggregate fields, on the inner query's columns (the outer query's ``WHERE``)."""

_NAME = "anyIf(session_name, session_name != '') AS s_name"
_FIRST_LAST = ("min(request_created_at) AS s_created", "max(request_created_at) AS s_latest")
_INNER_COLUMNS = (
    "session_id",
    _NAME,
    *_FIRST_LAST,
    "sum(ifNull(cost, 0)) AS s_cost",
    "count() AS s_requests",
    "sum(ifNull(prompt_tokens, 0)) AS s_prompt",
    "sum(ifNull(completion_tokens, 0)) AS s_completion",
)
"""Per session: what the aggregate filter fields read, plus the name."""
_RESULT_COLUMNS = (
    "avg(latency) AS s_avg_latency",
    "groupUniqArrayIf(user_id, user_id != '') AS s_users",
)
_METRICS_COLUMNS = (
    "dateDiff('second', min(request_created_at), max(request_created_at)) AS s_duration",
)


def is_session_aggregate(table: str, field: str) -> bool:
    return table == SESSIONS_TABLE and isinstance(
        SESSIONS_REQUEST_RESPONSE_RMT.get(field), SessionAggregate
    )


@dataclass(frozen=True, slots=True)
class SessionQuery:
    """A validated ``SessionQueryParams`` body."""

    filter: Any
    time_range: TimeRange
    search: str = ""
    name_equals: str | None = None
    tz_minutes: int = 0
    offset: int = 0
    limit: int = DEFAULT_LIMIT

    @classmethod
    def from_body(cls, raw: Any) -> SessionQuery:
        body = body_object(raw)
        if body.get("timeFilter") is None:
            raise FilterError(
                "missing required field 'timeFilter' ({startTimeUnixMs, endTimeUnixMs})"
            )
        offset, limit = paging(body, DEFAULT_LIMIT, MAX_LIMIT)
        name_equals = body.get("nameEquals")
        return cls(
            filter=body.get("filter", "all"),
            time_range=parse_unix_range(body["timeFilter"], "Ms", bounds="()"),
            search=optional_str(body, "search"),
            name_equals=optional_str(body, "nameEquals") if name_equals is not None else None,
            tz_minutes=parse_timezone(body.get("timezoneDifference"), "timezoneDifference"),
            offset=offset,
            limit=limit,
        )


@dataclass(frozen=True, slots=True)
class SessionMetricsQuery:
    """A validated ``SessionMetricsQueryParams`` body."""

    filter: Any
    time_range: TimeRange | None
    name_contains: str = ""
    quantile: float = 0.75
    interquartile: bool = False
    tz_minutes: int = 0

    @classmethod
    def from_body(cls, raw: Any) -> SessionMetricsQuery:
        body = body_object(raw)
        time_filter = body.get("timeFilter")
        return cls(
            filter=body.get("filter", "all"),
            time_range=None
            if time_filter is None
            else parse_unix_range(time_filter, "Ms", bounds="()"),
            name_contains=optional_str(body, "nameContains"),
            quantile=psize(body),
            interquartile=optional_bool(body, "useInterquartile"),
            tz_minutes=parse_timezone(body.get("timezoneDifference"), "timezoneDifference"),
        )


def _per_session(binder: ParamBinder, org_id: str, node: Any, time_range: TimeRange | None,
                 extra: tuple[str, ...], base: tuple[str, ...] = _INNER_COLUMNS,
                 extra_conditions: tuple[str, ...] = ()) -> tuple[str, str]:  # fmt: skip
    """(inner per-session SELECT, outer aggregate condition)."""
    shape = GroupShape(
        key="session_id",
        is_aggregate=is_session_aggregate,
        columns=lambda _: ", ".join((*base, *extra)),
        table=SESSIONS_TABLE,
        aggregates=SESSION_AGGREGATES,
    )
    return per_group_query(binder, org_id, node, time_range, shape, extra_conditions)


def _page_conditions(binder: ParamBinder, query: SessionQuery, outer: str) -> list[str]:
    """The per-session conditions: the filter's aggregate part, the search, the name."""
    conditions = [f"({outer})"]
    if query.search:
        text = binder.bind(query.search, "String")
        conditions.append(
            f"(positionCaseInsensitiveUTF8(s_name, {text}) > 0 OR "
            f"positionCaseInsensitiveUTF8(session_id, {text}) > 0)"
        )
    if query.name_equals is not None:
        conditions.append(f"s_name = {binder.bind(query.name_equals, 'String')}")
    return conditions


def build_session_query(org_id: str, query: SessionQuery) -> CompiledQuery:
    """Sessions newest first (by first request), paged; search = name or id contains.

    One statement; the API runs the same query in two phases (:func:`build_session_page_query`
    and :func:`build_session_rows_query`), which answer the same rows faster.
    """
    binder = ParamBinder()
    inner, outer = _per_session(binder, org_id, query.filter, query.time_range, _RESULT_COLUMNS)
    sql = (
        f"SELECT * FROM ({inner}) WHERE {' AND '.join(_page_conditions(binder, query, outer))} "
        f"ORDER BY s_created DESC, session_id ASC {limit_offset(binder, query.limit, query.offset)}"
    )
    return CompiledQuery(sql, binder.params)


def build_session_page_query(org_id: str, query: SessionQuery) -> CompiledQuery:
    """Phase one of ``/v1/session/query``: the page's sessions, from the narrowest columns.

    The same sessions, in the same order, as :func:`build_session_query`, but each session
    carries only what choosing the page needs — its first and last request times, plus the
    name and the aggregates when the search or the filter test them — so the engine reads
    ``session_id`` and the timestamps instead of every column the results show. Phase two
    (:func:`build_session_rows_query`) aggregates the page's sessions alone.
    """
    binder = ParamBinder()
    _, aggregate = split_filter(query.filter, is_session_aggregate)
    needs_name = bool(query.search) or query.name_equals is not None
    if aggregate != "all":
        columns: tuple[str, ...] = _INNER_COLUMNS
    else:
        columns = ("session_id", *_FIRST_LAST, *((_NAME,) if needs_name else ()))
    inner, outer = _per_session(binder, org_id, query.filter, query.time_range, (), columns)
    sql = (
        f"SELECT session_id, s_created, s_latest FROM ({inner}) "
        f"WHERE {' AND '.join(_page_conditions(binder, query, outer))} "
        f"ORDER BY s_created DESC, session_id ASC {limit_offset(binder, query.limit, query.offset)}"
    )
    return CompiledQuery(sql, binder.params)


def build_session_rows_query(org_id: str, query: SessionQuery, page: list[dict[str, Any]]
                             ) -> CompiledQuery | None:  # fmt: skip
    """Phase two: the full results of the ``page`` rows of :func:`build_session_page_query`
    (None for an empty page).

    Every request of a page session that the query counts lies between the earliest
    ``s_created`` and the latest ``s_latest`` of the page, so the read is bounded to that
    window of the sort key (a first page: the last hours of the range, not the whole range)
    and to the page's session ids. The aggregates are those of the one-statement query.
    """
    if not page:
        return None
    binder = ParamBinder()
    row_filter, _ = split_filter(query.filter, is_session_aggregate)
    first = min(as_datetime(row["s_created"]) for row in page)
    last = max(as_datetime(row["s_latest"]) for row in page)
    window = TimeRange(first, last, "[]")
    inner, _ = _per_session(
        binder, org_id, row_filter, query.time_range, _RESULT_COLUMNS, _INNER_COLUMNS,
        extra_conditions=(
            window.condition(binder),
            f"has({binder.bind([str(row['session_id']) for row in page], 'Array(String)')}, "
            "session_id)",
        ),
    )  # fmt: skip
    return CompiledQuery(inner, binder.params)


def session_page(page: list[dict[str, Any]], rows: list[dict[str, Any]]
                 ) -> list[dict[str, Any]]:  # fmt: skip
    """The results of phase two in the order of phase one's page."""
    by_id = {str(row.get("session_id")): row for row in rows}
    return [session_result(by_id[str(p["session_id"])]) for p in page
            if str(p["session_id"]) in by_id]  # fmt: skip


def session_result(row: Mapping[str, Any]) -> dict[str, Any]:
    """One ``SessionResult`` (reference §2.12): all documented fields, cost in USD."""
    prompt, completion = whole(row.get("s_prompt")), whole(row.get("s_completion"))
    return {
        "created_at": iso_timestamp(row.get("s_created")),
        "latest_request_created_at": iso_timestamp(row.get("s_latest")),
        "session_id": str(row.get("session_id") or ""),
        "session_name": str(row.get("s_name") or ""),
        "total_cost": usd(row.get("s_cost")),
        "total_requests": whole(row.get("s_requests")),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "avg_latency": finite(row.get("s_avg_latency")),
        "user_ids": sorted(str(u) for u in (row.get("s_users") or [])),
    }


def build_session_metrics_query(org_id: str, query: SessionMetricsQuery) -> CompiledQuery:
    """One row: the clipped ``histogram(10)`` and the (unclipped) mean of each metric.

    Per session: requests (count), duration (seconds from first to last request) and cost
    (USD). Clipping is Helicone's (see :func:`clip_bounds`).
    """
    binder = ParamBinder()
    inner, outer = _per_session(binder, org_id, query.filter, query.time_range, _METRICS_COLUMNS)
    conditions = [f"({outer})"]
    if query.name_contains:
        text = binder.bind(query.name_contains, "String")
        conditions.append(f"positionCaseInsensitiveUTF8(s_name, {text}) > 0")
    metrics = {
        "count": "toFloat64(s_requests)",
        "duration": "toFloat64(s_duration)",
        "cost": "s_cost / 1000000000",
    }
    arrays = ", ".join(f"groupArray({expr}) AS a_{name}" for name, expr in metrics.items())
    means = ", ".join(f"avg({expr}) AS avg_{name}" for name, expr in metrics.items())
    histograms = clipped_histograms(metrics, query.quantile, query.interquartile)
    sql = (
        f"SELECT {histograms}, {', '.join(f'avg_{n}' for n in metrics)} FROM ("
        f"SELECT {arrays}, {means} FROM ({inner}) WHERE {' AND '.join(conditions)})"
    )
    return CompiledQuery(sql, binder.params)


def session_metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``SessionMetrics``: histograms and ``average`` (one ``AverageRow`` per metric)."""
    row = rows[0] if rows else {}
    return {
        "session_count": histogram_rows(row.get("h_count")),
        "session_duration": histogram_rows(row.get("h_duration")),
        "session_cost": histogram_rows(row.get("h_cost")),
        "average": {
            "session_cost": [{"average": finite(row.get("avg_cost"))}],
            "session_duration": [{"average": finite(row.get("avg_duration"))}],
            "session_count": [{"average": finite(row.get("avg_count"))}],
        },
    }
