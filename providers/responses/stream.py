"""``chat.completion.chunk`` objects → the Responses API's typed event stream, incrementally.

The event sequence is OpenAI's: ``response.created``, ``response.in_progress``, then for each
output item ``response.output_item.added`` … ``response.output_item.done`` with its content
events between (a message's ``content_part.added`` / ``output_text.delta`` /
``output_text.done`` / ``content_part.done``; a function call's
``function_call_arguments.delta`` / ``.done``; reasoning's ``reasoning_summary_part.added`` /
``reasoning_summary_text.delta`` / ``.done`` / ``reasoning_summary_part.done``), and last
``response.completed`` (or ``response.incomplete``) carrying the whole Response with its
usage. Every event carries an increasing ``sequence_number``.

Nothing is held back: each chunk's deltas are events as soon as the chunk is fed. An item
closes when the provider moves on (text after reasoning closes the reasoning; a tool call
closes the text) or finishes; parallel tool calls are open side by side, each its own output
index, so their argument deltas may interleave exactly as the provider sent them. The final
event waits only for the usage chunk that follows ``finish_reason`` (the request asked for
it with ``stream_options.include_usage``), or for :meth:`ChatToResponsesStream.close`.

A provider error mid-stream (an ``{"error": …}`` chunk, :mod:`providers.adapter`) is an
``error`` event, then ``response.failed``. The ``error`` event carries the error both flat
(``code``/``message``/``param``, the documented shape) and nested under ``error`` (what
OpenAI sends on the wire): the openai SDKs raise ``APIError`` on a payload with an ``error``
key, so a client's ``responses.stream()`` raises instead of waiting for a completion that
never comes. ``response.failed`` is the terminal event for clients that read the lifecycle.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from providers.responses.envelope import (
    item_id,
    new_response_id,
    response_object,
    responses_usage,
)
from providers.responses.reasoning import encrypted_content, reasoning_item
from providers.responses.response import incomplete_reason, output_text_part

__all__ = ["ChatToResponsesStream", "encode_event"]

JSONObject = dict[str, Any]

_RATE_LIMITED = frozenset({"rate_limit_exceeded", "rate_limit_error", "too_many_requests", "429"})


def encode_event(event: JSONObject) -> bytes:
    """One event as its SSE frame: ``event: <type>``, ``data: <json>``, a blank line."""
    return b"event: " + str(event["type"]).encode() + b"\ndata: " + orjson.dumps(event) + b"\n\n"


@dataclass
class _Reasoning:
    id: str
    index: int
    text: str = ""
    part_open: bool = False


@dataclass
class _Part:
    kind: str  # "output_text" or "refusal"
    index: int
    text: str = ""

    def done(self) -> JSONObject:
        if self.kind == "refusal":
            return {"type": "refusal", "refusal": self.text}
        return output_text_part(self.text)


@dataclass
class _Message:
    id: str
    index: int
    parts: list[JSONObject] = field(default_factory=list)
    current: _Part | None = None

    def item(self, status: str) -> JSONObject:
        content = self.parts + ([self.current.done()] if self.current is not None else [])
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "status": status,
            "content": content,
        }


@dataclass
class _Call:
    id: str
    index: int
    call_id: str
    name: str
    arguments: str = ""

    def item(self, status: str) -> JSONObject:
        return {
            "id": self.id,
            "type": "function_call",
            "call_id": self.call_id,
            "name": self.name,
            "arguments": self.arguments,
            "status": status,
        }


class ChatToResponsesStream:
    """One Responses stream, translated from one chat completion stream.

    ``request`` is the original ``/v1/responses`` body (its parameters are echoed on the
    Response). Call :meth:`feed` with each chunk as it arrives and :meth:`close` when the
    upstream stream ends; each returns the events to send now. :meth:`start` returns the two
    opening events early (before the first chunk), if the caller wants them sent at once.
    ``clock`` gives ``created_at`` (unless given) and ``completed_at``.
    """

    def __init__(
        self,
        request: JSONObject,
        *,
        response_id: str | None = None,
        created_at: int | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._request = request
        self.response_id = response_id or new_response_id()
        self._clock = clock
        self._created_at = int(clock()) if created_at is None else created_at
        self._model: str | None = None
        self._sequence = 0
        self._started = False
        self._done = False
        self._finish_reason: str | None = None
        self._usage: JSONObject | None = None
        self._output: dict[int, JSONObject] = {}
        self._next_index = 0
        self._reasoning: _Reasoning | None = None
        self._message: _Message | None = None
        self._calls: dict[int, _Call] = {}

    # --- public ---------------------------------------------------------------------------

    def start(self) -> list[JSONObject]:
        """``response.created`` and ``response.in_progress`` (once; [] afterwards)."""
        if self._started:
            return []
        self._started = True
        opening = self._response("in_progress")
        return [
            self._event("response.created", response=opening),
            self._event("response.in_progress", response=opening),
        ]

    def feed(self, chunk: JSONObject) -> list[JSONObject]:
        """The events one ``chat.completion.chunk`` (or ``{"error": …}`` chunk) makes."""
        if self._done:
            return []
        if self._model is None and isinstance(chunk.get("model"), str):
            self._model = chunk["model"]
        events = self.start()
        if chunk.get("error") is not None:
            return events + self._fail(chunk["error"])
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        if self._finish_reason is None:
            for choice in chunk.get("choices") or []:
                if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                    continue
                delta = choice.get("delta")
                if isinstance(delta, dict):
                    events += self._delta(delta)
                reason = choice.get("finish_reason")
                if isinstance(reason, str):
                    self._finish_reason = reason
                    incomplete = incomplete_reason(reason) is not None
                    events += self._close_all("incomplete" if incomplete else "completed")
        if self._finish_reason is not None and self._usage is not None:
            events += self._terminal()
        return events

    def close(self) -> list[JSONObject]:
        """The closing events once the upstream stream ended ([] if already finished).

        A stream that ended without a ``finish_reason`` was cut off: the response failed.
        """
        if self._done:
            return []
        events = self.start()
        if self._finish_reason is None:
            return events + self._fail(
                {
                    "type": "server_error",
                    "code": "server_error",
                    "message": "The provider's stream ended before the response was complete.",
                }
            )
        return events + self._terminal()

    # --- deltas ---------------------------------------------------------------------------

    def _delta(self, delta: JSONObject) -> list[JSONObject]:
        events: list[JSONObject] = []
        reasoning = delta.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            events += self._reasoning_text(reasoning)
        for block in delta.get("thinking_blocks") or []:
            if isinstance(block, dict):
                events += self._thinking_block(block)
        content = delta.get("content")
        if isinstance(content, str) and content:
            events += self._message_text("output_text", content)
        refusal = delta.get("refusal")
        if isinstance(refusal, str) and refusal:
            events += self._message_text("refusal", refusal)
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                events += self._tool_call(call)
        return events

    def _reasoning_text(self, text: str) -> list[JSONObject]:
        events = self._open_reasoning()
        reasoning = self._reasoning
        assert reasoning is not None
        where = {"item_id": reasoning.id, "output_index": reasoning.index, "summary_index": 0}
        if not reasoning.part_open:
            reasoning.part_open = True
            part = {"type": "summary_text", "text": ""}
            events.append(self._event("response.reasoning_summary_part.added", **where, part=part))
        reasoning.text += text
        events.append(self._event("response.reasoning_summary_text.delta", **where, delta=text))
        return events

    def _thinking_block(self, block: JSONObject) -> list[JSONObject]:
        """A block's signature (or a redacted block) ends a reasoning item."""
        text, encrypted = encrypted_content(block)
        events: list[JSONObject] = []
        if block.get("type") == "redacted_thinking":
            events += self._close_reasoning(None)
        if text and (self._reasoning is None or not self._reasoning.text):
            # An adapter that sends the block's text with its signature, not as deltas.
            events += self._reasoning_text(text)
        events += self._open_reasoning()
        return events + self._close_reasoning(encrypted)

    def _message_text(self, kind: str, text: str) -> list[JSONObject]:
        events = self._close_reasoning(None)
        if self._message is None:
            index = self._take_index()
            self._message = _Message(item_id("msg", self.response_id, index), index)
            events.append(self._added(index, self._message.item("in_progress")))
        message = self._message
        where = {"item_id": message.id, "output_index": message.index}
        if message.current is None or message.current.kind != kind:
            events += self._close_part(message)
            message.current = _Part(kind, len(message.parts))
            empty = _Part(kind, message.current.index).done()
            events.append(
                self._event(
                    "response.content_part.added",
                    **where,
                    content_index=message.current.index,
                    part=empty,
                )
            )
        part = message.current
        part.text += text
        if kind == "refusal":
            events.append(
                self._event("response.refusal.delta", **where, content_index=part.index, delta=text)
            )
        else:
            events.append(
                self._event(
                    "response.output_text.delta",
                    **where,
                    content_index=part.index,
                    delta=text,
                    logprobs=[],
                )
            )
        return events

    def _tool_call(self, call: JSONObject) -> list[JSONObject]:
        position = call.get("index", 0)
        function = call.get("function")
        function = function if isinstance(function, dict) else {}
        name = function.get("name")
        events: list[JSONObject] = []
        open_call = self._calls.get(position)
        if open_call is None:
            events += self._close_reasoning(None)
            events += self._close_message("completed")
            index = self._take_index()
            call_id = call.get("id")
            if not isinstance(call_id, str) or not call_id:
                # The id must be known when the item is added: the SDK matches added and done
                # items by call_id. Providers send it first; one that does not gets ours.
                call_id = item_id("call", self.response_id, index)
            open_call = _Call(
                id=item_id("fc", self.response_id, index),
                index=index,
                call_id=call_id,
                name=name if isinstance(name, str) else "",
            )
            self._calls[position] = open_call
            events.append(self._added(index, open_call.item("in_progress")))
        elif isinstance(name, str) and name and not open_call.name:
            open_call.name = name
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            open_call.arguments += arguments
            events.append(
                self._event(
                    "response.function_call_arguments.delta",
                    item_id=open_call.id,
                    output_index=open_call.index,
                    delta=arguments,
                )
            )
        return events

    # --- closing items --------------------------------------------------------------------

    def _open_reasoning(self) -> list[JSONObject]:
        if self._reasoning is not None:
            return []
        events = self._close_message("completed")
        index = self._take_index()
        self._reasoning = _Reasoning(item_id("rs", self.response_id, index), index)
        return [*events, self._added(index, reasoning_item(self._reasoning.id, "", None))]

    def _close_reasoning(self, encrypted: str | None) -> list[JSONObject]:
        reasoning = self._reasoning
        if reasoning is None:
            return []
        self._reasoning = None
        events: list[JSONObject] = []
        if reasoning.part_open:
            where = {"item_id": reasoning.id, "output_index": reasoning.index, "summary_index": 0}
            part = {"type": "summary_text", "text": reasoning.text}
            events.append(
                self._event("response.reasoning_summary_text.done", **where, text=reasoning.text)
            )
            events.append(self._event("response.reasoning_summary_part.done", **where, part=part))
        item = reasoning_item(reasoning.id, reasoning.text, encrypted)
        return [*events, self._item_done(reasoning.index, item)]

    def _close_part(self, message: _Message) -> list[JSONObject]:
        part = message.current
        if part is None:
            return []
        message.current = None
        where = {"item_id": message.id, "output_index": message.index, "content_index": part.index}
        if part.kind == "refusal":
            done = self._event("response.refusal.done", **where, refusal=part.text)
        else:
            done = self._event("response.output_text.done", **where, text=part.text, logprobs=[])
        message.parts.append(part.done())
        return [done, self._event("response.content_part.done", **where, part=part.done())]

    def _close_message(self, status: str) -> list[JSONObject]:
        message = self._message
        if message is None:
            return []
        self._message = None
        events = self._close_part(message)
        return [*events, self._item_done(message.index, message.item(status))]

    def _close_all(self, status: str) -> list[JSONObject]:
        events = self._close_reasoning(None) + self._close_message(status)
        for call in sorted(self._calls.values(), key=lambda open_call: open_call.index):
            events.append(
                self._event(
                    "response.function_call_arguments.done",
                    item_id=call.id,
                    output_index=call.index,
                    arguments=call.arguments,
                )
            )
            events.append(self._item_done(call.index, call.item(status)))
        self._calls.clear()
        return events

    # --- the response ---------------------------------------------------------------------

    def _terminal(self) -> list[JSONObject]:
        self._done = True
        reason = incomplete_reason(self._finish_reason)
        response = self._response(
            "incomplete" if reason is not None else "completed",
            usage=responses_usage(self._usage),
            incomplete_reason=reason,
            completed_at=int(self._clock()),
        )
        kind = "response.incomplete" if reason is not None else "response.completed"
        return [self._event(kind, response=response)]

    def _fail(self, error: Any) -> list[JSONObject]:
        self._done = True
        error = error if isinstance(error, dict) else {"message": str(error)}
        message = error.get("message")
        message = message if isinstance(message, str) and message else "The provider failed."
        kind = error.get("type") if isinstance(error.get("type"), str) else "server_error"
        raw_code = error.get("code")
        code = str(raw_code) if raw_code is not None else kind
        param = error.get("param") if isinstance(error.get("param"), str) else None
        failure = self._event(
            "error",
            code=code,
            message=message,
            param=param,
            error={"type": kind, "code": raw_code, "message": message, "param": param},
        )
        # Items still open are reported as they stood, incomplete.
        output = dict(self._output)
        if self._reasoning is not None:
            output[self._reasoning.index] = reasoning_item(
                self._reasoning.id, self._reasoning.text, None
            )
        if self._message is not None:
            output[self._message.index] = self._message.item("incomplete")
        for call in self._calls.values():
            output[call.index] = call.item("incomplete")
        rate_limited = code in _RATE_LIMITED or kind in _RATE_LIMITED
        response = self._response(
            "failed",
            output=[output[index] for index in sorted(output)],
            usage=responses_usage(self._usage),
            error={
                "code": "rate_limit_exceeded" if rate_limited else "server_error",
                "message": message,
            },
        )
        return [failure, self._event("response.failed", response=response)]

    def _response(
        self, status: str, *, output: list[JSONObject] | None = None, **fields: Any
    ) -> JSONObject:
        if output is None:
            output = [self._output[index] for index in sorted(self._output)]
        return response_object(
            self._request,
            response_id=self.response_id,
            created_at=self._created_at,
            model=self._model,
            status=status,
            output=output,
            **fields,
        )

    # --- events ---------------------------------------------------------------------------

    def _take_index(self) -> int:
        index = self._next_index
        self._next_index += 1
        return index

    def _added(self, index: int, item: JSONObject) -> JSONObject:
        return self._event("response.output_item.added", output_index=index, item=item)

    def _item_done(self, index: int, item: JSONObject) -> JSONObject:
        self._output[index] = item
        return self._event("response.output_item.done", output_index=index, item=item)

    def _event(self, kind: str, **fields: Any) -> JSONObject:
        event = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return event
