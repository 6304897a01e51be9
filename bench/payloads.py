"""The fixed request and response bodies the bench sends and the fake upstream returns.

The responses copy the shape of real OpenAI, Anthropic, Gemini and Bedrock answers (same
fields, similar sizes) so that the gateway does the same parsing and copying work it would do
in production. The native answers carry the same text and token counts as the OpenAI ones, so
the translated paths (``model/anthropic``, ``model/google-ai-studio``, ``model/bedrock``) and
the OpenAI path differ only by what translation (and, for Bedrock, SigV4 signing) costs.
Bedrock streams are binary AWS event streams (:func:`bedrock_event_stream`, encoded here:
the bench does not import the tests' emulator).
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Mapping
from typing import Any

CHAT_MODEL = "gpt-4o-mini"
"""Routed to ``OPENAI_BASE_URL``: the non-streaming measurement."""

STREAM_MODEL = "gpt-4o-mini/groq"
"""Routed to ``GROQ_BASE_URL``, which points at the upstream's SSE location."""

TRANSLATED_MODEL = "claude-sonnet-4-5/anthropic"
"""Routed to ``ANTHROPIC_BASE_URL`` through the Anthropic adapter: the translated path. The
same chat body is sent with ``stream: true`` for the streamed variant."""

CHAT_PATH = "/v1/chat/completions"
STREAM_UPSTREAM_PATH = "/stream/v1/chat/completions"

MESSAGES_PATH = "/v1/messages"
"""Where the gateway sends a translated request, under ``ANTHROPIC_BASE_URL`` (which has no
``/v1``, as Anthropic's own base URL has none)."""

ANTHROPIC_STREAM_PREFIX = "/anthropic-stream"
"""Base URL path of the Anthropic event-stream location: the gateway's request looks the same
streamed or not (the flag is in the body, which nginx does not read), so the streamed target
is a gateway whose ``ANTHROPIC_BASE_URL`` ends in this prefix."""

ANTHROPIC_STREAM_PATH = ANTHROPIC_STREAM_PREFIX + MESSAGES_PATH

GEMINI_MODEL = "gemini-2.5-flash/google-ai-studio"
"""Routed to ``GEMINI_BASE_URL`` through the Gemini adapter (issue 13): ``generateContent``,
or ``streamGenerateContent?alt=sse`` with ``stream: true``."""

GEMINI_PATH = "/v1beta/models/gemini-2.5-flash:generateContent"
GEMINI_STREAM_PATH = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
"""The Gemini adapter's paths under ``GEMINI_BASE_URL`` (the stream's query, ``alt=sse``, is
not part of a location: nginx and the fallback upstream match the path alone)."""

BEDROCK_MODEL = "nova-lite/bedrock"
"""Routed to ``BEDROCK_BASE_URL`` through the Bedrock adapter (issue 13), signed with SigV4:
Nova goes through Converse (Claude would go through InvokeModel), ``ConverseStream`` with
``stream: true``, whose answer is a binary ``application/vnd.amazon.eventstream``."""

BEDROCK_MODEL_ID = "us.amazon.nova-lite-v1:0"
"""The registry's Bedrock id of ``nova-lite``; in the request path it is one segment,
percent-encoded (``%3A``), which nginx decodes before matching a location."""

BEDROCK_PATH = f"/model/{BEDROCK_MODEL_ID}/converse"
BEDROCK_STREAM_PATH = f"/model/{BEDROCK_MODEL_ID}/converse-stream"
BEDROCK_CONTENT_TYPE = "application/vnd.amazon.eventstream"

ROUTED_MODEL = CHAT_MODEL
"""Issue 11's routed request: a bare model, planned from the registry. On the routing gateway
the organisation holds a BYOK OpenAI key (base URL at :data:`BYOK_PREFIX`) and the operator a
managed one, so the plan is BYOK first, then credits."""

PINNED_MODEL = "gpt-4o-mini/openai"
"""What the routed request is compared with: pinned to OpenAI and sent with the client's own
key (``Authorization``, the gateway key in ``Helicone-Auth``): one attempt, no key store."""

FAILING_PROVIDER = "deepseek"
"""A provider whose base URL on the routing gateway is :data:`FAILING_PREFIX`: every request
to it gets a 503 at once."""

