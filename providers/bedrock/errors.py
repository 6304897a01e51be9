"""Bedrock errors → OpenAI's error object, whole answers and in-stream exceptions alike.

Bedrock answers an error with a JSON body ``{"message": …}`` (``Message`` from AWS's front
door, for signature and token errors) and names the error in the ``x-amzn-ErrorType`` header;
an error after a stream began is an *exception* message of the event stream
(``throttlingException``, ``modelStreamErrorException``…) with the same ``{"message"}``
payload. The OpenAI object keeps the message and uses the exception's name as ``type``
(``ThrottlingException``), taken from the body's ``__type`` when present, else from the status
code, the one Bedrock documents for it. A prompt over the model's context window gets OpenAI's
``context_length_exceeded`` code, which clients and the gateway's failover recognise.
"""

from __future__ import annotations

import json
import re
from typing import Any

_STATUS_TYPES = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
"""The exception Bedrock's runtime API documents for each status."""

EXCEPTION_STATUS = {
    "validationException": 400,
    "serviceQuotaExceededException": 400,
    "accessDeniedException": 403,
    "resourceNotFoundException": 404,
    "modelTimeoutException": 408,
    "modelErrorException": 424,
    "modelStreamErrorException": 424,
    "throttlingException": 429,
    "internalServerException": 500,
    "serviceUnavailableException": 503,
}
"""An event-stream exception's name (``:exception-type``) → the status it stands for."""

_TOO_LONG = re.compile(r"prompt is too long|input is too long|too many (?:input )?tokens", re.I)
_MAX_RAW_MESSAGE = 1000


def _type_name(raw: Any) -> str | None:
    """``__type`` / ``x-amzn-ErrorType`` values may carry a namespace and a detail:
    ``com.amazon.coral#ThrottlingException:http://…`` → ``ThrottlingException``."""
    if not isinstance(raw, str) or not raw:
        return None
    return raw.split(":", 1)[0].rsplit("#", 1)[-1] or None


def openai_error(status: int, message: str, kind: str | None) -> dict[str, Any]:
    too_long = status == 400 and _TOO_LONG.search(message) is not None
    fallback = "ValidationException" if 400 <= status < 500 else "InternalServerException"
    return {
        "error": {
            "message": message,
            "type": kind or _STATUS_TYPES.get(status, fallback),
            "param": "messages" if too_long else None,
            "code": "context_length_exceeded" if too_long else None,
        }
    }


def error_to_openai(status: int, body: bytes, error_type: str | None = None) -> dict[str, Any]:
    """The OpenAI error object for a Bedrock error answer (``error_type``: its
    ``x-amzn-ErrorType`` header, when the caller has it)."""
    try:
        parsed: Any = json.loads(body)
    except (ValueError, RecursionError):
        parsed = None
    message = None
    kind = _type_name(error_type)
    if isinstance(parsed, dict):
        message = parsed.get("message", parsed.get("Message"))
        kind = kind or _type_name(parsed.get("__type"))
    if not isinstance(message, str):
        text = body.decode("utf-8", "replace").strip()[:_MAX_RAW_MESSAGE]
        message = f"Bedrock returned HTTP {status}" + (f": {text}" if text else ".")
    return openai_error(status, message, kind)


def exception_chunk(name: str, payload: bytes) -> dict[str, Any]:
    """An exception message of a Bedrock event stream as the unified format's error chunk."""
    status = EXCEPTION_STATUS.get(name, 500)
    return error_to_openai(status, payload, name[:1].upper() + name[1:])
