"""Whole statements for the request endpoints: org scope, filter, flags, sort, paging.

The organization comes from authentication and is bound as ``{org:UUID}`` by these builders
only — it is never read from the request body, so a filter cannot widen its own scope (a
user's ``organization_id`` leaf can only narrow it further). Rows are read ``FINAL`` so a
re-inserted (updated) row replaces its older version.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from logging_pipeline.query.binder import ORG_PARAM, ParamBinder
from logging_pipeline.query.compiler import compile_filter
from logging_pipeline.query.errors import FilterError
from logging_pipeline.query.sort import DEFAULT_SORT, compile_sort
from logging_pipeline.schema import CACHE_HIT_CONDITION, REQUEST_TABLE

DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
MAX_OFFSET = 2**53
MAX_IDS = 1000

SELECT_COLUMNS: tuple[str, ...] = (
    "request_id", "request_created_at", "response_created_at", "latency",
    "time_to_first_token", "status", "model", "request_model", "response_model",
    "model_override", "provider", "target_url", "request_path", "user_id", "country_code",
    "threat", "prompt_tokens", "completion_tokens", "total_tokens",
    "prompt_cache_write_tokens", "prompt_cache_read_tokens", "prompt_audio_tokens",
    "completion_audio_tokens", "reasoning_tokens", "tokens_estimated", "cost", "cost_known",
    "properties", "scores", "assets", "cache_enabled", "cache_reference_id", "prompt_id",
    "prompt_version", "is_stream", "is_passthrough_billing", "storage_location",
    "request_size_bytes", "response_size_bytes", "updated_at", "body_token", "attempts",
    "cache_saved_cost", "cache_saved_latency",
)
"""Named explicitly: ``total_tokens`` is MATERIALIZED, so ``SELECT *`` would omit it."""

IGNORED_BODY_FIELDS = ("includeInputs", "isPartOfExperiment")
"""Accepted for compatibility and ignored: prompt inputs and experiments are not recorded."""


@dataclass(frozen=True, slots=True)
class CompiledQuery:
    """A statement and its server-side parameters (``{name:Type}`` placeholders)."""

    sql: str
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class RequestQuery:
    """A validated ``RequestQueryParams`` body (the filter itself is checked when built)."""

    filter: Any = "all"
    offset: int = 0
    limit: int = DEFAULT_LIMIT
    sort: Mapping[str, Any] = field(default_factory=lambda: dict(DEFAULT_SORT))
    is_cached: bool | None = None
    is_scored: bool | None = None

    @classmethod
    def from_body(cls, body: Any) -> RequestQuery:
        """Validate the JSON body of ``/v1/request/query[-clickhouse]``.

        Bounds are Helicone's: ``limit`` 0..1000 (default 10) — over the bound is a 400 "invalid
        limit", not silently clamped; ``offset`` >= 0 (default 0). Unknown keys are ignored.
        """
        if not isinstance(body, Mapping):
            raise FilterError("request body must be a JSON object")
        if "filter" not in body:
            raise FilterError("missing required field 'filter' (use \"all\" to match everything)")
        sort = body.get("sort")
        if sort is not None and not isinstance(sort, Mapping):
            raise FilterError(f"sort must be an object, got {type(sort).__name__}")
        for name in IGNORED_BODY_FIELDS:
            _optional_bool(body.get(name), name)
        return cls(
            filter=body["filter"],
            offset=_bounded_int(body.get("offset"), "offset", 0, 0, MAX_OFFSET),
            limit=_bounded_int(body.get("limit"), "limit", DEFAULT_LIMIT, 0, MAX_LIMIT),
            sort=dict(sort) if sort else dict(DEFAULT_SORT),
            is_cached=_optional_bool(body.get("isCached"), "isCached"),
            is_scored=_optional_bool(body.get("isScored"), "isScored"),
        )


def build_request_query(org_id: str, query: RequestQuery) -> CompiledQuery:
    """The list statement for a validated :class:`RequestQuery`, scoped to ``org_id``.

    ``isCached: true`` keeps cache hits only (false is "no restriction", as in Helicone);
    ``isScored`` true/false keeps rows with/without scores (reference §2.2).
    """
    binder = ParamBinder()
    conditions = [_org_condition(binder, org_id), f"({compile_filter(query.filter, binder)})"]
    if query.is_cached:
        conditions.append(CACHE_HIT_CONDITION)
    if query.is_scored is not None:
        conditions.append("notEmpty(scores)" if query.is_scored else "empty(scores)")
    order = compile_sort(query.sort, binder)
    limit = binder.bind_named("lim", query.limit, "UInt64")
    offset = binder.bind_named("off", query.offset, "UInt64")
    sql = (
        f"{_select()} WHERE {' AND '.join(conditions)} "
        f"ORDER BY {order} LIMIT {limit} OFFSET {offset}"
    )
    return CompiledQuery(sql, binder.params)


def parse_request_ids(body: Any) -> list[str]:
    """Validate ``{"requestIds": [...]}``: at most 1000 strings, order kept, duplicates dropped.

    Strings that are not UUIDs cannot name a request; like missing ids they are dropped
    rather than failing the whole lookup (Helicone drops ids it cannot find).
    """
    if not isinstance(body, Mapping) or "requestIds" not in body:
        raise FilterError("missing required field 'requestIds' (an array of request ids)")
    ids = body["requestIds"]
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise FilterError("requestIds must be an array of strings")
    if len(ids) > MAX_IDS:
        raise FilterError(f"requestIds has {len(ids)} entries; at most {MAX_IDS} are allowed")
    out: list[str] = []
    for raw in ids:
        canonical = canonical_uuid(raw)
        if canonical is not None and canonical not in out:
            out.append(canonical)
    return out


def build_ids_query(org_id: str, request_ids: Sequence[str]) -> CompiledQuery:
    """Rows for canonical UUID strings (see :func:`parse_request_ids`); empty ``IN`` is fine.

    Newest first, so the first row of a reused id is its latest request (the one kept).
    """
    binder = ParamBinder()
    org = _org_condition(binder, org_id)
    placeholders = [binder.bind(rid, "UUID") for rid in request_ids]
    in_list = ", ".join(placeholders) if placeholders else "NULL"
    sql = (
        f"{_select()} WHERE {org} AND request_id IN ({in_list}) "
        "ORDER BY request_created_at DESC, request_id ASC"
    )
    return CompiledQuery(sql, binder.params)


def build_get_query(org_id: str, request_id: str) -> CompiledQuery:
    """The single-row statement for ``GET /v1/request/{id}``; a non-UUID id is a 400."""
    canonical = canonical_uuid(request_id)
    if canonical is None:
        raise FilterError(f"Invalid requestId {request_id!r}: must be a valid UUID")
    binder = ParamBinder()
    org = _org_condition(binder, org_id)
    rid = binder.bind(canonical, "UUID")
    # A reused request id has one row per request: the newest is the one shown.
    sql = (
        f"{_select()} WHERE {org} AND request_id = {rid} "
        "ORDER BY request_created_at DESC, updated_at DESC LIMIT 1"
    )
    return CompiledQuery(sql, binder.params)


def canonical_uuid(value: str) -> str | None:
    try:
        return str(uuid.UUID(value.strip()))
    except (ValueError, AttributeError):
        return None


def _select() -> str:
    return f"SELECT {', '.join(SELECT_COLUMNS)} FROM {REQUEST_TABLE} FINAL"


def _org_condition(binder: ParamBinder, org_id: str) -> str:
    """``organization_id = {org:UUID}``; a non-UUID org is a server fault, not user input."""
    canonical = canonical_uuid(org_id)
    if canonical is None:
        raise ValueError(f"organization id {org_id!r} is not a UUID")
    return f"organization_id = {binder.bind_named(ORG_PARAM, canonical, 'UUID')}"


def _bounded_int(value: Any, name: str, default: int, low: int, high: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FilterError(f"invalid {name}: must be a number, got {value!r}")
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        raise FilterError(f"invalid {name}: must be a whole number, got {value!r}")
    number = int(value)
    if not low <= number <= high:
        raise FilterError(f"invalid {name}: must be between {low} and {high}, got {number}")
    return number


def _optional_bool(value: Any, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise FilterError(f"{name} must be a boolean, got {value!r}")
