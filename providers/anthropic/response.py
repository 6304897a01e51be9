"""An Anthropic Message → an OpenAI ``chat.completion``.

Text blocks join into ``content``; ``tool_use`` blocks become ``tool_calls`` (the tool_use id
is the call id, so the client's tool message finds its way back; ``input`` becomes compact JSON
``arguments``); thinking becomes the unified format's ``reasoning_content`` and
``thinking_blocks`` (:mod:`providers.adapter`). Blocks of server tools the translation never
requests (web search results and the like) are not part of a chat completion and are skipped.
"""

from __future__ import annotations

import time
from typing import Any

from providers.anthropic.usage import JSONObject, openai_usage, usage_from_anthropic
from providers.chat_answer import (
    assistant_message,
    cached_prompt_usage,
    chat_completion,
    function_tool_call,
    only_choice,
    unified_thinking,
)
from providers.chat_answer import compact_json as compact_json  # the stream decoder's import

FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    "pause_turn": "length",
    "model_context_window_exceeded": "length",
}
"""Anthropic ``stop_reason`` → OpenAI ``finish_reason``.

``pause_turn`` (a long server-tool turn paused; sending the answer back continues it) and
``model_context_window_exceeded`` (the context window, not ``max_tokens``, cut the answer) both
mean the answer is incomplete for a reason other than a stop: OpenAI reports such a cut as
``length``. An unknown or missing reason reads as ``stop``.
"""


def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def thinking_block(block: JSONObject) -> JSONObject | None:
    """A thinking or redacted_thinking block as the unified format carries it."""
    if block.get("type") == "thinking":
        return unified_thinking(block.get("thinking"), block.get("signature"))
    if block.get("type") == "redacted_thinking" and isinstance(block.get("data"), str):
        return {"type": "redacted_thinking", "data": block["data"]}
    return None


def chat_message(content: list[Any]) -> JSONObject:
    """The assistant ``message`` of a chat completion made of Anthropic content blocks."""
    texts: list[str] = []
    calls: list[JSONObject] = []
    thinking: list[JSONObject] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use":
            calls.append(
                function_tool_call(
                    str(block.get("id", "")), str(block.get("name", "")), block.get("input", {})
                )
            )
        elif (carried := thinking_block(block)) is not None:
            thinking.append(carried)
    return assistant_message(texts, calls, thinking)


def messages_to_chat(message: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
    """The ``chat.completion`` for an Anthropic Message (``created`` defaults to now).

    The Message id is kept as the completion id, so the request log and Anthropic's own
    records name the same call.

    The usual Message — a string id and model, content blocks that are all ``text`` blocks
    with a string ``text`` — is built here in one literal, usage inline (what
    :func:`_walked_completion` makes of it, which every other Message goes through: the tests
    compare the two over every small Message). The walk's helpers (the block dispatch, the
    message, choice and envelope builders, :class:`~providers.usage.Usage` and its OpenAI
    shape) were ~15 Python calls of an Anthropic request.
    """
    content = message.get("content")
    message_id = message.get("id")
    model = message.get("model")
    if type(content) is not list or type(message_id) is not str or type(model) is not str:
        return _walked_completion(message, created)
    texts: list[str] = []
    for block in content:
        # the walk takes a block's text when its type is "text" and its text a string, and
        # ignores every other key (citations): only other kinds of block need it
        if type(block) is not dict or block.get("type") != "text":
            return _walked_completion(message, created)
        text = block.get("text")
        if type(text) is not str:
            return _walked_completion(message, created)
        texts.append(text)
    stop = message.get("stop_reason")
    completion: dict[str, Any] = {
        "id": message_id,
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "".join(texts) if texts else None,
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": (
                    FINISH_REASONS.get(stop, "stop") if isinstance(stop, str) else "stop"
                ),
            }
        ],
    }
    usage = message.get("usage")
    if isinstance(usage, dict) and ("input_tokens" in usage or "output_tokens" in usage):
        get = usage.get
        out = cached_prompt_usage(
            get("input_tokens"), get("output_tokens"),
            get("cache_read_input_tokens"), get("cache_creation_input_tokens"),
        )  # fmt: skip
        output = out["completion_tokens"]
        details = get("output_tokens_details")
        if isinstance(details, dict):
            thinking = details.get("thinking_tokens")
            if type(thinking) is int and thinking > 0 and output:
                out["completion_tokens_details"] = {"reasoning_tokens": min(thinking, output)}
        completion["usage"] = out
    return completion


def _walked_completion(message: dict[str, Any], created: int | None) -> dict[str, Any]:
    """:func:`messages_to_chat` of any Message: each content block dispatched by kind."""
    content = message.get("content")
    choices = only_choice(
        chat_message(content if isinstance(content, list) else []),
        finish_reason(message.get("stop_reason")),
    )
    completion = chat_completion(
        str(message.get("id", "")), str(message.get("model", "")), choices, created=created
    )
    usage = usage_from_anthropic(message.get("usage"))
    if usage is not None:
        completion["usage"] = openai_usage(usage)
    return completion
