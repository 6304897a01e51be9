"""Reading OpenAI-format answers: token usage, the final object of a stream, its text.

The OpenAI wire format's part of the adapter seam (:mod:`providers.formats` picks a reader by
the wire format a record says its response is in). Runs in the log writer, never on the
request path. Understands the OpenAI-compatible shapes: chat completions (plain and streamed
chunks), the Responses API (plain and its event stream) and embeddings. Streams are also
*reconstructed* into the final object a non-streaming call would have returned, so stored
bodies and token counts look the same either way.
"""

from __future__ import annotations

from typing import Any

import orjson

from providers.adapter import JSONObject, StreamSummary, UpstreamRequest
from providers.sse import iter_sse_data
from providers.usage import Usage


def _int(value: Any) -> int:
    return value if type(value) is int else 0  # JSON ints only: not bool, not float


def usage_from(obj: Any) -> Usage | None:
    """Usage of a chat completion, Responses API object or embeddings answer (or None)."""
    if not isinstance(obj, dict):
        return None
    usage = obj.get("usage")
    if not isinstance(usage, dict):
        return None
    if "input_tokens" in usage or "output_tokens" in usage:  # Responses API
        in_details = usage.get("input_tokens_details") or {}
        out_details = usage.get("output_tokens_details") or {}
        prompt, completion = usage.get("input_tokens"), usage.get("output_tokens")
        if type(prompt) is not int and type(completion) is not int:
            return None
        return Usage(
            prompt_tokens=_int(prompt),
            completion_tokens=_int(completion),
            cache_read_tokens=_int(in_details.get("cached_tokens")),
            cache_write_tokens=_int(in_details.get("cache_write_tokens")),
            reasoning_tokens=_int(out_details.get("reasoning_tokens")),
        )
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if type(prompt) is not int and type(completion) is not int:
        return None
    # Every chat answer passes here in the log writer: ``_int`` inlined and the fields
    # given by position (Usage's order) save ~0.5 µs per record; same values as before
    # (``tests/test_record_fastpaths.py`` compares it with the keyword form).
    cache_read = prompt_details.get("cached_tokens")
    cache_write = prompt_details.get("cache_write_tokens")
    reasoning = completion_details.get("reasoning_tokens")
    audio_in = prompt_details.get("audio_tokens")
    audio_out = completion_details.get("audio_tokens")
    return Usage(
        prompt if type(prompt) is int else 0,
        completion if type(completion) is int else 0,
        cache_read if type(cache_read) is int else 0,
        cache_write if type(cache_write) is int else 0,
        reasoning if type(reasoning) is int else 0,
        audio_in if type(audio_in) is int else 0,
        audio_out if type(audio_out) is int else 0,
    )


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
    usage: Usage | None = None
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
    if usage is not None:
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


def completion_text(response: Any) -> str:
    """The text of a chat completion or Responses object (for a token estimate)."""
    if not isinstance(response, dict):
        return ""
    parts: list[str] = []
    for choice in response.get("choices") or []:
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            parts.append(message["content"])
    if isinstance(response.get("output_text"), str):
        parts.append(response["output_text"])
    for item in response.get("output") or []:
        for content in (item.get("content") or []) if isinstance(item, dict) else []:
            if isinstance(content, dict) and isinstance(content.get("text"), str):
                parts.append(content["text"])
    return "\n".join(parts)


class ChatChunkDecoder:
    """An OpenAI-compatible chat stream read as chunk objects (the identity decoder: the
    Responses translation of a provider that speaks chat). ``[DONE]`` and events that are
    not JSON objects are skipped; ``usage`` is that of the last chunk reporting one."""

    __slots__ = ("_usage",)

    def __init__(self) -> None:
        self._usage: Usage | None = None

    def feed(self, event: str | None, data: bytes) -> list[dict[str, Any]]:
        if data == b"[DONE]":
            return []
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            return []
        if not isinstance(chunk, dict):
            return []
        if isinstance(chunk.get("usage"), dict):
            self._usage = usage_from(chunk)
        return [chunk]

    def close(self) -> list[dict[str, Any]]:
        return []

    @property
    def usage(self) -> Usage | None:
        return self._usage


class OpenAIChatAdapter:
    """The OpenAI-compatible family as a translation target: the unified request *is* its
    format, so building is a header and answers are already chat completions. Used when a
    Responses request goes to a server that has only chat; plain chat stays zero-copy and
    never reaches an adapter."""

    wire = "openai"

    def build_request(
        self, chat: JSONObject, *, api_key: str | None, default_max_tokens: int
    ) -> UpstreamRequest:
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        return UpstreamRequest("/chat/completions", headers, chat)

    def chat_completion(self, answer: JSONObject) -> JSONObject:
        return answer

    def stream_decoder(self, *, include_usage: bool) -> ChatChunkDecoder:
        return ChatChunkDecoder()

    def error(self, status: int, body: bytes) -> JSONObject:
        """An OpenAI-shaped error stays as it is; anything else gets that shape."""
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            return parsed
        text = body.decode("utf-8", "replace").strip()[:1000]
        return {
            "error": {
                "message": text or f"The provider answered HTTP {status}.",
                "type": "upstream_error",
                "param": None,
                "code": None,
            }
        }
