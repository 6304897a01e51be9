"""The fixed request and response bodies the bench sends and the fake upstream returns.

The responses copy the shape of real OpenAI answers (same fields, similar sizes) so that the
gateway does the same parsing and copying work it would do in production.
"""

from __future__ import annotations

import json
from typing import Any

CHAT_MODEL = "gpt-4o-mini"
"""Routed to ``OPENAI_BASE_URL``: the non-streaming measurement."""

STREAM_MODEL = "gpt-4o-mini/groq"
"""Routed to ``GROQ_BASE_URL``, which points at the upstream's SSE location."""

CHAT_PATH = "/v1/chat/completions"
STREAM_UPSTREAM_PATH = "/stream/v1/chat/completions"

_CREATED = 1_741_569_952
_ID = "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
_FINGERPRINT = "fp_06737a9306"
_UPSTREAM_MODEL = "gpt-4o-mini-2024-07-18"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def request_body(model: str, *, stream: bool = False) -> str:
    """A small but realistic chat request, as a client would send it."""
    body: dict[str, Any] = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "hi"},
        ],
    }
    if stream:
        body["stream"] = True
    return _dumps(body)


def chat_completion() -> str:
    """One ``chat.completion`` object, as OpenAI returns it for a short answer."""
    return _dumps(
        {
            "id": _ID,
            "object": "chat.completion",
            "created": _CREATED,
            "model": _UPSTREAM_MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "Hello! How can I assist you today?",
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": 19,
                "completion_tokens": 10,
                "total_tokens": 29,
                "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                "completion_tokens_details": {
                    "reasoning_tokens": 0,
                    "audio_tokens": 0,
                    "accepted_prediction_tokens": 0,
                    "rejected_prediction_tokens": 0,
                },
            },
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
        }
    )


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
    return _dumps(
        {
            "id": _ID,
            "object": "chat.completion.chunk",
            "created": _CREATED,
            "model": _UPSTREAM_MODEL,
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
    )


def sse_stream() -> str:
    """A complete SSE answer: role chunk, content chunks, the stop chunk, then ``[DONE]``."""
    events = [_chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [_chunk({"content": piece}) for piece in ("Hello", "!", " How", " can", " I", "?")]
    events.append(_chunk({}, finish_reason="stop"))
    return "".join(f"data: {event}\n\n" for event in events) + "data: [DONE]\n\n"
