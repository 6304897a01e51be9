"""OpenAI ``messages`` → Anthropic ``system`` + alternating ``messages``.

The two formats cut a conversation differently:

* OpenAI has system/developer *messages* anywhere in the list; Anthropic one top-level
  ``system``. Every system and developer message is hoisted into it, in order (a mid-
  conversation instruction keeps its text and its position among the other instructions).
* OpenAI answers tool calls with one ``tool`` message per call; Anthropic with
  ``tool_result`` blocks inside a *user* turn, and it needs user and assistant turns to
  alternate. Tool messages become tool_result blocks and consecutive turns of the same role are
  merged into one (tool results first, then whatever the user said next — the order Anthropic
  requires).
* An assistant's thinking travels in the unified format's ``thinking_blocks``
  (:mod:`providers.adapter`) and is put back first in its turn, unchanged, so Anthropic can
  verify the signatures. ``reasoning_content`` is only the display copy of those blocks and is
  not sent (Anthropic cannot accept unsigned thinking).

Message-level ``cache_control`` (the gateway's prompt-caching extension, §5.2) marks the last
block the message produced, which is where Anthropic's breakpoint then sits.
"""

from __future__ import annotations

import json
from typing import Any

from providers.adapter import TranslationError
from providers.anthropic.content import JSONObject, text_blocks, user_block, with_cache_control

_SYSTEM_ROLES = frozenset({"system", "developer"})


def _user_blocks(content: Any, param: str) -> list[JSONObject]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise TranslationError("Message content must be a string or a list of parts.", param=param)
    return [user_block(part, f"{param}[{index}]") for index, part in enumerate(content)]


def _thinking_blocks(value: Any, param: str) -> list[JSONObject]:
    """The unified format's ``thinking_blocks``, checked: Anthropic rejects a changed block."""
    if not isinstance(value, list):
        raise TranslationError("thinking_blocks must be a list.", param=param)
    blocks: list[JSONObject] = []
    for index, block in enumerate(value):
        where = f"{param}[{index}]"
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "thinking" and isinstance(block, dict):
            thinking, signature = block.get("thinking"), block.get("signature")
            if not isinstance(thinking, str) or not isinstance(signature, str):
                raise TranslationError(
                    "A thinking block needs string `thinking` and `signature`, exactly as "
                    "the model returned them.",
                    param=where,
                )
            blocks.append({"type": "thinking", "thinking": thinking, "signature": signature})
        elif kind == "redacted_thinking" and isinstance(block, dict):
            data = block.get("data")
            if not isinstance(data, str):
                raise TranslationError(
                    "A redacted_thinking block needs its string `data`.", param=where
                )
            blocks.append({"type": "redacted_thinking", "data": data})
        else:
            raise TranslationError(
                "A thinking block must have type 'thinking' or 'redacted_thinking'.", param=where
            )
    return blocks


def _with_streamed_text(blocks: list[JSONObject], reasoning: Any) -> list[JSONObject]:
    """Put a streamed turn's thinking text back into its one signed block.

    A stream sends the thinking text as ``reasoning_content`` deltas and the block's signature
    as its own ``thinking_blocks`` delta with empty ``thinking``, so a client that accumulated
    the stream (the openai SDK's helper) holds the text in ``reasoning_content`` and an empty
    block. Anthropic verifies the block's text against its signature: with exactly one signed
    block whose text is empty, the text is ``reasoning_content``.
    """
    signed = [b for b in blocks if b["type"] == "thinking"]
    if (
        len(signed) == 1
        and not signed[0]["thinking"]
        and isinstance(reasoning, str)
        and reasoning
    ):
        signed[0]["thinking"] = reasoning
    return blocks


def _tool_use(call: Any, param: str) -> JSONObject:
    if not isinstance(call, dict):
        raise TranslationError("A tool call must be an object.", param=param)
    if call.get("type", "function") != "function":
        raise TranslationError(
            f"Anthropic cannot express a tool call of type '{call.get('type')}'.",
            param=f"{param}.type",
        )
    call_id, function = call.get("id"), call.get("function")
    if not isinstance(call_id, str) or not call_id:
        raise TranslationError("A tool call needs its `id`.", param=f"{param}.id")
    if not isinstance(function, dict) or not isinstance(function.get("name"), str):
        raise TranslationError("A tool call needs `function.name`.", param=f"{param}.function.name")
    arguments = function.get("arguments")
    try:
        tool_input = json.loads(arguments) if isinstance(arguments, str) else None
    except json.JSONDecodeError:
        tool_input = None
    if not isinstance(tool_input, dict):
        raise TranslationError(
            "Tool call arguments must be the JSON text of an object: Anthropic stores a "
            "tool call's input as an object.",
            param=f"{param}.function.arguments",
        )
    return {"type": "tool_use", "id": call_id, "name": function["name"], "input": tool_input}


