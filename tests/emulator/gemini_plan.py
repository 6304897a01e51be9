"""The deterministic Gemini behind ``generateContent``: what it answers and what it counts.

It echoes the last user text (``Hello from the emulator. You said: ...``) or, when function
declarations are offered, the last turn is not function responses and the calling mode is not
``NONE``, calls a function (the first of ``allowedFunctionNames``, else the first declared)
with ``{"echo": <user text>}``. Markers in the last user text (echoed like any other text):

* ``[[parallel]]``: two calls in one turn (the first two functions, or the one twice), args
  ``{"echo": ..., "call": 1}`` and ``{..., "call": 2}``;
* ``[[text+tool]]``: with mode ``AUTO`` (or none), the echo text first, then the call;
* ``[[refuse]]``: ``finishReason: SAFETY`` with a blocking safety rating, the text cut just
  before the marker, no call;
* ``[[blocked]]``: the prompt itself is blocked: ``promptFeedback.blockReason: SAFETY`` and no
  candidate at all;
* ``[[cached]]``: half the prompt is reported as read from the implicit cache
  (``cachedContentTokenCount``).

The request selects the rest: a thinking budget other than 0 (or a Gemini 3 model, which always
thinks) adds thoughts — a ``thought: true`` part ``The user said: ...`` when
``includeThoughts`` is set, counted in ``thoughtsTokenCount`` either way — and a
``thoughtSignature`` on the first function call (else on the last part), which the validator
verifies when it comes back; ``stopSequences`` cut the text at the earliest one (``STOP``);
``maxOutputTokens`` below the answer cuts it word by word (``MAX_TOKENS``; a call that does not
fit is dropped); ``responseMimeType: application/json`` answers a JSON object built from the
schema's properties (strings echo the user text); ``candidateCount`` repeats the answer.

Tokens are whitespace-separated words of every text, function call and response (JSON), and
declaration names and descriptions; an inline image costs 258 (as Gemini counts one); a function
call costs 5 output tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from .text import count_words, reply_to, split_words

PARALLEL = "[[parallel]]"
TEXT_THEN_TOOL = "[[text+tool]]"
REFUSE = "[[refuse]]"
BLOCKED = "[[blocked]]"
CACHED = "[[cached]]"
CALL_TOKENS = 5
IMAGE_TOKENS = 258
THINKING_PREFIX = "The user said: "
SAFETY_RATINGS = [
    {"category": "HARM_CATEGORY_HATE_SPEECH", "probability": "NEGLIGIBLE"},
    {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True},
]


def _mac(value: Any) -> str:
    return hashlib.sha256(b"emulator-gemini:" + orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
                          ).hexdigest()[:32]


def sign(value: Any) -> str:
    """An opaque, verifiable thought signature over ``value`` (base64, as Gemini's are)."""
    return base64.b64encode(orjson.dumps({"v": value, "mac": _mac(value)})).decode()


def signature_matches(function_call: Mapping[str, Any], signature: Any) -> bool:
    """Whether ``signature`` is the one the emulator gave this function call."""
    try:
        decoded = orjson.loads(base64.b64decode(str(signature), validate=True))
    except (ValueError, orjson.JSONDecodeError):
        return False
    if not isinstance(decoded, dict) or decoded.get("mac") != _mac(decoded.get("v")):
        return False
    expected = {"name": function_call.get("name"), "args": function_call.get("args", {})}
    return bool(decoded.get("v") == expected)


@dataclass(frozen=True)
class Part:
    """One part of the answer: text, a thought, or a function call."""

    text: str = ""
    thought: bool = False
    call: dict[str, Any] | None = None
    signature: str | None = None

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any]
        if self.call is not None:
            out = {"functionCall": self.call}
        else:
            out = {"text": self.text}
            if self.thought:
                out["thought"] = True
        if self.signature is not None:
            out["thoughtSignature"] = self.signature
        return out


@dataclass(frozen=True)
class Plan:
    parts: tuple[Part, ...]
    finish_reason: str | None
    """None: the prompt was blocked (no candidate)."""
    prompt_tokens: int
    cached_tokens: int
    output_tokens: int
    thoughts_tokens: int
    image_tokens: int
    candidates: int = 1
    safety: list[dict[str, Any]] = field(default_factory=list)

    def usage(self, output: int | None = None, thoughts: int | None = None) -> dict[str, Any]:
        """``usageMetadata`` (``output``/``thoughts``: the counts so far, for stream events)."""
        out_tokens = self.output_tokens if output is None else output
        thought_tokens = self.thoughts_tokens if thoughts is None else thoughts
        details = [{"modality": "TEXT", "tokenCount": self.prompt_tokens - self.image_tokens}]
        if self.image_tokens:
            details.append({"modality": "IMAGE", "tokenCount": self.image_tokens})
        usage: dict[str, Any] = {"promptTokenCount": self.prompt_tokens}
        if self.finish_reason is not None:
            usage["candidatesTokenCount"] = out_tokens * self.candidates
        usage["totalTokenCount"] = (
            self.prompt_tokens + (out_tokens + thought_tokens) * self.candidates
        )
        usage["promptTokensDetails"] = details
        if self.cached_tokens:
            usage["cachedContentTokenCount"] = self.cached_tokens
        if thought_tokens:
            usage["thoughtsTokenCount"] = thought_tokens * self.candidates
        return usage


