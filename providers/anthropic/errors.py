"""An Anthropic error response → OpenAI's error object.

Anthropic answers ``{"type": "error", "error": {"type": "rate_limit_error", "message": …},
"request_id": …}``; OpenAI clients read ``{"error": {"message", "type", "param", "code"}}``.
The message and Anthropic's error type are kept (the type names are close to OpenAI's and say
more than a translation would). A body that is not Anthropic's shape — a proxy's HTML page, an
empty body — still yields a readable error, typed from the status code.
"""

from __future__ import annotations

import json
from typing import Any

_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}
"""Anthropic's error type for each status it documents (others: ``api_error``)."""

_MAX_RAW_MESSAGE = 1000
"""How much of a body that is not JSON is quoted in the message."""


def _status_type(status: int) -> str:
    fallback = "invalid_request_error" if 400 <= status < 500 else "api_error"
    return _STATUS_TYPES.get(status, fallback)


def error_to_openai(status: int, body: bytes) -> dict[str, Any]:
    """The OpenAI error object for an Anthropic error answer ``status`` / ``body``."""
    try:
        parsed: Any = json.loads(body)
    except (ValueError, RecursionError):
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    message = error.get("message") if isinstance(error, dict) else None
    kind = error.get("type") if isinstance(error, dict) else None
    if not isinstance(message, str):
        text = body.decode("utf-8", "replace").strip()[:_MAX_RAW_MESSAGE]
        message = f"Anthropic returned HTTP {status}" + (f": {text}" if text else ".")
    # OpenAI clients recognise a prompt over the context window by this code.
    too_long = status == 400 and message.lower().startswith("prompt is too long")
    return {
        "error": {
            "message": message,
            "type": kind if isinstance(kind, str) else _status_type(status),
            "param": "messages" if too_long else None,
            "code": "context_length_exceeded" if too_long else None,
        }
    }