FAILOVER_MODEL = f"gpt-4o-mini/{FAILING_PROVIDER},{PINNED_MODEL}"
"""The failover chain: the failing provider first, then the request that serves
(``gpt-4o-mini/openai`` with the gateway key: the org's BYOK key) — the same request a direct
``gpt-4o-mini/openai`` makes."""

BYOK_PREFIX = "/byok"
"""Base URL path of the organisation's own OpenAI endpoint (its ``/v1`` appended): the same
answer as :data:`CHAT_PATH` under another request id, so a probe can tell which key served."""

BYOK_PATH = BYOK_PREFIX + CHAT_PATH
BYOK_MODELS_PATH = BYOK_PREFIX + "/v1/models"
"""What storing the BYOK key checks it against (the provider-keys API validates live)."""

FAILING_PREFIX = "/failing"
FAILING_PATH = FAILING_PREFIX + CHAT_PATH
BYOK_REQUEST_ID = "req_bench_byok"

_CREATED = 1_741_569_952
_ID = "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT"
_FINGERPRINT = "fp_06737a9306"
_UPSTREAM_MODEL = "gpt-4o-mini-2024-07-18"
_MESSAGE_ID = "msg_01XFDUDYJgAACzvnptvVoYEL"
_ANTHROPIC_MODEL = "claude-sonnet-4-5-20250929"
_GEMINI_MODEL = "gemini-2.5-flash"
_GEMINI_RESPONSE_ID = "P2zBaMyNBaW_nvgP6ZOQ8Ak"
_TEXT = "Hello! How can I assist you today?"
_STREAM_PIECES = ("Hello", "!", " How", " can", " I", "?")
_PROMPT_TOKENS, _COMPLETION_TOKENS = 19, 10


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
                        "content": _TEXT,
                        "refusal": None,
                        "annotations": [],
                    },
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": _PROMPT_TOKENS,
                "completion_tokens": _COMPLETION_TOKENS,
                "total_tokens": _PROMPT_TOKENS + _COMPLETION_TOKENS,
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


def model_list() -> str:
    """``GET /v1/models`` as OpenAI answers it (a page of one model)."""
    return _dumps(
        {
            "object": "list",
            "data": [
                {"id": CHAT_MODEL, "object": "model", "created": _CREATED, "owned_by": "system"}
            ],
        }
    )


def overloaded_error() -> str:
    """The body of the failing provider's 503, in OpenAI's error shape."""
    return _dumps(
        {
            "error": {
                "message": "The server is overloaded or not ready yet.",
                "type": "server_error",
                "param": None,
                "code": None,
            }
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
    events += [_chunk({"content": piece}) for piece in _STREAM_PIECES]
    events.append(_chunk({}, finish_reason="stop"))
    return "".join(f"data: {event}\n\n" for event in events) + "data: [DONE]\n\n"


def _anthropic_usage(output_tokens: int) -> dict[str, Any]:
    """Usage as Anthropic reports it for a request without prompt caching."""
    return {
        "input_tokens": _PROMPT_TOKENS,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def anthropic_message() -> str:
    """One ``Message``: what ``POST /v1/messages`` returns for :func:`chat_completion`'s answer."""
    return _dumps(
        {
            "id": _MESSAGE_ID,
            "type": "message",
            "role": "assistant",
            "model": _ANTHROPIC_MODEL,
            "content": [{"type": "text", "text": _TEXT}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": _anthropic_usage(_COMPLETION_TOKENS),
        }
    )


def anthropic_events() -> list[dict[str, Any]]:
    """The event sequence of :func:`anthropic_sse_stream`, in order (the same text as
    :func:`sse_stream`, one ``text_delta`` per OpenAI content chunk)."""
    start: dict[str, Any] = {
        "id": _MESSAGE_ID,
        "type": "message",
        "role": "assistant",
        "model": _ANTHROPIC_MODEL,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _anthropic_usage(1),
    }
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "ping"},
    ]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        for piece in _STREAM_PIECES
    ]
    events += [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": _COMPLETION_TOKENS},
        },
        {"type": "message_stop"},
    ]
    return events


def anthropic_sse_stream() -> str:
    """A complete Messages event stream: ``event: <type>`` and ``data: <json>`` per event."""
    return "".join(
        f"event: {event['type']}\ndata: {_dumps(event)}\n\n" for event in anthropic_events()
    )


