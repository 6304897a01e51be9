"""Failover decisions and the final error when every attempt failed (reference §3.3, §3.4).

Pure: inputs are the attempts' outcomes (status, the OpenAI-shaped error object the adapter
made of the provider's answer, the attempt's ``source`` label, and whether the gateway itself
produced the error); outputs are decisions and an error body.

**Which outcomes fail over** (:func:`triggers_failover`): the documented triggers 429, 401,
408, 5xx and context-length 400s; 403 (issue 11 §5: a key or account without access to the
model, which another provider or key may have); and, our addition, 402 (the key's own account
is out of money: the org's other keys or the managed key can still pay) and 404 (the model is
not found at that provider or deployment: another may serve it). Any other 4xx is the client's
request and would fail everywhere the same way, so it ends the walk at once and is what the
client sees. A 400 is a context-length error when its ``code`` is OpenAI's
``context_length_exceeded``, or its message is Anthropic's ``prompt is too long…`` or OpenAI's
(and OpenAI-compatible servers') ``…maximum context length…``: another provider of the model
may offer a longer window. Gateway-generated errors fail over only when they are "Insufficient
credits" (the managed key cannot pay, the org's own key may); the gateway's own refusals
(rate limit, budget) end the walk, since they would refuse every attempt alike. Upstream
returns a gateway 429 at once only when it is the first error; with BYOK tried before credits
that case is the credits attempt of a plan without BYOK, and failing over then is what the
reference's scenario "no credits + valid BYOK → success" needs.

**The final error** (:func:`final_error`): the most actionable outcome by the documented
priority 403 > 401 > 400 > 500 > 429 (the error-handling page), not upstream's code, which puts
"first non-429" (5xx) before 400s; the documented order is the one users read, and an
actionable 400 (the request is too long for every provider) says more than a 500 from one of
them. Classes: 403; 401 and 402 (fix the key or its account); every other 4xx but 408 and
429; 5xx and 408 (provider trouble, timeouts); 429 last — "only shown if all attempts hit
rate limits". Within a class the earliest attempt wins (the plan's most preferred), except
that among 429s the gateway's "Insufficient credits" wins over providers' rate limits: adding
credits or a key is what fixes it. The status is the chosen outcome's own (a 503 stays 503;
upstream normalises to 500).

The body is OpenAI's error shape, so SDKs raise the matching exception, with a ``details``
list of every attempt (upstream's field, in its shape) rather than upstream's
``{"success": false, ...}`` envelope or the docs' integer ``code``:
``{"error": {"message", "type", "param", "code", "details": [{"source", "type", "message",
"statusCode"}]}}``. ``message``, ``type``, ``param`` and ``code`` are the chosen attempt's
(``code`` and ``param`` kept only when they are strings, as the OpenAI SDK types them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "INSUFFICIENT_CREDITS",
    "Outcome",
    "choose",
    "error_object",
    "final_error",
    "insufficient_credits",
    "is_context_length_error",
    "triggers_failover",
]

INSUFFICIENT_CREDITS = "insufficient_credits"
"""The ``code`` of the gateway's own "Insufficient credits" error."""

_FAILOVER_STATUSES = frozenset({401, 402, 403, 404, 408, 429})

_CONTEXT_CODES = frozenset({"context_length_exceeded"})
_CONTEXT_PHRASES = ("prompt is too long", "maximum context length")
"""Anthropic's message (``prompt is too long: 203284 tokens > 200000 maximum``) and OpenAI's
(``This model's maximum context length is 16385 tokens…``), lower-cased."""

_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    429: "rate_limit_error",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one failed attempt ended.

    ``error`` is the OpenAI error object (``{"message", "type", ...}``) or a whole body
    ``{"error": {...}}``; ``gateway`` marks errors the gateway produced itself.
    """

    source: str
    status: int
    error: Mapping[str, Any] | None = None
    gateway: bool = False


def insufficient_credits(source: str) -> Outcome:
    """The outcome of a credits attempt the org's balance cannot cover (reference §3.4:
    429 "Insufficient credits"; typed like OpenAI's own quota error, so SDKs raise a
    ``RateLimitError``)."""
    return Outcome(
        source=source,
        status=429,
        error={
            "message": "Insufficient credits",
            "type": "insufficient_quota",
            "param": None,
            "code": INSUFFICIENT_CREDITS,
        },
        gateway=True,
    )


def error_object(error: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The inner error object of an OpenAI-shaped body (or ``error`` itself)."""
    if error is None:
        return {}
    inner = error.get("error")
    return inner if isinstance(inner, Mapping) else error


def is_context_length_error(status: int, error: Mapping[str, Any] | None) -> bool:
    """Whether a 400 says the request does not fit the model's context window."""
    if status != 400:
        return False
    inner = error_object(error)
    if inner.get("code") in _CONTEXT_CODES:
        return True
    message = inner.get("message")
    if not isinstance(message, str):
        return False
    lowered = message.lower()
    return any(phrase in lowered for phrase in _CONTEXT_PHRASES)


def _is_insufficient_credits(outcome: Outcome) -> bool:
    return outcome.gateway and error_object(outcome.error).get("code") == INSUFFICIENT_CREDITS


def triggers_failover(outcome: Outcome) -> bool:
    """Whether the walk goes on to the next attempt after ``outcome`` (rules: module
    docstring)."""
    if outcome.gateway:
        return _is_insufficient_credits(outcome)
    status = outcome.status
    if status >= 500 or status in _FAILOVER_STATUSES:
        return True
    return is_context_length_error(status, outcome.error)


def _class(status: int) -> int:
    """Priority class, lower is more actionable: 403, 401/402, other 4xx, 5xx/408, 429."""
    if status == 403:
        return 0
    if status in (401, 402):
        return 1
    if status == 429:
        return 4
    if 400 <= status < 500 and status != 408:
        return 2
    return 3


def _type(status: int) -> str:
    return _STATUS_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def _fields(outcome: Outcome) -> tuple[str, str, str | None, str | None]:
    inner = error_object(outcome.error)
    message = inner.get("message")
    kind = inner.get("type")
    param = inner.get("param")
    code = inner.get("code")
    if not isinstance(message, str) or not message:
        message = f"The provider answered HTTP {outcome.status}"
    return (
        message,
        kind if isinstance(kind, str) and kind else _type(outcome.status),
        param if isinstance(param, str) else None,
        code if isinstance(code, str) else None,
    )


def choose(outcomes: Sequence[Outcome]) -> Outcome:
    """The most actionable outcome (rules: module docstring)."""
    if not outcomes:
        raise ValueError("no outcomes to choose from")
    best = min(range(len(outcomes)), key=lambda i: (_class(outcomes[i].status), i))
    chosen = outcomes[best]
    if chosen.status == 429:
        for outcome in outcomes:
            if _is_insufficient_credits(outcome):
                return outcome
    return chosen


def final_error(outcomes: Sequence[Outcome]) -> tuple[int, dict[str, Any]]:
    """``(status, body)`` for a request whose attempts all failed (or whose walk stopped at
    an error that does not fail over): the chosen outcome's status and message, and every
    attempt in ``details``."""
    chosen = choose(outcomes)
    message, kind, param, code = _fields(chosen)
    details = []
    for outcome in outcomes:
        detail_message, detail_type, _, _ = _fields(outcome)
        details.append(
            {
                "source": outcome.source,
                "type": detail_type,
                "message": detail_message,
                "statusCode": outcome.status,
            }
        )
    body = {
        "error": {
            "message": message,
            "type": kind,
            "param": param,
            "code": code,
            "details": details,
        }
    }
    return chosen.status, body
