"""The whitelist: every filter table and field the compiler accepts, and what it compiles to.

Only names found here ever reach SQL, and only as the column expressions written below; a
name that is not here is a :class:`~logging_pipeline.query.errors.FilterError`. The tables
and fields are the union of the current docs and the older QCH snapshot (reference §2.1.1),
mapped onto the single ``request_response_rmt`` table of :mod:`logging_pipeline.schema`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from types import MappingProxyType

from logging_pipeline.query.operators import Family


@dataclass(frozen=True, slots=True)
class Column:
    """A field that is a plain comparison on one column expression.

    ``uuid``: a UUID column; equals/not-equals compare as UUIDs (so the bloom index on
    ``request_id`` helps), the pattern operators compare its text form.
    """

    expr: str
    family: Family
    nullable: bool = False
    uuid: bool = False


class Special(Enum):
    """Fields whose SQL is not ``column <op> value`` (maps, arrays, derived flags)."""

    PROPERTIES = "properties"
    SEARCH_PROPERTIES = "search_properties"
    PROPERTY_KEY = "property_key"
    SCORES = "scores"
    ASSETS = "assets"
    CACHED = "cached"
    FEEDBACK_SCORE = "helicone-score-feedback"


@dataclass(frozen=True, slots=True)
class SessionAggregate:
    """A per-session aggregate, tested in a ``GROUP BY session_id HAVING`` subquery."""

    expr: str
    family: Family


@dataclass(frozen=True, slots=True)
class Unsupported:
    """A documented field this deployment cannot evaluate: rejected with ``reason`` (400)."""

    reason: str


FieldSpec = Column | Special | SessionAggregate | Unsupported

T, N, TS, B = Family.TEXT, Family.NUMBER, Family.TIMESTAMP, Family.BOOLEAN
COST_USD = "cost / 1000000000"
"""``cost`` is stored as USD x 1e9 (UInt64); the API's filter values are USD."""
CACHE_SAVED_USD = "cache_saved_cost / 1000000000"
"""What a cache hit saved, in USD (stored as nano-USD like ``cost``)."""
ATTEMPT_COUNT = "if(attempts = '', 0, length(JSONExtractArrayRaw(attempts)))"
"""Upstream attempts of a routed request (``attempts`` is a JSON array; '' = not routed)."""
NOT_RECORDED = "''"
"""Deprecated fields the gateway never records (jobs, referrer): always empty."""

_FEEDBACK_STORE = Unsupported(
    "feedback rows are not stored in the request log; filter on feedback.rating "
    "(or request_response_rmt.helicone-score-feedback) instead"
)

REQUEST_RESPONSE_RMT: Mapping[str, FieldSpec] = MappingProxyType({
    "country_code": Column("country_code", T, nullable=True),
    "latency": Column("latency", N, nullable=True),
    "cost": Column(COST_USD, N, nullable=True),
    "provider": Column("provider", T),
    "time_to_first_token": Column("time_to_first_token", N, nullable=True),
    "status": Column("status", N),
    "request_created_at": Column("request_created_at", TS),
    "response_created_at": Column("response_created_at", TS, nullable=True),
    "model": Column("model", T),
    "user_id": Column("user_id", T),
    "organization_id": Column("organization_id", T, uuid=True),
    "node_id": Column(NOT_RECORDED, T),
    "job_id": Column(NOT_RECORDED, T),
    "threat": Column("threat", B, nullable=True),
    "request_id": Column("request_id", T, uuid=True),
    "prompt_tokens": Column("prompt_tokens", N, nullable=True),
    "completion_tokens": Column("completion_tokens", N, nullable=True),
    "prompt_cache_read_tokens": Column("prompt_cache_read_tokens", N),
    "prompt_cache_write_tokens": Column("prompt_cache_write_tokens", N),
    "total_tokens": Column("total_tokens", N),
    "target_url": Column("target_url", T),
    "property_key": Special.PROPERTY_KEY,
    "properties": Special.PROPERTIES,
    "search_properties": Special.SEARCH_PROPERTIES,
    "scores": Special.SCORES,
    "scores_column": Column("toString(scores)", T),
    "request_body": Column("request_body", T),
    "response_body": Column("response_body", T),
    "cache_enabled": Column("cache_enabled", B),
    # Not in Helicone's schema (our extension): the tokens were estimated with tiktoken
    # because the provider reported no usage.
    "tokens_estimated": Column("tokens_estimated", B),
    "cache_reference_id": Column("cache_reference_id", T, nullable=True, uuid=True),
    "cached": Special.CACHED,
    "assets": Special.ASSETS,
    "helicone-score-feedback": Special.FEEDBACK_SCORE,
    "prompt_id": Column("prompt_id", T),
    "prompt_version": Column("prompt_version", T),
    # Our extension: the inputs (JSON text) and environment of a managed-prompt request.
    "prompt_inputs": Column("prompt_inputs", T),
    "prompt_environment": Column("prompt_environment", T),
    "request_referrer": Column(NOT_RECORDED, T),
    "is_passthrough_billing": Column("is_passthrough_billing", B),
    # Our extensions (reference §7.1 "implement the union", widened to every column the
    # dashboard shows): the record's other columns, by their column names.
    **{name: Column(name, T) for name in (
        "request_path", "request_model", "response_model", "model_override", "api_key_id",
        "storage_location", "wire_format", "session_id", "session_name", "session_path",
    )},
    **{name: Column(name, N) for name in (
        "reasoning_tokens", "prompt_audio_tokens", "completion_audio_tokens",
        "request_size_bytes", "response_size_bytes", "cache_saved_latency",
    )},
    "cost_known": Column("cost_known", B),
    "is_stream": Column("is_stream", B),
    "updated_at": Column("updated_at", TS),
    "cache_saved_cost": Column(CACHE_SAVED_USD, N),
    "attempts": Column("attempts", T),
    "attempt_count": Column(ATTEMPT_COUNT, N),
    "failover": Column(f"({ATTEMPT_COUNT} > 1)", B),
})

