"""Bedrock streams → ``chat.completion.chunk`` objects, one event-stream message at a time.

:class:`ConverseStreamDecoder` reads ConverseStream's events (``messageStart``,
``contentBlockStart``/``Delta``/``Stop``, ``messageStop`` with the stop reason, ``metadata``
with the usage) and emits chunks shaped as the Anthropic decoder's (:mod:`providers.anthropic.
stream`): the role chunk first, text as ``content``, a tool call's id and name in its first
delta then argument fragments, reasoning as ``reasoning_content`` and signatures or redacted
blocks as ``thinking_blocks`` deltas, the finish reason in its own chunk, and the usage chunk
(``choices: []``) last when the client asked for it. Converse numbers content blocks across
kinds; OpenAI numbers tool calls among themselves, so the decoder keeps its own mapping.

:class:`InvokeStreamDecoder` reads InvokeModelWithResponseStream: each ``chunk`` event carries
one Anthropic Messages event (base64 in ``bytes``), handed to the Anthropic decoder as it is.

For both, an exception message (``throttlingException``, ``modelStreamErrorException``…) is
the unified format's error chunk and ends the answer.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any

import orjson

from providers.adapter import ChatStreamDecoder
from providers.anthropic.stream import MessagesStreamDecoder
from providers.anthropic.usage import openai_usage
from providers.bedrock.errors import exception_chunk
from providers.bedrock.response import completion_id, finish_reason, usage_from_converse
from providers.chunks import OneChoiceDecoder
from providers.usage import Usage

JSONObject = dict[str, Any]


def is_exception(event: str | None) -> bool:
    """Whether an event-stream message is an exception or error (not an event)."""
    return event is not None and (event.endswith("Exception") or event.endswith("Error"))


class ConverseStreamDecoder(OneChoiceDecoder):
    """The :class:`~providers.adapter.ChatStreamDecoder` of ConverseStream (which names
    neither the answer nor the model: the id is made here, the model is the one asked for)."""

    _INCOMPLETE = "The Bedrock stream ended before the answer was complete."

    def __init__(self, *, include_usage: bool, model: str, created: int | None = None) -> None:
        super().__init__(
            include_usage=include_usage,
            created=int(time.time()) if created is None else created,
            answer_id=completion_id(),
            model=model,
        )
        self._usage: Usage | None = None
        self._tool_calls: dict[Any, int] = {}
        """Converse ``contentBlockIndex`` → OpenAI tool-call index."""

    @property
    def usage(self) -> Usage | None:
        return self._usage

    def _usage_json(self) -> JSONObject | None:
        return None if self._usage is None else openai_usage(self._usage)

    def feed(self, event: str | None, data: bytes) -> list[JSONObject]:
        if self._ended:
            return []
        if is_exception(event):
            self._ended = True
            return [exception_chunk(str(event), data)]
        payload = orjson.loads(data)
        if not isinstance(payload, dict):
            return []
        match event:
            case "messageStart":
                return [self._chunk({"role": "assistant", "content": ""})]
            case "contentBlockStart":
                return self._block_start(payload)
            case "contentBlockDelta":
                return self._block_delta(payload)
            case "messageStop":
                if self._finished:
                    return []
                self._finished = True
                return [self._chunk({}, finish_reason(payload.get("stopReason")))]
            case "metadata":
                self._usage = usage_from_converse(payload.get("usage"))
                self._ended = True
                return self._closing()
        return []  # contentBlockStop, and event types added later

    def _block_start(self, payload: JSONObject) -> list[JSONObject]:
        start = payload.get("start")
        use = start.get("toolUse") if isinstance(start, dict) else None
        if not isinstance(use, dict):
            return []
        index = len(self._tool_calls)
        self._tool_calls[payload.get("contentBlockIndex")] = index
        call = {
            "index": index,
            "id": str(use.get("toolUseId", "")),
            "type": "function",
            "function": {"name": str(use.get("name", "")), "arguments": ""},
        }
        return [self._chunk({"tool_calls": [call]})]

    def _block_delta(self, payload: JSONObject) -> list[JSONObject]:
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            return []
        text = delta.get("text")
        if isinstance(text, str):
            return [self._chunk({"content": text})] if text else []
        use = delta.get("toolUse")
        if isinstance(use, dict):
            index = self._tool_calls.get(payload.get("contentBlockIndex"))
            fragment = use.get("input")
            if index is None or not isinstance(fragment, str) or not fragment:
                return []
            return [
                self._chunk({"tool_calls": [{"index": index, "function": {"arguments": fragment}}]})
            ]
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict):
            if isinstance(reasoning.get("text"), str):
                return [self._chunk({"reasoning_content": reasoning["text"]})]
            if isinstance(reasoning.get("signature"), str):
                block = {"type": "thinking", "thinking": "", "signature": reasoning["signature"]}
                return [self._chunk({"thinking_blocks": [block]})]
            if isinstance(reasoning.get("redactedContent"), str):
                block = {"type": "redacted_thinking", "data": reasoning["redactedContent"]}
                return [self._chunk({"thinking_blocks": [block]})]
        return []  # citations: OpenAI chat has no citations in chunks


def chunk_event(payload: Any) -> bytes | None:
    """The model's own event inside an InvokeModelWithResponseStream ``chunk`` payload
    (``{"bytes": <base64>}``); None when it holds none."""
    encoded = payload.get("bytes") if isinstance(payload, dict) else None
    if not isinstance(encoded, str):
        return None
    try:
        return base64.b64decode(encoded, validate=True)
    except binascii.Error:
        return None


class InvokeStreamDecoder(ChatStreamDecoder):
    """The :class:`~providers.adapter.ChatStreamDecoder` of InvokeModelWithResponseStream for
    Claude: each chunk's Messages event through the Anthropic decoder."""

    def __init__(self, *, include_usage: bool, created: int | None = None) -> None:
        self._messages = MessagesStreamDecoder(include_usage=include_usage, created=created)
        self._ended = False

    @property
    def usage(self) -> Usage | None:
        return self._messages.usage

    def feed(self, event: str | None, data: bytes) -> list[JSONObject]:
        if self._ended:
            return []
        if is_exception(event):
            self._ended = True
            return [exception_chunk(str(event), data)]
        if event != "chunk":
            return []
        inner = chunk_event(orjson.loads(data))
        if inner is None:
            return []
        return self._messages.feed(None, inner)

    def close(self) -> list[JSONObject]:
        if self._ended:
            return []
        self._ended = True
        return self._messages.close()
