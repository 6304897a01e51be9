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

from typing import Any

from providers.adapter import TranslationError
from providers.anthropic.content import JSONObject, text_blocks, user_block, with_cache_control
from providers.chat_parts import (
    add_turn,
    chat_messages,
    function_call,
    refuse_assistant_extras,
    tool_call_id,
    tool_calls,
)

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
    call_id, name, tool_input = function_call(
        call, param, api="Anthropic", stores="Anthropic stores a tool call's input as an object"
    )
    return {"type": "tool_use", "id": call_id, "name": name, "input": tool_input}


def _assistant_blocks(message: JSONObject, param: str) -> list[JSONObject]:
    refuse_assistant_extras(message, param, api="Anthropic")
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
    blocks += [
        _tool_use(call, f"{param}.tool_calls[{index}]")
        for index, call in enumerate(tool_calls(message, param))
    ]
    return blocks


def _tool_result(message: JSONObject, param: str) -> JSONObject:
    content = message.get("content")
    result: JSONObject = {"type": "tool_result", "tool_use_id": tool_call_id(message, param)}
    if isinstance(content, str):
        result["content"] = content
    elif content is not None:
        result["content"] = text_blocks(content, f"{param}.content")
    return result


def _convert(message: JSONObject, param: str) -> tuple[str, list[JSONObject]]:
    """The Anthropic role and blocks of one OpenAI message."""
    role = message.get("role")
    if isinstance(role, str) and role in _SYSTEM_ROLES:  # a list is unhashable
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
    plain = plain_conversation(messages)
    return plain if plain is not None else _walk_conversation(messages)


def plain_conversation(messages: Any) -> tuple[list[JSONObject], list[JSONObject]] | None:
    """:func:`split_conversation` of the usual conversation, made without the checking walk:
    every message exactly ``{"role", "content"}``, the role system, developer, user or
    assistant and the content a string. None for anything else (the walk then translates it,
    or refuses it with its message).

    The walk's checks and block dispatch were most of a plain request's translation (the
    Gemini and Converse shortcuts in :func:`providers.chat_parts.plain_conversation` are the
    same idea; Anthropic's blocks are typed and a lone text is sent as the string shorthand,
    so it has its own). An empty system or assistant text is left out, an empty user text
    kept, as the walk does; tests/test_translation_shortcuts.py compares the two over every
    short conversation.
    """
    if type(messages) is not list or not messages:
        return None
    system: list[JSONObject] = []
    turns: list[JSONObject] = []
    for message in messages:
        if type(message) is not dict or len(message) != 2:
            return None
        content = message.get("content")
        if type(content) is not str:
            return None
        role = message.get("role")
        if role == "assistant":
            if not content:
                continue
        elif role == "system" or role == "developer":
            if content:
                system.append({"type": "text", "text": content})
            continue
        elif role != "user":
            return None
        if turns and turns[-1]["role"] == role:
            last = turns[-1]
            if type(last["content"]) is str:  # the shorthand of one text, now two blocks
                last["content"] = [{"type": "text", "text": last["content"]}]
            last["content"].append({"type": "text", "text": content})
        else:
            turns.append({"role": role, "content": content})
    return system, turns


def _walk_conversation(messages: Any) -> tuple[list[JSONObject], list[JSONObject]]:
    """:func:`split_conversation` of any ``messages``: each message checked and translated."""
    system: list[JSONObject] = []
    turns: list[JSONObject] = []
    for param, message in chat_messages(messages, api="Anthropic"):
        role, blocks = _convert(message, param)
        if blocks:
            with_cache_control(blocks[-1], message, param)
        if role == "system":
            system += blocks
        elif blocks:  # an assistant message that said nothing carries nothing to send
            add_turn(turns, role, blocks, "content")
    return system, [{**turn, "content": _collapsed(turn["content"])} for turn in turns]
