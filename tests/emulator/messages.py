"""``POST /v1/messages``: Anthropic's Messages API, whole or as its typed event stream.

The answer comes from :mod:`.messages_plan`. A whole answer is a ``Message`` checked
against the SDK's model. A stream is Anthropic's documented sequence, each event as
``event: <type>`` + ``data: <json>`` checked against the SDK's ``RawMessageStreamEvent``:

``message_start`` (empty content, ``stop_reason: null``, the input usage and
``output_tokens: 1``), then per content block ``content_block_start`` (empty text or
thinking, a tool use with ``input: {}``, a redacted thinking block whole), its deltas
(``text_delta``/``thinking_delta`` one word each, ``signature_delta`` once, for tool input
an empty ``input_json_delta`` then the JSON in word-sized pieces that are not JSON on their
own) and ``content_block_stop``; a ``ping`` right after the first ``content_block_start``
(after ``message_start`` when there is no block); ``message_delta`` with the stop reason
and the cumulative ``output_tokens`` only; ``message_stop``.

``Fault(error_after_events=n)`` sends the first ``n`` events, then an ``event: error``
(``overloaded_error`` unless ``error_type``/``message`` say otherwise), then ends the
stream normally, as Anthropic does when it fails after the 200 was sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web
from anthropic.types import Message, RawMessageStreamEvent
from pydantic import TypeAdapter

from .anthropic_errors import default_message, error_object, request_id
from .exchange import Exchange
from .messages_plan import Block, Plan, plan
from .sse import EventStream, frame
from .text import split_words
from .wire import dump

_EVENT = TypeAdapter(RawMessageStreamEvent)
_MESSAGE = TypeAdapter(Message)
_REFUSAL = {"type": "refusal", "category": None, "explanation": None}


def _checked(raw: dict[str, Any], model: TypeAdapter[Any]) -> dict[str, Any]:
    """``raw`` once the SDK's model accepts it unchanged (and with no undeclared key).

    ``raw`` itself is what is sent, to keep Anthropic's key order (``type`` first); the
    SDK's models would serialise their fields alphabetically.
    """
    if dump(model.validate_python(raw)) != raw:
        raise TypeError(f"the SDK's model does not read back what was built: {raw}")
    return raw


def _block(block: Block) -> dict[str, Any]:
    if block.type == "text":
        return {"type": "text", "text": block.text}
    if block.type == "thinking":
        return {"type": "thinking", "thinking": block.text, "signature": block.signature}
    if block.type == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.data}
    return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}


def _usage(p: Plan, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": p.input_tokens,
        "cache_creation_input_tokens": p.cache.creation,
        "cache_read_input_tokens": p.cache.read,
        "cache_creation": {
            "ephemeral_5m_input_tokens": p.cache.creation_5m,
            "ephemeral_1h_input_tokens": p.cache.creation_1h,
        },
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _stop(p: Plan) -> dict[str, Any]:
    stop: dict[str, Any] = {"stop_reason": p.stop_reason, "stop_sequence": p.stop_sequence}
    if p.stop_reason == "refusal":
        stop["stop_details"] = _REFUSAL
    return stop


def message(p: Plan, message_id: str, model: str) -> dict[str, Any]:
    """The whole answer, as ``POST /v1/messages`` without ``stream`` returns it."""
    body = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [_block(block) for block in p.blocks],
        **_stop(p),
        "usage": _usage(p, p.output_tokens),
    }
    return _checked(body, _MESSAGE)


def _opening(block: Block) -> dict[str, Any]:
    """A block as its ``content_block_start`` announces it, before any delta."""
    if block.type == "text":
        return {"type": "text", "text": ""}
    if block.type == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    if block.type == "tool_use":
        return {**_block(block), "input": {}}
    return _block(block)


def _deltas(block: Block) -> list[dict[str, Any]]:
    if block.type == "text":
        return [{"type": "text_delta", "text": piece} for piece in split_words(block.text)]
    if block.type == "thinking":
        pieces = [{"type": "thinking_delta", "thinking": p} for p in split_words(block.text)]
        return [*pieces, {"type": "signature_delta", "signature": block.signature}]
    if block.type == "tool_use":
        arguments = split_words(json.dumps(block.input))
        return [{"type": "input_json_delta", "partial_json": p} for p in ["", *arguments]]
    return []


def events(p: Plan, message_id: str, model: str) -> list[dict[str, Any]]:
    """Every event of the stream, in order, each checked against the SDK's event types."""
    start: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": _usage(p, 1),
    }
    raw: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(p.blocks):
        raw.append(
            {"type": "content_block_start", "index": index, "content_block": _opening(block)}
        )
        if index == 0:
            raw.append({"type": "ping"})
        for delta in _deltas(block):
            raw.append({"type": "content_block_delta", "index": index, "delta": delta})
        raw.append({"type": "content_block_stop", "index": index})
    if not p.blocks:
        raw.append({"type": "ping"})
    raw.append(
        {"type": "message_delta", "delta": _stop(p), "usage": {"output_tokens": p.output_tokens}}
    )
    raw.append({"type": "message_stop"})
    return [event if event["type"] == "ping" else _checked(event, _EVENT) for event in raw]


def _json(data: Any, serial: int) -> web.Response:
    return web.Response(
        body=orjson.dumps(data),
        content_type="application/json",
        headers={"request-id": request_id(serial)},
    )


async def handle(exchange: Exchange) -> web.StreamResponse:
    headers: Mapping[str, str] = exchange.request.headers
    body = exchange.anthropic.validator.validate(exchange.body, beta="anthropic-beta" in headers)
    return await answer(exchange, body, str(body["model"]))


async def answer(exchange: Exchange, body: dict[str, Any], model: str) -> web.StreamResponse:
    """The answer to a validated Messages ``body`` (also Claude's on Vertex AI), naming
    ``model``."""
    p = plan(body, exchange.serial, exchange.anthropic.cache)
    message_id = f"msg_emu_{exchange.serial}"
    if body.get("stream") is not True:
        return _json(message(p, message_id, model), exchange.serial)
    frames = [frame(orjson.dumps(e), str(e["type"])) for e in events(p, message_id, model)]
    fault = exchange.fault
    if fault is not None and fault.error_after_events is not None:
        error_type = fault.error_type or "overloaded_error"
        failure = error_object(error_type, fault.message or default_message(error_type))
        frames = [*frames[: fault.error_after_events], frame(orjson.dumps(failure), "error")]
    return await EventStream(exchange).send(frames, {"request-id": request_id(exchange.serial)})
