"""``/v1/session/*`` read endpoints: query, metrics and the trace tree (reference §2.12, §4.1).

The statements come from :mod:`logging_pipeline.query.sessions` and
:mod:`logging_pipeline.query.trace`; this module only routes. Session feedback
(``POST /v1/session/{sessionId}/feedback``) is an annotation, served elsewhere.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.api.aggregate_base import AggregateApi, NotFound
from logging_pipeline.query.sessions import (
    SessionMetricsQuery,
    SessionQuery,
    build_session_metrics_query,
    build_session_page_query,
    build_session_rows_query,
    session_metrics,
    session_page,
)
from logging_pipeline.query.trace import build_trace_query, session_trace


def session_router(api: AggregateApi) -> APIRouter:
    router = APIRouter(tags=["Session"])

    @router.post("/v1/session/query", summary="Query Sessions")
    async def query_sessions(request: Request) -> Response:
        """``SessionQueryParams`` -> ``SessionResult[]``, newest session first.

        Two statements: the page's session ids from narrow columns, then the page's
        sessions aggregated (see ``build_session_page_query``).
        """

        async def work(org_id: str) -> Any:
            query = SessionQuery.from_body(await api.body(request))
            page = await api.run(build_session_page_query(org_id, query))
            compiled = build_session_rows_query(org_id, query, page)
            return session_page(page, [] if compiled is None else await api.run(compiled))

        return await api.respond(request, work)

    @router.post("/v1/session/metrics/query", summary="Query Session Metrics")
    async def session_metrics_query(request: Request) -> Response:
        """``SessionMetricsQueryParams`` -> ``SessionMetrics`` (clipped histograms, means)."""

        return await api.answer(
            request,
            SessionMetricsQuery.from_body,
            build_session_metrics_query,
            lambda _, rows: session_metrics(rows),
        )

    @router.get("/v1/session/{sessionId}/trace", summary="Session trace tree")
    async def trace(request: Request, sessionId: str) -> Response:
        """A session's requests ordered by path and time, and its path tree with totals."""

        async def work(org_id: str) -> dict[str, Any]:
            rows = await api.run(build_trace_query(org_id, sessionId))
            document = session_trace(sessionId, rows)
            if document is None:
                raise NotFound(f"Session {sessionId} not found")
            return document

        return await api.respond(request, work)

    return router
