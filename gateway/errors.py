"""Error responses of the data plane, shaped like OpenAI's so SDKs raise the right exception.

Every error the gateway itself produces goes through :class:`GatewayError`; the handler turns
it into ``{"error": {"message", "type", "param", "code"}}`` with the matching status. Upstream
errors are never rewritten: they pass through with their own status and body.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.asgi import RawHeaders, Send, send_bytes

_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    500: "server_error",
    502: "upstream_error",
    503: "server_error",
    504: "upstream_timeout",
}


class GatewayError(Exception):
    """A failure the gateway reports to the client itself (not an upstream answer)."""

    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.param = param
        self.payload = payload
        """A whole body to send instead of the plain shape (the failover's ``details``)."""

    def body(self) -> bytes:
        """The OpenAI-shaped JSON body."""
        if self.payload is not None:
            return orjson.dumps(self.payload)
        return error_body(self.status, self.message, self.code, self.param)


def error_body(
    status: int, message: str, code: str | None = None, param: str | None = None
) -> bytes:
    fallback = "invalid_request_error" if status < 500 else "server_error"
    return orjson.dumps(
        {
            "error": {
                "message": message,
                "type": _TYPES.get(status, fallback),
                "param": param,
                "code": code,
            }
        }
    )


async def send_error(send: Send, error: GatewayError, headers: RawHeaders) -> None:
    await send_bytes(send, error.status, error.body(), headers, b"application/json")