SESSIONS_REQUEST_RESPONSE_RMT: Mapping[str, FieldSpec] = MappingProxyType({
    "session_session_id": Column("session_id", T),
    "session_session_name": Column("session_name", T),
    "session_session_path": Column("session_path", T),  # extension: the third session column
    "session_total_cost": SessionAggregate("sum(ifNull(cost, 0)) / 1000000000", N),
    "session_total_tokens": SessionAggregate("sum(total_tokens)", N),
    "session_prompt_tokens": SessionAggregate("sum(ifNull(prompt_tokens, 0))", N),
    "session_completion_tokens": SessionAggregate("sum(ifNull(completion_tokens, 0))", N),
    "session_total_requests": SessionAggregate("count()", N),
    "session_created_at": SessionAggregate("min(request_created_at)", TS),
    "session_latest_request_created_at": SessionAggregate("max(request_created_at)", TS),
    "session_tag": Unsupported("session tags are not stored (there is no tags table)"),
})

LEGACY_REQUEST: Mapping[str, FieldSpec] = MappingProxyType({
    "prompt": Column("request_body", T),
    "created_at": Column("request_created_at", TS),
    "user_id": Column("user_id", T),
    "auth_hash": Unsupported("API key hashes are not stored in the request log"),
    "org_id": Column("organization_id", T, uuid=True),
    "id": Column("request_id", T, uuid=True),
    "node_id": Column(NOT_RECORDED, T),
    "model": Column("request_model", T),
    "modelOverride": Column("model_override", T),
    "path": Column("request_path", T),
    "country_code": Column("country_code", T, nullable=True),
    "prompt_id": Column("prompt_id", T),
})

LEGACY_RESPONSE: Mapping[str, FieldSpec] = MappingProxyType({
    "body_tokens": Column("total_tokens", N),
    "body_model": Column("model", T),
    "body_completion": Column("response_body", T),
    "status": Column("status", N),
    "model": Column("response_model", T),
})

LEGACY_FEEDBACK: Mapping[str, FieldSpec] = MappingProxyType({
    "rating": Special.FEEDBACK_SCORE,
    "id": _FEEDBACK_STORE,
    "created_at": _FEEDBACK_STORE,
    "response_id": _FEEDBACK_STORE,
})

FIELD_TABLES: Mapping[str, Mapping[str, FieldSpec]] = MappingProxyType({
    "request_response_rmt": REQUEST_RESPONSE_RMT,
    "sessions_request_response_rmt": SESSIONS_REQUEST_RESPONSE_RMT,
    "request": LEGACY_REQUEST,
    "response": LEGACY_RESPONSE,
    "feedback": LEGACY_FEEDBACK,
})
"""Tables whose keys are field names. ``properties`` (keys are property names) is separate."""

PROPERTIES_TABLE = "properties"
"""Top-level legacy table ``{"properties": {key: TextOperators}}``, same as the rmt map."""

UNSUPPORTED_TABLES: Mapping[str, str] = MappingProxyType({
    "values": "This filter is not implemented; prompt inputs are recorded as JSON text: "
    "filter on request_response_rmt.prompt_inputs (e.g. contains) instead",
    "cache_hits": "the cache_hits table is not available; use isCached or "
    "request_response_rmt.cached instead",
})
