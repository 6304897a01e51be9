"""ClickHouse rows -> the ``HeliconeRequest`` objects of the REST API (reference §1.2).

Renames follow the reference (``latency`` -> ``delay_ms``, ``status`` -> ``response_status``,
``user_id`` -> ``request_user_id``), cost goes from nano-USD to USD, and empty-string
"absent" values become ``null``. Fields we do not record (feedback rows, signed URLs,
``llmSchema``, referrer, ...) are present and ``null`` so clients see the documented shape.
Some fields are ours, not Helicone's, snake_case like the row's other flags
(``cache_enabled``): ``tokens_estimated`` (true when the provider reported no usage, so the
tokens and the cost are a tiktoken estimate), ``attempts`` (the upstream attempts of a routed
request, ``[{"source", "status", "latency_ms"}]``, empty when it was not routed) and
``cache_saved_cost`` (USD) / ``cache_saved_latency`` (ms), what a cache hit saved; with the
bodies inlined (``includeBody``), ``request_headers`` / ``response_headers`` (the headers
the gateway received and the provider answered with, credentials redacted; null when not kept).
The adapter behind the query may return timestamps as datetimes or strings and 64-bit ints
as strings (ClickHouse quotes them in JSON by default): both are accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import orjson

BODY_PLACEHOLDER: Mapping[str, str] = MappingProxyType({
    "helicone_message": "fetching body from signed_url... contact engineering@helicone.ai "
    "for more information"
})
"""What Helicone returns for a body that is not inlined (reference §1.3)."""

BODY_REPLACED: Mapping[str, str] = MappingProxyType({
    "helicone_message": "body not shown: it was replaced by another request that reused this "
    "request id (Helicone-Request-Id)"
})
"""What a body is shown as when the stored one belongs to another request with this id."""

NANO_USD = 1_000_000_000
_ZERO_UUID = "00000000-0000-0000-0000-000000000000"
_FEEDBACK_SCORE = "helicone-score-feedback"
_TOKEN_FIELDS = (
    "prompt_cache_write_tokens", "prompt_cache_read_tokens", "reasoning_tokens",
    "prompt_audio_tokens", "completion_audio_tokens",
)


def helicone_request(row: Mapping[str, Any], bodies: Mapping[str, Any] | None = None) -> dict[
    str, Any
]:
    """One ``HeliconeRequest``; ``bodies`` (:func:`bodies_of`) inlines the bodies and adds
    ``request_headers`` / ``response_headers`` (objects, or None when not kept)."""
    properties = {str(k): str(v) for k, v in (row.get("properties") or {}).items()}
    scores = {str(k): _number(v) for k, v in (row.get("scores") or {}).items()}
    prompt_tokens = _int(row.get("prompt_tokens"))
    completion_tokens = _int(row.get("completion_tokens"))
    cost = _cost(row)
    assets = [str(a) for a in (row.get("assets") or [])]
    feedback = scores.get(_FEEDBACK_SCORE)
    placeholder = dict(BODY_PLACEHOLDER)
    out: dict[str, Any] = {
        "request_id": str(row["request_id"]),
        "request_created_at": iso_timestamp(row.get("request_created_at")),
        "request_body": bodies.get("request") if bodies is not None else placeholder,
        "request_path": row.get("request_path") or "",
        "request_user_id": row.get("user_id") or None,
        "request_properties": properties,
        "properties": dict(properties),
        "request_model": row.get("request_model") or None,
        "response_model": row.get("response_model") or None,
        "model_override": row.get("model_override") or None,
        "model": row.get("model") or "",
        "provider": row.get("provider") or "CUSTOM",
        "target_url": row.get("target_url") or "",
        "helicone_user": None,
        "response_id": None,
        "response_created_at": iso_timestamp(row.get("response_created_at")),
        "response_status": _int(row.get("status")),
        "response_body": bodies.get("response") if bodies is not None else dict(placeholder),
        "delay_ms": _int(row.get("latency")),
        "time_to_first_token": _int(row.get("time_to_first_token")),
        "total_tokens": _total(prompt_tokens, completion_tokens),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "cost": cost,
        "costUSD": cost,
        "prompt_id": row.get("prompt_id") or None,
        "prompt_version": row.get("prompt_version") or None,
        "feedback_created_at": None,
        "feedback_id": None,
        "feedback_rating": None if feedback is None else feedback >= 1,
        "signed_body_url": None,
        "llmSchema": None,
        "country_code": row.get("country_code") or None,
        "asset_ids": assets,
        "asset_urls": {},
        "assets": list(assets),
        "scores": scores,
        "cache_reference_id": _cache_reference(row.get("cache_reference_id")),
        "cache_enabled": bool(row.get("cache_enabled")),
        "updated_at": iso_timestamp(row.get("updated_at")),
        "request_referrer": None,
        "ai_gateway_body_mapping": None,
        "storage_location": row.get("storage_location") or None,
        "tokens_estimated": bool(row.get("tokens_estimated")),
        "attempts": _attempts(row.get("attempts")),
        "cache_saved_cost": (_int(row.get("cache_saved_cost")) or 0) / NANO_USD,
        "cache_saved_latency": _int(row.get("cache_saved_latency")) or 0,
    }
    for name in _TOKEN_FIELDS:
        out[name] = _int(row.get(name))
    if bodies is not None:  # includeBody: the stored headers too (None when not kept)
        out["request_headers"] = bodies.get("request_headers")
        out["response_headers"] = bodies.get("response_headers")
    return out


_NO_HEADERS: Mapping[str, None] = MappingProxyType(
    {"request_headers": None, "response_headers": None}
)


def bodies_of(row: Mapping[str, Any], document: Mapping[str, Any] | None) -> dict[str, Any]:
    """The ``{"request", "response", "request_headers", "response_headers"}`` to inline for
    ``row`` from its stored body document.

    The document is shown only when it carries the row's ``body_token``: a request id reused
    in one organization keeps one body (the last written), which may be another request's —
    then both bodies are :data:`BODY_REPLACED` and no headers are shown. Rows written before
    the token existed (0) show whatever is stored, as they always did. Headers are None when
    not kept (omitted, a logged call, a document written before headers were kept).
    """
    if document is None:
        return {"request": None, "response": None, **_NO_HEADERS}
    token = _int(row.get("body_token")) or 0
    if token and _int(document.get("token")) != token:
        return {"request": dict(BODY_REPLACED), "response": dict(BODY_REPLACED), **_NO_HEADERS}
    return {
        "request": document.get("request"),
        "response": document.get("response"),
        "request_headers": _headers(document.get("request_headers")),
        "response_headers": _headers(document.get("response_headers")),
    }


def _headers(value: Any) -> dict[str, str] | None:
    """A stored headers object (``null``, or absent in a document from before headers: None)."""
    if not isinstance(value, dict):
        return None
    return {str(name): str(text) for name, text in value.items()}


def iso_timestamp(value: Any) -> str | None:
    """``2024-01-02T03:04:05.678Z`` from a datetime or a ClickHouse/ISO string (UTC if naive)."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _attempts(raw: Any) -> list[dict[str, Any]]:
    """The ``attempts`` column (a JSON array, '' when the request was not routed) as a list;
    a value that is not an array of objects (never written so) reads as no attempts."""
    if not raw:
        return []
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(parsed, list):
        return []
    return [dict(item) for item in parsed if isinstance(item, dict)]


def _cost(row: Mapping[str, Any]) -> float | None:
    """USD, or ``null`` when the price was unknown (``cost_known`` false) or never computed."""
    raw = _int(row.get("cost"))
    if raw is None or row.get("cost_known") is False:
        return None
    return raw / NANO_USD


def _cache_reference(value: Any) -> str | None:
    if value is None or str(value) in ("", _ZERO_UUID):
        return None
    return str(value)


def _total(prompt: int | None, completion: int | None) -> int | None:
    if prompt is None and completion is None:
        return None
    return (prompt or 0) + (completion or 0)


def _int(value: Any) -> int | None:
    if value is None or value == "":
        return None
    return int(value)


def _number(value: Any) -> float | int:
    number = float(value)
    return int(number) if number.is_integer() else number
