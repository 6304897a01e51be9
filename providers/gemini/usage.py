"""Gemini ``usageMetadata`` → the one :class:`~providers.usage.Usage` type, and out as OpenAI's.

The rule (:mod:`providers.usage`): ``promptTokenCount`` already includes the cached prefix
(``cachedContentTokenCount`` is its subset) and ``toolUsePromptTokenCount`` (the results of
Google's own tools, billed as input) is added to it; ``thoughtsTokenCount`` is reported outside
``candidatesTokenCount``, so the completion is their sum and the thoughts are its reasoning
share. Audio comes from the per-modality details (``promptTokensDetails`` /
``candidatesTokensDetails``, ``{"modality": "AUDIO", "tokenCount": n}``).

Everything here reads untrusted JSON and never raises: a count that is not a JSON integer, or
is negative, counts as 0.
"""

from __future__ import annotations

from typing import Any

from providers.usage import Usage

JSONObject = dict[str, Any]

_COUNTS = frozenset({"promptTokenCount", "candidatesTokenCount", "totalTokenCount"})


def _count(value: Any) -> int:
    return value if type(value) is int and value > 0 else 0


def _audio(details: Any) -> int:
    total = 0
    if isinstance(details, list):  # a plain loop: a generator cost more than the few entries
        for entry in details:
            if isinstance(entry, dict) and entry.get("modality") == "AUDIO":
                total += _count(entry.get("tokenCount"))
    return total


def usage_from_gemini(metadata: Any) -> Usage | None:
    """A ``usageMetadata`` object as :class:`Usage` (None when it is not one).

    Read on every translated answer: absent counts (most of them, usually) are not looked at
    further, and the tuple is built positionally (keywords cost twice as much)."""
    if not isinstance(metadata, dict) or _COUNTS.isdisjoint(metadata):
        return None
    get = metadata.get
    prompt = get("promptTokenCount")
    prompt = prompt if type(prompt) is int and prompt > 0 else 0  # _count(), inline
    if "toolUsePromptTokenCount" in metadata:
        prompt += _count(get("toolUsePromptTokenCount"))
    thoughts = _count(get("thoughtsTokenCount")) if "thoughtsTokenCount" in metadata else 0
    completion = get("candidatesTokenCount")
    completion = (completion if type(completion) is int and completion > 0 else 0) + thoughts
    cached = get("cachedContentTokenCount")
    details = get("promptTokensDetails")
    prompt_audio = _audio(details) if details is not None else 0
    details = get("candidatesTokensDetails")
    completion_audio = _audio(details) if details is not None else 0
    return Usage(
        prompt,  # prompt_tokens
        completion,  # completion_tokens
        min(_count(cached), prompt) if cached is not None else 0,  # cache_read_tokens
        0,  # cache_write_tokens
        thoughts,  # reasoning_tokens
        min(prompt_audio, prompt),  # prompt_audio_tokens
        min(completion_audio, completion),  # completion_audio_tokens
    )


def openai_usage(usage: Usage) -> JSONObject:
    """``usage`` in OpenAI's chat shape (cached and reasoning tokens in their details)."""
    prompt_details: JSONObject = {"cached_tokens": usage.cache_read_tokens}
    if usage.prompt_audio_tokens:
        prompt_details["audio_tokens"] = usage.prompt_audio_tokens
    out: JSONObject = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": prompt_details,
    }
    completion_details: JSONObject = {}
    if usage.reasoning_tokens:
        completion_details["reasoning_tokens"] = usage.reasoning_tokens
    if usage.completion_audio_tokens:
        completion_details["audio_tokens"] = usage.completion_audio_tokens
    if completion_details:
        out["completion_tokens_details"] = completion_details
    return out


def chat_usage(metadata: Any) -> JSONObject | None:
    """``openai_usage(usage_from_gemini(metadata))`` (None when that is None), made in one
    call: an answer's usage, once per translated answer, without the :class:`Usage` in
    between (the tests compare the two over every small ``usageMetadata``)."""
    if not isinstance(metadata, dict) or _COUNTS.isdisjoint(metadata):
        return None
    get = metadata.get
    prompt = get("promptTokenCount")
    prompt = prompt if type(prompt) is int and prompt > 0 else 0
    if "toolUsePromptTokenCount" in metadata:
        prompt += _count(get("toolUsePromptTokenCount"))
    thoughts = _count(get("thoughtsTokenCount")) if "thoughtsTokenCount" in metadata else 0
    completion = get("candidatesTokenCount")
    completion = (completion if type(completion) is int and completion > 0 else 0) + thoughts
    cached = get("cachedContentTokenCount")
    prompt_details: JSONObject = {
        "cached_tokens": min(_count(cached), prompt) if cached is not None else 0
    }
    details = get("promptTokensDetails")
    if details is not None and (audio := min(_audio(details), prompt)):
        prompt_details["audio_tokens"] = audio
    out: JSONObject = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": prompt_details,
    }
    details = get("candidatesTokensDetails")
    audio = min(_audio(details), completion) if details is not None else 0
    if thoughts or audio:
        completion_details: JSONObject = {}
        if thoughts:
            completion_details["reasoning_tokens"] = thoughts
        if audio:
            completion_details["audio_tokens"] = audio
        out["completion_tokens_details"] = completion_details
    return out