def _assistant_blocks(message: JSONObject, param: str) -> list[JSONObject]:
    for key, why in (
        ("function_call", "legacy function calling; send `tool_calls`"),
        ("audio", "audio output"),
    ):
        if message.get(key) is not None:
            raise TranslationError(
                f"Anthropic cannot express an assistant message's `{key}` ({why}).",
                param=f"{param}.{key}",
            )
    blocks: list[JSONObject] = []
    if message.get("thinking_blocks") is not None:
        thinking = _thinking_blocks(message["thinking_blocks"], f"{param}.thinking_blocks")
        blocks += _with_streamed_text(thinking, message.get("reasoning_content"))
    content = message.get("content")
    if content is not None:
        blocks += [
            block
            for block in text_blocks(content, f"{param}.content", refusal_ok=True)
            if block["text"] or "cache_control" in block
        ]
    elif isinstance(message.get("refusal"), str) and message["refusal"]:
        blocks.append({"type": "text", "text": message["refusal"]})
    calls = message.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            raise TranslationError("tool_calls must be a list.", param=f"{param}.tool_calls")
        blocks += [
            _tool_use(call, f"{param}.tool_calls[{index}]") for index, call in enumerate(calls)
        ]
    return blocks


def _tool_result(message: JSONObject, param: str) -> JSONObject:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise TranslationError(
            "A tool message needs the `tool_call_id` it answers.", param=f"{param}.tool_call_id"
        )
    content = message.get("content")
    result: JSONObject = {"type": "tool_result", "tool_use_id": call_id}
    if isinstance(content, str):
        result["content"] = content
    elif content is not None:
        result["content"] = text_blocks(content, f"{param}.content")
    return result


def _convert(message: Any, param: str) -> tuple[str, list[JSONObject]]:
    """The Anthropic role and blocks of one OpenAI message."""
    if not isinstance(message, dict):
        raise TranslationError("A message must be an object.", param=param)
    role = message.get("role")
    if message.get("name") is not None:
        raise TranslationError(
            "Anthropic has no participant names; remove the message's `name`.",
            param=f"{param}.name",
        )
    if role in _SYSTEM_ROLES:
        blocks = text_blocks(message.get("content"), f"{param}.content")
        return "system", [block for block in blocks if block["text"] or "cache_control" in block]
    if role == "user":
        return "user", _user_blocks(message.get("content"), f"{param}.content")
    if role == "assistant":
        return "assistant", _assistant_blocks(message, param)
    if role == "tool":
        return "user", [_tool_result(message, param)]
    if role == "function":
        raise TranslationError(
            "Anthropic cannot express legacy `function` messages; use tool messages.",
            param=f"{param}.role",
        )
    raise TranslationError(f"Unknown message role '{role}'.", param=f"{param}.role")


def _collapsed(blocks: list[JSONObject]) -> str | list[JSONObject]:
    """A lone plain text block as the string shorthand Anthropic documents as equivalent."""
    if len(blocks) == 1 and set(blocks[0]) == {"type", "text"} and blocks[0]["type"] == "text":
        text: str = blocks[0]["text"]
        return text
    return blocks


def split_conversation(messages: Any) -> tuple[list[JSONObject], list[JSONObject]]:
    """``(system blocks, turns)`` for an OpenAI ``messages`` list."""
    if not isinstance(messages, list) or not messages:
        raise TranslationError("`messages` must be a non-empty list.", param="messages")
    system: list[JSONObject] = []
    turns: list[tuple[str, list[JSONObject]]] = []
    for index, message in enumerate(messages):
        param = f"messages[{index}]"
        role, blocks = _convert(message, param)
        if blocks:
            with_cache_control(blocks[-1], message, param)
        if role == "system":
            system += blocks
        elif not blocks:
            continue  # an assistant message that said nothing carries nothing to send
        elif turns and turns[-1][0] == role:
            turns[-1][1].extend(blocks)
        else:
            turns.append((role, blocks))
    return system, [{"role": role, "content": _collapsed(blocks)} for role, blocks in turns]
