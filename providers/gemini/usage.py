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
    if not isinstance(details, list):
        return 0
    return sum(
        _count(entry.get("tokenCount"))
        for entry in details
        if isinstance(entry, dict) and entry.get("modality") == "AUDIO"
    )


def usage_from_gemini(metadata: Any) -> Usage | None:
    """A ``usageMetadata`` object as :class:`Usage` (None when it is not one)."""
    if not isinstance(metadata, dict) or not (_COUNTS & metadata.keys()):
        return None
    prompt = _count(metadata.get("promptTokenCount")) + _count(
        metadata.get("toolUsePromptTokenCount")
    )
    thoughts = _count(metadata.get("thoughtsTokenCount"))
    completion = _count(metadata.get("candidatesTokenCount")) + thoughts
    return Usage(
        prompt_tokens=prompt,
        completion_tokens=completion,
        cache_read_tokens=min(_count(metadata.get("cachedContentTokenCount")), prompt),
        reasoning_tokens=thoughts,
        prompt_audio_tokens=min(_audio(metadata.get("promptTokensDetails")), prompt),
        completion_audio_tokens=min(_audio(metadata.get("candidatesTokensDetails")), completion),
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
