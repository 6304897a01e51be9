"""What a request costs, for cents policies: an estimate before it is sent, the real cost after.

The estimate is what a cents policy *reserves* before forwarding, so concurrent requests cannot
all pass a nearly spent budget; the real cost replaces it once the answer is in. The estimate
leans high on purpose (a refund is harmless, an overshoot is not):

* prompt tokens: the request body's size / 4 (the usual characters-per-token rule; the
  request log's own fallback estimate uses it too);
* completion tokens: the request's own cap (``max_completion_tokens``, ``max_tokens``,
  ``max_output_tokens``), else the model's output limit from the registry, else
  :data:`DEFAULT_COMPLETION_TOKENS`; 0 for embeddings;
* the most expensive of the request's planned attempts (a fallback may cost more).

A model without a price costs 0 (as in the request log: cost unknown), so it is not held back
by a cents policy. The real cost is read from the answer the way the request log reads it
(:func:`providers.formats.response_reader`: a streamed answer's usage chunk, Anthropic's usage
events…); an error answer costs 0, and an answer without usage keeps the reservation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from logging_pipeline.capture import Capture
from providers.formats import response_reader
from providers.registry import Registry
from providers.usage import Usage

DEFAULT_COMPLETION_TOKENS = 4096
"""Completion tokens reserved when neither the request nor the registry bounds them."""
_CAPS = ("max_completion_tokens", "max_tokens", "max_output_tokens")
_CHARS_PER_TOKEN = 4


@dataclass(frozen=True, slots=True)
class CostEstimate:
    """A request's reserved cost, and the model its answer is priced as if it names none."""

    nano_usd: int
    model: str = ""


def estimate_cost(
    registry: Registry,
    candidates: Iterable[tuple[str, str]],
    payload: Mapping[str, Any] | None,
    body_size: int,
    endpoint: str,
) -> CostEstimate:
    """The reservation for a request about to go to one of ``candidates`` (provider, model)."""
    prompt = body_size // _CHARS_PER_TOKEN + 1
    cap = _completion_cap(payload)
    embeddings = endpoint.rstrip("/").endswith("/embeddings")
    highest, model = 0, ""
    for provider, candidate in candidates:
        model = model or candidate
        price = registry.lookup(provider, candidate)
        if price is None:
            continue
        completion = 0
        if not embeddings:
            completion = cap or price.max_output_tokens or DEFAULT_COMPLETION_TOKENS
        usage = Usage(prompt_tokens=prompt, completion_tokens=completion)
        highest = max(highest, price.cost(usage).nano_usd)
    return CostEstimate(highest, model)


def _completion_cap(payload: Mapping[str, Any] | None) -> int:
    if payload is None:
        return 0
    for name in _CAPS:
        value = payload.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


def json_payload(body: bytes) -> dict[str, Any] | None:
    """A passthrough body as a JSON object, or None (passthrough never refuses a body)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return payload if isinstance(payload, dict) else None


def answer_cost(registry: Registry, capture: Capture, fallback_model: str = "") -> int | None:
    """The answer's real cost in nano-dollars; 0 for an error (or nothing) answered; None when
    the answer reports no usage (the reservation then stands)."""
    if not 200 <= capture.status < 300:
        return 0
    reader = response_reader(capture.wire)
    usage: Usage | None
    if capture.is_stream:
        summary = reader.summarise_stream(capture.response_body)
        usage, response_model = summary.usage, summary.model or ""
    else:
        try:
            answer = orjson.loads(capture.response_body)
        except orjson.JSONDecodeError:
            return None
        usage, response_model = reader.usage(answer), reader.model(answer) or ""
    if usage is None:
        return None
    model = capture.model_override or response_model or capture.request_model or fallback_model
    return registry.cost(capture.provider, model, usage).nano_usd
