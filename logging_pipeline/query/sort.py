"""``SortLeafRequest`` -> ORDER BY (reference §2.1.2).

Keys are looked up in a whitelist; directions must be ``asc``/``desc``; property and score
names are bound parameters. Every key present is honoured in the order given (the reference
proposes honouring only the first — a client that sends one key sees no difference), and
``request_id`` is always appended so offset paging is stable across pages.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from logging_pipeline.query.binder import ParamBinder
from logging_pipeline.query.compiler import MAX_KEY_LENGTH, input_value, property_value
from logging_pipeline.query.errors import FilterError, describe
from logging_pipeline.query.fields import ATTEMPT_COUNT

DEFAULT_SORT: Mapping[str, str] = MappingProxyType({"created_at": "desc"})
MAX_SORT_TERMS = 20
"""More terms than anyone sorts by; bounds the ORDER BY a request makes the server parse
(a sort over 20,000 property keys was a 500)."""

SORT_COLUMNS: Mapping[str, str] = MappingProxyType({
    "created_at": "request_created_at",
    # Cache hits are rows of this table (cache_reference_id set): their creation time is the
    # hit's time, so the reference's cache_hits.created_at is request_created_at here.
    "cache_created_at": "request_created_at",
    "latency": "latency",
    "last_active": "request_created_at",
    "total_tokens": "total_tokens",
    "completion_tokens": "completion_tokens",
    "prompt_tokens": "prompt_tokens",
    "user_id": "user_id",
    "body_model": "model",
    "is_cached": "(cache_reference_id IS NOT NULL)",
    "request_prompt": "request_body",
    "response_text": "response_body",
    "cost": "cost",
    "cost_usd": "cost",
    "time_to_first_token": "time_to_first_token",
    # Our extensions: every other column the dashboard shows (item 7 of issue 15).
    **{name: name for name in (
        "request_path", "model", "request_model", "response_model", "model_override",
        "provider", "status", "country_code", "target_url", "response_created_at",
        "updated_at", "prompt_cache_read_tokens", "prompt_cache_write_tokens",
        "reasoning_tokens", "prompt_audio_tokens", "completion_audio_tokens",
        "tokens_estimated", "cost_known", "cache_enabled", "is_stream", "threat",
        "request_size_bytes", "response_size_bytes", "cache_saved_latency", "session_id",
        "session_name", "session_path", "prompt_id", "prompt_version", "wire_format",
        "storage_location", "api_key_id",
    )},
    "cache_saved_cost": "cache_saved_cost",
    "attempt_count": ATTEMPT_COUNT,
})
_MAP_KEYS = ("properties", "scores", "values")
"""Keyed sorts: a property, a score, a prompt input (``values``) by name."""


def compile_sort(sort: Any, binder: ParamBinder) -> str:
    """The ORDER BY list (without the keyword) for a ``SortLeafRequest``."""
    if sort is None:
        sort = DEFAULT_SORT
    if not isinstance(sort, Mapping):
        raise FilterError(f"sort must be an object, got {type(sort).__name__}")
    terms: list[str] = []
    for key, direction in sort.items():
        if key == "random":
            if direction is not True:
                raise FilterError("sort.random only accepts true")
            terms.append("rand()")
        elif key in SORT_COLUMNS:
            terms.append(f"{SORT_COLUMNS[key]} {_direction(direction, ('sort', key))}")
        elif key in _MAP_KEYS:
            terms.extend(_map_terms(key, direction, binder))
        else:
            allowed = ", ".join(["random", *SORT_COLUMNS, *_MAP_KEYS])
            raise FilterError(f"unknown sort key {key!r} (allowed: {allowed})")
        if len(terms) > MAX_SORT_TERMS:
            raise FilterError(f"sort has more than {MAX_SORT_TERMS} sort terms")
    if not terms:
        terms.append(f"{SORT_COLUMNS['created_at']} DESC")
    terms.append("request_id ASC")
    return ", ".join(terms)


def _map_terms(kind: str, keys: Any, binder: ParamBinder) -> list[str]:
    if not isinstance(keys, Mapping):
        raise FilterError(f"sort.{kind} must be an object of key: \"asc\"|\"desc\"")
    terms: list[str] = []
    if len(keys) > MAX_SORT_TERMS:
        raise FilterError(f"sort has more than {MAX_SORT_TERMS} sort terms")
    for name, direction in keys.items():
        path = ("sort", kind, str(name))
        if not name or len(str(name)) > MAX_KEY_LENGTH:
            raise FilterError(f"invalid sort key at {describe(path[:2])}: must be "
                              f"1-{MAX_KEY_LENGTH} characters")
        order = _direction(direction, path)
        placeholder = binder.bind(str(name), "String")
        if kind == "properties":
            expr = property_value(placeholder)
        elif kind == "values":
            expr = input_value(placeholder)
        else:
            expr = f"scores[{placeholder}]"
        terms.append(f"{expr} {order}")
    return terms


def _direction(direction: Any, path: tuple[str, ...]) -> str:
    if isinstance(direction, str) and direction.lower() in ("asc", "desc"):
        return f"{direction.upper()} NULLS LAST"
    raise FilterError(f"{describe(path)} must be \"asc\" or \"desc\", got {direction!r}")
