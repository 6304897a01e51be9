"""Scores read endpoints: ``/v1/evals/*`` queries and ``/v1/dashboard/scores/query``
(reference §2.15, §2.16). ``POST /v1/evals/{requestId}`` (a score write) lives with the
annotations; these routes must be mounted before it so ``/v1/evals/query`` is not taken for
a request id.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from gateway.api.aggregate_base import AggregateApi
from logging_pipeline.query.evals import (
    EvalQuery,
    ScoresOverTime,
    build_evals_query,
    build_score_distributions_query,
    build_score_names_query,
    build_scores_over_time_query,
    evals,
    score_distributions,
    score_names,
    scores_over_time,
)


def evals_router(api: AggregateApi) -> APIRouter:
    router = APIRouter(tags=["Evals"])

    @router.get("/v1/evals/scores", summary="Get eval score names")
    async def names(request: Request) -> Response:
        """The distinct score names of the organization, sorted."""

        async def work(org_id: str) -> list[str]:
            return score_names(await api.run(build_score_names_query(org_id)))

        return await api.respond(request, work)

    @router.post("/v1/evals/query", summary="Query Evals")
    async def query_evals(request: Request) -> Response:
        """``EvalQueryParams`` -> ``Eval[]`` (per score: mean, min, max, count, over time)."""

        return await api.answer(request, EvalQuery.from_body, build_evals_query, evals)

    @router.post("/v1/evals/score-distributions/query", summary="Query Score Distributions")
    async def distributions(request: Request) -> Response:
        """``EvalQueryParams`` -> ``ScoreDistribution[]`` (``histogram(10)`` per score)."""

        return await api.answer(
            request, EvalQuery.from_body, build_score_distributions_query, score_distributions
        )

    @router.post("/v1/dashboard/scores/query", summary="Query Dashboard Scores", tags=["Dashboard"])
    async def dashboard_scores(request: Request) -> Response:
        """``DataOverTimeRequest`` -> ``{created_at_trunc, score_sum, score_key}[]``."""

        return await api.answer(
            request, ScoresOverTime.from_body, build_scores_over_time_query, scores_over_time
        )

    return router
