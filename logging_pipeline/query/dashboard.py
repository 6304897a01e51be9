"""``POST /v1/dashboard/series/query``: the dashboard's time series in one statement (ours).

Reference §6 rows 1-3, 5, 7-9 and 17: requests, errors, cost, tokens, latency and TTFT
percentiles over time, optionally split by model, provider, user or a property value, under
the shared filter. Body::

    {"timeFilter": {"start": ISO, "end": ISO},          required; inclusive
     "dbIncrement": "min"|"hour"|"day"|"week"|"month"|"year",   required
     "timeZoneDifference": minutes,                     default 0 (UTC - local, ±1440)
     "filter": FilterNode,                              default "all" ("userFilter" too)
     "groupBy": null|"model"|"provider"|"user"|{"property": key},   default null
     "groupLimit": 1..50}                               default 10

Answer (``data``): ``{increment, timeZoneDifference, groupBy, buckets: [ISO...],
series: [{group, other, totals, points}]}``. ``points`` align with ``buckets`` (every
bucket present: zero-filled with ``WITH FILL``). A point: ``time``, ``requests``, ``errors``
(non-2xx/3xx), ``error_rate``, ``cost`` (USD), ``prompt_tokens``, ``completion_tokens``,
``total_tokens``, ``prompt_cache_read_tokens``, ``prompt_cache_write_tokens``,
``reasoning_tokens``, ``cache_hits``, ``threats``, ``users`` (distinct; ClickHouse's
``uniq`` over 64-bit hashes of the ids, as the rollups keep them: exact for small counts, an
estimate within ~1% for large ones), ``latency`` and
``ttft`` as ``{avg, p50, p90, p95, p99}`` in ms (null when the bucket has no value).
``totals``: the same sums over the range, with ``latency``/``ttft`` averages only
(percentiles do not add up). Grouped, the ``groupLimit`` groups with the most requests are
series of their own (``group`` = the value; ``""`` = requests without one) and the rest are
summed in one series with ``other: true`` and ``group: null``; series come busiest first,
``other`` last. Percentiles are ClickHouse's ``quantiles`` (exact up to 8,192 values per
bucket, sampled beyond). Ungrouped, the answer also has ``cache_savings``: ``{cost (USD),
latency_ms}`` summed over the range's cache hits (what the replayed answers would have cost
and taken at the provider), from the rows (:func:`build_cache_savings_query`) or, when the
series reads the hourly rollups, from their sums (``0009_rollup_cache_savings``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from logging_pipeline.query.aggregates import (
    body_object,
    finite,
    maybe,
    org_condition,
    require,
    usd,
    whole,
)
from logging_pipeline.query.binder import ParamBinder
from logging_pipeline.query.builder import CompiledQuery, _bounded_int
from logging_pipeline.query.compiler import MAX_KEY_LENGTH, compile_filter, property_value
from logging_pipeline.query.errors import FilterError
from logging_pipeline.query.timeseries import Buckets, TimeRange, bucketed_time_filter
from logging_pipeline.schema import (
    CACHE_HIT_CONDITION,
    ERROR_CONDITION,
    REQUEST_TABLE,
    USER_HASH,
)

GROUP_COLUMNS: Mapping[str, str] = {"model": "model", "provider": "provider", "user": "user_id"}
DEFAULT_GROUPS = 10
FEW_GROUPS = frozenset({"model", "provider"})
"""Groupings an organisation has few values of (fewer than the group limit, as a rule): their
series are first asked for with every value its own series (:func:`series_sql`'s
``every_group``), one pass over the source instead of two, and asked again the usual way
only when :func:`fits` says the values outnumber the limit."""
MAX_GROUPS = 50
QUANTILES = (0.5, 0.9, 0.95, 0.99)

_SUMS = (
    "count() AS requests",
    f"countIf({ERROR_CONDITION}) AS errors",
    "sum(ifNull(cost, 0)) AS cost",
    "sum(ifNull(prompt_tokens, 0)) AS prompt_tokens",
    "sum(ifNull(completion_tokens, 0)) AS completion_tokens",
    "sum(prompt_cache_read_tokens) AS prompt_cache_read_tokens",
    "sum(prompt_cache_write_tokens) AS prompt_cache_write_tokens",
    "sum(reasoning_tokens) AS reasoning_tokens",
    f"countIf({CACHE_HIT_CONDITION}) AS cache_hits",
    "countIf(ifNull(threat, false)) AS threats",
    f"uniqIf({USER_HASH}, user_id != '') AS users",
    "count(latency) AS latency_n",
    "sum(ifNull(latency, 0)) AS latency_sum",
    "count(time_to_first_token) AS ttft_n",
    "sum(ifNull(time_to_first_token, 0)) AS ttft_sum",
    f"quantiles({', '.join(map(str, QUANTILES))})(latency) AS latency_q",
    f"quantiles({', '.join(map(str, QUANTILES))})(time_to_first_token) AS ttft_q",
)
_ADDITIVE = (
    "requests",
    "errors",
    "cost",
    "prompt_tokens",
    "completion_tokens",
    "prompt_cache_read_tokens",
    "prompt_cache_write_tokens",
    "reasoning_tokens",
    "cache_hits",
    "threats",
    "latency_n",
    "latency_sum",
    "ttft_n",
    "ttft_sum",
)


@dataclass(frozen=True, slots=True)
class SeriesQuery:
    filter: Any
    time_range: TimeRange
    buckets: Buckets
    group_by: str | None
    """``model``/``provider``/``user``, ``property`` (then ``property_key``), or None."""
    property_key: str | None
    group_limit: int

    @classmethod
    def from_body(cls, raw: Any) -> SeriesQuery:
        body = body_object(raw)
        require(body, "timeFilter", "dbIncrement")
        time_range, buckets = bucketed_time_filter(body)
        group_by, key = _group_by(body.get("groupBy"))
        limit = _bounded_int(body.get("groupLimit"), "groupLimit", DEFAULT_GROUPS, 1, MAX_GROUPS)
        node = body.get("filter", body.get("userFilter", "all"))
        return cls(node, time_range, buckets, group_by, key, limit)

    def group_by_echo(self) -> Any:
        if self.group_by == "property":
            return {"property": self.property_key}
        return self.group_by


def _group_by(value: Any) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    if isinstance(value, str) and value in GROUP_COLUMNS:
        return value, None
    if isinstance(value, Mapping) and set(value) == {"property"}:
        key = value["property"]
        if isinstance(key, str) and 0 < len(key) <= MAX_KEY_LENGTH:
            return "property", key
    raise FilterError(
        'groupBy must be null, "model", "provider", "user" or '
        f'{{"property": "<key>"}}, got {value!r}'
    )


def build_series_query(org_id: str, query: SeriesQuery, every_group: bool = False
                       ) -> CompiledQuery:  # fmt: skip
    """The series from the request rows (any filter, grouping and time zone)."""
    binder = ParamBinder()
    org = org_condition(binder, org_id)

    def source() -> str:  # compiled once per use: each copy binds its own parameters
        where = " AND ".join(
            (org, query.time_range.condition(binder), f"({compile_filter(query.filter, binder)})")
        )
        return f"{REQUEST_TABLE} FINAL WHERE {where}"

    bucket = query.buckets.expr(binder)
    return series_sql(binder, query, source, bucket, _SUMS, "count()", every_group)


def build_cache_savings_query(org_id: str, query: SeriesQuery) -> CompiledQuery:
    """What the range's cache hits saved, under the query's filter: one row ``cost`` (USD),
    ``latency_ms``. It reads the cache hits only (a small share of the rows)."""
    binder = ParamBinder()
    where = " AND ".join((
        org_condition(binder, org_id), query.time_range.condition(binder),
        f"({compile_filter(query.filter, binder)})", CACHE_HIT_CONDITION,
    ))  # fmt: skip
    sql = (
        "SELECT sum(cache_saved_cost) AS cost, sum(cache_saved_latency) AS latency_ms "
        f"FROM {REQUEST_TABLE} FINAL WHERE {where}"
    )
    return CompiledQuery(sql, binder.params)


def cache_savings(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """``{cost, latency_ms}`` from the row of :func:`build_cache_savings_query`."""
    row = rows[0] if rows else {}
    return {"cost": usd(row.get("cost")), "latency_ms": whole(row.get("latency_ms"))}


def series_sql(binder: ParamBinder, query: SeriesQuery, source: Callable[[], str], bucket: str,
               sums: Sequence[str], busiest: str, every_group: bool = False
               ) -> CompiledQuery:  # fmt: skip
    """The grouped, bucketed, zero-filled statement over ``FROM {source()}``.

    Shared by the raw-row query above and the rollup query (logging_pipeline/query/rollup.py):
    ``sums`` are the select list's metrics (the names :func:`series` reads) and ``busiest``
    what ranks the groups (the request count). The top ``group_limit`` groups are picked by a
    second pass over the source; with ``every_group`` there is no such pass and every group is
    a top one — the same answer whenever the groups are no more than the limit (:func:`fits`
    tells), at about two thirds of the cost.
    """
    if query.group_by is None:
        group = "'' AS grp, true AS top"
    else:
        if query.group_by == "property":
            assert query.property_key is not None
            expr = property_value(binder.bind(query.property_key, "String"))
        else:
            expr = GROUP_COLUMNS[query.group_by]
        if every_group:
            return _series_statement(binder, query, source, bucket, sums,
                                     f"true AS top, {expr} AS grp")  # fmt: skip
        limit = binder.bind(query.group_limit, "UInt64")
        top = (
            f"SELECT {expr} FROM {source()} "
            f"GROUP BY {expr} ORDER BY {busiest} DESC, {expr} ASC LIMIT {limit}"
        )
        group = f"({expr}) IN ({top}) AS top, if(top, {expr}, '') AS grp"
    return _series_statement(binder, query, source, bucket, sums, group)


def _series_statement(binder: ParamBinder, query: SeriesQuery, source: Callable[[], str],
                      bucket: str, sums: Sequence[str], group: str) -> CompiledQuery:  # fmt: skip
    sql = (
        f"SELECT {group}, {bucket} AS bucket, {', '.join(sums)} "
        f"FROM {source()} "
        f"GROUP BY top, grp, bucket ORDER BY top DESC, grp ASC, bucket ASC "
        f"{query.buckets.fill(binder)}"
    )
    return CompiledQuery(sql, binder.params)


def fits(query: SeriesQuery, rows: Sequence[Mapping[str, Any]]) -> bool:
    """Whether an ``every_group`` answer (:func:`series_sql`) is the query's answer: no more
    groups than its limit. Rows with no requests are the zero fill's, not a group's."""
    return len({row.get("grp") for row in rows if row.get("requests")}) <= query.group_limit


def series(query: SeriesQuery, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The documented answer (module docstring) from the rows of :func:`build_series_query`."""
    grouped: dict[tuple[bool, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        grouped.setdefault((bool(row.get("top")), str(row.get("grp") or "")), []).append(row)
    if query.group_by is None:
        grouped = {(True, ""): [r for rs in grouped.values() for r in rs]}
    out: list[dict[str, Any]] = []
    for (top, group), group_rows in grouped.items():
        totals = {name: sum(finite(r.get(name)) for r in group_rows) for name in _ADDITIVE}
        if query.group_by is not None and totals["requests"] == 0:
            continue  # WITH FILL's rows for a group that has none in the range
        by_bucket = {query.buckets.iso(r["bucket"]): r for r in group_rows}
        points = [_point(iso, by_bucket.get(iso)) for iso in query.buckets.all_iso()]
        out.append(
            {
                "group": group if top and query.group_by is not None else None,
                "other": not top and query.group_by is not None,
                "totals": _totals(totals),
                "points": points,
            }
        )
    out.sort(key=lambda s: (s["other"], -s["totals"]["requests"], str(s["group"])))
    return {
        "increment": query.buckets.increment,
        "timeZoneDifference": query.buckets.tz_minutes,
        "groupBy": query.group_by_echo(),
        "buckets": query.buckets.all_iso(),
        "series": out,
    }


def _counts(row: Mapping[str, Any] | None) -> dict[str, Any]:
    def get(name: str) -> float:
        return 0.0 if row is None else finite(row.get(name))

    requests = int(get("requests"))
    prompt, completion = int(get("prompt_tokens")), int(get("completion_tokens"))
    return {
        "requests": requests,
        "errors": int(get("errors")),
        "error_rate": get("errors") / requests if requests else 0.0,
        "cost": usd(get("cost")),
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_cache_read_tokens": int(get("prompt_cache_read_tokens")),
        "prompt_cache_write_tokens": int(get("prompt_cache_write_tokens")),
        "reasoning_tokens": int(get("reasoning_tokens")),
        "cache_hits": int(get("cache_hits")),
        "threats": int(get("threats")),
    }


def _point(time: str, row: Mapping[str, Any] | None) -> dict[str, Any]:
    point = {"time": time, **_counts(row)}
    point["users"] = whole(row.get("users")) if row is not None else 0
    point["latency"] = _distribution(row, "latency")
    point["ttft"] = _distribution(row, "ttft")
    return point


def _distribution(row: Mapping[str, Any] | None, name: str) -> dict[str, float | None]:
    if row is None or not finite(row.get(f"{name}_n")):
        return {"avg": None, **{_label(q): None for q in QUANTILES}}
    quantiles = list(row.get(f"{name}_q") or [])
    values = {
        _label(q): maybe(quantiles[i]) if i < len(quantiles) else None
        for i, q in enumerate(QUANTILES)
    }
    return {"avg": finite(row.get(f"{name}_sum")) / finite(row.get(f"{name}_n")), **values}


def _totals(sums: Mapping[str, float]) -> dict[str, Any]:
    totals = _counts(sums)
    latency_n, ttft_n = sums["latency_n"], sums["ttft_n"]
    totals["latency"] = {"avg": sums["latency_sum"] / latency_n if latency_n else None}
    totals["ttft"] = {"avg": sums["ttft_sum"] / ttft_n if ttft_n else None}
    return totals


def _label(quantile: float) -> str:
    return f"p{round(quantile * 100)}"
