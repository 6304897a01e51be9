"""``/v1/property/query`` (the custom property keys) and the Properties page's per-value table.

Reference §2.14, §4.2 and §6 row 12. Keys: distinct custom keys of the organization, the
reserved ``Helicone-*`` keys (sessions, prompts, rate-limit status...) left out, compared
case-insensitively; sorted; at most :data:`MAX_KEYS`.

Values (``POST /v1/property/values/query``, ours): for one key (matched case-insensitively,
as the filter does), the top values by request count with their cost (USD), tokens, latency
and errors. Requests without the key are not counted.
"""

from __future__ import annotations

from typing import Any

from logging_pipeline.query.aggregates import (
    body_object,
    maybe,
    org_condition,
    paging,
    usd,
    whole,
)
from logging_pipeline.query.binder import ParamBinder
from logging_pipeline.query.builder import CompiledQuery
from logging_pipeline.query.compiler import (
    MAX_KEY_LENGTH,
    compile_filter,
    property_present,
    property_value,
)
from logging_pipeline.query.errors import FilterError
from logging_pipeline.query.rows import iso_timestamp
from logging_pipeline.query.timeseries import parse_iso_range
from logging_pipeline.schema import ERROR_CONDITION

MAX_KEYS = 1000
DEFAULT_VALUES = 20
MAX_VALUES = 1000
RESERVED_PREFIX = "Helicone-"
"""Reserved property keys (sessions, prompts...), matched in any case."""


def build_property_keys_query(org_id: str) -> CompiledQuery:
    """Distinct custom property keys (no ``FINAL``: an update only ever adds keys)."""
    binder = ParamBinder()
    org = org_condition(binder, org_id)
    sql = (
        "SELECT DISTINCT property FROM request_response_rmt "
        f"ARRAY JOIN mapKeys(properties) AS property WHERE {org} "
        f"AND NOT startsWith(lowerUTF8(property), '{RESERVED_PREFIX.lower()}') "
        f"ORDER BY property ASC LIMIT {MAX_KEYS}"
    )
    return CompiledQuery(sql, binder.params)


def property_keys(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """``Property[]``."""
    return [{"property": str(r["property"])} for r in rows]


def build_property_values_query(org_id: str, raw: Any) -> CompiledQuery:
    """Body: ``property`` (required), optional ``filter``, ``timeFilter`` ``{start, end}``
    (ISO, inclusive), ``offset``, ``limit`` (default 20, at most 1000)."""
    body = body_object(raw)
    key = body.get("property")
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise FilterError(f"property must be a property key of 1-{MAX_KEY_LENGTH} characters")
    offset, limit = paging(body, DEFAULT_VALUES, MAX_VALUES)
    binder = ParamBinder()
    placeholder = binder.bind(key, "String")
    conditions = [org_condition(binder, org_id), property_present(placeholder)]
    if body.get("timeFilter") is not None:
        conditions.append(parse_iso_range(body["timeFilter"]).condition(binder))
    conditions.append(f"({compile_filter(body.get('filter', 'all'), binder)})")
    lim = binder.bind_named("lim", limit, "UInt64")
    off = binder.bind_named("off", offset, "UInt64")
    sql = (
        f"SELECT {property_value(placeholder)} AS value, count() AS requests, "
        "sum(ifNull(cost, 0)) AS cost, sum(ifNull(prompt_tokens, 0)) AS prompt, "
        "sum(ifNull(completion_tokens, 0)) AS completion, avg(latency) AS avg_latency, "
        "quantiles(0.5, 0.95)(latency) AS latency_q, "
        f"countIf({ERROR_CONDITION}) AS errors, uniqExactIf(user_id, user_id != '') AS users, "
        "min(request_created_at) AS first_seen, max(request_created_at) AS last_seen "
        f"FROM request_response_rmt FINAL WHERE {' AND '.join(conditions)} "
        f"GROUP BY value ORDER BY requests DESC, value ASC LIMIT {lim} OFFSET {off}"
    )
    return CompiledQuery(sql, binder.params)


def property_values(key: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for row in rows:
        prompt, completion = whole(row.get("prompt")), whole(row.get("completion"))
        requests = whole(row.get("requests"))
        out.append(
            {
                "property": key,
                "value": str(row.get("value") or ""),
                "requests": requests,
                "cost": usd(row.get("cost")),
                "avg_cost": usd(row.get("cost")) / requests if requests else 0.0,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "avg_latency": maybe(row.get("avg_latency")),
                "p50_latency": _quantile(row, 0),
                "p95_latency": _quantile(row, 1),
                "errors": whole(row.get("errors")),
                "users": whole(row.get("users")),
                "first_seen": iso_timestamp(row.get("first_seen")),
                "last_seen": iso_timestamp(row.get("last_seen")),
            }
        )
    return out


def _quantile(row: dict[str, Any], index: int) -> float | None:
    values = row.get("latency_q") or []
    return maybe(values[index]) if index < len(values) else None
