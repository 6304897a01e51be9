"""Token usage and final response objects, read from what the upstream sent.

Runs in the batch writer, never on the request path. Understands the OpenAI-compatible
shapes the gateway relays today: chat completions (plain and streamed chunks), the Responses
API (plain and its event stream) and embeddings. Streams are also *reconstructed* into the
final object a non-streaming call would have returned, so stored bodies and token counts look
the same either way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson


@dataclass(slots=True)
class TokenUsage:
    """Usage in the OpenAI convention: prompt includes cached, completion includes reasoning."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    prompt_audio_tokens: int = 0
    completion_audio_tokens: int = 0

    @property
    def present(self) -> bool:
        return self.prompt_tokens is not None or self.completion_tokens is not None


def _int(value: Any) -> int:
    return value if type(value) is int else 0  # JSON ints only: not bool, not float


def _opt_int(value: Any) -> int | None:
    return value if type(value) is int else None


def usage_from(obj: Any) -> TokenUsage:
    """Usage of a chat completion, Responses API object or embeddings answer (or none)."""
    if not isinstance(obj, dict):
        return TokenUsage()
    usage = obj.get("usage")
    if not isinstance(usage, dict):
        return TokenUsage()
    if "input_tokens" in usage or "output_tokens" in usage:  # Responses API
        in_details = usage.get("input_tokens_details") or {}
        out_details = usage.get("output_tokens_details") or {}
        return TokenUsage(
            prompt_tokens=_opt_int(usage.get("input_tokens")),
            completion_tokens=_opt_int(usage.get("output_tokens")),
            cache_read_tokens=_int(in_details.get("cached_tokens")),
            cache_write_tokens=_int(in_details.get("cache_write_tokens")),
            reasoning_tokens=_int(out_details.get("reasoning_tokens")),
        )
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return TokenUsage(
        prompt_tokens=_opt_int(usage.get("prompt_tokens")),
        completion_tokens=_opt_int(usage.get("completion_tokens")),
        cache_read_tokens=_int(prompt_details.get("cached_tokens")),
        cache_write_tokens=_int(prompt_details.get("cache_write_tokens")),
        reasoning_tokens=_int(completion_details.get("reasoning_tokens")),
        prompt_audio_tokens=_int(prompt_details.get("audio_tokens")),
        completion_audio_tokens=_int(completion_details.get("audio_tokens")),
    )


def iter_sse_data(text: bytes) -> list[tuple[str | None, bytes]]:
    """``(event name, data)`` of every event in a complete SSE body."""
    events: list[tuple[str | None, bytes]] = []
    normalised = text.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    for block in normalised.split(b"\n\n"):
        name: str | None = None
        data: list[bytes] = []
        for line in block.split(b"\n"):
            if line.startswith(b"data:"):
                data.append(line[5:].removeprefix(b" "))
            elif line.startswith(b"event:"):
                name = line[6:].strip().decode("utf-8", "replace")
        if data:
            events.append((name, b"\n".join(data)))
    return events


@dataclass(slots=True)
class StreamSummary:
    """What a stream amounted to: the final object, its usage, and the model it named."""

    final: dict[str, Any] | None = None
    usage: TokenUsage = field(default_factory=TokenUsage)
    model: str | None = None
    text: str = ""


def summarise_stream(raw: bytes) -> StreamSummary:
    """Rebuild the final response of a chat-completions or Responses API stream."""
    chunks: list[dict[str, Any]] = []
    for _event, data in iter_sse_data(raw):
        if data == b"[DONE]":
            continue
        try:
            parsed = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if isinstance(parsed, dict):
            chunks.append(parsed)
    if not chunks:
        return StreamSummary()
    if any(str(c.get("type", "")).startswith("response.") for c in chunks):
        return _summarise_responses(chunks)
    return _summarise_chat(chunks)


def _summarise_responses(events: list[dict[str, Any]]) -> StreamSummary:
    final: dict[str, Any] | None = None
    text_parts: list[str] = []
    for event in events:
        kind = event.get("type")
        if kind == "response.output_text.delta" and isinstance(event.get("delta"), str):
            text_parts.append(event["delta"])
        if kind in ("response.completed", "response.incomplete", "response.failed"):
            response = event.get("response")
            if isinstance(response, dict):
                final = response
        elif kind == "response.created" and final is None:
            response = event.get("response")
            if isinstance(response, dict):
                final = response
    model = final.get("model") if final else None
    return StreamSummary(
        final=final,
        usage=usage_from(final),
        model=model if isinstance(model, str) else None,
        text="".join(text_parts),
    )


def _summarise_chat(chunks: list[dict[str, Any]]) -> StreamSummary:
    first = chunks[0]
    choices: dict[int, dict[str, Any]] = {}
    usage = TokenUsage()
    for chunk in chunks:
        if isinstance(chunk.get("usage"), dict):
            usage = usage_from(chunk)
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            index = choice.get("index", 0)
            state = choices.setdefault(
                index,
                {"index": index, "message": {"role": "assistant", "content": None},
                 "finish_reason": None},
            )
            delta = choice.get("delta") or {}
            message = state["message"]
            if isinstance(delta.get("role"), str):
                message["role"] = delta["role"]
            if isinstance(delta.get("content"), str):
                message["content"] = (message["content"] or "") + delta["content"]
            if isinstance(delta.get("refusal"), str):
                message["refusal"] = (message.get("refusal") or "") + delta["refusal"]
            for call in delta.get("tool_calls") or []:
                _merge_tool_call(message, call)
            if choice.get("finish_reason"):
                state["finish_reason"] = choice["finish_reason"]
    final: dict[str, Any] = {
        "id": first.get("id"),
        "object": "chat.completion",
        "created": first.get("created"),
        "model": first.get("model"),
        "choices": [choices[i] for i in sorted(choices)],
    }
    if usage.present:
        last_usage = next(c["usage"] for c in reversed(chunks) if isinstance(c.get("usage"), dict))
        final["usage"] = last_usage
    text = "".join(
        c["message"]["content"] or "" for c in final["choices"] if isinstance(c, dict)
    )
    model = first.get("model")
    return StreamSummary(
        final=final, usage=usage, model=model if isinstance(model, str) else None, text=text
    )


def _merge_tool_call(message: dict[str, Any], call: Any) -> None:
    if not isinstance(call, dict):
        return
    calls: list[dict[str, Any]] = message.setdefault("tool_calls", [])
    index = call.get("index", len(calls))
    while len(calls) <= index:
        calls.append({"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
    target = calls[index]
    if call.get("id"):
        target["id"] = call["id"]
    if call.get("type"):
        target["type"] = call["type"]
    function = call.get("function") or {}
    if isinstance(function.get("name"), str):
        target["function"]["name"] += function["name"]
    if isinstance(function.get("arguments"), str):
        target["function"]["arguments"] += function["arguments"]
