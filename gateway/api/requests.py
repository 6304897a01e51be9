"""``/v1/request/*`` read endpoints: query, query-clickhouse, query-ids and get-by-id.

The router only orchestrates: authenticate (headers -> org id), validate and compile with
:mod:`logging_pipeline.query` (always org-scoped, values bound as server-side params), run
the statement through the injected ``query`` callable, shape rows as ``HeliconeRequest``.
Dependencies are injected as plain async callables so the same router runs on the embedded
chdb store, a ClickHouse server, or a test double.

Body fields accepted by the two query endpoints: ``filter`` (required), ``offset``, ``limit``,
``sort``, ``isCached``, ``isScored``; ``includeInputs`` and ``isPartOfExperiment`` are
accepted and ignored (prompt inputs and experiments are not recorded); unknown keys are
ignored. ``/query`` and ``/query-clickhouse`` share one engine; both accept the legacy
``request``/``response``/``properties`` tables as well as ``request_response_rmt``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from gateway.api.envelope import fail, ok
from gateway.errors import GatewayError
from gateway.jsondepth import depth_message, too_deep
from logging_pipeline.bodies import BodyStoreError
from logging_pipeline.clickhouse import LogStoreError
from logging_pipeline.query import (
    FilterError,
    RequestQuery,
    bodies_of,
    build_get_query,
    build_ids_query,
    build_request_query,
    helicone_request,
    parse_request_ids,
)

logger = logging.getLogger(__name__)

QUERY_MAX_BODY_BYTES = 256 * 1024
"""The query API's body limit (below ``GATEWAY_MAX_BODY_BYTES`` unless that is lower): the
largest valid body (1,000 ids, or a filter of 500 conditions) is well under 100 KB, and
filter values travel to a ClickHouse server as URL parameters, which it caps at 1 MiB
(``http_max_uri_size``) — 256 KiB stays under that even fully percent-encoded."""
QUERY_TIMEOUT_SECONDS = 30.0
"""How long a query may wait for the log store before the answer is a 503."""
RETRY_AFTER_SECONDS = 5
_UNAVAILABLE = "The request log store is unavailable; try again shortly."

Authenticate = Callable[[dict[str, str]], Awaitable[str]]
RunQuery = Callable[[str, Mapping[str, Any]], Awaitable[list[dict[str, Any]]]]
GetBodies = Callable[[str, str], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True, slots=True)
class RequestApiDeps:
    """What the request API needs from the rest of the gateway.

    ``authenticate``: lower-cased request headers -> organization id; raises
    ``GatewayError(401, ...)`` for a missing or bad key.
    ``query``: runs parameterised SQL (``{name:Type}`` placeholders, params are str/int/float/
    bool) and returns rows as dicts (UUIDs as str, DateTime64 as datetime or ISO string, Map
    as dict, Nullable as None).
    ``get_bodies``: ``(org_id, request_id)`` -> the stored body document (``{"token",
    "request", "response", "request_headers", "response_headers"}``) or None.
    ``max_body_bytes``: larger request bodies are a 413.
    ``query_timeout``: seconds a query may take before the store counts as unavailable (503).
    """

    authenticate: Authenticate
    query: RunQuery
    get_bodies: GetBodies
    max_body_bytes: int = QUERY_MAX_BODY_BYTES
    query_timeout: float = QUERY_TIMEOUT_SECONDS


class NotFound(Exception):
    """The requested object does not exist in the caller's organization (404)."""


class _TooLarge(Exception):
    """The request body is over ``RequestApiDeps.max_body_bytes``."""


class _StoreUnavailable(Exception):
    """The log store did not answer in time."""


Work = Callable[[str], Awaitable[Any]]


