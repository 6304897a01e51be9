"""The deterministic assistant behind ``POST /v1/chat/completions``: what it answers.

It echoes the last user text (``Hello from the emulator. You said: ...``) or, when function
tools are offered, the conversation is not already answering a tool call and
``tool_choice`` is not ``"none"``, calls the chosen tool (``tool_choice.function.name``,
else the first function tool) with ``{"echo": <user text>}``.

Scenarios a test asks for with a marker word in the last user text (the same words as the
Anthropic emulator's, :mod:`.messages_plan`; markers are echoed like any other text):

* ``[[parallel]]``: with tools, two tool calls (the first two function tools, or the one
  tool twice), arguments ``{"echo": ..., "call": 1}`` and ``{..., "call": 2}``; one call
  only when ``parallel_tool_calls`` is false.
* ``[[text+tool]]``: with tools and ``tool_choice`` ``auto`` (or absent), the echo text
  first, then the tool call(s) in the same message.
* ``[[refuse]]``: ``finish_reason: "content_filter"``, the text cut just before the marker
  (as a provider's output filter stops a message mid-way); no tool call.

Scenarios the request itself selects:

* ``reasoning_effort`` other than ``"none"``: the answer is preceded by reasoning
  (``The user said: ...``), returned DeepSeek-style as ``reasoning_content`` beside
  ``content`` (message and stream deltas alike) and counted in
  ``completion_tokens_details.reasoning_tokens`` (and in ``completion_tokens``, as OpenAI
  counts reasoning).
* ``stop`` (a string or a list): the earliest occurrence in the answer text cuts it there
  (the sequence excluded); ``finish_reason`` stays ``"stop"``, as OpenAI reports it.
* ``max_completion_tokens`` (or the older ``max_tokens``) below the answer's size: reasoning
  then text are cut word by word, a tool call that does not fit whole is dropped;
  ``finish_reason: "length"``, ``completion_tokens`` equals the limit.

Tokens are whitespace-separated words; a tool call costs :data:`TOOL_CALL_TOKENS`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .text import content_text, count_words, reply_to, split_words

PARALLEL = "[[parallel]]"
TEXT_THEN_TOOL = "[[text+tool]]"
REFUSE = "[[refuse]]"
REASONING_PREFIX = "The user said: "
TOOL_CALL_TOKENS = 5


@dataclass(frozen=True)
class ToolCall:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class Plan:
    """What the assistant will say: reasoning, text and tool calls (each may be absent)."""

    reasoning: str | None
    text: str | None
    calls: tuple[ToolCall, ...]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    reasoning_tokens: int


def _function_tools(params: Mapping[str, Any]) -> list[str]:
    return [
        str(tool["function"]["name"])
        for tool in params.get("tools") or []
        if tool.get("type") == "function"
    ]


def _calls(params: Mapping[str, Any], user_text: str) -> list[ToolCall]:
    tools = _function_tools(params)
    choice = params.get("tool_choice")
    if not tools or choice == "none" or params["messages"][-1].get("role") == "tool":
        return []
    if isinstance(choice, dict) and choice.get("type") == "function":
        first = str(choice["function"]["name"])
    else:
        first = tools[0]
    if PARALLEL not in user_text or params.get("parallel_tool_calls") is False:
        return [ToolCall("call_emu_1", first, json.dumps({"echo": user_text}))]
    second = next((name for name in tools if name != first), first)
    return [
        ToolCall(f"call_emu_{n}", name, json.dumps({"echo": user_text, "call": n}))
        for n, name in enumerate((first, second), start=1)
    ]


def _stop_sequences(params: Mapping[str, Any]) -> list[str]:
    stop = params.get("stop")
    if isinstance(stop, str):
        return [stop]
    return [s for s in stop or [] if isinstance(s, str) and s]


def _cut_at_stop(text: str, sequences: Sequence[str]) -> str:
    hits = [text.find(seq) for seq in sequences if seq in text]
    return text[: min(hits)] if hits else text


def _words(text: str, budget: int) -> str:
    return "".join(split_words(text)[: max(budget, 0)])


def plan(params: Mapping[str, Any]) -> Plan:
    messages: list[dict[str, Any]] = params["messages"]
    user_text = next(
        (content_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"),
        "",
    )
    prompt_tokens = max(1, sum(count_words(content_text(m.get("content"))) for m in messages))
    effort = params.get("reasoning_effort")
    reasoning = f"{REASONING_PREFIX}{user_text}" if effort not in (None, "none") else None
    finish = "stop"
    text: str | None = None
    calls: list[ToolCall] = []
    if REFUSE in user_text:
        reply = reply_to(user_text)
        text = reply[: reply.index(REFUSE)].rstrip()
        finish = "content_filter"
    else:
        calls = _calls(params, user_text)
        auto = params.get("tool_choice") in (None, "auto")
        if not calls or (TEXT_THEN_TOOL in user_text and auto):
            text = _cut_at_stop(reply_to(user_text), _stop_sequences(params))
        if calls:
            finish = "tool_calls"

    limit = params.get("max_completion_tokens", params.get("max_tokens"))
    reasoning_tokens = count_words(reasoning or "")
    used = reasoning_tokens + count_words(text or "") + TOOL_CALL_TOKENS * len(calls)
    if isinstance(limit, int) and used > limit:
        finish = "length"
        if reasoning is not None and reasoning_tokens > limit:
            reasoning, reasoning_tokens = _words(reasoning, limit), limit
        left = limit - reasoning_tokens
        if text is not None:
            text = _words(text, left)
            left -= count_words(text)
        kept = max(left, 0) // TOOL_CALL_TOKENS
        calls = calls[:kept]
        used = limit
    return Plan(
        reasoning=reasoning,
        text=text,
        calls=tuple(calls),
        finish_reason=finish,
        prompt_tokens=prompt_tokens,
        completion_tokens=used,
        reasoning_tokens=reasoning_tokens,
    )
