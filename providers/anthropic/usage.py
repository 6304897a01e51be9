"""Anthropic usage → the one :class:`~providers.usage.Usage` type, and back out as OpenAI's.

Anthropic's ``input_tokens`` *excludes* cache traffic, so the prompt is the sum of the three
input counts (rule in :mod:`providers.usage`); ``output_tokens`` already includes thinking, and
``output_tokens_details.thinking_tokens`` (when reported) is its reasoning share.
Everything here reads untrusted JSON and never raises: a count that is not a JSON integer, or
is negative, counts as 0.
"""

from __future__ import annotations

from typing import Any

from providers.usage import Usage

JSONObject = dict[str, Any]


def _count(value: Any) -> int:
    return value if type(value) is int and value > 0 else 0


def usage_from_anthropic(usage: Any) -> Usage | None:
    """An Anthropic ``usage`` object as :class:`Usage` (None when it is not one)."""
    if not isinstance(usage, dict) or not ({"input_tokens", "output_tokens"} & usage.keys()):
        return None
    cache_read = _count(usage.get("cache_read_input_tokens"))
    cache_write = _count(usage.get("cache_creation_input_tokens"))
    completion = _count(usage.get("output_tokens"))
    details = usage.get("output_tokens_details")
    thinking = _count(details.get("thinking_tokens")) if isinstance(details, dict) else 0
    return Usage(
        prompt_tokens=_count(usage.get("input_tokens")) + cache_read + cache_write,
        completion_tokens=completion,
        cache_read_tokens=cache_read,
        cache_write_tokens=cache_write,
        reasoning_tokens=min(thinking, completion),
    )


def usage_from_message(obj: Any) -> Usage | None:
    """The usage of an Anthropic Message (or of a ``message_start`` event wrapping one).

    Used to log native Anthropic passthrough traffic; None when ``obj`` reports none.
    """
    if not isinstance(obj, dict):
        return None
    if obj.get("type") == "message_start":
        obj = obj.get("message")
        if not isinstance(obj, dict):
            return None
    return usage_from_anthropic(obj.get("usage"))


def merge_usage(into: JSONObject, update: Any) -> None:
    """Fold a stream's usage report into the running one.

    Anthropic's stream counts are cumulative: ``message_start`` carries the input counts,
    each ``message_delta`` the output so far (and, in newer API versions, the input counts
    again). The latest non-null value of each field wins.
    """
    if isinstance(update, dict):
        into.update((key, value) for key, value in update.items() if value is not None)


def openai_usage(usage: Usage) -> JSONObject:
    """``usage`` in OpenAI's chat shape; cache writes ride along as
    ``prompt_tokens_details.cache_write_tokens`` (the field the log reader understands)."""
    out: JSONObject = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.prompt_tokens + usage.completion_tokens,
        "prompt_tokens_details": {
            "cached_tokens": usage.cache_read_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
    }
    if usage.reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out
