"""Helicone's ``Result<T, string>`` envelope: ``{"data": T, "error": null}`` or the reverse.

Every answer of the query API goes through here, errors included, so a client always gets
the documented shape (never a framework error body or a traceback).
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response


def ok(data: Any) -> Response:
    return Response(orjson.dumps({"data": data, "error": None}), media_type="application/json")


def fail(status: int, message: str) -> Response:
    return Response(
        orjson.dumps({"data": None, "error": message}),
        status_code=status,
        media_type="application/json",
    )
