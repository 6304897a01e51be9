"""A Google API error → OpenAI's error object.

Google answers ``{"error": {"code": 429, "message": …, "status": "RESOURCE_EXHAUSTED",
"details": […]}}`` (sometimes wrapped in a one-element JSON array, as the array form of
``streamGenerateContent`` sends it); OpenAI clients read ``{"error": {"message", "type",
"param", "code"}}``. The message is kept as Google wrote it, Google's ``status`` becomes the
``code`` (it says more than a translation would), and the ``type`` is OpenAI's word for the HTTP
status. A body that is not Google's shape (a proxy's HTML page, an empty body) still yields a
readable error.
"""

from __future__ import annotations

import json
from typing import Any

_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
}
_MAX_RAW_MESSAGE = 1000
_TOO_LONG = ("exceeds the maximum number of tokens", "input token count")
"""Phrases of Gemini's 400 for a prompt over the context window ("The input token count
(1200000) exceeds the maximum number of tokens allowed (1048576).")."""


def status_type(status: int) -> str:
    """OpenAI's error type for an HTTP status."""
    fallback = "invalid_request_error" if 400 <= status < 500 else "api_error"
    return _STATUS_TYPES.get(status, fallback)


def google_error(parsed: Any) -> tuple[str | None, str | None]:
    """``(message, status)`` of a parsed Google error body (either may be None)."""
    if isinstance(parsed, list) and parsed:
        parsed = parsed[0]
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if not isinstance(error, dict):
        return None, None
    message, status = error.get("message"), error.get("status")
    return (
        message if isinstance(message, str) else None,
        status if isinstance(status, str) else None,
    )


def error_to_openai(status: int, body: bytes) -> dict[str, Any]:
    """The OpenAI error object for a Google error answer ``status`` / ``body``."""
    try:
        parsed: Any = json.loads(body)
    except (ValueError, RecursionError):
        parsed = None
    message, google_status = google_error(parsed)
    if message is None:
        text = body.decode("utf-8", "replace").strip()[:_MAX_RAW_MESSAGE]
        message = f"Google returned HTTP {status}" + (f": {text}" if text else ".")
    lowered = message.lower()
    too_long = status == 400 and all(phrase in lowered for phrase in _TOO_LONG)
    return {
        "error": {
            "message": message,
            "type": status_type(status),
            "param": "messages" if too_long else None,
            "code": "context_length_exceeded" if too_long else google_status,
        }
    }