async def respond(request: Request, deps: RequestApiDeps, work: Work, *, kind: str,
                  subject: str) -> Response:  # fmt: skip
    """Authenticate, run ``work(org_id)`` and answer its result as ``{data, error: null}``.

    One set of status rules for every read API (the request API and the aggregate one):
    400 for what the caller sent wrong, 401/403 from authentication, 404 :class:`NotFound`,
    413 over the body limit, 503 with ``Retry-After`` when the store does not answer, 500
    only for a statement the engine refused or a bug. ``kind`` names the API in the log
    (``"<kind> query failed"``), ``subject`` what a 500 says was being queried.
    """
    failed = f"Internal error while querying {subject}"
    try:
        headers = {k.lower(): v for k, v in request.headers.items()}
        org_id = await deps.authenticate(headers)
        return ok(await work(org_id))
    except GatewayError as exc:
        return fail(exc.status, exc.message)
    except FilterError as exc:
        return fail(400, exc.message)
    except NotFound as exc:
        return fail(404, str(exc))
    except ClientDisconnect:  # gone, or cut off by the body timeout (gateway/protocol.py)
        return fail(499, "client disconnected")  # sent nowhere; not a failure to log
    except _TooLarge:
        return fail(413, f"Request body is larger than the query API's limit of "
                         f"{deps.max_body_bytes} bytes.")  # fmt: skip
    except (_StoreUnavailable, LogStoreError, BodyStoreError, OSError, TimeoutError) as exc:
        if _engine_refused(exc):
            logger.error("%s query failed: %s %s: %s", kind, request.method,
                         request.url.path, exc)  # fmt: skip
            return fail(500, failed)
        logger.warning("log store unavailable for %s %s: %r", request.method,
                       request.url.path, exc)  # fmt: skip
        return store_unavailable()
    except Exception:
        logger.exception("%s query failed: %s %s", kind, request.method, request.url.path)
        return fail(500, failed)


def store_unavailable() -> Response:
    """The 503 of a log store that did not answer (or take a write): retry in a few seconds."""
    response = fail(503, _UNAVAILABLE)
    response.headers["retry-after"] = str(RETRY_AFTER_SECONDS)
    return response


async def run_statement(deps: RequestApiDeps, sql: str, params: Mapping[str, Any]
                        ) -> list[dict[str, Any]]:  # fmt: skip
    """The rows of one statement, or :class:`_StoreUnavailable` (503) after the deadline."""
    try:
        return await asyncio.wait_for(deps.query(sql, params), deps.query_timeout)
    except TimeoutError:
        raise _StoreUnavailable(f"no answer in {deps.query_timeout:g} s") from None


