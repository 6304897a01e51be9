"""The deterministic Claude behind ``POST /v1/messages``: what it answers and what it costs.

Like the chat emulator, it echoes the last user text (``Hello from the emulator. You said:
...``) or, when custom tools are offered, the last turn is not a ``tool_result`` and
``tool_choice`` is not ``none``, calls the chosen tool (``tool_choice.name``, else the first
custom tool) with ``{"echo": <user text>}``.

Scenarios a test asks for with a marker word in the last user text (markers are echoed
like any other text, so answers stay predictable):

* ``[[parallel]]``: with tools, two ``tool_use`` blocks (the first two custom tools, or the
  one tool twice), inputs ``{"echo": ..., "call": 1}`` and ``{..., "call": 2}``; one call only
  when ``tool_choice.disable_parallel_tool_use`` is set.
* ``[[text+tool]]``: with tools and ``tool_choice`` auto (or absent), the echo text first,
  then the tool call (forced tool choices never produce text, as with Anthropic).
* ``[[refuse]]``: ``stop_reason: "refusal"``, the text cut just before the marker, with
  ``stop_details: {"type": "refusal"}``; no tool call.
* ``[[redacted-thinking]]``: with thinking on, a ``redacted_thinking`` block after the
  ``thinking`` block.

Scenarios the request itself selects:

* ``thinking`` ``enabled``/``adaptive``: a ``thinking`` block first (``The user said: ...``)
  with a signature the emulator verifies when the block is sent back; ``display: "omitted"``
  sends empty thinking with the same signature.
* ``stop_sequences``: the earliest occurrence in the answer text cuts it there (the
  sequence excluded) and ends the answer: ``stop_reason: "stop_sequence"``.
* ``max_tokens`` below the answer's size: the answer is cut after ``max_tokens`` tokens
  (text and thinking word by word; a tool call that does not fit whole is dropped):
  ``stop_reason: "max_tokens"``, ``output_tokens == max_tokens``.
* ``cache_control`` breakpoints (and top-level ``cache_control``, on the last block): the
  prompt up to the longest breakpoint seen before is read from cache, the rest up to the
  last breakpoint is written (``cache_creation_input_tokens``, by the breakpoint's ttl).
  Any prefix caches: the 1024-token minimum is not emulated.

Tokens are whitespace-separated words (tool names and descriptions, system text, message
text, tool results, tool inputs as JSON), a tool call costs 5 output tokens, a redacted
thinking block 3; ``input_tokens`` excludes cached tokens, as Anthropic's does.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import orjson

from .text import content_text, count_words, reply_to, split_words

PARALLEL = "[[parallel]]"
TEXT_THEN_TOOL = "[[text+tool]]"
REFUSE = "[[refuse]]"
REDACTED_THINKING = "[[redacted-thinking]]"
TOOL_USE_TOKENS = 5
REDACTED_TOKENS = 3
THINKING_PREFIX = "The user said: "

BlockType = Literal["thinking", "redacted_thinking", "text", "tool_use"]


@dataclass(frozen=True)
class Block:
    """One content block of the answer; which fields matter depends on ``type``."""

    type: BlockType
    text: str = ""
    """The text of a ``text`` block, the thinking of a ``thinking`` block."""
    signature: str = ""
    data: str = ""
    id: str = ""
    name: str = ""
    input: dict[str, Any] = field(default_factory=dict)
    tokens: int = 0


@dataclass(frozen=True)
class CacheUsage:
    creation_5m: int = 0
    creation_1h: int = 0
    read: int = 0

    @property
    def creation(self) -> int:
        return self.creation_5m + self.creation_1h


@dataclass(frozen=True)
class Plan:
    blocks: tuple[Block, ...]
    stop_reason: str
    stop_sequence: str | None
    input_tokens: int
    output_tokens: int
    cache: CacheUsage


# -- thinking signatures ----------------------------------------------------------------


def _mac(thinking: str) -> str:
    return hashlib.sha256(f"emulator-thinking:{thinking}".encode()).hexdigest()[:32]


def sign(thinking: str) -> str:
    """An opaque, verifiable signature that carries its thinking (as Anthropic's encrypts
    it), so a block sent back with ``display: "omitted"``'s empty thinking still checks."""
    raw = orjson.dumps({"thinking": thinking, "mac": _mac(thinking)})
    return base64.b64encode(raw).decode()


