"""OpenAI's error envelope, ``{"error": {message, type, param, code}}``, for every failure.

Clients (the SDKs, the gateway) read ``error.message``/``error.code``; matching the real shape
and the real per-status ``type`` keeps tests honest about how errors are relayed.
"""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

JSON = "application/json"


class InvalidRequest(Exception):
    """A request OpenAI would answer with 400 ``invalid_request_error``."""

    def __init__(self, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


def error_body(
    message: str,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> bytes:
    error: dict[str, Any] = {"message": message, "type": type_, "param": param, "code": code}
    return orjson.dumps({"error": error})


def error_response(
    status: int,
    message: str,
    type_: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> web.Response:
    return web.Response(
        status=status, body=error_body(message, type_, param, code), content_type=JSON
    )


def invalid_request(exc: InvalidRequest) -> web.Response:
    return error_response(400, exc.message, param=exc.param, code=exc.code)


def default_error(status: int) -> tuple[str, str, str | None]:
    """(message, type, code) OpenAI typically sends with ``status``."""
    if status == 401:
        return "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
    if status == 403:
        return "You are not allowed to access this resource.", "invalid_request_error", None
    if status == 404:
        return "The requested resource does not exist.", "invalid_request_error", None
    if status == 429:
        return (
            "Rate limit reached for requests. Please try again later.",
            "requests",
            "rate_limit_exceeded",
        )
    if status == 503:
        return "The server is overloaded or not ready yet.", "server_error", None
    if status >= 500:
        return (
            "The server had an error while processing your request. Sorry about that!",
            "server_error",
            None,
        )
    return "Your request was rejected.", "invalid_request_error", None


def context_length_exceeded(tokens: int, maximum: int = 128_000) -> bytes:
    """OpenAI's 400 body for a prompt over the model's context window."""
    message = (
        f"This model's maximum context length is {maximum} tokens. However, your messages "
        f"resulted in {tokens} tokens. Please reduce the length of the messages."
    )
    return error_body(message, param="messages", code="context_length_exceeded")


def status_response(
    status: int,
    body: bytes | None,
    headers: dict[str, str] | None,
    message: str | None = None,
) -> web.Response:
    """The answer to a ``Fault(status=...)``: given body, or the usual error for the status
    (with ``message`` instead of the usual one if given)."""
    out: dict[str, str] = {}
    if body is None:
        usual, type_, code = default_error(status)
        body = error_body(message or usual, type_, None, code)
        out["Content-Type"] = JSON
    if status == 429:
        out["retry-after"] = "1"
    out.update(headers or {})
    return web.Response(status=status, body=body, headers=out)


def mask_key(key: str) -> str:
    """How OpenAI echoes a wrong key: a few characters each end, the middle starred."""
    if len(key) <= 8:
        return key
    return f"{key[:3]}{'*' * (len(key) - 7)}{key[-4:]}"
