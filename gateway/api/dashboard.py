"""``POST /v1/dashboard/series/query``: the dashboard's series (shape documented in
:mod:`logging_pipeline.query.dashboard` and the README), and the one call that mounts every
aggregate endpoint on the app.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from gateway.api.aggregate_base import AggregateApi
from gateway.api.evals import evals_router
from gateway.api.requests import RequestApiDeps
from gateway.api.sessions import session_router
from gateway.api.users import user_router
from logging_pipeline.query.builder import CompiledQuery
from logging_pipeline.query.dashboard import (
    FEW_GROUPS,
    SeriesQuery,
    build_cache_savings_query,
    build_series_query,
    cache_savings,
    fits,
    series,
)
from logging_pipeline.query.rollup import (
    build_rollup_series_query,
    build_stale_hours_query,
    rollup_cache_savings,
    rollup_window,
    stale_hours,
)


def dashboard_router(api: AggregateApi) -> APIRouter:
    router = APIRouter(tags=["Dashboard"])

    @router.post("/v1/dashboard/series/query", summary="Dashboard series")
    async def series_query(request: Request) -> Response:
        """Requests, errors, cost, tokens, latency and TTFT per bucket, optionally grouped.

        From the hourly rollups where they answer exactly (logging_pipeline/query/rollup.py:
        two statements, the hours to read raw, then the series), else from the rows.
        """

        async def work(org_id: str) -> Any:
            query = SeriesQuery.from_body(await api.body(request))

            async def rows_of(build: Callable[[bool], CompiledQuery]) -> list[dict[str, Any]]:
                if query.group_by in FEW_GROUPS:  # one pass when every group is a top one
                    rows = await api.run(build(True))
                    if fits(query, rows):
                        return rows
                return await api.run(build(False))

            window = rollup_window(query)
            if window is None:
                answer = series(
                    query, await rows_of(lambda every: build_series_query(org_id, query, every))
                )
                if query.group_by is None:
                    saved = await api.run(build_cache_savings_query(org_id, query))
                    answer["cache_savings"] = cache_savings(saved)
                return answer
            stale = stale_hours(await api.run(build_stale_hours_query(org_id, window)))
            rows = await rows_of(
                lambda every: build_rollup_series_query(org_id, query, window, stale, every)
            )
            answer = series(query, rows)
            if query.group_by is None:  # the rollup keeps the savings: summed from its rows
                answer["cache_savings"] = rollup_cache_savings(rows)
            return answer

        return await api.respond(request, work)

    return router


def include_aggregate_api(app: FastAPI, deps: RequestApiDeps) -> None:
    """Mount sessions, users, properties, evals and dashboard reads on ``app``.

    Call it before any router with ``/v1/evals/{requestId}``, which would otherwise take
    ``POST /v1/evals/query``.
    """
    api = AggregateApi(deps)
    for router in (session_router(api), user_router(api), evals_router(api),
                   dashboard_router(api)):  # fmt: skip
        app.include_router(router)
