"""Bedrock's runtime API: ``POST /model/{modelId}/converse``, ``/converse-stream``, ``/invoke``
and ``/invoke-with-response-stream``, signed with SigV4 (checked by :mod:`.bedrock_validation`).

The assistant is the Messages emulator's (:mod:`.messages_plan`: the echo, tool calls,
``[[parallel]]``, ``[[text+tool]]``, stop sequences, ``max_tokens`` cuts, thinking with
verifiable signatures, cache points), so both APIs answer alike:

* **Converse**: the validated request is read as a Messages request (blocks, tools, tool
  choice, inference config, ``additionalModelRequestFields.thinking``, ``cachePoint`` →
  ``cache_control`` on the block before it) and the plan is rendered as Converse's response
  (checked against the output shape) or as ConverseStream's events, each a real binary
  event-stream message (:mod:`.eventstream`): ``messageStart``, per block
  ``contentBlockStart`` (tool use only), ``contentBlockDelta`` (one word each; tool input JSON
  in word-sized pieces), ``contentBlockStop``, ``messageStop``, ``metadata`` (usage).
  ``[[refuse]]`` stops with ``guardrail_intervened``; ``[[blocked]]`` with
  ``content_filtered`` and no text; ``outputConfig.textFormat`` answers the JSON
  ``{"echo": <reply>}``.
* **InvokeModel** (Claude): Anthropic's Messages body with ``anthropic_version:
  "bedrock-2023-05-31"`` and neither ``model`` nor ``stream`` (checked with the Messages
  validator, the model taken from the path); the answer is the Message, or each Messages
  event as a ``chunk`` event (``{"bytes": <base64 JSON>}``), the last one carrying
  ``amazon-bedrock-invocationMetrics``.

``Fault(error_after_events=n)`` sends ``n`` messages, then an exception message
(``error_type`` or ``modelStreamErrorException``), then ends the stream.
"""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import unquote

import orjson
from aiohttp import web

from providers.bedrock.models import base_model

from . import eventstream
from .anthropic_errors import AnthropicError
from .bedrock_validation import BedrockError, BedrockValidator, validation_error
from .exchange import Exchange
from .messages import events as messages_events
from .messages import message as messages_message
from .messages_plan import Block, Plan, PromptCache, plan
from .sse import EventStream
from .text import split_words

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"
BLOCKED = "[[blocked]]"
_STOP_REASONS = {"refusal": "guardrail_intervened"}
_OPERATIONS = {
    "converse": "Converse",
    "converse-stream": "ConverseStream",
    "invoke": "InvokeModel",
    "invoke-with-response-stream": "InvokeModelWithResponseStream",
}


def error_response(status: int, kind: str, message: str, serial: int) -> web.Response:
    """Bedrock's error answer: ``{"message"}`` and the type in ``x-amzn-ErrorType``."""
    headers = {
        "x-amzn-ErrorType": f"{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/",
        "x-amzn-RequestId": f"req-emu-{serial}",
    }
    if status == 429:
        headers["retry-after"] = "1"
    return web.Response(
        status=status,
        body=orjson.dumps({"message": message}),
        headers=headers,
        content_type="application/json",
    )


STATUS_ERRORS = {
    400: (
        "ValidationException",
        "Malformed input request, please reformat your input and try again.",
    ),
    403: (
        "AccessDeniedException",
        "You don't have access to the model with the specified model ID.",
    ),
    404: ("ResourceNotFoundException", "The specified model could not be found."),
    408: ("ModelTimeoutException", "The model timed out."),
    424: ("ModelErrorException", "The model returned an error."),
    429: ("ThrottlingException", "Too many requests, please wait before trying again."),
    500: ("InternalServerException", "The server encountered an internal error."),
    503: ("ServiceUnavailableException", "Bedrock is unable to process your request."),
}


def split_path(raw_path: str) -> tuple[str, str] | None:
    """``(model id, operation)`` of ``/model/{modelId}/{operation}`` (raw path), or None."""
    parts = raw_path.split("/")
    if len(parts) != 4 or parts[0] or parts[1] != "model" or parts[3] not in _OPERATIONS:
        return None
    return unquote(parts[2]), parts[3]


# --- Converse request → the Messages plan's request -----------------------------------------


def _block(block: dict[str, Any]) -> dict[str, Any] | None:
    if "text" in block:
        return {"type": "text", "text": block["text"]}
    if "toolUse" in block:
        use = block["toolUse"]
        return {
            "type": "tool_use",
            "id": use["toolUseId"],
            "name": use["name"],
            "input": use["input"],
        }
    if "toolResult" in block:
        texts = [part.get("text", "") for part in block["toolResult"]["content"]]
        return {
            "type": "tool_result",
            "tool_use_id": block["toolResult"]["toolUseId"],
            "content": " ".join(texts),
        }
    if "reasoningContent" in block:
        reasoning = block["reasoningContent"]
        if "reasoningText" in reasoning:
            text = reasoning["reasoningText"]
            return {
                "type": "thinking",
                "thinking": text["text"],
                "signature": text.get("signature", ""),
            }
        return {"type": "redacted_thinking", "data": reasoning.get("redactedContent", "")}
    if "image" in block or "document" in block:
        return {"type": "image" if "image" in block else "document"}
    return None


