"""``POST /v1/responses``: the Responses API, plain or as its typed event stream.

The stream is the documented sequence (created, in_progress, output_item.added,
content_part.added, output_text.delta per word, output_text.done, content_part.done,
output_item.done, completed), each event ``event: <type>`` + ``data: <json>`` with an
increasing ``sequence_number``, so the SDK's ``responses.stream()`` accumulator can rebuild
the final ``Response`` exactly as it would from OpenAI.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import orjson
from aiohttp import web
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseContentPartAddedEvent,
    ResponseContentPartDoneEvent,
    ResponseCreatedEvent,
    ResponseInProgressEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseTextDeltaEvent,
    ResponseTextDoneEvent,
)
from pydantic import BaseModel

from .exchange import Exchange
from .sse import EventStream, frame
from .text import content_text, count_words, reply_to, split_words
from .wire import dump, json_response

_EVENT_TYPES: Mapping[str, type[BaseModel]] = MappingProxyType(
    {
        "response.created": ResponseCreatedEvent,
        "response.in_progress": ResponseInProgressEvent,
        "response.output_item.added": ResponseOutputItemAddedEvent,
        "response.content_part.added": ResponseContentPartAddedEvent,
        "response.output_text.delta": ResponseTextDeltaEvent,
        "response.output_text.done": ResponseTextDoneEvent,
        "response.content_part.done": ResponseContentPartDoneEvent,
        "response.output_item.done": ResponseOutputItemDoneEvent,
        "response.completed": ResponseCompletedEvent,
    }
)


def _user_text(items: Any) -> str:
    if isinstance(items, str):
        return items
    for item in reversed(items):
        if isinstance(item, dict) and item.get("role") == "user":
            return content_text(item.get("content"))
    return ""


def _input_words(params: dict[str, Any]) -> int:
    items = params.get("input", "")
    if isinstance(items, str):
        words = count_words(items)
    else:
        texts = [content_text(item.get("content")) for item in items if isinstance(item, dict)]
        words = sum(count_words(text) for text in texts)
    instructions = params.get("instructions")
    if isinstance(instructions, str):
        words += count_words(instructions)
    return max(1, words)


def _part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _message(message_id: str, status: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": parts,
    }


class Reply:
    """One answer: the same ids, text and usage whether sent whole or as events."""

    def __init__(self, params: dict[str, Any], serial: int) -> None:
        self.params = params
        self.id = f"resp_emu_{serial}"
        self.message_id = f"msg_emu_{serial}"
        self.created_at = int(time.time())
        self.text = reply_to(_user_text(params.get("input", "")))
        self.input_tokens = _input_words(params)
        self.output_tokens = count_words(self.text)

    def response(self, done: bool) -> dict[str, Any]:
        """The ``Response`` object: finished, or as first announced (no output, no usage)."""
        p = self.params
        usage = {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": self.input_tokens + self.output_tokens,
        }
        output = [_message(self.message_id, "completed", [_part(self.text)])] if done else []
        body = {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "completed_at": self.created_at if done else None,
            "status": "completed" if done else "in_progress",
            "background": False,
            "error": None,
            "incomplete_details": None,
            "instructions": p.get("instructions"),
            "max_output_tokens": p.get("max_output_tokens"),
            "model": p["model"],
            "output": output,
            "parallel_tool_calls": p.get("parallel_tool_calls", True),
            "previous_response_id": p.get("previous_response_id"),
            "reasoning": p.get("reasoning", {"effort": None, "summary": None}),
            "temperature": p.get("temperature", 1.0),
            "text": p.get("text", {"format": {"type": "text"}}),
            "tool_choice": p.get("tool_choice", "auto"),
            "tools": p.get("tools", []),
            "top_p": p.get("top_p", 1.0),
            "truncation": p.get("truncation", "disabled"),
            "usage": usage if done else None,
            "user": p.get("user"),
            "metadata": p.get("metadata") or {},
        }
        return dump(Response.model_validate(body))

    def events(self) -> list[dict[str, Any]]:
        """Every stream event, in order, numbered."""
        item = {"item_id": self.message_id, "output_index": 0, "content_index": 0}
        pieces = split_words(self.text)
        raw: list[dict[str, Any]] = [
            {"type": "response.created", "response": self.response(done=False)},
            {"type": "response.in_progress", "response": self.response(done=False)},
            {
                "type": "response.output_item.added",
                "output_index": 0,
                "item": _message(self.message_id, "in_progress", []),
            },
            {"type": "response.content_part.added", **item, "part": _part("")},
            *(
                {"type": "response.output_text.delta", **item, "delta": piece, "logprobs": []}
                for piece in pieces
            ),
            {"type": "response.output_text.done", **item, "text": self.text, "logprobs": []},
            {"type": "response.content_part.done", **item, "part": _part(self.text)},
            {
                "type": "response.output_item.done",
                "output_index": 0,
                "item": _message(self.message_id, "completed", [_part(self.text)]),
            },
            {"type": "response.completed", "response": self.response(done=True)},
        ]
        return [
            dump(_EVENT_TYPES[event["type"]].model_validate({**event, "sequence_number": number}))
            for number, event in enumerate(raw)
        ]


async def handle(exchange: Exchange) -> web.StreamResponse:
    params = exchange.validator.validate("responses", exchange.body)
    reply = Reply(params, exchange.serial)
    if params.get("stream") is not True:
        return json_response(reply.response(done=True), exchange.serial)
    frames = [frame(orjson.dumps(event), event["type"]) for event in reply.events()]
    return await EventStream(exchange).send(frames)
