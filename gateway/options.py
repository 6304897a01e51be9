"""Parsing of the ``Helicone-*`` request headers the data plane uses so far.

Header names are case-insensitive (ASGI hands them over lower-cased); boolean flags are true
only for the string ``true`` (any case), as in the reference implementation.
"""

from __future__ import annotations

import re
import uuid

from gateway.errors import GatewayError

_REQUEST_ID = re.compile(
    r"^[0-9a-f]{8}-[0-9a-f]{4}-[1-5][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.IGNORECASE
)


def request_id(headers: dict[str, str]) -> str:
    """``Helicone-Request-Id`` when it is a valid UUID, else a new one.

    An invalid value is replaced rather than refused, as Helicone does: the id is a
    convenience for correlating feedback, not something worth failing a request over.
    """
    candidate = headers.get("helicone-request-id")
    if candidate and _REQUEST_ID.match(candidate.strip()):
        return candidate.strip().lower()
    return str(uuid.uuid4())


def flag(headers: dict[str, str], name: str) -> bool:
    """A ``true``/``false`` Helicone flag header (absent or anything else is false)."""
    value = headers.get(name)
    return value is not None and value.strip().lower() == "true"


def declared_length(headers: dict[str, str]) -> int | None:
    """``Content-Length`` as an int (None when absent); a malformed value is a 400."""
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise GatewayError(400, f"Invalid Content-Length header: {value!r}.") from exc
