"""A :class:`~logging_pipeline.capture.Capture` for a call the gateway did not proxy.

A proxied request's capture holds monotonic clock readings taken while it was served; a logged
call arrives with wall-clock times the client measured (start, first token, end). Here they
become a capture that the writer treats exactly like a proxied one: ``created_at`` is the
reported start, and the monotonic fields are placed so that the latency and time to first
token the writer derives from them are the reported ones. Usage the client reported (rather
than a response body to read it from) goes in ``reported_usage``, a cost it reported (or the
known 0 of a step that is not an LLM call) in ``reported_cost``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from logging_pipeline.capture import Capture

MAX_REPORTED_USD = 1e9
"""The largest cost one logged call may report (USD); more is cut to it."""


@dataclass(slots=True)
class LoggedCall:
    """What one logged call says about itself; every ingestion route fills one of these.

    Times are Unix seconds (wall clock). ``end`` None: the call is logged as ending at
    ``start`` (latency 0); ``first_token`` None: no time to first token. ``wire`` names the
    reader of ``response_body`` (``openai``, ``anthropic``, ``gemini``…) when usage is to be
    read from it, as for proxied requests.
    """

    organization_id: str
    api_key_id: str
    request_id: str
    path: str
    start: float
    end: float | None = None
    first_token: float | None = None
    provider: str = ""
    target_url: str = ""
    model: str = ""
    model_override: str = ""
    """``Helicone-Model-Override``: the model the record names and prices, bodies aside."""
    request_body: bytes = b""
    response_body: bytes = b""
    status: int = 200
    is_stream: bool = False
    wire: str = "openai"
    user_id: str = ""
    properties: dict[str, str] = field(default_factory=dict)
    usage: dict[str, int] | None = None
    cost: float | None = None
    """USD the client reported for the call (:attr:`Capture.reported_cost` says how it is
    used); ``0.0`` for a step that is not an LLM call (a tool, a retrieval): a known 0 unless
    the model is priced. None: the price table's cost."""
    omit_request: bool = False
    omit_response: bool = False
    prompt_id: str = ""
    """The managed prompt the call was made from (a HoneyHive event's ``metadata.prompt_id``;
    the manual logger and spans name one with ``Helicone-Prompt-Id``, a property)."""
    prompt_version: str = ""


def logged_capture(call: LoggedCall) -> Capture:
    """The capture the writer stores for ``call`` (same row and body document as a proxied
    request's). An end before the start, or a first token outside [start, end], is clamped
    to the start or end rather than refused: clocks on two machines disagree."""
    started = time.perf_counter()
    end = call.start if call.end is None else max(call.start, call.end)
    first_byte: float | None = None
    if call.first_token is not None:
        first_byte = started + min(max(call.first_token, call.start), end) - call.start
    return Capture(
        request_id=call.request_id,
        organization_id=call.organization_id,
        api_key_id=call.api_key_id,
        path=call.path,
        created_at=call.start,
        started=started,
        provider=call.provider,
        target_url=call.target_url,
        request_model=call.model,
        model_override=call.model_override,
        request_body=call.request_body,
        status=call.status,
        response_body=call.response_body,
        is_stream=call.is_stream,
        first_byte_at=first_byte,
        finished_at=started + (end - call.start),
        user_id=call.user_id,
        properties=call.properties,
        omit_request=call.omit_request,
        omit_response=call.omit_response,
        wire=call.wire,
        reported_usage=call.usage,
        reported_cost=nano_usd(call.cost),
        first_token_reported=first_byte is not None,
        prompt_id=call.prompt_id,
        prompt_version=call.prompt_version,
    )


def nano_usd(cost: float | None) -> int | None:
    """A reported USD cost as the ``cost`` column's nano-USD (None stays None): negative or
    not finite is 0, and a cost past :data:`MAX_REPORTED_USD` is cut there (UInt64 holds
    1.8e10 USD; one absurd value must not fail the whole insert batch)."""
    if cost is None:
        return None
    if not math.isfinite(cost) or cost <= 0:
        return 0
    return round(min(cost, MAX_REPORTED_USD) * 1e9)


def openai_usage(counts: Mapping[str, int]) -> dict[str, Any]:
    """Reported counts (:class:`~providers.usage.Usage` field names) as the OpenAI ``usage`` of
    a body rebuilt from a report (an OpenTelemetry span, a HoneyHive event): what the stored
    answer shows. Details appear only when reported (the record's columns come from
    ``LoggedCall.usage`` itself, cache writes included)."""
    prompt = counts.get("prompt_tokens", 0)
    completion = counts.get("completion_tokens", 0)
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if counts.get("cache_read_tokens"):
        usage["prompt_tokens_details"] = {"cached_tokens": counts["cache_read_tokens"]}
    if counts.get("reasoning_tokens"):
        usage["completion_tokens_details"] = {"reasoning_tokens": counts["reasoning_tokens"]}
    return usage


def reported_usd(value: Any) -> float | None:
    """A cost a client reported, in USD: a number (or numeric text, as some attributes carry
    it) 0 or more; None for anything else (no cost reported: the price table's)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) and value >= 0 else None


def usage_cost(answer: Any) -> float | None:
    """The cost an answer's ``usage`` reports (``usage.cost``, USD: OpenRouter's usage
    accounting, the field Helicone's cost calculation prefers to its own), else None."""
    usage = answer.get("usage") if isinstance(answer, dict) else None
    return reported_usd(usage.get("cost")) if isinstance(usage, dict) else None