def _part_words(part: Mapping[str, Any]) -> tuple[int, int]:
    """(words, image tokens) of one request part."""
    if isinstance(part.get("text"), str):
        return count_words(part["text"]), 0
    for key in ("functionCall", "functionResponse"):
        if isinstance(part.get(key), dict):
            return count_words(json.dumps(part[key].get("args", part[key].get("response")))), 0
    blob = part.get("inlineData") or part.get("fileData") or {}
    return 0, IMAGE_TOKENS if str(blob.get("mimeType", "")).startswith("image/") else 0


def _prompt_tokens(body: Mapping[str, Any]) -> tuple[int, int]:
    words = images = 0
    for tool in body.get("tools") or []:
        for declaration in tool.get("functionDeclarations") or []:
            text = f"{declaration.get('name', '')} {declaration.get('description', '')}"
            words += count_words(text)
    contents = [*body["contents"], body.get("systemInstruction") or {"parts": []}]
    for content in contents:
        for part in content["parts"]:
            w, i = _part_words(part)
            words, images = words + w, images + i
    return words + images, images


def _user_text(contents: Sequence[Mapping[str, Any]]) -> str:
    for content in reversed(contents):
        if content["role"] != "user":
            continue
        texts = [p["text"] for p in content["parts"] if isinstance(p.get("text"), str)]
        if texts:
            return " ".join(texts)
    return ""


def _json_answer(schema: Any, text: str) -> str:
    properties = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(properties, dict) or not properties:
        return json.dumps({"echo": text})
    samples = {"string": text, "integer": 1, "number": 1.5, "boolean": True, "array": []}
    return json.dumps(
        {
            name: samples.get(str(spec.get("type")), {}) if isinstance(spec, dict) else text
            for name, spec in properties.items()
        }
    )


def _calls(body: Mapping[str, Any], text: str) -> list[dict[str, Any]]:
    declared = [
        d["name"] for tool in body.get("tools") or []
        for d in tool.get("functionDeclarations") or []
    ]  # fmt: skip
    config = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    mode = config.get("mode", "AUTO")
    last = body["contents"][-1]
    answered = any("functionResponse" in p for p in last["parts"])
    if not declared or mode == "NONE" or answered or REFUSE in text:
        return []
    names = config.get("allowedFunctionNames") or declared
    if PARALLEL not in text:
        return [{"name": names[0], "args": {"echo": text}}]
    second = names[1] if len(names) > 1 else names[0]
    return [
        {"name": names[0], "args": {"echo": text, "call": 1}},
        {"name": second, "args": {"echo": text, "call": 2}},
    ]


def _cut(text: str, limit: int) -> tuple[str, int, bool]:
    words = split_words(text)
    if len(words) <= limit:
        return text, len(words), False
    return "".join(words[:limit]), limit, True


def plan(body: Mapping[str, Any], model: str) -> Plan:
    """The answer to a validated ``generateContent`` body."""
    config = body.get("generationConfig") or {}
    thinking = config.get("thinkingConfig") or {}
    budget = thinking.get("thinkingBudget", 0 if not model.startswith("gemini-3") else -1)
    thinks = budget != 0
    prompt, images = _prompt_tokens(body)
    user = _user_text(body["contents"])
    cached = prompt // 2 if CACHED in user else 0
    common = {"prompt_tokens": prompt, "cached_tokens": cached, "image_tokens": images,
              "candidates": int(config.get("candidateCount", 1))}
    if BLOCKED in user:
        return Plan((), None, output_tokens=0, thoughts_tokens=0, **common)
    thought_text = THINKING_PREFIX + user
    thoughts = count_words(thought_text) if thinks else 0
    parts: list[Part] = []
    if thinks and thinking.get("includeThoughts"):
        parts.append(Part(thought_text, thought=True))
    calls = _calls(body, user)
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    text = ""
    if not calls or (TEXT_THEN_TOOL in user and calling.get("mode", "AUTO") == "AUTO"):
        if config.get("responseMimeType") == "application/json":
            text = _json_answer(config.get("responseJsonSchema") or config.get("responseSchema"),
                                user)
        else:
            text = reply_to(user)
    finish = "STOP"
    safety: list[dict[str, Any]] = []
    if REFUSE in text:
        text, finish, safety = text[: text.index(REFUSE)].rstrip(), "SAFETY", SAFETY_RATINGS
    for stop in config.get("stopSequences") or []:
        if stop in text:
            text = text[: text.index(stop)]
    limit = config.get("maxOutputTokens")
    words = count_words(text)
    if isinstance(limit, int):
        text, words, cut = _cut(text, limit)
        if cut:
            finish, calls = "MAX_TOKENS", []
        elif words + CALL_TOKENS * len(calls) > limit:
            finish, calls = "MAX_TOKENS", []
    if text:
        parts.append(Part(text))
    parts += [Part(call=call) for call in calls]
    if thinks:
        slot = next((i for i, p in enumerate(parts) if p.call is not None), len(parts) - 1)
        if slot >= 0:
            target = parts[slot]
            value = target.call if target.call is not None else {"text": target.text}
            parts[slot] = Part(target.text, target.thought, target.call, sign(value))
    return Plan(
        tuple(parts), finish, output_tokens=words + CALL_TOKENS * len(calls),
        thoughts_tokens=thoughts, safety=safety, **common,
    )
