"""The ``Response`` object around a translated answer: ids, echoed parameters, usage.

Shared by the whole answer (:mod:`.response`) and the stream (:mod:`.stream`), whose
``response.created`` / ``response.completed`` events carry the same object, so a client sees
one shape either way. OpenAI echoes the request's parameters on every Response (with its
defaults filled in); the SDKs read them back, so they are echoed here too. ``output_text`` is
not a field: it is a property the SDKs compute from ``output``.
"""

from __future__ import annotations

import secrets
from typing import Any

__all__ = ["item_id", "new_response_id", "response_object", "responses_usage"]

JSONObject = dict[str, Any]

# Service tiers a Response may report; a provider's own tiers (Groq's "on_demand"…) are not
# echoed, since the SDK's type would reject them.
_SERVICE_TIERS = frozenset({"auto", "default", "flex", "scale", "priority"})


def new_response_id() -> str:
    """A fresh ``resp_…`` id, random like OpenAI's (nothing is stored under it)."""
    return "resp_" + secrets.token_hex(24)


def item_id(prefix: str, response_id: str, output_index: int) -> str:
    """The id of output item ``output_index`` (``msg``, ``fc``, ``rs``), derived from the
    response id so a response's items are unique and reproducible from that id alone."""
    suffix = response_id.removeprefix("resp_")
    return f"{prefix}_{suffix}_{output_index}"


def responses_usage(usage: Any) -> JSONObject | None:
    """A chat ``usage`` object → the Responses ``usage`` (None when there is none).

    ``prompt_tokens`` already includes cache reads and writes (the OpenAI convention every
    adapter converts to, :class:`providers.usage.Usage`), as ``input_tokens`` does.
    """
    if not isinstance(usage, dict):
        return None
    prompt = _count(usage.get("prompt_tokens"))
    completion = _count(usage.get("completion_tokens"))
    prompt_details = usage.get("prompt_tokens_details")
    completion_details = usage.get("completion_tokens_details")
    prompt_details = prompt_details if isinstance(prompt_details, dict) else {}
    completion_details = completion_details if isinstance(completion_details, dict) else {}
    total = usage.get("total_tokens")
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": _count(prompt_details.get("cached_tokens")),
            "cache_write_tokens": _count(prompt_details.get("cache_write_tokens")),
        },
        "output_tokens": completion,
        "output_tokens_details": {
            "reasoning_tokens": _count(completion_details.get("reasoning_tokens")),
        },
        "total_tokens": total if isinstance(total, int) else prompt + completion,
    }


def _count(value: Any) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def response_object(
    request: JSONObject,
    *,
    response_id: str,
    created_at: int,
    model: str | None,
    status: str,
    output: list[JSONObject],
    usage: JSONObject | None = None,
    incomplete_reason: str | None = None,
    error: JSONObject | None = None,
    completed_at: int | None = None,
) -> JSONObject:
    """The ``Response`` object, the request's parameters echoed with OpenAI's defaults."""
    text = request.get("text")
    text = {"format": {"type": "text"}, **text} if isinstance(text, dict) else None
    reasoning = request.get("reasoning")
    tier = request.get("service_tier")
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "completed_at": completed_at if status == "completed" else None,
        "background": False,
        "error": error,
        "incomplete_details": (
            {"reason": incomplete_reason} if incomplete_reason is not None else None
        ),
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "max_tool_calls": request.get("max_tool_calls"),
        "model": model if model is not None else request.get("model", ""),
        "output": output,
        "parallel_tool_calls": _default(request.get("parallel_tool_calls"), True),
        "previous_response_id": None,
        "prompt_cache_key": request.get("prompt_cache_key"),
        "reasoning": (
            reasoning if isinstance(reasoning, dict) else {"effort": None, "summary": None}
        ),
        "safety_identifier": request.get("safety_identifier"),
        "service_tier": tier if tier in _SERVICE_TIERS else None,
        # Translated responses are never stored (there is nothing to retrieve or continue from).
        "store": False,
        "temperature": _default(request.get("temperature"), 1.0),
        "text": text if text is not None else {"format": {"type": "text"}},
        "tool_choice": _default(request.get("tool_choice"), "auto"),
        "tools": list(request.get("tools") or []),
        "top_logprobs": _default(request.get("top_logprobs"), 0),
        "top_p": _default(request.get("top_p"), 1.0),
        "truncation": "disabled",
        "usage": usage,
        "user": request.get("user"),
        "metadata": request.get("metadata") or {},
    }


def _default(value: Any, default: Any) -> Any:
    return default if value is None else value
