"""``POST /v1/chat/completions``: a deterministic assistant, plain or streamed.

What it answers, and the marker words that select a scenario (``[[parallel]]``,
``[[text+tool]]``, ``[[refuse]]``, reasoning, ``stop``, token limits), is in
:mod:`.chat_plan`. Streams follow OpenAI's chunk order exactly: role chunk, reasoning
deltas, content deltas, tool calls one after the other (each: a chunk with id, type, name
and empty arguments, then argument fragments), finish chunk, optional usage chunk,
``[DONE]``.

``reasoning_content`` is not a field of OpenAI's types (it is DeepSeek's extension, which
OpenAI-compatible servers copy), so it is added after the SDK's model has checked the rest.

``Fault(error_after_events=n)`` sends the first ``n`` chunks, then ``data: {"error": ...}``
(``server_error`` unless ``error_type``/``message`` say otherwise) and ends the stream
without ``[DONE]``, as OpenAI does when it fails after the answer has begun.
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from aiohttp import web
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from .chat_plan import Plan, plan
from .errors import InvalidRequest, default_error
from .exchange import Exchange
from .sse import EventStream, frame
from .text import split_words
from .wire import dump, json_response

FINGERPRINT = "fp_emulator"


def _check(params: dict[str, Any]) -> None:
    """Rules OpenAI enforces that the SDK's types cannot express."""
    if not params["messages"]:
        raise InvalidRequest(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, "
            "but got an empty array instead.",
            "messages",
            "empty_array",
        )
    if params.get("stream_options") is not None and params.get("stream") is not True:
        raise InvalidRequest(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )


def _usage(p: Plan) -> dict[str, Any]:
    return {
        "prompt_tokens": p.prompt_tokens,
        "completion_tokens": p.completion_tokens,
        "total_tokens": p.prompt_tokens + p.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": p.reasoning_tokens,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def completion(p: Plan, completion_id: str, created: int, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {
        "role": "assistant",
        "content": p.text,
        "refusal": None,
        "annotations": [],
    }
    if p.calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
            for c in p.calls
        ]
    body = {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {"index": 0, "message": message, "logprobs": None, "finish_reason": p.finish_reason}
        ],
        "usage": _usage(p),
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
    out = dump(ChatCompletion.model_validate(body))
    if p.reasoning is not None:
        out["choices"][0]["message"]["reasoning_content"] = p.reasoning
    return out


def chunks(
    p: Plan, completion_id: str, created: int, model: str, include_usage: bool
) -> list[dict[str, Any]]:
    """Every chunk of the stream, in order (without the closing ``[DONE]``)."""
    base: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "service_tier": "default",
        "system_fingerprint": FINGERPRINT,
    }
    if include_usage:
        base["usage"] = None

    def chunk(
        delta: dict[str, Any], finish_reason: str | None = None, reasoning: str | None = None
    ) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        out = dump(ChatCompletionChunk.model_validate({**base, "choices": [choice]}))
        if reasoning is not None:
            out["choices"][0]["delta"]["reasoning_content"] = reasoning
        return out

    opening = {"role": "assistant", "content": "" if p.text is not None else None, "refusal": None}
    out = [chunk(opening)]
    out += [chunk({}, reasoning=piece) for piece in split_words(p.reasoning or "")]
    out += [chunk({"content": piece}) for piece in split_words(p.text or "")]
    for index, call in enumerate(p.calls):
        start = {
            "index": index,
            "id": call.id,
            "type": "function",
            "function": {"name": call.name, "arguments": ""},
        }
        out.append(chunk({"tool_calls": [start]}))
        for piece in split_words(call.arguments):
            out.append(chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
    out.append(chunk({}, p.finish_reason))
    if include_usage:
        usage = {**base, "choices": [], "usage": _usage(p)}
        out.append(dump(ChatCompletionChunk.model_validate(usage)))
    return out


def _error_frame(error_type: str | None, message: str | None) -> bytes:
    usual, usual_type, code = default_error(500)
    error = {
        "message": message or usual,
        "type": error_type or usual_type,
        "param": None,
        "code": code,
    }
    return frame(orjson.dumps({"error": error}))


async def handle(exchange: Exchange) -> web.StreamResponse:
    params = exchange.validator.validate("chat", exchange.body)
    _check(params)
    p = plan(params)
    completion_id = f"chatcmpl-emu-{exchange.serial}"
    created = int(time.time())
    model = str(params["model"])
    if params.get("stream") is not True:
        return json_response(completion(p, completion_id, created, model), exchange.serial)
    include_usage = bool((params.get("stream_options") or {}).get("include_usage"))
    frames = [
        frame(orjson.dumps(c)) for c in chunks(p, completion_id, created, model, include_usage)
    ]
    frames.append(frame(b"[DONE]"))
    fault = exchange.fault
    if fault is not None and fault.error_after_events is not None:
        failure = _error_frame(fault.error_type, fault.message)
        frames = [*frames[: fault.error_after_events], failure]
    return await EventStream(exchange).send(frames)
