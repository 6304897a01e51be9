"""Scores read side: ``/v1/evals/scores``, ``/v1/evals/query``,
``/v1/evals/score-distributions/query`` and ``/v1/dashboard/scores/query`` (reference §2.15,
§2.16, §4.5).

Scores live in the row's ``scores`` map (Float64; booleans as 1/0; feedback as
``helicone-score-feedback``). Every statement reads ``FINAL`` so an updated score replaces
the old one, and unnests the map with ``ARRAY JOIN``.

Decisions: ``averageScore`` is the weighted mean (sum / count; Helicone's divides a sum of
bucket averages by the count, a bug); evals' ``timeFilter`` is ``[start, end)`` as Helicone's,
their buckets are hourly unless ``dbIncrement`` (ours) says otherwise, and ``overTime`` /
``averageOverTime`` list only the buckets that hold scores; ``offset``/``limit`` page the
score names (sorted). The dashboard's buckets are zero-filled per score key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from logging_pipeline.query.aggregates import (
    body_object,
    finite,
    org_condition,
    paging,
    require,
    whole,
)
from logging_pipeline.query.binder import ParamBinder
from logging_pipeline.query.builder import CompiledQuery
from logging_pipeline.query.compiler import compile_filter
from logging_pipeline.query.timeseries import Buckets, bucketed_time_filter
from logging_pipeline.schema import REQUEST_TABLE

DEFAULT_EVALS_LIMIT = 100
MAX_EVALS_LIMIT = 1000


def build_score_names_query(org_id: str) -> CompiledQuery:
    binder = ParamBinder()
    sql = (
        f"SELECT DISTINCT name FROM {REQUEST_TABLE} ARRAY JOIN mapKeys(scores) AS name "
        f"WHERE {org_condition(binder, org_id)} ORDER BY name ASC LIMIT 10000"
    )
    return CompiledQuery(sql, binder.params)


def score_names(rows: list[dict[str, Any]]) -> list[str]:
    return [str(r["name"]) for r in rows]


@dataclass(frozen=True, slots=True)
class EvalQuery:
    """A validated ``EvalQueryParams`` body (plus our optional ``dbIncrement``)."""

    filter: Any
    buckets: Buckets
    where_range: Any
    offset: int
    limit: int

    @classmethod
    def from_body(cls, raw: Any) -> EvalQuery:
        body = body_object(raw)
        require(body, "filter", "timeFilter")
        time_range, buckets = bucketed_time_filter(body, bounds="[)", default_increment="hour")
        offset, limit = paging(body, DEFAULT_EVALS_LIMIT, MAX_EVALS_LIMIT)
        return cls(body["filter"], buckets, time_range, offset, limit)


def _scored_rows(binder: ParamBinder, org_id: str, node: Any, where_range: Any,
                 bucket: Buckets | None) -> str:  # fmt: skip
    """``name, value[, bucket]`` per score of every matching row."""
    conditions = [
        org_condition(binder, org_id),
        "notEmpty(scores)",
        where_range.condition(binder),
        f"({compile_filter(node, binder)})",
    ]
    bucket_column = f", {bucket.expr(binder)} AS bucket" if bucket is not None else ""
    return (
        f"SELECT name, scores[name] AS value{bucket_column} FROM {REQUEST_TABLE} FINAL "
        f"ARRAY JOIN mapKeys(scores) AS name WHERE {' AND '.join(conditions)}"
    )


def build_evals_query(org_id: str, query: EvalQuery) -> CompiledQuery:
    binder = ParamBinder()
    rows = _scored_rows(binder, org_id, query.filter, query.where_range, query.buckets)
    sql = (
        "SELECT name, bucket, count() AS n, sum(value) AS total, min(value) AS low, "
        f"max(value) AS high FROM ({rows}) GROUP BY name, bucket ORDER BY name, bucket"
    )
    return CompiledQuery(sql, binder.params)


def evals(query: EvalQuery, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``Eval[]``, one per score name, paged by name."""
    by_name: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_name.setdefault(str(row["name"]), []).append(row)
    names = sorted(by_name)[query.offset : query.offset + query.limit]
    out: list[dict[str, Any]] = []
    for name in names:
        buckets_of = by_name[name]
        count = sum(whole(r["n"]) for r in buckets_of)
        total = sum(finite(r["total"]) for r in buckets_of)
        out.append(
            {
                "name": name,
                "averageScore": total / count if count else 0.0,
                "minScore": min(finite(r["low"]) for r in buckets_of),
                "maxScore": max(finite(r["high"]) for r in buckets_of),
                "count": count,
                "overTime": [
                    {"count": whole(r["n"]), "date": query.buckets.iso(r["bucket"])}
                    for r in buckets_of
                ],
                "averageOverTime": [
                    {
                        "value": finite(r["total"]) / whole(r["n"]) if whole(r["n"]) else 0.0,
                        "date": query.buckets.iso(r["bucket"]),
                    }
                    for r in buckets_of
                ],
            }
        )
    return out


def build_score_distributions_query(org_id: str, query: EvalQuery) -> CompiledQuery:
    binder = ParamBinder()
    rows = _scored_rows(binder, org_id, query.filter, query.where_range, None)
    sql = f"SELECT name, histogram(10)(value) AS bins FROM ({rows}) GROUP BY name ORDER BY name"
    return CompiledQuery(sql, binder.params)


def score_distributions(query: EvalQuery, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``ScoreDistribution[]``: the bins as ``{lower, upper, value}`` (value = height)."""
    page = rows[query.offset : query.offset + query.limit]
    return [
        {
            "name": str(row["name"]),
            "distribution": [
                {"lower": finite(b[0]), "upper": finite(b[1]), "value": finite(b[2])}
                for b in row.get("bins") or []
            ],
        }
        for row in page
    ]


@dataclass(frozen=True, slots=True)
class ScoresOverTime:
    """A validated ``DataOverTimeRequest``."""

    filter: Any
    buckets: Buckets
    where_range: Any

    @classmethod
    def from_body(cls, raw: Any) -> ScoresOverTime:
        body = body_object(raw)
        require(body, "timeFilter", "dbIncrement")
        time_range, buckets = bucketed_time_filter(body)
        node = body.get("userFilter", body.get("filter", "all"))
        return cls(node, buckets, time_range)


def build_scores_over_time_query(org_id: str, query: ScoresOverTime) -> CompiledQuery:
    binder = ParamBinder()
    rows = _scored_rows(binder, org_id, query.filter, query.where_range, query.buckets)
    sql = (
        f"SELECT name, bucket, sum(value) AS score_sum FROM ({rows}) GROUP BY name, bucket "
        f"ORDER BY name ASC, bucket ASC {query.buckets.fill(binder)}"
    )
    return CompiledQuery(sql, binder.params)


def scores_over_time(query: ScoresOverTime, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``{created_at_trunc, score_sum, score_key}[]``, every bucket of every key, by time.

    With no score at all, ``WITH FILL`` still emits the empty key's buckets: dropped (a score
    name is never empty).
    """
    out = [
        {
            "created_at_trunc": query.buckets.iso(r["bucket"]),
            "score_sum": finite(r["score_sum"]),
            "score_key": str(r["name"]),
        }
        for r in rows
        if r.get("name")
    ]
    out.sort(key=lambda item: (item["created_at_trunc"], item["score_key"]))
    return out
