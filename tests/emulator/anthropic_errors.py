"""Anthropic's error envelope and the header checks that precede every Messages request.

Every Anthropic failure is ``{"type": "error", "error": {"type", "message"}, "request_id"}``
with a per-status ``error.type`` (400 ``invalid_request_error``, 401 ``authentication_error``,
429 ``rate_limit_error``, 529 ``overloaded_error``...) and a ``request-id`` header. The SDK
picks its exception class from the status alone, but the gateway relays or translates the
body, so the body must be Anthropic's and not OpenAI's.

Bodies are checked against the SDK's ``ErrorResponse`` before they are sent, except for 413:
Anthropic documents ``request_too_large`` as that status's type, but the SDK's error union
does not list it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web
from anthropic.types.shared import ErrorResponse

from .wire import dump

JSON = "application/json"
VERSIONS = frozenset({"2023-01-01", "2023-06-01", "2026-10-21"})
"""``anthropic-version`` values the API accepts (the last is what anthropic SDK 2.x sends)."""

_DEFAULTS: Mapping[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Your request was invalid."),
    401: ("authentication_error", "invalid x-api-key"),
    402: (
        "billing_error",
        "Your credit balance is too low to access the Anthropic API. Please go to Plans & "
        "Billing to upgrade or purchase credits.",
    ),
    403: (
        "permission_error",
        "Your API key does not have permission to use the specified resource.",
    ),
    404: ("not_found_error", "Not Found"),
    409: ("conflict_error", "The request conflicts with the current state of the resource."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: (
        "rate_limit_error",
        "This request would exceed the rate limit for your organization of 50 requests per "
        "minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can "
        "see the response headers for current usage. Please reduce the number of requests, "
        "or try again later.",
    ),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}
_UNVALIDATED_TYPES = frozenset({"request_too_large"})


class AnthropicError(Exception):
    """A request Anthropic would refuse with ``status`` and ``error_type``."""

    def __init__(
        self, message: str, status: int = 400, error_type: str = "invalid_request_error"
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.error_type = error_type


def prompt_too_long(tokens: int, maximum: int = 200_000) -> str:
    """The message of Anthropic's 400 for a prompt over the context window."""
    return f"prompt is too long: {tokens} tokens > {maximum} maximum"


def request_id(serial: int) -> str:
    return f"req_emu_{serial:024d}"


def default_error(status: int) -> tuple[str, str]:
    """(type, message) Anthropic typically sends with ``status``."""
    if status in _DEFAULTS:
        return _DEFAULTS[status]
    if status >= 500:
        return _DEFAULTS[500]
    return "invalid_request_error", _DEFAULTS[400][1]


def default_message(error_type: str) -> str:
    """The usual message of an ``error_type`` (for an error event in a stream)."""
    for known, message in _DEFAULTS.values():
        if known == error_type:
            return message
    return _DEFAULTS[500][1]


def error_object(error_type: str, message: str) -> dict[str, Any]:
    """``{"type": "error", "error": {...}}``: the body of an error answer or stream event."""
    body: dict[str, Any] = {"type": "error", "error": {"type": error_type, "message": message}}
    if error_type not in _UNVALIDATED_TYPES and dump(ErrorResponse.model_validate(body)) != body:
        raise TypeError(f"the SDK's ErrorResponse does not read back {body}")
    return body


def error_response(
    status: int,
    serial: int,
    error_type: str | None = None,
    message: str | None = None,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> web.Response:
    """An Anthropic error answer: the given ``body``, or the envelope for ``status`` (its
    usual type and message unless given), with ``request-id`` and, for 429,
    ``retry-after``."""
    default_type, default_message = default_error(status)
    out = {"request-id": request_id(serial)}
    if body is None:
        envelope = error_object(error_type or default_type, message or default_message)
        envelope["request_id"] = out["request-id"]
        body = orjson.dumps(envelope)
        out["Content-Type"] = JSON
    if status == 429:
        out["retry-after"] = "1"
    out.update(headers or {})
    return web.Response(status=status, body=body, headers=out)


def _bearer(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def check_headers(request: web.Request, api_key: str | None, serial: int) -> web.Response | None:
    """Anthropic's answer to a request whose key or version header is missing or wrong, or
    None when both are acceptable (``api_key=None`` turns the key check off).

    The key is read from ``x-api-key`` (what the gateway sends, and curl examples use) or
    else ``Authorization: Bearer`` (what anthropic SDK 2.x sends)."""
    if api_key is not None:
        sent = request.headers.get("x-api-key") or _bearer(request.headers.get("Authorization"))
        if not sent:
            return error_response(401, serial, message="x-api-key header is required")
        if sent != api_key:
            return error_response(401, serial, message="invalid x-api-key")
    version = request.headers.get("anthropic-version")
    if not version:
        return error_response(400, serial, message="anthropic-version: header is required")
    if version not in VERSIONS:
        return error_response(
            400, serial, message=f"anthropic-version: invalid version '{version}'"
        )
    return None
