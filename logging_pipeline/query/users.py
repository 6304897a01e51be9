"""``/v1/user/query``, ``/v1/user/metrics/query``, ``/v1/user/metrics-overview/query``.

Reference §2.13 and §4.3. A user is a non-empty ``user_id`` (``Helicone-User-Id``); requests
without one belong to no user and are left out. Per-user metrics are computed in an inner
query (org, time range, the filter's ``request_response_rmt`` conditions) and the filter's
``users_view`` leaves test its result (Helicone's ``HAVING``). Costs are USD.

Decisions: ``active_for`` counts distinct *local* days (``timeZoneDifferenceMinutes``);
``first_active``/``last_active`` are UTC instants (ISO ``Z``), not shifted; ``rate_limited_count``
(our addition to ``UserMetricsResult``) counts requests answered 429, by the gateway's rate
limiter or the provider; only the first ``sort`` key is honoured (Helicone's rule), then
``user_id`` so paging is stable.
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
    histogram_rows,
    limit_offset,
    optional_bool,
    org_condition,
    paging,
    per_group_query,
    psize,
    require,
    usd,
    whole,
)
from logging_pipeline.query.binder import ParamBinder
from logging_pipeline.query.builder import CompiledQuery
from logging_pipeline.query.errors import FilterError
from logging_pipeline.query.fields import FIELD_TABLES, Column, FieldSpec
from logging_pipeline.query.operators import Family
from logging_pipeline.query.rows import iso_timestamp
from logging_pipeline.query.timeseries import TimeRange, parse_timezone, parse_unix_range
from logging_pipeline.schema import REQUEST_TABLE

USERS_TABLE = "users_view"
MAX_USER_IDS = 1000
DEFAULT_USERS_LIMIT = 1000
MAX_LIMIT = 1000
N, TS = Family.NUMBER, Family.TIMESTAMP

USER_AGGREGATES: Mapping[str, FieldSpec] = MappingProxyType(
    {
        "user_active_for": Column("u_active", N),
        "user_first_active": Column("u_first", TS),
        "user_last_active": Column("u_last", TS),
        "user_total_requests": Column("u_requests", N),
        "user_average_requests_per_day_active": Column("(u_requests / u_active)", N),
        "user_average_tokens_per_request": Column("((u_prompt + u_completion) / u_requests)", N),
        "user_total_completion_tokens": Column("u_completion", N),
        "user_total_prompt_tokens": Column("u_prompt", N),
        "user_cost": Column("(u_cost / 1000000000)", N),
        "user_rate_limited_count": Column("u_rate_limited", N),  # our addition
    }
)
"""``users_view`` aggregates, on the inner per-user query's columns."""

ROW_TABLES: Mapping[str, Mapping[str, FieldSpec]] = MappingProxyType(
    {
        **FIELD_TABLES,
        USERS_TABLE: MappingProxyType({"user_user_id": Column("user_id", Family.TEXT)}),
    }
)
"""Per-request tables of a user filter: the request tables plus ``users_view.user_user_id``."""

SORT_KEYS: Mapping[str, str] = MappingProxyType(
    {
        "id": "user_id",
        "user_id": "user_id",
        "active_for": "u_active",
        "first_active": "u_first",
        "last_active": "u_last",
        "total_requests": "u_requests",
        "average_requests_per_day_active": "(u_requests / u_active)",
        "average_tokens_per_request": "((u_prompt + u_completion) / u_requests)",
        "total_prompt_tokens": "u_prompt",
        "total_completion_tokens": "u_completion",
        "cost": "u_cost",
        "rate_limited_count": "u_rate_limited",
    }
)


def is_user_aggregate(table: str, field: str) -> bool:
    return table == USERS_TABLE and field in USER_AGGREGATES


def _inner_columns(binder: ParamBinder, tz_minutes: int) -> str:
    tz = binder.bind(tz_minutes, "Int32")
    return ", ".join(
        (
            "user_id",
            "min(request_created_at) AS u_first",
            "max(request_created_at) AS u_last",
            f"uniqExact(toDate(toDateTime(request_created_at, 'UTC') - toIntervalMinute({tz}))) "
            "AS u_active",
            "count() AS u_requests",
            "sum(ifNull(prompt_tokens, 0)) AS u_prompt",
            "sum(ifNull(completion_tokens, 0)) AS u_completion",
            "sum(ifNull(cost, 0)) AS u_cost",
            "countIf(status = 429) AS u_rate_limited",
        )
    )


