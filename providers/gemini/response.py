"""A Gemini ``GenerateContentResponse`` → an OpenAI ``chat.completion``.

Each candidate is a choice. Its text parts join into ``content``; ``functionCall`` parts
become ``tool_calls`` (arguments as compact JSON; Gemini gives calls no id unless it sends one,
so the id is made from the response id and the call's position, unique per answer); thought
parts (``thought: true``, the summaries ``includeThoughts`` asks for) become
``reasoning_content`` and each thought signature a ``thinking_blocks`` entry (the unified
format, :mod:`providers.adapter`), so a client sends them back on its next turn.

Finish reasons (:data:`FINISH_REASONS`): ``STOP`` is ``tool_calls`` when the candidate called a
function, ``MAX_TOKENS`` is ``length``, every safety-type stop (``SAFETY``, ``RECITATION``,
``BLOCKLIST``, ``PROHIBITED_CONTENT``, ``SPII``, image safety…) is ``content_filter``; others
(``MALFORMED_FUNCTION_CALL``, ``OTHER``…) read as ``stop``. A prompt Gemini blocked
(``promptFeedback.blockReason``, no candidate) is one empty choice ending ``content_filter``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from providers.chat_answer import assistant_message, function_tool_call
from providers.gemini.usage import JSONObject, chat_usage

FINISH_REASONS: dict[str, str] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MODEL_ARMOR": "content_filter",
}
"""Gemini ``finishReason`` → OpenAI ``finish_reason`` (anything else: ``stop``)."""


def finish_reason(reason: Any, called: bool) -> str:
    mapped = FINISH_REASONS.get(reason, "stop") if isinstance(reason, str) else "stop"
    return "tool_calls" if called and mapped == "stop" else mapped


def response_id(answer: JSONObject) -> str:
    """The answer's ``responseId``, or a fresh id when Gemini sent none."""
    value = answer.get("responseId")
    return value if isinstance(value, str) and value else f"gen-{uuid.uuid4().hex}"


def call_id(function_call: JSONObject, answer_id: str, position: int) -> str:
    """A tool call's id: Gemini's own when it gave one, else made from the answer's id."""
    own = function_call.get("id")
    return own if isinstance(own, str) and own else f"call_{answer_id}_{position}"


def tool_call(function_call: JSONObject, call: str) -> JSONObject:
    args = function_call.get("args")
    return function_tool_call(
        call, str(function_call.get("name", "")), args if isinstance(args, dict) else {}
    )


def parts_of(candidate: Any) -> list[JSONObject]:
    content = candidate.get("content") if isinstance(candidate, dict) else None
    parts = content.get("parts") if isinstance(content, dict) else None
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def _choice(candidate: JSONObject, position: int, answer_id: str, calls_before: int) -> JSONObject:
    texts: list[str] = []
    thoughts: list[str] = []
    signatures: list[str] = []
    calls: list[JSONObject] = []
    for part in parts_of(candidate):
        signature = part.get("thoughtSignature")
        if isinstance(signature, str) and signature:
            signatures.append(signature)
        if isinstance(part.get("functionCall"), dict):
            call = call_id(part["functionCall"], answer_id, calls_before + len(calls))
            calls.append(tool_call(part["functionCall"], call))
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") is True else texts).append(part["text"])
    message = assistant_message(texts, calls)
    if thoughts or signatures:
        message["reasoning_content"] = "".join(thoughts)
    if signatures:
        message["thinking_blocks"] = [
            {"type": "thinking", "thinking": "".join(thoughts) if i == 0 else "", "signature": s}
            for i, s in enumerate(signatures)
        ]
    index = candidate.get("index")
    return {
        "index": index if type(index) is int and index >= 0 else position,
        "message": message,
        "logprobs": None,
        "finish_reason": finish_reason(candidate.get("finishReason"), bool(calls)),
    }


def _plain_choice(candidates: Any) -> JSONObject | None:
    """:func:`_choice` of the usual answer, made without its part dispatch: a single candidate
    whose parts are all exactly ``{"text": str}`` (no thought, signature or call). None for
    any other answer, which :func:`_choice` then reads part by part."""
    if type(candidates) is not list or len(candidates) != 1:
        return None
    candidate = candidates[0]
    content = candidate.get("content") if type(candidate) is dict else None
    parts = content.get("parts") if type(content) is dict else None
    if type(parts) is not list:
        return None
    texts: list[str] = []
    for part in parts:
        text = part.get("text") if type(part) is dict and len(part) == 1 else None
        if type(text) is not str:
            return None
        texts.append(text)
    index = candidate.get("index")
    reason = candidate.get("finishReason")
    return {  # assistant_message() and finish_reason(), inline: once per answer
        "index": index if type(index) is int and index >= 0 else 0,
        "message": {
            "role": "assistant",
            "content": "".join(texts) if texts else None,
            "refusal": None,
        },
        "logprobs": None,
        "finish_reason": FINISH_REASONS.get(reason, "stop") if isinstance(reason, str) else "stop",
    }


def prompt_blocked(answer: JSONObject) -> bool:
    """Whether Gemini refused the prompt itself (``promptFeedback.blockReason``)."""
    feedback = answer.get("promptFeedback")
    return isinstance(feedback, dict) and isinstance(feedback.get("blockReason"), str)


def _empty_choice(blocked: bool) -> JSONObject:
    return {
        "index": 0,
        "message": assistant_message([], []),
        "logprobs": None,
        "finish_reason": "content_filter" if blocked else "stop",
    }


def _choices(answer: JSONObject, candidates: Any, answer_id: str) -> list[JSONObject]:
    """The choices of any answer, candidate by candidate, in ``index`` order (one empty
    choice when there is none: a blocked prompt's, or an empty answer's)."""
    choices: list[JSONObject] = []
    calls = 0
    for position, candidate in enumerate(candidates if isinstance(candidates, list) else []):
        if isinstance(candidate, dict):
            choice = _choice(candidate, position, answer_id, calls)
            calls += len(choice["message"].get("tool_calls", ()))
            choices.append(choice)
    if not choices:
        choices.append(_empty_choice(prompt_blocked(answer)))
    elif len(choices) > 1:
        choices.sort(key=lambda choice: int(choice["index"]))
    return choices


def gemini_to_chat(answer: dict[str, Any], *, created: int | None = None) -> dict[str, Any]:
    """The ``chat.completion`` for a Gemini answer (``created`` defaults to now)."""
    answer_id = answer.get("responseId")  # response_id(), inline: once per answer
    if not (isinstance(answer_id, str) and answer_id):
        answer_id = response_id(answer)
    candidates = answer.get("candidates")
    plain = _plain_choice(candidates)
    choices = [plain] if plain is not None else _choices(answer, candidates, answer_id)
    model = answer.get("modelVersion")
    completion: JSONObject = {  # chat_completion(), inline
        "id": answer_id,
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model if isinstance(model, str) else "",
        "choices": choices,
    }
    usage = chat_usage(answer.get("usageMetadata"))
    if usage is not None:
        completion["usage"] = usage
    return completion
