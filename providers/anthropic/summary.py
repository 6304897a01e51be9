"""What a native Anthropic stream amounted to, for the request log of passthrough traffic.

The log stores the Message a non-streaming call would have returned, its usage and its model.
The stream is rebuilt from its events: ``message_start`` (the Message shell, the model and the
input tokens — including ``cache_read_input_tokens`` and ``cache_creation_input_tokens``),
the content blocks and their deltas, and ``message_delta`` (stop reason and the cumulative
output count). Runs off the request path on whatever was captured, so it never raises: events
that are not JSON objects, or fields of the wrong type, are skipped.
"""

from __future__ import annotations

import copy
import json
from typing import NamedTuple

from providers.anthropic.usage import JSONObject, merge_usage, usage_from_anthropic
from providers.usage import Usage


class MessagesStreamSummary(NamedTuple):
    """The final Message (None when the stream never started one), its usage, its model, and
    the text it said."""

    final: JSONObject | None = None
    usage: Usage | None = None
    model: str | None = None
    text: str = ""


def sse_events(raw: bytes) -> list[JSONObject]:
    """The JSON object of every ``data:`` field in a complete SSE body."""
    events: list[JSONObject] = []
    normalised = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    for block in normalised.split(b"\n\n"):
        data = b"\n".join(
            line[5:].removeprefix(b" ") for line in block.split(b"\n") if line.startswith(b"data:")
        )
        try:
            parsed = json.loads(data) if data else None
        except (ValueError, RecursionError):  # not JSON, or not UTF-8
            continue
        if isinstance(parsed, dict):
            events.append(parsed)
    return events


class _Rebuild:
    """The Message being rebuilt from its events."""

    def __init__(self) -> None:
        self.message: JSONObject | None = None
        self.blocks: dict[int, JSONObject] = {}
        self.partial_json: dict[int, str] = {}
        self.usage: JSONObject = {}

    def apply(self, event: JSONObject) -> None:
        kind = event.get("type")
        index = event.get("index")
        if kind == "message_start" and isinstance(event.get("message"), dict):
            self.message = copy.deepcopy(event["message"])
            merge_usage(self.usage, self.message.get("usage"))
        elif kind == "content_block_start" and type(index) is int:
            block = event.get("content_block")
            if isinstance(block, dict):
                self.blocks[index] = copy.deepcopy(block)
        elif kind == "content_block_delta" and type(index) is int and index in self.blocks:
            delta = event.get("delta")
            if isinstance(delta, dict):
                self._delta(index, delta)
        elif kind == "message_delta":
            merge_usage(self.usage, event.get("usage"))
            delta = event.get("delta")
            if self.message is not None and isinstance(delta, dict):
                self.message.update((k, v) for k, v in delta.items() if k != "usage")

    def _delta(self, index: int, delta: JSONObject) -> None:
        block = self.blocks[index]
        fields = {
            "text_delta": "text",
            "thinking_delta": "thinking",
            "signature_delta": "signature",
        }
        for kind, field in fields.items():
            if delta.get("type") == kind and isinstance(delta.get(field), str):
                previous = block.get(field)
                block[field] = (previous if isinstance(previous, str) else "") + delta[field]
                return
        if delta.get("type") == "input_json_delta" and isinstance(delta.get("partial_json"), str):
            self.partial_json[index] = self.partial_json.get(index, "") + delta["partial_json"]
        elif delta.get("type") == "citations_delta" and isinstance(delta.get("citation"), dict):
            citations = block.get("citations")
            kept = citations if isinstance(citations, list) else []
            block["citations"] = [*kept, delta["citation"]]

    def final(self) -> JSONObject | None:
        if self.message is None:
            return None
        for index, text in self.partial_json.items():
            try:
                self.blocks[index]["input"] = json.loads(text) if text else {}
            except (ValueError, RecursionError):
                self.blocks[index]["input"] = {}  # a cut-off stream: the input never completed
        self.message["content"] = [self.blocks[i] for i in sorted(self.blocks)]
        if self.usage:
            self.message["usage"] = dict(self.usage)
        return self.message


def summarise_stream(raw: bytes) -> MessagesStreamSummary:
    """The final Message, usage and model of a captured Messages API event stream."""
    rebuild = _Rebuild()
    for event in sse_events(raw):
        rebuild.apply(event)
    final = rebuild.final()
    if final is None:
        return MessagesStreamSummary(usage=usage_from_anthropic(rebuild.usage))
    model = final.get("model")
    text = "".join(
        block["text"]
        for block in final["content"]
        if block.get("type") == "text" and isinstance(block.get("text"), str)
    )
    return MessagesStreamSummary(
        final=final,
        usage=usage_from_anthropic(rebuild.usage),
        model=model if isinstance(model, str) else None,
        text=text,
    )