def _per_user(binder: ParamBinder, org_id: str, node: Any, time_range: TimeRange | None,
              tz_minutes: int) -> tuple[str, str]:  # fmt: skip
    shape = GroupShape(
        key="user_id",
        is_aggregate=is_user_aggregate,
        columns=lambda b: _inner_columns(b, tz_minutes),
        table=USERS_TABLE,
        aggregates=USER_AGGREGATES,
        row_tables=ROW_TABLES,
    )
    return per_group_query(binder, org_id, node, time_range, shape)


def _seconds_range(body: Mapping[str, Any]) -> TimeRange | None:
    value = body.get("timeFilter")
    return None if value is None else parse_unix_range(value, "Seconds")


# --- /v1/user/query ------------------------------------------------------------------------


def build_user_query(org_id: str, raw: Any) -> CompiledQuery:
    """``UserQueryParams`` -> per-user cost/tokens/count, busiest first (at most 1000)."""
    body = body_object(raw)
    binder = ParamBinder()
    conditions = [org_condition(binder, org_id), "user_id != ''"]
    ids = body.get("userIds")
    if ids is not None:
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise FilterError("userIds must be an array of strings")
        if len(ids) > MAX_USER_IDS:
            raise FilterError(f"userIds has {len(ids)} entries; at most {MAX_USER_IDS} are allowed")
        placeholders = [binder.bind(i, "String") for i in dict.fromkeys(ids)]
        conditions.append(f"user_id IN ({', '.join(placeholders) or 'NULL'})")
    time_range = _seconds_range(body)
    if time_range is not None:
        conditions.append(time_range.condition(binder))
    offset, limit = paging(body, DEFAULT_USERS_LIMIT, MAX_LIMIT)
    sql = (
        "SELECT user_id, sum(ifNull(cost, 0)) AS u_cost, "
        "sum(ifNull(completion_tokens, 0)) AS u_completion, "
        "sum(ifNull(prompt_tokens, 0)) AS u_prompt, count() AS u_requests "
        f"FROM {REQUEST_TABLE} FINAL WHERE {' AND '.join(conditions)} GROUP BY user_id "
        f"ORDER BY u_requests DESC, user_id ASC {limit_offset(binder, limit, offset)}"
    )
    return CompiledQuery(sql, binder.params)


def user_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "cost": usd(row.get("u_cost")),
            "user_id": str(row["user_id"]),
            "completion_tokens": whole(row.get("u_completion")),
            "prompt_tokens": whole(row.get("u_prompt")),
            "count": whole(row.get("u_requests")),
        }
        for row in rows
    ]


# --- /v1/user/metrics/query ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class UserMetricsQuery:
    filter: Any
    offset: int
    limit: int
    time_range: TimeRange | None
    tz_minutes: int
    sort: tuple[str, str]

    @classmethod
    def from_body(cls, raw: Any) -> UserMetricsQuery:
        body = body_object(raw)
        require(body, "filter", "offset", "limit")
        offset, limit = paging(body, 10, MAX_LIMIT)
        return cls(
            filter=body["filter"],
            offset=offset,
            limit=limit,
            time_range=_seconds_range(body),
            tz_minutes=parse_timezone(
                body.get("timeZoneDifferenceMinutes"), "timeZoneDifferenceMinutes"
            ),
            sort=_user_sort(body.get("sort")),
        )


def _user_sort(sort: Any) -> tuple[str, str]:
    if sort is None or sort == {}:
        return SORT_KEYS["last_active"], "DESC"
    if not isinstance(sort, Mapping):
        raise FilterError(f"sort must be an object, got {type(sort).__name__}")
    key, direction = next(iter(sort.items()))
    if key not in SORT_KEYS:
        raise FilterError(f"unknown sort key {key!r} (allowed: {', '.join(SORT_KEYS)})")
    if not isinstance(direction, str) or direction.lower() not in ("asc", "desc"):
        raise FilterError(f'sort.{key} must be "asc" or "desc", got {direction!r}')
    return SORT_KEYS[key], direction.upper()


