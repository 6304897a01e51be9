"""What a Bedrock answer amounted to, for the request log (translated and passthrough alike).

Whole answers: a Converse response (``usage`` in Bedrock's ``TokenUsage``), a Claude
InvokeModel response (an Anthropic Message), or another family's InvokeModel response (Llama's
``prompt_token_count`` / ``generation_token_count``, Titan's counts). Recorded streams are
binary event streams (:mod:`.eventstream`): ConverseStream's events are rebuilt into the
Converse response a non-streamed call would have returned (usage from ``metadata``);
InvokeModelWithResponseStream's ``chunk`` events hold the model's own events (Claude: the
Messages events, rebuilt with the Anthropic reader), and the last one
``amazon-bedrock-invocationMetrics``, read for any family when nothing better reports usage.
Never raises: what is not understood carries no usage.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from providers.adapter import StreamSummary
from providers.anthropic.summary import summarise_stream as summarise_messages
from providers.anthropic.usage import usage_from_message
from providers.bedrock.eventstream import iter_events
from providers.bedrock.response import usage_from_converse, usage_from_invocation_metrics
from providers.bedrock.stream import chunk_event, is_exception
from providers.usage import Usage

JSONObject = dict[str, Any]


def _count(value: Any) -> int:
    return value if type(value) is int and value > 0 else 0


def usage_from_answer(obj: Any) -> Usage | None:
    """The usage of a whole Bedrock answer (Converse or InvokeModel), None when it has none."""
    if not isinstance(obj, dict):
        return None
    usage = obj.get("usage")
    if isinstance(usage, dict) and "inputTokens" in usage:
        return usage_from_converse(usage)  # Converse, and Nova's InvokeModel
    if obj.get("type") == "message":
        return usage_from_message(obj)
    if "prompt_token_count" in obj:  # Llama
        return Usage(
            prompt_tokens=_count(obj.get("prompt_token_count")),
            completion_tokens=_count(obj.get("generation_token_count")),
        )
    if "inputTextTokenCount" in obj:  # Titan text
        results = obj.get("results")
        first = results[0] if isinstance(results, list) and results else {}
        output = first.get("tokenCount") if isinstance(first, dict) else 0
        return Usage(
            prompt_tokens=_count(obj["inputTextTokenCount"]), completion_tokens=_count(output)
        )
    return usage_from_invocation_metrics(obj.get("amazon-bedrock-invocationMetrics"))


def completion_text(obj: Any) -> str:
    """The text of a whole answer (for a token estimate when it reports no usage)."""
    if not isinstance(obj, dict):
        return ""
    output = obj.get("output")
    message = output.get("message") if isinstance(output, dict) else obj
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):
        return "".join(
            block["text"]
            for block in content
            if isinstance(block, dict) and isinstance(block.get("text"), str)
        )
    for key in ("generation", "outputText", "completion"):
        if isinstance(obj.get(key), str):
            text: str = obj[key]
            return text
    return ""


def model_of(obj: Any) -> str | None:
    """The model a whole answer names (only Claude's InvokeModel answers name one)."""
    value = obj.get("model") if isinstance(obj, dict) else None
    return value if isinstance(value, str) else None


class _Converse:
    """A Converse response rebuilt from ConverseStream events."""

    def __init__(self) -> None:
        self.blocks: dict[int, JSONObject] = {}
        self.tool_input: dict[int, str] = {}
        self.stop_reason: Any = None
        self.usage: Any = None
        self.started = False

    def apply(self, event: str | None, payload: JSONObject) -> None:
        index = payload.get("contentBlockIndex")
        if event == "messageStart":
            self.started = True
        elif event == "contentBlockStart" and type(index) is int:
            start = payload.get("start")
            use = start.get("toolUse") if isinstance(start, dict) else None
            if isinstance(use, dict):
                self.blocks[index] = {"toolUse": {**use, "input": {}}}
        elif event == "contentBlockDelta" and type(index) is int:
            self._delta(index, payload.get("delta"))
        elif event == "messageStop":
            self.stop_reason = payload.get("stopReason")
        elif event == "metadata":
            self.usage = payload.get("usage")

    def _delta(self, index: int, delta: Any) -> None:
        if not isinstance(delta, dict):
            return
        if isinstance(delta.get("text"), str):
            block = self.blocks.setdefault(index, {"text": ""})
            if isinstance(block.get("text"), str):
                block["text"] += delta["text"]
        elif isinstance(delta.get("toolUse"), dict) and isinstance(
            delta["toolUse"].get("input"), str
        ):
            self.tool_input[index] = self.tool_input.get(index, "") + delta["toolUse"]["input"]
        elif isinstance(delta.get("reasoningContent"), dict):
            block = self.blocks.setdefault(
                index, {"reasoningContent": {"reasoningText": {"text": ""}}}
            )
            reasoning = block.get("reasoningContent")
            text = reasoning.get("reasoningText") if isinstance(reasoning, dict) else None
            part = delta["reasoningContent"]
            if isinstance(text, dict) and isinstance(part.get("text"), str):
                text["text"] = str(text.get("text", "")) + part["text"]
            elif isinstance(text, dict) and isinstance(part.get("signature"), str):
                text["signature"] = part["signature"]

    def final(self) -> JSONObject | None:
        if not self.started and not self.blocks:
            return None
        for index, raw in self.tool_input.items():
            block = self.blocks.get(index)
            if block is None or "toolUse" not in block:
                continue
            try:
                block["toolUse"]["input"] = json.loads(raw) if raw else {}
            except (ValueError, RecursionError):
                pass  # a cut-off stream: the input never completed
        content = [self.blocks[i] for i in sorted(self.blocks)]
        final: JSONObject = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": self.stop_reason,
        }
        if self.usage is not None:
            final["usage"] = self.usage
        return final


def summarise_stream(raw: bytes) -> StreamSummary:
    """A recorded Bedrock event stream (ConverseStream or InvokeModelWithResponseStream)."""
    converse = _Converse()
    invoked: list[bytes] = []
    metrics: Usage | None = None
    for event, data in iter_events(raw):
        if is_exception(event):
            continue
        try:
            payload = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(payload, dict):
            continue
        if event != "chunk":
            converse.apply(event, payload)
            continue
        inner = chunk_event(payload)
        if inner is None:
            continue
        invoked.append(b"data: " + inner + b"\n\n")
        try:
            parsed = orjson.loads(inner)
        except orjson.JSONDecodeError:
            continue
        if isinstance(parsed, dict):
            found = usage_from_invocation_metrics(parsed.get("amazon-bedrock-invocationMetrics"))
            metrics = found or metrics
    if invoked:
        messages = summarise_messages(b"".join(invoked))
        return StreamSummary(
            messages.final, messages.usage or metrics, messages.model, messages.text
        )
    final = converse.final()
    usage = usage_from_converse(converse.usage)
    return StreamSummary(final, usage, None, completion_text(final))