def _blocks(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for block in content:
        if "cachePoint" in block:
            if out:
                out[-1]["cache_control"] = {
                    "type": "ephemeral",
                    **({"ttl": block["cachePoint"]["ttl"]} if "ttl" in block["cachePoint"] else {}),
                }
            continue
        converted = _block(block)
        if converted is not None:
            out.append(converted)
    return out


def as_messages_request(body: dict[str, Any], model_id: str) -> dict[str, Any]:
    """The Messages request a Converse request amounts to (for the shared plan)."""
    inference = body.get("inferenceConfig") or {}
    request: dict[str, Any] = {
        "model": model_id,
        "max_tokens": inference.get("maxTokens", 4096),
        "messages": [
            {"role": m["role"], "content": _blocks(m["content"])} for m in body["messages"]
        ],
    }
    if body.get("system"):
        request["system"] = _blocks(body["system"])
    if inference.get("stopSequences"):
        request["stop_sequences"] = inference["stopSequences"]
    tool_config = body.get("toolConfig")
    if tool_config:
        request["tools"] = [
            {
                "name": t["toolSpec"]["name"],
                "description": t["toolSpec"].get("description", ""),
                "input_schema": t["toolSpec"]["inputSchema"]["json"],
            }
            for t in tool_config["tools"]
            if "toolSpec" in t
        ]
        choice = tool_config.get("toolChoice") or {"auto": {}}
        if "tool" in choice:
            request["tool_choice"] = {"type": "tool", "name": choice["tool"]["name"]}
        else:
            request["tool_choice"] = {"type": "any" if "any" in choice else "auto"}
    thinking = (body.get("additionalModelRequestFields") or {}).get("thinking")
    if thinking:
        request["thinking"] = thinking
    return request


# --- Converse answers -----------------------------------------------------------------------------


def _content(block: Block) -> dict[str, Any]:
    if block.type == "text":
        return {"text": block.text}
    if block.type == "thinking":
        return {
            "reasoningContent": {
                "reasoningText": {"text": block.text, "signature": block.signature}
            }
        }
    if block.type == "redacted_thinking":
        return {"reasoningContent": {"redactedContent": block.data}}
    return {"toolUse": {"toolUseId": block.id, "name": block.name, "input": block.input}}


def _usage(p: Plan) -> dict[str, Any]:
    usage = {
        "inputTokens": p.input_tokens,
        "outputTokens": p.output_tokens,
        "totalTokens": p.input_tokens + p.output_tokens + p.cache.read + p.cache.creation,
    }
    if p.cache.read or p.cache.creation:
        usage["cacheReadInputTokens"] = p.cache.read
        usage["cacheWriteInputTokens"] = p.cache.creation
    return usage


def converse_plan(
    body: dict[str, Any], model_id: str, serial: int, cache: PromptCache
) -> tuple[Plan, str]:
    """The plan for a Converse request and its ``stopReason``."""
    request = as_messages_request(body, model_id)
    p = plan(request, serial, cache)
    user_texts = [
        b["text"]
        for m in request["messages"]
        if m["role"] == "user"
        for b in m["content"]
        if b["type"] == "text"
    ]
    last = user_texts[-1] if user_texts else ""
    if BLOCKED in last:
        blocked = Plan((), "content_filtered", None, p.input_tokens, 0, p.cache)
        return blocked, "content_filtered"
    if body.get("outputConfig") and p.stop_reason == "end_turn":
        text = "".join(b.text for b in p.blocks if b.type == "text")
        answer = Block("text", text=json.dumps({"echo": text}), tokens=len(text.split()))
        p = Plan(
            (*[b for b in p.blocks if b.type != "text"], answer),
            p.stop_reason,
            None,
            p.input_tokens,
            p.output_tokens,
            p.cache,
        )
    return p, _STOP_REASONS.get(p.stop_reason, p.stop_reason)


def converse_answer(p: Plan, stop_reason: str) -> dict[str, Any]:
    return {
        "output": {"message": {"role": "assistant", "content": [_content(b) for b in p.blocks]}},
        "stopReason": stop_reason,
        "usage": _usage(p),
        "metrics": {"latencyMs": 42},
    }


def converse_events(p: Plan, stop_reason: str) -> list[tuple[str, dict[str, Any]]]:
    """ConverseStream's events for a plan, in order."""
    out: list[tuple[str, dict[str, Any]]] = [("messageStart", {"role": "assistant"})]
    for index, block in enumerate(p.blocks):
        if block.type == "tool_use":
            start = {"toolUse": {"toolUseId": block.id, "name": block.name}}
            out.append(("contentBlockStart", {"start": start, "contentBlockIndex": index}))
            for piece in split_words(json.dumps(block.input)):
                delta = {"toolUse": {"input": piece}}
                out.append(("contentBlockDelta", {"delta": delta, "contentBlockIndex": index}))
        elif block.type == "text":
            for piece in split_words(block.text):
                out.append(
                    ("contentBlockDelta", {"delta": {"text": piece}, "contentBlockIndex": index})
                )
        elif block.type == "thinking":
            for piece in split_words(block.text):
                delta = {"reasoningContent": {"text": piece}}
                out.append(("contentBlockDelta", {"delta": delta, "contentBlockIndex": index}))
            delta = {"reasoningContent": {"signature": block.signature}}
            out.append(("contentBlockDelta", {"delta": delta, "contentBlockIndex": index}))
        else:
            delta = {"reasoningContent": {"redactedContent": block.data}}
            out.append(("contentBlockDelta", {"delta": delta, "contentBlockIndex": index}))
        out.append(("contentBlockStop", {"contentBlockIndex": index}))
    out.append(("messageStop", {"stopReason": stop_reason}))
    out.append(("metadata", {"usage": _usage(p), "metrics": {"latencyMs": 42}}))
    return out


# --- handlers -------------------------------------------------------------------------------------


async def _stream(exchange: Exchange, frames: list[bytes]) -> web.StreamResponse:
    fault = exchange.fault
    if fault is not None and fault.error_after_events is not None:
        kind = fault.error_type or "modelStreamErrorException"
        message = fault.message or "The model stream had an error."
        frames = [*frames[: fault.error_after_events], eventstream.exception(kind, message)]
    headers = {"x-amzn-RequestId": f"req-emu-{exchange.serial}"}
    return await EventStream(exchange).send(frames, headers, content_type=eventstream.CONTENT_TYPE)


async def converse(
    exchange: Exchange, validator: BedrockValidator, cache: PromptCache, model_id: str, stream: bool
) -> web.StreamResponse:
    operation = "ConverseStream" if stream else "Converse"
    body = validator.request(operation, model_id, exchange.body)
    p, stop_reason = converse_plan(body, model_id, exchange.serial, cache)
    if not stream:
        answer = validator.answer("Converse", converse_answer(p, stop_reason))
        return web.json_response(answer, headers={"x-amzn-RequestId": f"req-emu-{exchange.serial}"})
    frames = [
        eventstream.event(kind, validator.stream_event(kind, payload))
        for kind, payload in converse_events(p, stop_reason)
    ]
    return await _stream(exchange, frames)


async def invoke(
    exchange: Exchange, cache: PromptCache, model_id: str, stream: bool
) -> web.StreamResponse:
    if not base_model(model_id).startswith("anthropic."):
        raise validation_error("The emulator's InvokeModel serves Claude models only.")
    try:
        body = orjson.loads(exchange.body)
    except orjson.JSONDecodeError:
        raise validation_error(
            "Malformed input request, please reformat your input and try again."
        ) from None
    if not isinstance(body, dict) or body.get("anthropic_version") != BEDROCK_ANTHROPIC_VERSION:
        raise validation_error(f"anthropic_version must be {BEDROCK_ANTHROPIC_VERSION}")
    extra = sorted(
        {"model", "stream", "metadata", "service_tier", "context_management"} & set(body)
    )
    if extra:
        raise validation_error(f"#: extraneous key [{extra[0]}] is not permitted")
    messages = {k: v for k, v in body.items() if k not in ("anthropic_version", "anthropic_beta")}
    messages["model"] = model_id
    if stream:
        messages["stream"] = True
    try:
        checked = exchange.anthropic.validator.validate(orjson.dumps(messages), beta=False)
    except AnthropicError as exc:
        raise validation_error(exc.message) from None
    p = plan(checked, exchange.serial, cache)
    name = base_model(model_id).removeprefix("anthropic.").rsplit("-v", 1)[0]
    message_id = f"msg_emu_{exchange.serial}"
    if not stream:
        return web.json_response(messages_message(p, message_id, name))
    raw = messages_events(p, message_id, name)
    raw[-1] = {
        **raw[-1],
        "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": p.input_tokens + p.cache.read + p.cache.creation,
            "outputTokenCount": p.output_tokens,
            "invocationLatency": 42,
            "firstByteLatency": 7,
        },
    }
    frames = [
        eventstream.event("chunk", {"bytes": base64.b64encode(orjson.dumps(e)).decode()})
        for e in raw
    ]
    return await _stream(exchange, frames)


async def handle(
    exchange: Exchange,
    validator: BedrockValidator,
    cache: PromptCache,
    model_id: str,
    operation: str,
) -> web.StreamResponse:
    if operation.startswith("converse"):
        return await converse(exchange, validator, cache, model_id, operation == "converse-stream")
    return await invoke(exchange, cache, model_id, operation == "invoke-with-response-stream")


__all__ = ["BedrockError", "error_response", "handle", "split_path"]
