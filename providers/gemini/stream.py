"""Gemini's ``streamGenerateContent?alt=sse`` stream → ``chat.completion.chunk`` objects.

Every SSE event is a whole ``GenerateContentResponse`` holding the next piece of each
candidate: text parts are deltas, a ``functionCall`` part arrives whole, the last event of a
candidate carries its ``finishReason``, and ``usageMetadata`` (cumulative) rides on the events.
Each event yields its chunks at once (nothing is held back), shaped as OpenAI streams them: a
first chunk ``{role: assistant, content: ""}`` per choice; text as ``content`` deltas and
thought summaries as ``reasoning_content`` deltas; each function call as one tool-call delta
with id, type, name and the whole arguments; each thought signature as a ``thinking_blocks``
delta (:mod:`providers.adapter`); the finish reason in its own chunk. When the client asked for
usage, every chunk says ``usage: null`` and a last chunk with ``choices: []`` carries the usage
once the stream ended.

An event ``{"error": {...}}`` (Google's way of failing after the 200) becomes the unified
format's error chunk; a stream that ends before every choice finished ends with one too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from providers.adapter import ChatStreamDecoder
from providers.chunks import choice_chunk, error_chunk, usage_chunk
from providers.gemini.errors import google_error
from providers.gemini.response import (
    call_id,
    finish_reason,
    parts_of,
    prompt_blocked,
    response_id,
    tool_call,
)
from providers.gemini.usage import JSONObject, openai_usage, usage_from_gemini
from providers.usage import Usage


@dataclass(slots=True)
class _Choice:
    calls: int = 0
    finished: bool = False


class GeminiStreamDecoder(ChatStreamDecoder):
    """The :class:`~providers.adapter.ChatStreamDecoder` of ``streamGenerateContent``."""

    def __init__(self, *, include_usage: bool, created: int | None = None) -> None:
        self._include_usage = include_usage
        self._created = int(time.time()) if created is None else created
        self._id = ""
        self._model = ""
        self._usage: Any = None
        self._choices: dict[int, _Choice] = {}
        self._calls = 0
        """Tool calls so far over every choice (their ids stay unique in the answer)."""
        self._ended = False

    @property
    def usage(self) -> Usage | None:
        return usage_from_gemini(self._usage)

    def feed(self, event: str | None, data: bytes) -> list[JSONObject]:
        if self._ended:
            return []
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            payload = None
        if isinstance(payload, list) and len(payload) == 1:
            payload = payload[0]
        if not isinstance(payload, dict):
            self._ended = True
            return [error_chunk("Gemini sent a stream event that is not JSON.", "api_error")]
        if "error" in payload:
            self._ended = True
            message, status = google_error(payload)
            return [error_chunk(message or "Gemini reported an error.", "api_error", status)]
        if not self._id:
            self._id = response_id(payload)
            model = payload.get("modelVersion")
            self._model = model if isinstance(model, str) else ""
        if isinstance(payload.get("usageMetadata"), dict):
            self._usage = payload["usageMetadata"]
        chunks: list[JSONObject] = []
        candidates = payload.get("candidates")
        if not isinstance(candidates, list) or not candidates:
            if prompt_blocked(payload):
                state = self._choice(0, chunks)
                if not state.finished:
                    state.finished = True
                    chunks.append(self._chunk(0, {}, "content_filter"))
            return chunks
        for position, candidate in enumerate(candidates):
            if isinstance(candidate, dict):
                chunks += self._candidate(candidate, position)
        return chunks

    def close(self) -> list[JSONObject]:
        if self._ended:
            return []
        self._ended = True
        if not self._choices or not all(c.finished for c in self._choices.values()):
            return [error_chunk("The Gemini stream ended before the answer was complete.",
                                "api_error")]
        usage = self.usage
        if not self._include_usage or usage is None:
            return []
        return [usage_chunk(self._id, self._created, self._model, openai_usage(usage))]

    def _chunk(self, index: int, delta: JSONObject, finish: str | None = None) -> JSONObject:
        return choice_chunk(
            self._id, self._created, self._model, index, delta, finish, self._include_usage
        )

    def _choice(self, index: int, chunks: list[JSONObject]) -> _Choice:
        state = self._choices.get(index)
        if state is None:
            state = self._choices[index] = _Choice()
            chunks.append(self._chunk(index, {"role": "assistant", "content": ""}))
        return state

    def _candidate(self, candidate: JSONObject, position: int) -> list[JSONObject]:
        index = candidate.get("index")
        index = index if type(index) is int and index >= 0 else position
        chunks: list[JSONObject] = []
        state = self._choice(index, chunks)
        if state.finished:
            return chunks
        for part in parts_of(candidate):
            function_call = part.get("functionCall")
            if isinstance(function_call, dict):
                call = tool_call(function_call, call_id(function_call, self._id, self._calls))
                self._calls += 1
                chunks.append(self._chunk(index, {"tool_calls": [{"index": state.calls, **call}]}))
                state.calls += 1
            elif isinstance(part.get("text"), str) and part["text"]:
                key = "reasoning_content" if part.get("thought") is True else "content"
                chunks.append(self._chunk(index, {key: part["text"]}))
            signature = part.get("thoughtSignature")
            if isinstance(signature, str) and signature:
                block = {"type": "thinking", "thinking": "", "signature": signature}
                chunks.append(self._chunk(index, {"thinking_blocks": [block]}))
        reason = candidate.get("finishReason")
        if isinstance(reason, str) and reason != "FINISH_REASON_UNSPECIFIED":
            state.finished = True
            chunks.append(self._chunk(index, {}, finish_reason(reason, state.calls > 0)))
        return chunks