def signature_matches(thinking: str, signature: str) -> bool:
    try:
        decoded = orjson.loads(base64.b64decode(signature, validate=True))
    except (ValueError, orjson.JSONDecodeError):
        return False
    if not isinstance(decoded, dict):
        return False
    original = decoded.get("thinking")
    if not isinstance(original, str) or decoded.get("mac") != _mac(original):
        return False
    return thinking in ("", original)


# -- prompt caching ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Breakpoint:
    key: str
    tokens: int
    ttl: str


class PromptCache:
    """Prompt prefixes seen at a breakpoint, per emulator; thread-safe (``clear`` is called
    from the test's thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: set[str] = set()

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()

    def account(self, breakpoints: Sequence[_Breakpoint]) -> CacheUsage:
        if not breakpoints:
            return CacheUsage()
        with self._lock:
            read = max((b.tokens for b in breakpoints if b.key in self._seen), default=0)
            last = breakpoints[-1]
            written = 0 if last.key in self._seen else last.tokens - read
            self._seen.update(b.key for b in breakpoints)
        if last.ttl == "1h":
            return CacheUsage(creation_1h=written, read=read)
        return CacheUsage(creation_5m=written, read=read)


def _blocks(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [block for block in content if isinstance(block, dict)]


def _words(block: Mapping[str, Any]) -> int:
    kind = block.get("type")
    if kind == "text":
        return count_words(str(block.get("text", "")))
    if kind == "thinking":
        return count_words(str(block.get("thinking", "")))
    if kind == "tool_use":
        return count_words(json.dumps(block.get("input", {})))
    if kind == "tool_result":
        return count_words(content_text(block.get("content")))
    return 0


def _segments(body: Mapping[str, Any]) -> list[tuple[Any, int]]:
    """The prompt in cache order (tools, system, messages), one entry per cacheable block."""
    out: list[tuple[Any, int]] = []
    for tool in body.get("tools") or []:
        out.append((tool, count_words(f"{tool.get('name', '')} {tool.get('description', '')}")))
    system = body.get("system")
    if system:
        out += [(block, _words(block)) for block in _blocks(system)]
    for message in body["messages"]:
        out += [(block, _words(block)) for block in _blocks(message["content"])]
    return out


def _breakpoints(body: Mapping[str, Any], segments: Sequence[tuple[Any, int]]) -> list[_Breakpoint]:
    marked = [
        (index, obj["cache_control"])
        for index, (obj, _) in enumerate(segments)
        if isinstance(obj, dict) and obj.get("cache_control")
    ]
    top = body.get("cache_control")
    if top and segments and (not marked or marked[-1][0] != len(segments) - 1):
        marked.append((len(segments) - 1, top))
    out: list[_Breakpoint] = []
    for index, control in marked:
        prefix = [body.get("model"), [obj for obj, _ in segments[: index + 1]]]
        key = hashlib.sha256(orjson.dumps(prefix, option=orjson.OPT_SORT_KEYS)).hexdigest()
        tokens = sum(words for _, words in segments[: index + 1])
        out.append(_Breakpoint(key, tokens, str(control.get("ttl") or "5m")))
    return out


# -- the answer -------------------------------------------------------------------------


def _user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """The text of the last user message that has any (tool results are not text)."""
    for message in reversed(messages):
        if message["role"] == "user":
            text = content_text(message["content"])
            if text:
                return text
    return ""


def _answers_tool(messages: Sequence[Mapping[str, Any]]) -> bool:
    last = messages[-1]
    return last["role"] == "user" and any(
        block.get("type") == "tool_result" for block in _blocks(last["content"])
    )


def _custom_tools(body: Mapping[str, Any]) -> list[str]:
    """Names of the client tools (server tools such as web search are not called)."""
    return [
        str(tool["name"])
        for tool in body.get("tools") or []
        if tool.get("type") in (None, "custom") and "input_schema" in tool
    ]


def _tool_calls(body: Mapping[str, Any], user_text: str, serial: int) -> list[Block]:
    choice = body.get("tool_choice") or {"type": "auto"}
    tools = _custom_tools(body)
    if not tools or choice.get("type") == "none" or _answers_tool(body["messages"]):
        return []
    first = str(choice["name"]) if choice.get("type") == "tool" else tools[0]
    inputs: list[dict[str, Any]]
    if PARALLEL not in user_text or choice.get("disable_parallel_tool_use"):
        names, inputs = [first], [{"echo": user_text}]
    else:
        second = next((name for name in tools if name != first), first)
        names = [first, second]
        inputs = [{"echo": user_text, "call": 1}, {"echo": user_text, "call": 2}]
    return [
        Block(
            "tool_use", id=f"toolu_emu{serial}_{n}", name=name, input=args, tokens=TOOL_USE_TOKENS
        )
        for n, (name, args) in enumerate(zip(names, inputs, strict=True), start=1)
    ]


def _thinking(body: Mapping[str, Any], user_text: str) -> list[Block]:
    thinking = body.get("thinking") or {}
    if thinking.get("type") not in ("enabled", "adaptive"):
        return []
    text = f"{THINKING_PREFIX}{user_text}"
    shown = "" if thinking.get("display") == "omitted" else text
    out = [Block("thinking", text=shown, signature=sign(text), tokens=count_words(text))]
    if REDACTED_THINKING in user_text:
        data = base64.b64encode(f"emulator-redacted:{user_text}".encode()).decode()
        out.append(Block("redacted_thinking", data=data, tokens=REDACTED_TOKENS))
    return out


def _text(text: str) -> Block:
    return Block("text", text=text, tokens=count_words(text))


def _stop_at_sequence(
    blocks: list[Block], sequences: Sequence[str]
) -> tuple[list[Block], str | None]:
    """Cut the first text block containing a stop sequence before its earliest one."""
    for index, block in enumerate(blocks):
        if block.type != "text":
            continue
        hits = [(block.text.find(seq), seq) for seq in sequences if seq and seq in block.text]
        if hits:
            position, sequence = min(hits, key=lambda hit: hit[0])
            kept = blocks[:index]
            if position:
                kept.append(_text(block.text[:position]))
            return kept, sequence
    return blocks, None


def _cut(block: Block, budget: int) -> Block | None:
    """``block`` shortened to ``budget`` tokens, or None when nothing of it fits."""
    if block.type not in ("text", "thinking") or budget <= 0:
        return None
    text = "".join(split_words(block.text)[:budget])
    if block.type == "text":
        return _text(text) if text else None
    return replace(block, text=text, signature=sign(text), tokens=budget)


def _limit(blocks: list[Block], max_tokens: int) -> tuple[list[Block], bool]:
    """The blocks that fit in ``max_tokens``; True when something was cut."""
    kept: list[Block] = []
    used = 0
    for block in blocks:
        if used + block.tokens <= max_tokens:
            kept.append(block)
            used += block.tokens
            continue
        partial = _cut(block, max_tokens - used)
        if partial is not None:
            kept.append(partial)
        return kept, True
    return kept, False


def plan(body: Mapping[str, Any], serial: int, cache: PromptCache) -> Plan:
    """The answer to a validated request; ``serial`` makes the ids unique."""
    messages = body["messages"]
    user_text = _user_text(messages)
    reply = reply_to(user_text)
    blocks = _thinking(body, user_text)
    stop_reason = "end_turn"
    refusal = REFUSE in user_text
    calls = [] if refusal else _tool_calls(body, user_text, serial)
    if refusal:
        blocks.append(_text(reply[: reply.index(REFUSE)].rstrip()))
        stop_reason = "refusal"
    elif calls:
        choice_type = (body.get("tool_choice") or {"type": "auto"}).get("type")
        if TEXT_THEN_TOOL in user_text and choice_type == "auto":
            blocks.append(_text(reply))
        blocks += calls
        stop_reason = "tool_use"
    else:
        blocks.append(_text(reply))
    blocks, sequence = _stop_at_sequence(blocks, body.get("stop_sequences") or [])
    if sequence is not None:
        stop_reason = "stop_sequence"
    blocks, cut = _limit(blocks, int(body["max_tokens"]))
    if cut:
        stop_reason, sequence = "max_tokens", None
    segments = _segments(body)
    usage = cache.account(_breakpoints(body, segments))
    total = max(1, sum(words for _, words in segments))
    return Plan(
        blocks=tuple(blocks),
        stop_reason=stop_reason,
        stop_sequence=sequence,
        input_tokens=max(0, total - usage.read - usage.creation),
        output_tokens=int(body["max_tokens"]) if cut else sum(b.tokens for b in blocks),
        cache=usage,
    )
