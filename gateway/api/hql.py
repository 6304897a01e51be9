"""``/v1/helicone-sql/*``: HQL execute, schema, CSV download and saved queries.

The router authenticates like the request API (a key with the log's read scope; its org
scopes everything), applies the per-org rate limits (100 executes and 10 downloads a minute,
on the gateway's rate-limit counters: in process, or Redis when ``REDIS_URL`` is set), and
hands the SQL to :class:`~logging_pipeline.hql.HqlEngine`, which validates it, scopes it to
the org and runs it read-only. Errors are Helicone's envelope with an HQL error object:
``{"data": null, "error": {"code", "message", "details"}}`` at the code's status; a missing
or bad key keeps the request API's plain ``{"data": null, "error": "..."}`` 401/403.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from gateway.api.envelope import fail, ok
from gateway.api.hql_service import HqlService
from gateway.errors import GatewayError
from gateway.store import SavedQueryNameExists, SavedQueryStore
from logging_pipeline.bodies import BodyStoreError
from logging_pipeline.hql import (
    DEFAULT_LIMIT,
    DOWNLOAD_MAX_ROWS,
    EXECUTE_MAX_ROWS,
    HqlError,
    HqlResult,
    rows_to_csv,
)
from logging_pipeline.hql.exports import LinkError
from logging_pipeline.hql.validate import check

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 256 * 1024
WALL_TIMEOUT_SECONDS = 35.0
"""The API's own bound: the engine stops a query at 30 s (``max_execution_time``); this
catches a store that does not answer at all."""
EXECUTE_PER_MINUTE = 100
DOWNLOAD_PER_MINUTE = 10
MAX_NAME_CHARS = 255

Authenticate = Callable[[dict[str, str]], Awaitable[str]]
TakeQuota = Callable[[str, int, int], Awaitable[int | None]]


@dataclass(frozen=True, slots=True)
class HqlApiDeps:
    """``authenticate``: headers -> org id (401/403 as ``GatewayError``); ``service``: the
    engine and exports; ``saved``: the saved-query store; ``take_quota``: one unit of a
    named per-minute quota (None: admitted, else seconds to wait); ``enabled``: off answers
    403 ``HQL_FEATURE_NOT_ENABLED``."""

    authenticate: Authenticate
    service: HqlService
    saved: SavedQueryStore
    take_quota: TakeQuota
    enabled: bool = True
    max_body_bytes: int = MAX_BODY_BYTES
    wall_timeout: float = WALL_TIMEOUT_SECONDS


def _error(exc: HqlError, retry_after: int | None = None) -> Response:
    response = Response(
        orjson.dumps({"data": None, "error": exc.body()}),
        status_code=exc.status,
        media_type="application/json",
    )
    if retry_after is not None:
        response.headers["retry-after"] = str(retry_after)
    elif exc.status == 503:
        response.headers["retry-after"] = "5"
    return response


class _RateLimited(Exception):
    def __init__(self, wait: int, what: str) -> None:
        super().__init__(what)
        self.wait = wait
        self.what = what


def hql_router(deps: HqlApiDeps) -> APIRouter:
    router = APIRouter(tags=["HeliconeSql"])
    service = deps.service

    async def respond(
        request: Request, work: Callable[[str], Awaitable[Any]], *, needs_engine: bool = True
    ) -> Response:
        try:
            headers = {k.lower(): v for k, v in request.headers.items()}
            org_id = await deps.authenticate(headers)
            if not deps.enabled:
                raise HqlError("HQL_FEATURE_NOT_ENABLED", "GATEWAY_HQL_ENABLED is false")
            if needs_engine and (reason := service.unavailable()) is not None:
                raise HqlError("HQL_STORE_UNAVAILABLE", reason)
            return ok(await work(org_id))
        except GatewayError as exc:
            return fail(exc.status, exc.message)
        except HqlError as exc:
            if exc.status >= 500:
                logger.warning("HQL %s %s: %s", request.method, request.url.path, exc)
            return _error(exc)
        except _RateLimited as exc:
            return _error(HqlError("HQL_RATE_LIMITED", exc.what), retry_after=exc.wait)
        except ClientDisconnect:
            return fail(499, "client disconnected")
        except Exception:
            logger.exception("HQL %s %s failed", request.method, request.url.path)
            return _error(HqlError("HQL_UNEXPECTED_ERROR"))

    async def limit(org_id: str, kind: str, per_minute: int) -> None:
        wait = await deps.take_quota(f"hql-{kind}|{org_id}", per_minute, 60)
        if wait is not None:
            raise _RateLimited(wait, f"more than {per_minute} HQL {kind}s a minute")

    async def run(
        sql: object, org_id: str, max_rows: int, default_limit: int, *, as_json: bool = True
    ) -> HqlResult:
        try:
            return await asyncio.wait_for(
                service.engine.run(sql, org_id, max_rows, default_limit, as_json=as_json),
                deps.wall_timeout,
            )
        except TimeoutError:
            raise HqlError("HQL_QUERY_TIMEOUT", "no answer from the store in time") from None

    @router.post("/v1/helicone-sql/execute", summary="Execute an HQL query")
    async def execute(request: Request) -> Response:
        """``{"sql"}`` -> ``{rows, elapsedMilliseconds, size, rowCount}`` (LIMIT 100 unless
        given, at most 10,000 rows)."""

        async def work(org_id: str) -> dict[str, Any]:
            sql = _sql_of(await _json_object(request, deps.max_body_bytes))
            await limit(org_id, "execute", EXECUTE_PER_MINUTE)
            result = await run(sql, org_id, EXECUTE_MAX_ROWS, DEFAULT_LIMIT)
            data = dict(result.as_dict())
            if await service.add_bodies(org_id, result.rows):
                data["size"] = len(orjson.dumps(result.rows))
            return data

        return await respond(request, work)

    @router.get("/v1/helicone-sql/schema", summary="HQL tables and columns")
    async def schema(request: Request) -> Response:
        async def work(_org_id: str) -> list[dict[str, Any]]:
            return await service.engine.schema()

        return await respond(request, work)

    @router.post("/v1/helicone-sql/download", summary="Run HQL and get a CSV link")
    async def download(request: Request) -> Response:
        """``{"sql"}`` -> an expiring URL of the result as CSV (at most 300,000 rows; a query
        without LIMIT exports up to that)."""

        async def work(org_id: str) -> str:
            sql = _sql_of(await _json_object(request, deps.max_body_bytes))
            await limit(org_id, "download", DOWNLOAD_PER_MINUTE)
            result = await run(sql, org_id, DOWNLOAD_MAX_ROWS, DOWNLOAD_MAX_ROWS, as_json=False)
            if not result.rows:
                raise HqlError("HQL_NO_DATA_RETURNED")
            data = await asyncio.to_thread(rows_to_csv, result.rows)
            try:
                link = await service.exports().save(org_id, data)
            except (BodyStoreError, OSError) as exc:
                raise HqlError("HQL_CSV_UPLOAD_FAILED", type(exc).__name__) from exc
            except LinkError as exc:
                raise HqlError("HQL_CSV_URL_NOT_RETURNED", str(exc)) from exc
            if not link:
                raise HqlError("HQL_CSV_URL_NOT_RETURNED")
            if link.startswith("/"):
                link = str(request.base_url).rstrip("/") + link
            return link

        return await respond(request, work)

    @router.get("/v1/helicone-sql/exports/{org_id}/{name}", include_in_schema=False)
    async def export_file(request: Request, org_id: str, name: str) -> Response:
        """A local export, for a valid unexpired signed link (no API key: the link is it)."""
        params = request.query_params
        try:
            path = await asyncio.to_thread(
                service.local_exports.open,
                org_id,
                name,
                params.get("expires", ""),
                params.get("signature", ""),
            )
            data = await asyncio.to_thread(path.read_bytes)
        except LinkError as exc:
            return fail(403, f"Forbidden: {exc}")
        except OSError:
            return fail(404, "no such export")
        return Response(
            data,
            media_type="text/csv; charset=utf-8",
            headers={
                "content-disposition": f'attachment; filename="{name}"',
                "cache-control": "private, no-store",
            },
        )

    saved = deps.saved

    @router.get("/v1/helicone-sql/saved-queries", summary="List saved queries")
    async def list_saved(request: Request) -> Response:
        async def work(org_id: str) -> list[dict[str, Any]]:
            return [query.as_dict() for query in await saved.list_all(org_id)]

        return await respond(request, work, needs_engine=False)

    @router.post("/v1/helicone-sql/saved-query", summary="Create a saved query")
    async def create_saved(request: Request) -> Response:
        async def work(org_id: str) -> dict[str, Any]:
            body = await _json_object(request, deps.max_body_bytes)
            name, sql = _name_of(body.get("name")), _saved_sql(body.get("sql"))
            try:
                return (await saved.create(org_id, name, sql)).as_dict()
            except SavedQueryNameExists:
                raise HqlError("HQL_QUERY_NAME_EXISTS", f"name {name!r} is taken") from None

        return await respond(request, work, needs_engine=False)

    @router.get("/v1/helicone-sql/saved-query/{query_id}", summary="Get a saved query")
    async def get_saved(request: Request, query_id: str) -> Response:
        async def work(org_id: str) -> dict[str, Any]:
            found = await saved.get(org_id, query_id)
            if found is None:
                raise HqlError("HQL_QUERY_NOT_FOUND", f"no saved query {query_id}")
            return found.as_dict()

        return await respond(request, work, needs_engine=False)

    @router.put("/v1/helicone-sql/saved-query/{query_id}", summary="Update a saved query")
    async def update_saved(request: Request, query_id: str) -> Response:
        async def work(org_id: str) -> dict[str, Any]:
            body = await _json_object(request, deps.max_body_bytes)
            name = _name_of(body["name"]) if body.get("name") is not None else None
            sql = _saved_sql(body["sql"]) if body.get("sql") is not None else None
            if name is None and sql is None:
                raise HqlError("HQL_INVALID_REQUEST", "give 'name' and/or 'sql'")
            try:
                updated = await saved.update(org_id, query_id, name, sql)
            except SavedQueryNameExists:
                raise HqlError("HQL_QUERY_NAME_EXISTS", f"name {name!r} is taken") from None
            if updated is None:
                raise HqlError("HQL_QUERY_NOT_FOUND", f"no saved query {query_id}")
            return updated.as_dict()

        return await respond(request, work, needs_engine=False)

    @router.delete("/v1/helicone-sql/saved-query/{query_id}", summary="Delete a saved query")
    async def delete_saved(request: Request, query_id: str) -> Response:
        async def work(org_id: str) -> None:
            if not await saved.delete(org_id, query_id):
                raise HqlError("HQL_QUERY_NOT_FOUND", f"no saved query {query_id}")

        return await respond(request, work, needs_engine=False)

    return router


def include_hql_api(app: FastAPI, deps: HqlApiDeps) -> None:
    """Mount the HQL API on ``app`` (the one call :mod:`gateway.app` needs)."""
    app.include_router(hql_router(deps))


def _sql_of(body: dict[str, Any]) -> object:
    if "sql" not in body:
        raise HqlError("HQL_MISSING_QUERY_SQL", 'the body must be {"sql": "SELECT ..."}')
    return body["sql"]


def _name_of(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise HqlError("HQL_MISSING_QUERY_NAME", "'name' must be a non-empty string")
    if len(value) >= MAX_NAME_CHARS:
        raise HqlError("HQL_QUERY_NAME_TOO_LONG", f"{len(value)} characters")
    return value.strip()


def _saved_sql(value: object) -> str:
    """Saved SQL must pass the same validator as executed SQL (so a saved query runs)."""
    check(value)
    assert isinstance(value, str)
    return value


async def _json_object(request: Request, limit: int) -> dict[str, Any]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HqlError("HQL_INVALID_REQUEST", f"the body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HqlError("HQL_INVALID_REQUEST", f"the body is larger than {limit} bytes")
        chunks.append(chunk)
    try:
        body = orjson.loads(b"".join(chunks))
    except orjson.JSONDecodeError as exc:
        raise HqlError("HQL_INVALID_REQUEST", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise HqlError("HQL_INVALID_REQUEST", "the body must be a JSON object")
    return body
