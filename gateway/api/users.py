"""``/v1/user/*`` and ``/v1/property/*`` read endpoints (reference §2.13, §2.14, §4.2, §4.3).

Statements: :mod:`logging_pipeline.query.users` and :mod:`logging_pipeline.query.properties`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.api.aggregate_base import AggregateApi
from logging_pipeline.query.builder import CompiledQuery
from logging_pipeline.query.properties import (
    build_property_keys_query,
    build_property_values_query,
    property_keys,
    property_values,
)
from logging_pipeline.query.user_rollup import (
    build_rollup_user_count_query,
    build_rollup_user_metrics_query,
    build_stale_days_query,
    stale_days,
    user_rollup_window,
)
from logging_pipeline.query.users import (
    UserMetricsQuery,
    build_has_users_query,
    build_user_count_query,
    build_user_metrics_query,
    build_user_overview_query,
    build_user_query,
    metrics_page,
    user_overview,
    user_rows,
)


def _as_is(body: Any) -> Any:
    """The body itself: these statements' builders validate the body as they read it."""
    return body


async def _user_metrics_statements(api: AggregateApi, org_id: str, query: UserMetricsQuery
                                   ) -> tuple[CompiledQuery, CompiledQuery]:  # fmt: skip
    """(page, count) statements: through the per-day user rollup when it can answer
    (``logging_pipeline.query.user_rollup``: one small statement first, for the days written
    since their rollup), else from the request rows."""
    window = user_rollup_window(query)
    if window is None:
        return build_user_metrics_query(org_id, query), build_user_count_query(org_id, query)
    stale = stale_days(await api.run(build_stale_days_query(org_id, window)))
    return (
        build_rollup_user_metrics_query(org_id, query, window, stale),
        build_rollup_user_count_query(org_id, query, window, stale),
    )


def user_router(api: AggregateApi) -> APIRouter:
    router = APIRouter(tags=["User"])

    @router.post("/v1/user/query", summary="Get User Data")
    async def users(request: Request) -> Response:
        """``UserQueryParams`` -> ``{cost, user_id, completion_tokens, prompt_tokens, count}[]``."""

        async def work(org_id: str) -> list[dict[str, Any]]:
            body = await api.optional_body(request)
            return user_rows(await api.run(build_user_query(org_id, body)))

        return await api.respond(request, work)

    @router.post("/v1/user/metrics/query", summary="Query User Metrics")
    async def user_metrics(request: Request) -> Response:
        """``UserMetricsQueryParams`` -> ``{hasUsers, count, users}``."""

        async def work(org_id: str) -> dict[str, Any]:
            query = UserMetricsQuery.from_body(await api.body(request))
            page, count = await _user_metrics_statements(api, org_id, query)
            users, total = metrics_page(await api.run(page))
            if total is None:  # an empty page carries no total: count on its own
                counted = await api.run(count)
                total = int(counted[0]["total"]) if counted else 0
            has_users = bool(total) or bool(await api.run(build_has_users_query(org_id)))
            return {"hasUsers": has_users, "count": total, "users": users}

        return await api.respond(request, work)

    @router.post("/v1/user/metrics-overview/query", summary="Query User Metrics Overview")
    async def user_metrics_overview(request: Request) -> Response:
        """``{useInterquartile, pSize, filter}`` -> ``{request_count, user_cost}`` histograms."""

        return await api.answer(
            request, _as_is, build_user_overview_query, lambda _, rows: user_overview(rows)
        )

    @router.post("/v1/property/query", summary="Query Properties", tags=["Property"])
    async def properties(request: Request) -> Response:
        """The organization's custom property keys (``Helicone-*`` excluded), sorted."""

        async def work(org_id: str) -> list[dict[str, str]]:
            await api.optional_body(request)  # Helicone's body is {}: anything is accepted
            return property_keys(await api.run(build_property_keys_query(org_id)))

        return await api.respond(request, work)

    @router.post("/v1/property/values/query", summary="Query Property Values", tags=["Property"])
    async def property_values_query(request: Request) -> Response:
        """One key's top values with requests, cost, tokens, latency and errors."""

        return await api.answer(
            request,
            _as_is,
            build_property_values_query,
            lambda body, rows: property_values(str(body["property"]), rows),
        )

    return router
