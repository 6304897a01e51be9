"""Google's error envelope and the key check that precedes every Gemini API request.

Every failure is ``{"error": {"code": <HTTP status>, "message": …, "status": "<RPC status>"}}``
(the Gemini API's documented shape), with a per-status RPC status: 400 ``INVALID_ARGUMENT``,
403 ``PERMISSION_DENIED``, 404 ``NOT_FOUND``, 429 ``RESOURCE_EXHAUSTED``, 500 ``INTERNAL``, 503
``UNAVAILABLE``, 504 ``DEADLINE_EXCEEDED``. A wrong key is a 400 ``INVALID_ARGUMENT`` ("API key
not valid"), as Google answers it; no key at all is a 403.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

_DEFAULTS: Mapping[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    429: (
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details.",
    ),
    500: (
        "INTERNAL",
        "An internal error has occurred. Please retry or report in "
        "https://developers.generativeai.google/guide/troubleshooting",
    ),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "The request timed out. Please try again."),
}
BAD_KEY = "API key not valid. Please pass a valid API key."
NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)


class GeminiError(Exception):
    """A request the Gemini API would refuse with ``status``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def too_many_tokens(tokens: int, maximum: int = 1_048_576) -> str:
    """The message of Gemini's 400 for a prompt over the context window."""
    return (
        f"The input token count ({tokens}) exceeds the maximum number of tokens allowed "
        f"({maximum})."
    )


def error_object(status: int, message: str | None = None) -> dict[str, Any]:
    rpc_status, default = _DEFAULTS.get(status, _DEFAULTS[500 if status >= 500 else 400])
    return {"error": {"code": status, "message": message or default, "status": rpc_status}}


def error_response(
    status: int,
    message: str | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> web.Response:
    out = dict(headers or {})
    if body is None:
        body = orjson.dumps(error_object(status, message))
        out.setdefault("Content-Type", "application/json; charset=UTF-8")
    return web.Response(status=status, body=body, headers=out)


def check_key(request: web.Request, api_key: str | None) -> web.Response | None:
    """The answer to a request without the right key (``x-goog-api-key`` or ``?key=``), or
    None when it may proceed (``api_key=None`` turns the check off)."""
    if api_key is None:
        return None
    sent = request.headers.get("x-goog-api-key") or request.query.get("key")
    if not sent:
        return error_response(403, NO_KEY)
    if sent != api_key:
        return error_response(400, BAD_KEY)
    return None
