"""PostHog's REST conventions, shared by the PostHog-compatible routes (prompts-and-peer-apis.md
A.0): the error envelope, authentication and scope answers, the environment segment and
limit/offset pagination.

Errors are ``{"type", "code", "detail", "attr"}`` (DRF as PostHog renders it), except the
hand-built answers of custom actions, which are ``{"detail": ...}``; clients key on both, so
both are reproduced exactly. The environment segment is the gateway's organisation: its id
(``KeyIdentity.org_id``, shown by ``gateway keys list``) or ``@current`` (the caller key's
organisation, what the PostHog SDK sends).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from gateway.errors import GatewayError
from gateway.scopes import POSTHOG_NAMES, allows
from gateway.store import KeyIdentity

Authenticate = Callable[[dict[str, str]], Awaitable[KeyIdentity]]

CURRENT = "@current"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_BODY_BYTES = 64 * 1024


class PostHogError(Exception):
    """An answer other than success, already in PostHog's shape."""

    def __init__(self, status: int, body: Mapping[str, Any]) -> None:
        super().__init__(body.get("detail"))
        self.status = status
        self.body = body

    def response(self) -> Response:
        return json_response(self.body, self.status)


def error(
    status: int, error_type: str, code: str, detail: str, attr: str | None = None
) -> PostHogError:
    return PostHogError(status, {"type": error_type, "code": code, "detail": detail, "attr": attr})


def invalid(attr: str | None, detail: str, code: str = "invalid_input") -> PostHogError:
    """A serializer error (400): ``attr`` names the field."""
    return error(400, "validation_error", code, detail, attr)


def plain(status: int, detail: str) -> PostHogError:
    """A custom action's hand-built answer: ``{"detail": ...}``."""
    return PostHogError(status, {"detail": detail})


def not_found() -> PostHogError:
    return error(404, "invalid_request", "not_found", "Not found.")


def method_not_allowed(method: str) -> PostHogError:
    return error(405, "invalid_request", "method_not_allowed", f'Method "{method}" not allowed.')


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json")


def timestamp(value: datetime | None) -> str | None:
    """DRF's rendering: ISO 8601 with ``Z`` for UTC."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")


async def authorize(
    authenticate: Authenticate, request: Request, environment: str, *scopes: str
) -> KeyIdentity:
    """The caller's identity, once its key, environment and ``scopes`` are checked.

    401 for a missing or unknown key, 403 for another organisation's environment or a
    missing scope (named as PostHog names it), 503 when the key store is down.
    """
    headers = {k.lower(): v for k, v in request.headers.items()}
    try:
        identity = await authenticate(headers)
    except GatewayError as exc:
        if exc.status == 401 and exc.code == "missing_api_key":
            raise error(
                401, "authentication_error", "not_authenticated",
                "Authentication credentials were not provided.",
            ) from None
        if exc.status == 401:
            raise error(
                401, "authentication_error", "authentication_failed",
                "Incorrect authentication credentials.",
            ) from None
        raise error(exc.status, "server_error", "error", exc.message) from None
    if environment not in (CURRENT, identity.org_id):
        raise error(
            403, "authentication_error", "permission_denied",
            "You don't have access to the project.",
        )
    for scope in scopes:
        if not allows(identity.scopes, scope):
            raise error(
                403, "authentication_error", "permission_denied",
                f"API key missing required scope '{POSTHOG_NAMES.get(scope, scope)}'",
            )
    return identity


async def json_object(request: Request, limit: int = MAX_BODY_BYTES) -> dict[str, Any]:
    """The body as a JSON object (an empty body is ``{}``), or DRF's 400; 413 over ``limit``
    bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise error(413, "invalid_request", "request_too_large", "Request body is too large.")
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > limit:
            raise error(413, "invalid_request", "request_too_large", "Request body is too large.")
    if not raw.strip():
        return {}
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise error(400, "validation_error", "parse_error", f"JSON parse error - {exc}") from None
    if not isinstance(body, dict):
        raise invalid(
            "non_field_errors",
            f"Invalid data. Expected a dictionary, but got {_drf_type(body)}.",
            code="invalid",
        )
    return body


def _drf_type(value: Any) -> str:
    return {list: "list", str: "str", int: "int", float: "float", bool: "bool"}.get(
        type(value), type(value).__name__
    )


def page_bounds(request: Request) -> tuple[int, int]:
    """``limit`` and ``offset`` as DRF's LimitOffsetPagination reads them: a missing or
    invalid value is the default, ``limit`` is capped at :data:`MAX_LIMIT`."""
    return (
        _non_negative(request.query_params.get("limit"), DEFAULT_LIMIT, positive=True),
        _non_negative(request.query_params.get("offset"), 0),
    )


def _non_negative(raw: str | None, default: int, positive: bool = False) -> int:
    try:
        value = int(raw) if raw is not None else default
    except ValueError:
        return default
    if value < 0 or (positive and value == 0):
        return default
    return min(value, MAX_LIMIT) if positive else value


def page(request: Request, results: list[Any], count: int, limit: int, offset: int) -> Response:
    """``{"count", "next", "previous", "results"}`` with absolute ``next``/``previous``."""
    url = request.url
    following = (
        str(url.include_query_params(limit=limit, offset=offset + limit))
        if offset + limit < count
        else None
    )
    if offset <= 0:
        preceding = None
    elif offset - limit <= 0:
        preceding = str(url.include_query_params(limit=limit).remove_query_params("offset"))
    else:
        preceding = str(url.include_query_params(limit=limit, offset=offset - limit))
    return json_response(
        {"count": count, "next": following, "previous": preceding, "results": results}
    )
