"""``POST /v1/chat/completions``: a deterministic assistant, plain or streamed.

The answer echoes the last user message, or, when tools are offered (and the conversation
is not already answering a tool call, and ``tool_choice`` is not ``"none"``), calls the first
function tool with the user text as ``{"echo": ...}``. Streams follow OpenAI's chunk order
exactly: role chunk, content (or tool-call) deltas, finish chunk, optional usage chunk,
``[DONE]``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from .errors import InvalidRequest
from .exchange import Exchange
from .sse import EventStream, frame
from .text import content_text, count_words, reply_to, split_words
from .wire import dump, json_response

TOOL_CALL_ID = "call_emu_1"
TOOL_CALL_TOKENS = 5
FINGERPRINT = "fp_emulator"


@dataclass(frozen=True)
class Plan:
    """What the assistant will say: ``text``, or a call of ``tool`` with ``arguments``."""

    text: str | None
    tool: str | None
    arguments: str
    prompt_tokens: int
    completion_tokens: int

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool else "stop"


def _chosen_tool(params: dict[str, Any]) -> str | None:
    tools = params.get("tools") or []
    choice = params.get("tool_choice")
    if not tools or choice == "none" or params["messages"][-1].get("role") == "tool":
        return None
    if isinstance(choice, dict) and choice.get("type") == "function":
        return str(choice["function"]["name"])
    for tool in tools:
        if tool.get("type") == "function":
            return str(tool["function"]["name"])
    return None


def plan(params: dict[str, Any]) -> Plan:
    messages: list[dict[str, Any]] = params["messages"]
    user_text = next(
        (content_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"),
        "",
    )
    prompt_tokens = max(1, sum(count_words(content_text(m.get("content"))) for m in messages))
    tool = _chosen_tool(params)
    if tool is not None:
        arguments = json.dumps({"echo": user_text})
        return Plan(None, tool, arguments, prompt_tokens, TOOL_CALL_TOKENS)
    text = reply_to(user_text)
    return Plan(text, None, "", prompt_tokens, count_words(text))


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
            "reasoning_tokens": 0,
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
    if p.tool:
        message["tool_calls"] = [
            {
                "id": TOOL_CALL_ID,
                "type": "function",
                "function": {"name": p.tool, "arguments": p.arguments},
            }
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
    return dump(ChatCompletion.model_validate(body))


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

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return dump(ChatCompletionChunk.model_validate({**base, "choices": [choice]}))

    out = [
        chunk({"role": "assistant", "content": "" if p.text is not None else None, "refusal": None})
    ]
    if p.tool:
        start = {
            "index": 0,
            "id": TOOL_CALL_ID,
            "type": "function",
            "function": {"name": p.tool, "arguments": ""},
        }
        out.append(chunk({"tool_calls": [start]}))
        for piece in split_words(p.arguments):
            out.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
    else:
        out += [chunk({"content": piece}) for piece in split_words(p.text or "")]
    out.append(chunk({}, p.finish_reason))
    if include_usage:
        usage = {**base, "choices": [], "usage": _usage(p)}
        out.append(dump(ChatCompletionChunk.model_validate(usage)))
    return out


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
    return await EventStream(exchange).send(frames)
