"""What every aggregate endpoint (sessions, users, properties, evals, dashboard) does around
its query: authenticate, read the JSON body, run the statement with a deadline, and answer in
Helicone's envelope with the request API's status rules (see :mod:`gateway.api.requests`):
400 for anything the caller sent wrong, 401/403 from authentication, 404 for a missing
object, 503 (with ``Retry-After``) when the log store does not answer, 500 only for a
statement the engine refused (our bug), never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from gateway.api.envelope import fail, ok
from gateway.api.requests import (
    _UNAVAILABLE,
    RETRY_AFTER_SECONDS,
    RequestApiDeps,
    _engine_refused,
    _json_body,
    _read_body,
    _TooLarge,
)
from gateway.errors import GatewayError
from gateway.jsondepth import depth_message, too_deep
from logging_pipeline.bodies import BodyStoreError
from logging_pipeline.clickhouse import LogStoreError
from logging_pipeline.query import CompiledQuery, FilterError

logger = logging.getLogger(__name__)

Work = Callable[[str], Awaitable[Any]]


class NotFound(Exception):
    """The object asked for does not exist in the caller's organization (404)."""


class _StoreUnavailable(Exception):
    """The log store did not answer in time."""


class AggregateApi:
    """One per app: the shared handling, bound to the request API's dependencies."""

    def __init__(self, deps: RequestApiDeps) -> None:
        self.deps = deps

    async def respond(self, request: Request, work: Work) -> Response:
        """Run ``work(org_id)`` and answer its result as ``{data, error: null}``."""
        try:
            headers = {k.lower(): v for k, v in request.headers.items()}
            org_id = await self.deps.authenticate(headers)
            return ok(await work(org_id))
        except GatewayError as exc:
            return fail(exc.status, exc.message)
        except FilterError as exc:
            return fail(400, exc.message)
        except NotFound as exc:
            return fail(404, str(exc))
        except ClientDisconnect:
            return fail(499, "client disconnected")
        except _TooLarge:
            return fail(
                413,
                f"Request body is larger than the query API's limit of "
                f"{self.deps.max_body_bytes} bytes.",
            )
        except (_StoreUnavailable, LogStoreError, BodyStoreError, OSError, TimeoutError) as exc:
            if _engine_refused(exc):
                logger.error(
                    "aggregate query failed: %s %s: %s", request.method, request.url.path, exc
                )
                return fail(500, "Internal error while querying the request log")
            logger.warning(
                "log store unavailable for %s %s: %r", request.method, request.url.path, exc
            )
            response = fail(503, _UNAVAILABLE)
            response.headers["retry-after"] = str(RETRY_AFTER_SECONDS)
            return response
        except Exception:
            logger.exception("aggregate query failed: %s %s", request.method, request.url.path)
            return fail(500, "Internal error while querying the request log")

    async def run(self, compiled: CompiledQuery) -> list[dict[str, Any]]:
        """The rows of one statement, or :class:`_StoreUnavailable` after the deadline."""
        try:
            return await asyncio.wait_for(
                self.deps.query(compiled.sql, compiled.params), self.deps.query_timeout
            )
        except TimeoutError:
            raise _StoreUnavailable(f"no answer in {self.deps.query_timeout:g} s") from None

    async def body(self, request: Request) -> Any:
        """The JSON body (400 when absent or malformed; 413 over the limit)."""
        return await _json_body(request, self.deps.max_body_bytes)

    async def optional_body(self, request: Request) -> Any:
        """The JSON body, or ``{}`` when there is none (bodies Helicone does not require)."""
        raw = await _read_body(request, self.deps.max_body_bytes)
        if not raw.strip():
            return {}
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise FilterError(f"request body is not valid JSON: {exc}") from None
        if too_deep(raw, body):
            raise FilterError(depth_message())
        return body