def request_router(deps: RequestApiDeps) -> APIRouter:
    """The ``/v1/request`` read endpoints bound to ``deps``."""
    router = APIRouter(tags=["Request"])

    async def respond_requests(request: Request, work: Work) -> Response:
        return await respond(request, deps, work, kind="request", subject="requests")

    async def run_query(sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return await run_statement(deps, sql, params)

    async def json_body(request: Request) -> Any:
        return await _json_body(request, deps.max_body_bytes)

    async def list_requests(request: Request) -> Response:
        async def work(org_id: str) -> list[dict[str, Any]]:
            query = RequestQuery.from_body(await json_body(request))
            compiled = build_request_query(org_id, query)
            rows = await run_query(compiled.sql, compiled.params)
            return [helicone_request(row) for row in _dedupe(rows)]

        return await respond_requests(request, work)

    @router.post("/v1/request/query-clickhouse", summary="Get Requests")
    async def query_clickhouse(request: Request) -> Response:
        """``RequestQueryParams`` -> ``HeliconeRequest[]`` (bulk-optimised in Helicone)."""
        return await list_requests(request)

    @router.post("/v1/request/query", summary="Get Requests (Point Queries)")
    async def query(request: Request) -> Response:
        """Same body, engine and answer as ``/query-clickhouse``."""
        return await list_requests(request)

    @router.post("/v1/request/query-ids", summary="Get Requests by IDs")
    async def query_ids(request: Request) -> Response:
        """``{"requestIds": [...]}`` (<= 1000); unknown ids are dropped; input order is kept."""

        async def work(org_id: str) -> list[dict[str, Any]]:
            ids = parse_request_ids(await json_body(request))
            if not ids:
                return []
            compiled = build_ids_query(org_id, ids)
            found = await run_query(compiled.sql, compiled.params)
            rows: dict[str, dict[str, Any]] = {}
            for row in found:  # newest first: a reused id shows its latest request
                rows.setdefault(str(row["request_id"]), row)
            return [helicone_request(rows[i]) for i in ids if i in rows]

        return await respond_requests(request, work)

    @router.get("/v1/request/{requestId}", summary="Get Single Request")
    async def get_request(request: Request, requestId: str) -> Response:
        """One request; ``includeBody=true`` inlines the stored request/response bodies."""

        async def work(org_id: str) -> dict[str, Any]:
            include_body = _flag(request.query_params.get("includeBody"), "includeBody")
            compiled = build_get_query(org_id, requestId)
            rows = await run_query(compiled.sql, compiled.params)
            if not rows:
                raise NotFound(f"Request {requestId} not found")
            row = rows[0]
            if not include_body:
                return helicone_request(row)
            document = await deps.get_bodies(org_id, str(row["request_id"]))
            return helicone_request(row, bodies_of(row, document))

        return await respond_requests(request, work)

    return router


def include_request_api(app: FastAPI, deps: RequestApiDeps) -> None:
    """Mount the request API on ``app`` (the one call :mod:`gateway.app` needs)."""
    app.include_router(request_router(deps))


async def _json_body(request: Request, limit: int, *, required: bool = True) -> Any:
    """The JSON body: 400 when malformed or too deep, 413 over ``limit``; when empty, a 400
    or (``required=False``, for bodies Helicone does not require) ``{}``."""
    raw = await _read_body(request, limit)
    if not raw.strip():
        if not required:
            return {}
        raise FilterError("request body is empty; expected a JSON object")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise FilterError(f"request body is not valid JSON: {exc}") from None
    if too_deep(raw, body):  # the data plane's rule, so one body gets one answer everywhere
        raise FilterError(depth_message())
    return body


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, refused (413) from ``Content-Length`` before reading, or once over ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            length = int(declared)
        except ValueError:
            raise FilterError(f"invalid Content-Length header: {declared!r}") from None
        if length > limit:
            raise _TooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


_AVAILABILITY_CODES = frozenset({159, 202, 209, 210, 241, 242, 394})
"""ClickHouse error codes that mean "busy or unreachable", not "bad statement": TIMEOUT_EXCEEDED,
TOO_MANY_SIMULTANEOUS_QUERIES, SOCKET_TIMEOUT, NETWORK_ERROR, MEMORY_LIMIT_EXCEEDED,
TABLE_IS_READ_ONLY, QUERY_WAS_CANCELLED."""


def _engine_refused(exc: BaseException) -> bool:
    """Whether the store answered and refused the statement (a 500: the gateway's own bug).

    Everything the caller controls is validated before the query is built, so a statement
    the engine rejects is ours to fix, and retrying will not help; anything else from the
    store (a child that exited, a refused connection, a timeout, a busy server) is a 503.
    """
    if not isinstance(exc, LogStoreError):
        return False
    text = str(exc)
    marker = text.find("DB::Exception")
    if marker < 0:
        return False
    code = re.search(r"Code: (\d+)", text) or re.search(r"error code (\d+)", text)
    return code is None or int(code.group(1)) not in _AVAILABILITY_CODES


def _flag(value: str | None, name: str) -> bool:
    if value is None or value.lower() in ("", "false", "0"):
        return False
    if value.lower() in ("true", "1"):
        return True
    raise FilterError(f"{name} must be true or false, got {value!r}")


def _dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the first row per request id (``FINAL`` already merges; this guards adapters)."""
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for row in rows:
        key = str(row["request_id"])
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out
