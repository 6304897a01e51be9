"""The analytics bench's queries: one table of request bodies, easy to adjust.

Each :class:`Query` is an endpoint and a JSON body. Bodies are plain data; a string value that
is exactly one of the :data:`PLACEHOLDERS` names (``"$now_ms"``, ``"$days_ago_7_iso"`` …) is
replaced when the bench runs, relative to the time the rows were generated for, so the time
windows always cover the generated 30 days. Change a body here, and nowhere else.

The HQL entries are the documented example queries of the reference's §3 (and the HQL page's
cost-unit example), unchanged: they must run as users paste them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class Query:
    """One measured query: ``name`` (report and JSON key), method, path and body."""

    name: str
    path: str
    body: Any
    method: str = "POST"
    what: str = ""


DASHBOARD_SERIES = "dashboard_series"
"""The query the throughput measurement runs every second (``--background-query``)."""


def _leaf(field: str, operator: str, value: Any) -> dict[str, Any]:
    return {"request_response_rmt": {field: {operator: value}}}


def _and(*nodes: Any) -> Any:
    """A right-leaning AND branch of ``nodes`` (the AST has binary branches only)."""
    node = nodes[-1]
    for left in reversed(nodes[:-1]):
        node = {"left": left, "operator": "and", "right": node}
    return node


def _hql(name: str, sql: str, what: str) -> Query:
    return Query(name, "/v1/helicone-sql/execute", {"sql": sql}, what=what)


QUERIES: tuple[Query, ...] = (
    Query(
        "request_query",
        "/v1/request/query",
        {
            "filter": _and(
                _leaf("request_created_at", "gte", "$days_ago_7_iso"),
                _leaf("model", "equals", "gpt-4o"),
                {"request_response_rmt": {"properties": {"Environment": {"equals": "production"}}}},
            ),
            "offset": 0,
            "limit": 100,
            "sort": {"created_at": "desc"},
        },
        what="filtered request query: 7 days, one model, one property value, newest 100",
    ),
    Query(
        "session_query",
        "/v1/session/query",
        {
            "search": "",
            "timeFilter": {"startTimeUnixMs": "$days_ago_30_ms", "endTimeUnixMs": "$now_ms"},
            "timezoneDifference": 0,
            "filter": "all",
            "offset": 0,
            "limit": 100,
        },
        what="sessions of the last 30 days, newest 100",
    ),
    Query(
        "user_metrics_query",
        "/v1/user/metrics/query",
        {
            "filter": "all",
            "offset": 0,
            "limit": 100,
            "timeFilter": {
                "startTimeUnixSeconds": "$days_ago_30_s",
                "endTimeUnixSeconds": "$now_s",
            },
            "timeZoneDifferenceMinutes": 0,
            "sort": {"cost": "desc"},
        },
        what="user metrics over 30 days, top 100 by cost",
    ),
    Query(
        DASHBOARD_SERIES,
        "/v1/dashboard/series/query",
        {
            # The dashboard-series endpoint's body (issue 15 item 5; the endpoint defines it,
            # after the reference's DataOverTimeRequest, §2.16).
            "filter": "all",
            "timeFilter": {"start": "$days_ago_30_iso", "end": "$now_iso"},
            "dbIncrement": "day",
            "timeZoneDifference": 0,
        },
        what="30-day dashboard series, daily buckets",
    ),
    Query(
        "dashboard_series_by_model",
        "/v1/dashboard/series/query",
        {
            "filter": "all",
            "timeFilter": {"start": "$days_ago_30_iso", "end": "$now_iso"},
            "dbIncrement": "day",
            "timeZoneDifference": 0,
            "groupBy": "model",
        },
        what="the same, one series per model",
    ),
    _hql(
        "hql_top_costly_requests",
        "SELECT request_created_at, request_model, response_body, provider_total_cost "
        "FROM request_response_rmt WHERE request_created_at > now() - INTERVAL 7 DAY "
        "ORDER BY provider_total_cost DESC LIMIT 100",
        "HQL example 1: top costly requests, 7 days",
    ),
    _hql(
        "hql_error_rate",
        "SELECT COUNTIf(status BETWEEN 400 AND 599) AS error_count, COUNT() AS total_requests, "
        "ROUND(error_count / total_requests, 4) AS error_rate FROM request_response_rmt "
        "WHERE request_created_at >= toDateTime64(now(), 3) - INTERVAL 24 HOUR",
        "HQL example 2: error rate, 24 hours",
    ),
    _hql(
        "hql_daily_active_users",
        "SELECT toDate(request_created_at) AS day, COUNT(DISTINCT user_id) AS dau "
        "FROM request_response_rmt "
        "WHERE request_created_at >= toDateTime64(now(), 3) - INTERVAL 14 DAY "
        "GROUP BY day ORDER BY day",
        "HQL example 3: active users by day, 14 days",
    ),
    _hql(
        "hql_sessions",
        "SELECT properties['Helicone-Session-Id'] AS session_id, COUNT(*) AS requests, "
        "sum(cost) AS total_cost FROM request_response_rmt "
        "WHERE request_created_at >= toDateTime64(now(), 3) - INTERVAL 7 DAY "
        "AND properties['Helicone-Session-Id'] IS NOT NULL "
        "GROUP BY session_id ORDER BY total_cost DESC LIMIT 100",
        "HQL example 4: sessions by cost, 7 days",
    ),
    _hql(
        "hql_cost_by_model",
        "SELECT request_model, sum(cost) AS total_cost, COUNT() AS request_count "
        "FROM request_response_rmt "
        "WHERE request_created_at >= toDateTime64(now(), 3) - INTERVAL 30 DAY "
        "GROUP BY request_model ORDER BY total_cost DESC",
        "HQL example 5: cost by model, 30 days",
    ),
    _hql(
        "hql_rest_example",
        "SELECT request_model, COUNT(*) as count FROM request_response_rmt "
        "WHERE request_created_at > now() - INTERVAL 7 DAY GROUP BY request_model "
        "ORDER BY count DESC LIMIT 10",
        "HQL example 6: the REST example, requests by model, 7 days",
    ),
    _hql(
        "hql_download_example",
        "SELECT * FROM request_response_rmt WHERE request_created_at > now() - INTERVAL 1 DAY "
        "LIMIT 1000",
        "HQL example 7: the download example's query, run through execute",
    ),
    _hql(
        "hql_cost_usd",
        "SELECT request_model, sum(cost) / 1000000000 AS total_cost_usd "
        "FROM request_response_rmt WHERE request_created_at > now() - INTERVAL 7 DAY "
        "GROUP BY request_model",
        "HQL page's cost-unit example: USD by model, 7 days",
    ),
)
"""Every query the bench measures, in report order."""


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def placeholders(now: datetime) -> dict[str, Any]:
    """The values of every placeholder for a bench whose rows end at ``now`` (UTC)."""
    values: dict[str, Any] = {}
    for days in (0, 1, 7, 30):
        moment = now - timedelta(days=days)
        prefix = "$now" if days == 0 else f"$days_ago_{days}"
        values[f"{prefix}_ms"] = int(moment.timestamp() * 1000)
        values[f"{prefix}_s"] = int(moment.timestamp())
        values[f"{prefix}_iso"] = _iso(moment)
    # The generator's newest row is at ``now``; the windows end a minute later so that it
    # (and a clock a little ahead) stays inside every "until now" filter.
    end = now + timedelta(minutes=1)
    values["$now_ms"], values["$now_s"] = int(end.timestamp() * 1000), int(end.timestamp())
    values["$now_iso"] = _iso(end)
    return values


PLACEHOLDERS = tuple(placeholders(datetime(2026, 1, 1, tzinfo=UTC)))
"""The names a body may use."""


def render(body: Any, values: Mapping[str, Any]) -> Any:
    """``body`` with every placeholder string replaced by its value (other data unchanged)."""

    def substitute(node: Any) -> Any:
        if isinstance(node, str):
            return values.get(node, node)
        if isinstance(node, list):
            return [substitute(item) for item in node]
        if isinstance(node, dict):
            return {key: substitute(value) for key, value in node.items()}
        return node

    return substitute(body)


def by_name(name: str) -> Query:
    """The query called ``name`` (KeyError listing the names otherwise)."""
    for query in QUERIES:
        if query.name == name:
            return query
    raise KeyError(f"no query {name!r}; known: {', '.join(q.name for q in QUERIES)}")