def build_user_metrics_query(org_id: str, query: UserMetricsQuery) -> CompiledQuery:
    """A page of users plus ``total`` (users matching, before paging) on every row."""
    binder = ParamBinder()
    inner, outer = _per_user(binder, org_id, query.filter, query.time_range, query.tz_minutes)
    return metrics_page_query(binder, query, inner, outer)


def metrics_page_query(binder: ParamBinder, query: UserMetricsQuery, inner: str, outer: str
                       ) -> CompiledQuery:  # fmt: skip
    """The page of ``query`` over a per-user ``inner`` query (its columns: ``user_id`` and
    the ``u_*`` of :func:`_inner_columns`) tested by the aggregate condition ``outer``."""
    expr, direction = query.sort
    sql = (
        f"SELECT *, count() OVER () AS total FROM ({inner}) WHERE {outer} "
        f"ORDER BY {expr} {direction}, user_id ASC "
        f"{limit_offset(binder, query.limit, query.offset)}"
    )
    return CompiledQuery(sql, binder.params)


def build_user_count_query(org_id: str, query: UserMetricsQuery) -> CompiledQuery:
    """Users matching (for a page past the end, which has no row to carry ``total``)."""
    binder = ParamBinder()
    inner, outer = _per_user(binder, org_id, query.filter, query.time_range, query.tz_minutes)
    return CompiledQuery(f"SELECT count() AS total FROM ({inner}) WHERE {outer}", binder.params)


def build_has_users_query(org_id: str) -> CompiledQuery:
    """Whether the organization has ever logged a request with a user id."""
    binder = ParamBinder()
    sql = (
        f"SELECT 1 AS found FROM {REQUEST_TABLE} WHERE {org_condition(binder, org_id)} "
        "AND user_id != '' LIMIT 1"
    )
    return CompiledQuery(sql, binder.params)


def user_metrics_result(row: Mapping[str, Any]) -> dict[str, Any]:
    """One ``UserMetricsResult`` (plus ``rate_limited_count``)."""
    requests = whole(row.get("u_requests"))
    active = whole(row.get("u_active"))
    tokens = whole(row.get("u_prompt")) + whole(row.get("u_completion"))
    return {
        "id": str(row["user_id"]),
        "user_id": str(row["user_id"]),
        "active_for": active,
        "first_active": iso_timestamp(row.get("u_first")),
        "last_active": iso_timestamp(row.get("u_last")),
        "total_requests": requests,
        "average_requests_per_day_active": requests / active if active else 0.0,
        "average_tokens_per_request": tokens / requests if requests else 0.0,
        "total_completion_tokens": whole(row.get("u_completion")),
        "total_prompt_tokens": whole(row.get("u_prompt")),
        "cost": usd(row.get("u_cost")),
        "rate_limited_count": whole(row.get("u_rate_limited")),
    }


# --- /v1/user/metrics-overview/query -------------------------------------------------------


def build_user_overview_query(org_id: str, raw: Any) -> CompiledQuery:
    """Clipped ``histogram(10)`` of requests per user and cost per user (USD).

    Body: ``useInterquartile``, ``pSize``, ``filter`` (Helicone's), plus our optional
    ``timeFilter`` (unix seconds, like ``/v1/user/metrics/query``).
    """
    body = body_object(raw)
    if body.get("filter") is None:
        raise FilterError("missing required field 'filter' (use \"all\" to match everything)")
    quantile = psize(body)
    interquartile = optional_bool(body, "useInterquartile")
    binder = ParamBinder()
    inner, outer = _per_user(binder, org_id, body["filter"], _seconds_range(body), 0)
    histograms = clipped_histograms(("requests", "cost"), quantile, interquartile)
    sql = (
        f"SELECT {histograms} FROM (SELECT "
        "groupArray(toFloat64(u_requests)) AS a_requests, "
        "groupArray(u_cost / 1000000000) AS a_cost "
        f"FROM ({inner}) WHERE {outer})"
    )
    return CompiledQuery(sql, binder.params)


def user_overview(rows: list[dict[str, Any]]) -> dict[str, Any]:
    row = rows[0] if rows else {}
    return {
        "request_count": histogram_rows(row.get("h_requests")),
        "user_cost": histogram_rows(row.get("h_cost")),
    }


def metrics_page(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int | None]:
    """(users, total) of a metrics page; total None when the page is empty."""
    total = whole(rows[0].get("total")) if rows else None
    return [user_metrics_result(row) for row in rows], total
