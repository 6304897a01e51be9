"""``POST /v1/dashboard/series/query``: the dashboard's series (shape documented in
:mod:`logging_pipeline.query.dashboard` and the README), and the one call that mounts every
aggregate endpoint on the app.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from gateway.api.aggregate_base import AggregateApi
from gateway.api.evals import evals_router
from gateway.api.requests import RequestApiDeps
from gateway.api.sessions import session_router
from gateway.api.users import user_router
from logging_pipeline.query.dashboard import SeriesQuery, build_series_query, series


def dashboard_router(api: AggregateApi) -> APIRouter:
    router = APIRouter(tags=["Dashboard"])

    @router.post("/v1/dashboard/series/query", summary="Dashboard series")
    async def series_query(request: Request) -> Response:
        """Requests, errors, cost, tokens, latency and TTFT per bucket, optionally grouped."""

        return await api.answer(request, SeriesQuery.from_body, build_series_query, series)

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
