"""Pieces shared by the aggregate queries (sessions, users, properties, evals, dashboard).

* :func:`split_filter` separates a filter into the part tested on each request (``WHERE``)
  and the part tested on a per-session / per-user aggregate (Helicone's ``HAVING``), so the
  one filter AST of reference §2.1 serves every endpoint;
* :func:`org_condition`, :func:`paging` and the body readers validate what a caller sends
  (a :class:`~logging_pipeline.query.errors.FilterError`, i.e. a 400, for anything wrong);
* :func:`histogram_rows` and friends turn engine values into the API's numbers (cost in USD,
  NaN as null, histogram bins as Helicone's ``HistogramRow``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from logging_pipeline.query.binder import ORG_PARAM, ParamBinder
from logging_pipeline.query.builder import _bounded_int, canonical_uuid
from logging_pipeline.query.compiler import MAX_DEPTH, compile_filter
from logging_pipeline.query.errors import FilterError, describe
from logging_pipeline.query.fields import FieldSpec
from logging_pipeline.query.timeseries import TimeRange
from logging_pipeline.schema import REQUEST_TABLE

NANO_USD = 1_000_000_000
PSIZES: Mapping[str, float] = {"p50": 0.5, "p75": 0.75, "p95": 0.95, "p99": 0.99, "p99.9": 0.999}
DEFAULT_PSIZE = "p75"

IsAggregate = Callable[[str, str], bool]
"""``(table, field) -> True`` when the leaf tests an aggregate (goes to the outer query)."""


@dataclass(frozen=True, slots=True)
class GroupShape:
    """What :func:`per_group_query` needs to know of sessions or users.

    ``key``: the grouping column; ``columns``: the inner SELECT list (it may bind values);
    ``table``/``aggregates``: the filter table whose fields test the inner query's columns;
    ``row_tables``: the per-request tables of the filter (None: the compiler's default).
    """

    key: str
    is_aggregate: IsAggregate
    columns: Callable[[ParamBinder], str]
    table: str
    aggregates: Mapping[str, FieldSpec]
    row_tables: Mapping[str, Mapping[str, FieldSpec]] | None = None


def split_filter(node: Any, is_aggregate: IsAggregate) -> tuple[Any, Any]:
    """``(row_filter, aggregate_filter)``, each a filter AST (``"all"`` when empty).

    ``and`` branches and multi-field leaves split freely (both parts must hold). An ``or``
    whose sides mix per-request and aggregate conditions has no such split: it is a 400,
    where Helicone silently moves the whole branch to one side. Malformed nodes go to the row
    side unchanged, where the compiler reports them.
    """
    row, aggregate = _split(node, is_aggregate, 0, ("filter",))
    return ("all" if row is None else row), ("all" if aggregate is None else aggregate)


def _split(node: Any, is_aggregate: IsAggregate, depth: int, path: tuple[str, ...]
           ) -> tuple[Any, Any]:  # fmt: skip
    if depth > MAX_DEPTH:
        raise FilterError(f"filter is nested deeper than {MAX_DEPTH} levels")
    if not isinstance(node, Mapping):
        return node, None
    if {"left", "operator", "right"} & node.keys():
        left = _split(node.get("left"), is_aggregate, depth + 1, (*path, "left"))
        right = _split(node.get("right"), is_aggregate, depth + 1, (*path, "right"))
        operator = node.get("operator")
        if isinstance(operator, str) and operator.lower() == "and":
            return _join(left[0], right[0], operator), _join(left[1], right[1], operator)
        has_row = left[0] is not None or right[0] is not None
        has_aggregate = left[1] is not None or right[1] is not None
        if has_row and has_aggregate:
            raise FilterError(
                f"the branch at {describe(path)} combines per-request and aggregate conditions "
                "with 'or'; only 'and' can combine them"
            )
        return (None, dict(node)) if has_aggregate else (dict(node), None)
    row_leaf: dict[str, Any] = {}
    aggregate_leaf: dict[str, Any] = {}
    for table, fields in node.items():
        if not isinstance(fields, Mapping):
            row_leaf[table] = fields
            continue
        for field, operators in fields.items():
            target = aggregate_leaf if is_aggregate(str(table), str(field)) else row_leaf
            target.setdefault(table, {})[field] = operators
    if not row_leaf and not aggregate_leaf:
        return dict(node), None  # {} matches everything
    return (row_leaf or None), (aggregate_leaf or None)


def _join(left: Any, right: Any, operator: str) -> Any:
    if left is None:
        return right
    if right is None:
        return left
    return {"left": left, "operator": operator, "right": right}


def org_condition(binder: ParamBinder, org_id: str) -> str:
    """``organization_id = {org:UUID}`` (the name the compiler's session subqueries use)."""
    canonical = canonical_uuid(org_id)
    if canonical is None:
        raise ValueError(f"organization id {org_id!r} is not a UUID")
    return f"organization_id = {binder.bind_named(ORG_PARAM, canonical, 'UUID')}"


def paging(body: Mapping[str, Any], default_limit: int, max_limit: int) -> tuple[int, int]:
    """``(offset, limit)`` from the body; out of bounds is a 400 naming the field."""
    offset = _bounded_int(body.get("offset"), "offset", 0, 0, 2**53)
    limit = _bounded_int(body.get("limit"), "limit", default_limit, 0, max_limit)
    return offset, limit


def limit_offset(binder: ParamBinder, limit: int, offset: int) -> str:
    """``LIMIT {lim} OFFSET {off}``, bound under the builder's reserved names."""
    lim = binder.bind_named("lim", limit, "UInt64")
    off = binder.bind_named("off", offset, "UInt64")
    return f"LIMIT {lim} OFFSET {off}"


def body_object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise FilterError("request body must be a JSON object")
    return body


def require(body: Mapping[str, Any], *names: str) -> None:
    """A 400 naming the first of ``names`` that is absent or null in ``body``."""
    for name in names:
        if body.get(name) is None:
            raise FilterError(f"missing required field '{name}'")


def optional_str(body: Mapping[str, Any], name: str, max_length: int = 1024) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > max_length:
        raise FilterError(f"{name} must be a string of at most {max_length} characters")
    return value


def optional_bool(body: Mapping[str, Any], name: str, default: bool = False) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise FilterError(f"{name} must be a boolean, got {value!r}")
    return value


def psize(body: Mapping[str, Any]) -> float:
    """The clipping quantile of ``pSize`` (``p50``..``p99.9``; default ``p75``)."""
    value = body.get("pSize", DEFAULT_PSIZE)
    if value is None:
        value = DEFAULT_PSIZE
    if value not in PSIZES:
        raise FilterError(f"pSize must be one of {', '.join(PSIZES)}, got {value!r}")
    return PSIZES[value]


def clipped(values: str, low: str | None, high: str) -> str:
    """``arrayFilter`` keeping the elements of the array ``values`` within the quantiles."""
    test = f"x <= {high}" if low is None else f"x >= {low} AND x <= {high}"
    return f"arrayFilter(x -> {test}, {values})"


def clip_bounds(array: str, quantile: float, interquartile: bool) -> tuple[str | None, str]:
    """SQL of the lower (None: unbounded) and upper clip bounds of ``array``.

    Helicone's rule: keep values <= q(p); with ``useInterquartile``, between q(1-p) and q(p).
    The quantile is exact, by rank (``quantileExact``: the value at rank floor(p*n) of the
    sorted values, not an interpolation), so a bound is a value that occurs and, with fewer
    than 1/(1-p) values, the largest is kept: a handful of sessions has no outlier to clip.
    """
    high = f"arrayReduce('quantileExact({quantile!r})', {array})"
    if not interquartile:
        return None, high
    return f"arrayReduce('quantileExact({round(1 - quantile, 6)!r})', {array})", high


def clipped_histograms(names: Iterable[str], quantile: float, interquartile: bool) -> str:
    """``arrayReduce('histogram(10)', ...) AS h_<name>`` of each array ``a_<name>``, clipped.

    The per-session and per-user metrics endpoints draw their histograms the same way:
    each array clipped by :func:`clip_bounds`, then binned in ten.
    """
    histograms: list[str] = []
    for name in names:
        low, high = clip_bounds(f"a_{name}", quantile, interquartile)
        histograms.append(
            f"arrayReduce('histogram(10)', {clipped(f'a_{name}', low, high)}) AS h_{name}"
        )
    return ", ".join(histograms)


def per_group_query(binder: ParamBinder, org_id: str, node: Any, time_range: TimeRange | None,
                    group: GroupShape, extra: Sequence[str] = ()) -> tuple[str, str]:  # fmt: skip
    """(inner per-group SELECT, outer aggregate condition) of a session or user filter.

    The inner query groups the organization's requests by ``group.key`` (non-empty) within
    ``time_range`` and the filter's per-request conditions; the outer condition is the
    filter's aggregate part, compiled on the inner query's columns (Helicone's ``HAVING``).
    ``extra``: more per-request conditions (SQL bound to ``binder``).
    """
    row_filter, aggregate_filter = split_filter(node, group.is_aggregate)
    conditions = [org_condition(binder, org_id), f"{group.key} != ''"]
    if time_range is not None:
        conditions.append(time_range.condition(binder))
    conditions.append(f"({compile_filter(row_filter, binder, group.row_tables)})")
    conditions.extend(extra)
    outer = compile_filter(aggregate_filter, binder, {group.table: group.aggregates})
    inner = (
        f"SELECT {group.columns(binder)} FROM {REQUEST_TABLE} FINAL "
        f"WHERE {' AND '.join(conditions)} GROUP BY {group.key}"
    )
    return inner, outer


def histogram_rows(bins: Any) -> list[dict[str, Any]]:
    """ClickHouse ``histogram(10)`` bins ``[(lower, upper, height)]`` as ``HistogramRow``s."""
    out: list[dict[str, Any]] = []
    for item in bins or []:
        lower, upper, height = item[0], item[1], item[2]
        out.append(
            {
                "range_start": number_text(lower),
                "range_end": number_text(upper),
                "value": finite(height),
            }
        )
    return out


def number_text(value: Any) -> str:
    """A number as text without a needless ``.0`` (``HistogramRow`` bounds are strings)."""
    number = finite(value)
    return str(int(number)) if number.is_integer() else repr(number)


def finite(value: Any, default: float = 0.0) -> float:
    """A float; NULL, NaN and infinities (empty aggregates) become ``default``."""
    if value is None or value == "":
        return default
    number = float(value)
    return number if math.isfinite(number) else default


def maybe(value: Any) -> float | None:
    """A float, or None for NULL/NaN (an average or percentile of no values)."""
    if value is None or value == "":
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def usd(nano: Any) -> float:
    """Nano-USD (the stored unit) as USD."""
    return finite(nano) / NANO_USD


def whole(value: Any) -> int:
    return int(finite(value))
