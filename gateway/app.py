"""The application factory.

``create_app(settings)`` returns the pure-ASGI :class:`gateway.dataplane.DataPlane`, which
answers the hot routes itself and hands everything else (lifespan included) to a FastAPI app:
the control and query plane, health, docs. The data plane sits *outside* the framework's
middleware stack on purpose — measured, the stack's per-request wrappers cost several percent
of throughput on routes that use none of them. Resources live in one
:class:`gateway.runtime.Runtime`, started and closed by the FastAPI lifespan.
"""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from gateway import __version__
from gateway.api import RequestApiDeps, include_request_api
from gateway.api.annotations import AnnotationApiDeps, include_annotation_api
from gateway.api.credits import CreditsApiDeps, include_credits_api
from gateway.api.dashboard import include_aggregate_api
from gateway.api.gateway_keys import GatewayKeyApiDeps, include_gateway_keys_api
from gateway.api.honeyhive import HoneyHiveApiDeps, include_honeyhive_api
from gateway.api.hql import HqlApiDeps, include_hql_api
from gateway.api.models import include_model_registry
from gateway.api.otel import OtelApiDeps, include_otel_api
from gateway.api.prompts_helicone import HeliconePromptDeps, include_helicone_prompt_api
from gateway.api.prompts_posthog import PostHogPromptDeps, include_posthog_prompt_api
from gateway.api.provider_keys import ProviderKeyApiDeps, include_provider_keys_api
from gateway.api.requests import QUERY_MAX_BODY_BYTES
from gateway.dashboard import DashboardDeps, include_dashboard
from gateway.dashboard.playground import PlaygroundDeps, include_playground
from gateway.dataplane import DataPlane
from gateway.errors import error_body
from gateway.ingest.honeyhive import BatchLimits
from gateway.lifecycle import not_ready_on_signal
from gateway.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from gateway.runtime import Runtime
from gateway.settings import Settings

YOUNG_GC_THRESHOLD = 20_000
"""Allocations (net of deallocations) between two collections of the youngest generation,
from startup on (CPython's default is 700). The request path makes no reference cycles (a
``gc.DEBUG_SAVEALL`` run under load found no garbage at all), yet at 700 the young generation
was collected about every 13 requests (each collection moves the in-flight requests' objects
out of it, and their later deaths are not counted back), each pass walking every in-flight
request's objects: 5 to 9% of the CPU per request of the OpenAI, Gemini and Bedrock paths alike
in two ``bench.ab`` runs at 32 connections (README, "Gemini and Bedrock inside the running
server"); at this threshold there was no collection in 5 s of load. The older generations
keep their default thresholds (10, 10), so a real cycle is still collected, once this many
objects have accumulated: a few MB of cyclic garbage at most."""