def _gemini_usage(candidates: int | None) -> dict[str, Any]:
    """``usageMetadata``: the prompt count only until the last event, as Gemini streams it."""
    prompt = [{"modality": "TEXT", "tokenCount": _PROMPT_TOKENS}]
    if candidates is None:
        usage = {"promptTokenCount": _PROMPT_TOKENS, "totalTokenCount": _PROMPT_TOKENS}
        return {**usage, "promptTokensDetails": prompt}
    return {
        "promptTokenCount": _PROMPT_TOKENS,
        "candidatesTokenCount": candidates,
        "totalTokenCount": _PROMPT_TOKENS + candidates,
        "promptTokensDetails": prompt,
    }


def _gemini_response(text: str, last: bool, usage: dict[str, Any]) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if last:
        candidate["finishReason"] = "STOP"
    candidate["index"] = 0
    return {
        "candidates": [candidate],
        "usageMetadata": usage,
        "modelVersion": _GEMINI_MODEL,
        "responseId": _GEMINI_RESPONSE_ID,
    }


def gemini_response() -> str:
    """One ``GenerateContentResponse``: what ``generateContent`` returns for
    :func:`chat_completion`'s answer."""
    return _dumps(_gemini_response(_TEXT, True, _gemini_usage(_COMPLETION_TOKENS)))


def gemini_events() -> list[dict[str, Any]]:
    """The events of :func:`gemini_sse_stream`: one ``GenerateContentResponse`` per piece of
    :func:`sse_stream`'s text, the last with ``finishReason`` and the full usage."""
    last = len(_STREAM_PIECES) - 1
    return [
        _gemini_response(
            piece, i == last, _gemini_usage(_COMPLETION_TOKENS if i == last else None)
        )
        for i, piece in enumerate(_STREAM_PIECES)
    ]


def gemini_sse_stream() -> str:
    """``streamGenerateContent?alt=sse``: ``data: <GenerateContentResponse>`` per event."""
    return "".join(f"data: {_dumps(event)}\n\n" for event in gemini_events())


def _bedrock_usage() -> dict[str, int]:
    total = _PROMPT_TOKENS + _COMPLETION_TOKENS
    return {"inputTokens": _PROMPT_TOKENS, "outputTokens": _COMPLETION_TOKENS, "totalTokens": total}


def converse_response() -> str:
    """Bedrock ``Converse``'s answer for :func:`chat_completion`'s (``end_turn``)."""
    return _dumps(
        {
            "output": {"message": {"role": "assistant", "content": [{"text": _TEXT}]}},
            "stopReason": "end_turn",
            "usage": _bedrock_usage(),
            "metrics": {"latencyMs": 312},
        }
    )


def converse_events() -> list[tuple[str, dict[str, Any]]]:
    """``ConverseStream``'s events, in order, as ``(:event-type, payload)``: ``messageStart``,
    a ``contentBlockDelta`` per piece of :func:`sse_stream`'s text, ``contentBlockStop``,
    ``messageStop`` and ``metadata`` (usage)."""
    events: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
    events += [
        ("contentBlockDelta", {"delta": {"text": piece}, "contentBlockIndex": 0})
        for piece in _STREAM_PIECES
    ]
    events += [
        ("contentBlockStop", {"contentBlockIndex": 0}),
        ("messageStop", {"stopReason": "end_turn"}),
        ("metadata", {"usage": _bedrock_usage(), "metrics": {"latencyMs": 312}}),
    ]
    return events


def event_stream_message(headers: Mapping[str, str], payload: bytes) -> bytes:
    """One AWS event-stream message with string headers: a prelude (total length, headers
    length, CRC-32 of those 8 bytes), the headers (name length u8, name, type 7 = string,
    value length u16, value), the payload, and a CRC-32 of everything before it. Big-endian;
    zlib's CRC-32, which is the one AWS uses."""
    encoded = b"".join(
        struct.pack("!B", len(name.encode()))
        + name.encode()
        + struct.pack("!BH", 7, len(value.encode()))
        + value.encode()
        for name, value in headers.items()
    )
    prelude = struct.pack("!II", 12 + len(encoded) + len(payload) + 4, len(encoded))
    prelude += struct.pack("!I", zlib.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack("!I", zlib.crc32(message))


def bedrock_event_stream() -> bytes:
    """The whole ``ConverseStream`` body: :func:`converse_events` as event messages."""
    return b"".join(
        event_stream_message(
            {
                ":event-type": name,
                ":content-type": "application/json",
                ":message-type": "event",
            },
            _dumps(payload).encode(),
        )
        for name, payload in converse_events()
    )
