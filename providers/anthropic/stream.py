"""Anthropic's Messages event stream → ``chat.completion.chunk`` objects, one event at a time.

Each upstream event yields its chunks at once (nothing is held back), shaped as OpenAI streams
them: a first chunk ``{role: assistant, content: ""}``; text as ``content`` deltas; each
``tool_use`` block as a tool call whose first delta carries id, type, name and ``arguments:
""``, then argument fragments; thinking as ``reasoning_content`` deltas and each signature (or
redacted block) as a ``thinking_blocks`` delta (the unified format, :mod:`providers.adapter`);
the finish reason in its own chunk when ``message_delta`` reports it; and, only when the client
asked for usage, a last chunk with ``choices: []`` and ``usage`` (every earlier chunk then says
``usage: null``, as OpenAI's do).

OpenAI numbers tool calls 0, 1, … among tool calls only, whereas Anthropic's ``index`` counts
every content block (a text or thinking block before the first tool call shifts it), so the
decoder keeps its own mapping.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from providers.anthropic.response import compact_json, finish_reason
from providers.anthropic.usage import JSONObject, merge_usage, openai_usage, usage_from_anthropic
from providers.chunks import OneChoiceDecoder, error_chunk
from providers.usage import Usage


class MessagesStreamDecoder(OneChoiceDecoder):
    """The :class:`~providers.adapter.ChatStreamDecoder` of the Messages API (the id and the
    model arrive with ``message_start``)."""

    _INCOMPLETE = "The Anthropic stream ended before the message was complete."

    def __init__(self, *, include_usage: bool, created: int | None = None) -> None:
        super().__init__(
            include_usage=include_usage,
            created=int(time.time()) if created is None else created,
            answer_id="",
            model="",
        )
        self._usage: JSONObject = {}
        self._tool_calls: dict[Any, int] = {}
        """Anthropic content-block index → OpenAI tool-call index."""

    @property
    def usage(self) -> Usage | None:
        return usage_from_anthropic(self._usage)

    def _usage_json(self) -> JSONObject | None:
        usage = self.usage
        return None if usage is None else openai_usage(usage)

    def feed(self, event: str | None, data: bytes) -> list[JSONObject]:
        if self._ended:
            return []
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            payload = None
        if not isinstance(payload, dict):
            self._ended = True
            return [error_chunk("Anthropic sent a stream event that is not JSON.", "api_error")]
        kind = payload.get("type")
        match kind if isinstance(kind, str) else event:
            case "message_start":
                return self._message_start(payload)
            case "content_block_start":
                return self._block_start(payload)
            case "content_block_delta":
                return self._block_delta(payload)
            case "message_delta":
                return self._message_delta(payload)
            case "message_stop":
                self._ended = True
                return self._closing()
            case "error":
                self._ended = True
                error = payload.get("error")
                error = error if isinstance(error, dict) else {}
                message = error.get("message")
                kind = error.get("type")
                return [
                    error_chunk(
                        message if isinstance(message, str) else "Anthropic reported an error.",
                        kind if isinstance(kind, str) else "api_error",
                    )
                ]
        return []  # ping, content_block_stop, and event types added later

    def _message_start(self, payload: JSONObject) -> list[JSONObject]:
        message = payload.get("message")
        if isinstance(message, dict):
            self._id = str(message.get("id", ""))
            self._model = str(message.get("model", ""))
            merge_usage(self._usage, message.get("usage"))
        return [self._chunk({"role": "assistant", "content": ""})]

    def _block_start(self, payload: JSONObject) -> list[JSONObject]:
        block = payload.get("content_block")
        if not isinstance(block, dict):
            return []
        kind = block.get("type")
        if kind == "text":
            text = block.get("text")
            return [self._chunk({"content": text})] if isinstance(text, str) and text else []
        if kind == "tool_use":
            index = len(self._tool_calls)
            self._tool_calls[payload.get("index")] = index
            tool_input = block.get("input")
            call = {
                "index": index,
                "id": str(block.get("id", "")),
                "type": "function",
                "function": {
                    "name": str(block.get("name", "")),
                    "arguments": compact_json(tool_input) if tool_input else "",
                },
            }
            return [self._chunk({"tool_calls": [call]})]
        if kind == "thinking":
            chunks = []
            if isinstance(block.get("thinking"), str) and block["thinking"]:
                chunks.append(self._chunk({"reasoning_content": block["thinking"]}))
            if isinstance(block.get("signature"), str) and block["signature"]:
                chunks.append(self._signature(block["signature"]))
            return chunks
        if kind == "redacted_thinking" and isinstance(block.get("data"), str):
            carried = {"type": "redacted_thinking", "data": block["data"]}
            return [self._chunk({"thinking_blocks": [carried]})]
        return []  # server tool blocks: not part of a chat completion

    def _signature(self, signature: str) -> JSONObject:
        carried = {"type": "thinking", "thinking": "", "signature": signature}
        return self._chunk({"thinking_blocks": [carried]})

    def _block_delta(self, payload: JSONObject) -> list[JSONObject]:
        delta = payload.get("delta")
        if not isinstance(delta, dict):
            return []
        kind = delta.get("type")
        if kind == "text_delta" and isinstance(delta.get("text"), str) and delta["text"]:
            return [self._chunk({"content": delta["text"]})]
        if kind == "input_json_delta":
            index = self._tool_calls.get(payload.get("index"))
            fragment = delta.get("partial_json")
            if index is None or not isinstance(fragment, str) or not fragment:
                return []
            call = {"index": index, "function": {"arguments": fragment}}
            return [self._chunk({"tool_calls": [call]})]
        if kind == "thinking_delta" and isinstance(delta.get("thinking"), str):
            return [self._chunk({"reasoning_content": delta["thinking"]})]
        if kind == "signature_delta" and isinstance(delta.get("signature"), str):
            return [self._signature(delta["signature"])]
        return []  # citations_delta: OpenAI chat has no citations in chunks

    def _message_delta(self, payload: JSONObject) -> list[JSONObject]:
        merge_usage(self._usage, payload.get("usage"))
        delta = payload.get("delta")
        stop = delta.get("stop_reason") if isinstance(delta, dict) else None
        if stop is None or self._finished:
            return []
        self._finished = True
        return [self._chunk({}, finish_reason(stop))]