def create_app(settings: Settings, runtime: Runtime | None = None) -> DataPlane:
    """Build the gateway application for ``settings`` (nothing starts until the lifespan).

    The FastAPI app behind the data plane is ``create_app(...).app``.
    """
    runtime = runtime or Runtime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        # SIGTERM: /readyz says 503 from the signal on, while uvicorn drains (gateway/lifecycle.py).
        restore_signals = not_ready_on_signal(runtime.readiness.stop)
        # Everything allocated so far (framework, SDK types, routes) lives for the whole
        # process: moving it out of the collector's generations keeps full collections
        # from walking it again and again under load.
        gc.collect()
        gc.freeze()
        thresholds = gc.get_threshold()
        gc.set_threshold(YOUNG_GC_THRESHOLD, *thresholds[1:])
        try:
            yield
        finally:
            gc.set_threshold(*thresholds)
            restore_signals()
            await runtime.close()

    app = FastAPI(
        title="LLM gateway",
        version=__version__,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.runtime = runtime

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> Response:
        """Liveness, plus the log writer's counters (where every request record went), the
        response cache's and, with ``REDIS_URL``, Redis's (state ``down`` while it fails:
        the gateway then serves without cache and rate limits)."""
        status: dict[str, object] = {"status": "ok", "version": __version__}
        if runtime.writer is not None:
            status["logging"] = logging_health(runtime.writer.counters.as_dict())
        status["cache"] = runtime.cache.health()
        if runtime.redis is not None:
            status["redis"] = runtime.redis.health()
        status["ratelimit"] = runtime.limiter.health()
        body = orjson.dumps(status)
        return Response(body, media_type="application/json")

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> Response:
        """Readiness: every store this process needs answers (gateway/readiness.py); 503 when
        one does not. Unauthenticated, so it names checks and reasons, never hosts."""
        report = await runtime.readiness.check()
        return Response(
            report.body(),
            status_code=200 if report.ready else 503,
            media_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus' text format (gateway/metrics.py); with ``GATEWAY_METRICS_TOKEN``, only
        for a scrape that sends it as a bearer token."""
        status, body = runtime.metrics_answer(request.headers.get("authorization"))
        if status == 200:
            return Response(body, media_type=METRICS_CONTENT_TYPE)
        headers = {"WWW-Authenticate": 'Bearer realm="metrics"'} if status == 401 else None
        return Response(body, status_code=status, media_type="text/plain", headers=headers)

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        detail = exc.detail if isinstance(exc, HTTPException) else "Internal gateway error"
        if status == 404:
            detail = f"No route for {request.method} {request.url.path}"
        return Response(
            error_body(status, str(detail)), status_code=status, media_type="application/json"
        )

    async def validation_error(request: Request, exc: Exception) -> Response:
        message = str(exc.errors() if isinstance(exc, RequestValidationError) else exc)
        return Response(error_body(400, message), status_code=400, media_type="application/json")

    query_deps = RequestApiDeps(
        authenticate=runtime.authenticate_org,
        query=runtime.query_log,
        get_bodies=runtime.get_bodies,
        max_body_bytes=min(settings.max_body_bytes, QUERY_MAX_BODY_BYTES),
    )
    include_request_api(app, query_deps)
    # Before the annotations: POST /v1/evals/query must not be taken for /v1/evals/{requestId}.
    include_aggregate_api(app, query_deps)  # sessions, users, properties, evals, dashboard
    include_hql_api(
        app,
        HqlApiDeps(
            authenticate=runtime.authenticate_org,
            service=runtime.hql,
            saved=runtime.store.hql_queries,
            take_quota=runtime.limiter.take_quota,
            enabled=settings.hql_enabled,
        ),
    )
    include_annotation_api(
        app,
        AnnotationApiDeps(
            authenticate=runtime.authenticate_identity, annotate=runtime.annotate_log
        ),
    )
    include_honeyhive_api(
        app,
        HoneyHiveApiDeps(
            authenticate=runtime.authenticate_identity,
            sink=lambda: runtime.writer.submit if runtime.writer is not None else None,
            limits=BatchLimits(
                max_events=settings.honeyhive_max_batch_events,
                max_event_bytes=settings.honeyhive_max_event_bytes,
            ),
            max_body_bytes=settings.honeyhive_max_batch_bytes,
        ),
    )
    include_provider_keys_api(
        app,
        ProviderKeyApiDeps(
            authenticate=runtime.authenticate_identity,
            store=runtime.store.provider_keys,
            validator=runtime.key_validator,
            targets=runtime.targets,
            on_change=runtime.provider_keys.invalidate,
        ),
    )
    include_otel_api(
        app,
        OtelApiDeps(
            authenticate=runtime.authenticate_identity,
            sink=lambda: runtime.writer.submit if runtime.writer is not None else None,
            max_body_bytes=settings.otel_max_body_bytes,
            max_span_bytes=settings.otel_max_span_bytes,
        ),
    )
    include_helicone_prompt_api(
        app,
        HeliconePromptDeps(
            authenticate=runtime.authenticate_identity,
            store=runtime.store.prompts,
            on_change=runtime.prompts.changed,
            inputs=runtime.prompt_inputs,
            keyring=runtime.store.keyring,
            link_ttl_seconds=settings.prompt_body_link_ttl_seconds,
        ),
    )
    include_posthog_prompt_api(
        app,
        PostHogPromptDeps(
            authenticate=runtime.authenticate_identity,
            store=runtime.store.prompts,
            on_change=runtime.prompts.changed,
        ),
    )
    include_model_registry(app, lambda: runtime.listing)
    include_credits_api(
        app,
        CreditsApiDeps(
            authenticate=runtime.authenticate_identity,
            store=runtime.store,
            on_change=lambda org_id: runtime.meter.invalidate(org_id),
        ),
    )
    include_gateway_keys_api(
        app, GatewayKeyApiDeps(authenticate=runtime.authenticate_identity, store=runtime.store)
    )
    include_dashboard(
        app,
        DashboardDeps(
            authenticate=runtime.authenticate_identity,
            authenticate_digest=lambda digest: runtime.authenticator.authenticate_digest(digest),
            sessions=runtime.dashboard_sessions,
        ),
    )
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    plane = DataPlane(app, runtime, trusted_proxies=trusted_proxies())
    include_playground(
        app,
        PlaygroundDeps(
            sessions=runtime.dashboard_sessions,
            authenticate_digest=lambda digest: runtime.authenticator.authenticate_digest(digest),
            data_plane=lambda: plane,
        ),
    )
    return plane


def logging_health(counters: Mapping[str, object]) -> dict[str, object]:
    """The log writer's counters for ``/healthz``, with a state instead of error texts.

    ``/healthz`` is public, and an error text can name internal hosts (a store's address),
    so only numbers are shown, plus ``state``: ``"degraded"`` while the last write failed
    (records wait in the journal until the store is back), else ``"ok"``. The error itself
    is in the writer's log (a warning per failed write).
    """
    health: dict[str, object] = {
        name: value
        for name, value in counters.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    }
    health["state"] = "degraded" if counters.get("last_error") else "ok"
    return health


def trusted_proxies() -> str:
    """The proxies trusted to set ``X-Forwarded-For`` / ``X-Forwarded-Proto`` for the control
    plane: uvicorn's own variable and default (``FORWARDED_ALLOW_IPS``, ``127.0.0.1,::1``),
    read when the app is made, since ``gateway serve`` applies them itself
    (:class:`~gateway.dataplane.DataPlane`) rather than through uvicorn."""
    return os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1,::1")


def create_app_from_env() -> DataPlane:
    """Factory for ``uvicorn --factory``: settings from the environment."""
    return create_app(Settings())
