"""A Converse answer → an OpenAI ``chat.completion``; Bedrock usage → :class:`Usage`.

Converse answers carry neither an id nor the model: the completion gets a fresh
``chatcmpl-…`` id and the model id the request was sent to. Content blocks map as the
Anthropic adapter maps Claude's: text joins into ``content``, ``toolUse`` becomes a tool call
(its ``toolUseId`` the call id), ``reasoningContent`` the unified format's
``reasoning_content`` and ``thinking_blocks`` (:mod:`providers.adapter`).
"""

from __future__ import annotations

import functools
import time
from typing import Any

from providers.anthropic.usage import openai_usage
from providers.chat_answer import (
    assistant_message,
    cached_prompt_usage,
    chat_completion,
    function_tool_call,
    only_choice,
    unified_thinking,
)
from providers.random_ids import RandomIds
from providers.usage import Usage

JSONObject = dict[str, Any]

FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
"""Converse ``stopReason`` → OpenAI ``finish_reason``. ``malformed_model_output`` and
``malformed_tool_use`` (the model produced something Bedrock could not parse) and unknown
reasons read as ``stop``."""


def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


@functools.cache
def _completion_ids() -> RandomIds:
    """The process's one source of completion ids, made at the first answer (not at import:
    it registers a fork hook)."""
    return RandomIds("chatcmpl-", 24)


def completion_id() -> str:
    """A fresh ``chatcmpl-`` id (Converse answers have none of their own): 24 random bytes of
    the kernel's, as ``secrets.token_hex`` takes them, from a batch
    (:mod:`providers.random_ids`: no system call per id)."""
    return _completion_ids()()


def _count(value: Any) -> int:
    return value if type(value) is int and value > 0 else 0


_TOKEN_COUNTS = frozenset({"inputTokens", "outputTokens"})


def _usage(prompt: Any, completion: Any, read: Any, write: Any) -> Usage:
    """Bedrock's counts as :class:`Usage`: its input count excludes the prompt-cache traffic
    (as Anthropic's does), so the prompt is the sum of the three. (Built positionally: once
    per translated answer, and keywords cost twice as much.)"""
    cache_read = _count(read) if read is not None else 0
    cache_write = _count(write) if write is not None else 0
    return Usage(
        _count(prompt) + cache_read + cache_write,  # prompt_tokens
        _count(completion),  # completion_tokens
        cache_read,  # cache_read_tokens
        cache_write,  # cache_write_tokens
    )


def usage_from_converse(usage: Any) -> Usage | None:
    """A Converse ``usage`` (``TokenUsage``) as :class:`Usage`.

    Like Anthropic's, Bedrock's ``inputTokens`` excludes the prompt-cache traffic
    (``totalTokens`` is input + output + cache reads + cache writes), so the prompt is the sum.
    """
    if not isinstance(usage, dict) or _TOKEN_COUNTS.isdisjoint(usage):
        return None
    get = usage.get
    return _usage(
        get("inputTokens"),
        get("outputTokens"),
        get("cacheReadInputTokens"),
        get("cacheWriteInputTokens"),
    )


def usage_from_invocation_metrics(metrics: Any) -> Usage | None:
    """InvokeModel's ``amazon-bedrock-invocationMetrics`` (the last chunk of a stream, for
    every model family) as :class:`Usage`."""
    if not isinstance(metrics, dict) or "inputTokenCount" not in metrics:
        return None
    return _usage(
        metrics.get("inputTokenCount"),
        metrics.get("outputTokenCount"),
        metrics.get("cacheReadInputTokenCount"),
        metrics.get("cacheWriteInputTokenCount"),
    )


def reasoning_block(block: Any) -> JSONObject | None:
    """A ``reasoningContent`` block as the unified format's thinking block."""
    if not isinstance(block, dict):
        return None
    text = block.get("reasoningText")
    if isinstance(text, dict):
        return unified_thinking(text.get("text"), text.get("signature"))
    if isinstance(block.get("redactedContent"), str):
        return {"type": "redacted_thinking", "data": block["redactedContent"]}
    return None


def chat_message(content: list[Any]) -> JSONObject:
    """The assistant ``message`` of a chat completion made of Converse content blocks."""
    texts: list[str] = []
    calls: list[JSONObject] = []
    thinking: list[JSONObject] = []
    for block in content:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            calls.append(
                function_tool_call(
                    str(use.get("toolUseId", "")), str(use.get("name", "")), use.get("input", {})
                )
            )
        elif (carried := reasoning_block(block.get("reasoningContent"))) is not None:
            thinking.append(carried)
    return assistant_message(texts, calls, thinking)


def converse_to_chat(answer: JSONObject, *, model: str, created: int | None = None) -> JSONObject:
    """The ``chat.completion`` for a Converse answer to a request for ``model``.

    The usual answer — content blocks that are all exactly ``{"text": str}`` — is built here
    in one literal, usage included (what :func:`_walked_completion` makes of it, which every
    other answer goes through: the tests compare the two over every small answer). The walk's
    helpers (the block dispatch, the message, choice and envelope builders, :class:`Usage`
    and its OpenAI shape) were ~12 Python calls and ~25 builtin ones of a Bedrock request."""
    output = answer.get("output")
    message = output.get("message") if type(output) is dict else None
    content = message.get("content") if type(message) is dict else None
    if type(content) is not list:
        return _walked_completion(answer, model, created)
    if len(content) == 1:  # the usual answer: one text block
        block = content[0]
        text = block.get("text") if type(block) is dict and len(block) == 1 else None
        if type(text) is not str:
            return _walked_completion(answer, model, created)
    else:
        texts: list[str] = []
        for block in content:
            text = block.get("text") if type(block) is dict and len(block) == 1 else None
            if type(text) is not str:
                return _walked_completion(answer, model, created)
            texts.append(text)
        text = "".join(texts) if texts else None
    stop = answer.get("stopReason")
    completion: JSONObject = {
        "id": completion_id(),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
                "finish_reason": (
                    FINISH_REASONS.get(stop, "stop") if isinstance(stop, str) else "stop"
                ),
            }
        ],
    }
    usage = answer.get("usage")
    if type(usage) is dict and ("inputTokens" in usage or "outputTokens" in usage):
        get = usage.get
        completion["usage"] = cached_prompt_usage(
            get("inputTokens"), get("outputTokens"),
            get("cacheReadInputTokens"), get("cacheWriteInputTokens"),
        )  # fmt: skip
    return completion


def _walked_completion(answer: JSONObject, model: str, created: int | None) -> JSONObject:
    """:func:`converse_to_chat` of any answer: each content block dispatched by kind."""
    output = answer.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    if not isinstance(message, dict):
        raise ValueError("a Converse answer without output.message")
    content = message.get("content")
    choices = only_choice(
        chat_message(content if isinstance(content, list) else []),
        finish_reason(answer.get("stopReason")),
    )
    completion = chat_completion(completion_id(), model, choices, created=created)
    usage = usage_from_converse(answer.get("usage"))
    if usage is not None:
        completion["usage"] = openai_usage(usage)
    return completion
