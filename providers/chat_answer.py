"""The pieces of a ``chat.completion`` every native answer translation builds alike.

The Anthropic, Bedrock Converse and Gemini answers (:mod:`providers.anthropic.response`,
:mod:`providers.bedrock.response`, :mod:`providers.gemini.response`) differ in how they hold
text, tool calls and thinking, but become the same OpenAI objects: the assistant message
(text joined, ``refusal`` null, tool calls with compact JSON arguments, the unified format's
``reasoning_content`` and ``thinking_blocks``, :mod:`providers.adapter`) inside the same
completion envelope. Built here once, so the three answer in one shape.
"""

from __future__ import annotations

import json
import time
from typing import Any

JSONObject = dict[str, Any]


def compact_json(value: Any) -> str:
    """JSON text the way OpenAI writes tool-call arguments: no spaces, UTF-8 kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def function_tool_call(call_id: str, name: str, arguments: Any) -> JSONObject:
    """An OpenAI tool call (``arguments``: the object, written as compact JSON)."""
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": name, "arguments": compact_json(arguments)},
    }


def unified_thinking(text: Any, signature: Any) -> JSONObject:
    """A unified ``thinking`` block (a text or signature that is not a string reads as empty:
    the client sends the block back as it got it)."""
    return {
        "type": "thinking",
        "thinking": text if isinstance(text, str) else "",
        "signature": signature if isinstance(signature, str) else "",
    }


def assistant_message(
    texts: list[str], calls: list[JSONObject], thinking: list[JSONObject] | None = None
) -> JSONObject:
    """The assistant ``message`` of a choice: ``texts`` joined (null when there are none),
    ``calls`` as ``tool_calls``; ``thinking`` (unified thinking blocks) as ``thinking_blocks``
    with their texts joined as ``reasoning_content``."""
    message: JSONObject = {
        "role": "assistant",
        "content": "".join(texts) if texts else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    if thinking:
        message["reasoning_content"] = "".join(
            block["thinking"] for block in thinking if block["type"] == "thinking"
        )
        message["thinking_blocks"] = thinking
    return message


def chat_completion(
    completion_id: str, model: str, choices: list[JSONObject], *, created: int | None
) -> JSONObject:
    """The ``chat.completion`` envelope (``created`` defaults to now)."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": choices,
    }


def only_choice(message: JSONObject, finish_reason: str) -> list[JSONObject]:
    """The one choice of an answer that has a single candidate."""
    return [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}]


def cached_prompt_usage(prompt: Any, output: Any, read: Any, write: Any) -> JSONObject:
    """The ``usage`` of a chat completion from Anthropic-style counts (the Messages API's and
    Converse's: ``prompt`` excludes the cache reads and writes, which OpenAI's
    ``prompt_tokens`` includes). A count that is not a positive JSON integer is 0, as
    ``usage_from_anthropic``/``usage_from_converse`` then ``openai_usage`` give it: the usual
    answers' shortcuts build their usage here in one step."""
    read = read if type(read) is int and read > 0 else 0
    write = write if type(write) is int and write > 0 else 0
    prompt = (prompt if type(prompt) is int and prompt > 0 else 0) + read + write
    output = output if type(output) is int and output > 0 else 0
    return {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
        "prompt_tokens_details": {"cached_tokens": read, "cache_write_tokens": write},
    }
