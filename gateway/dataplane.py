"""The data plane: a pure-ASGI middleware in front of the framework app.

Hot routes (unified ``/v1/chat/completions``, ``/v1/responses``, ``/v1/embeddings``,
``/v1/models`` and their un-prefixed twins, plus the passthrough paths) are answered here
without the framework's request objects; everything else falls through to the FastAPI app.

Per request, in order (ARCHITECTURE.md "One request, top to bottom"): assign the request id
and start the clock, authenticate, read and check the body, assemble a managed prompt (only
when the body names one: ``prompt_id``…), answer a cache hit, route to a
provider, count the request against its rate limit (``Helicone-RateLimit-Policy``: a 429
here, before anything is sent), relay; logging records every request.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

import orjson
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from gateway.api.otel import PATHS as INGEST_PATHS
from gateway.asgi import (
    ASGIApp,
    BodyTooLarge,
    ClientDisconnected,
    Message,
    Receive,
    Scope,
    Send,
    header_map,
    send_bytes,
)
from gateway.auth import bearer_token
from gateway.context import RequestContext, Route, parse_options
from gateway.errors import GatewayError, send_error
from gateway.fallbacks import FallbackRelay
from gateway.ingest.manual_routes import ManualLogRoute
from gateway.jsondepth import depth_message, too_deep
from gateway.keys import KEY_PATTERN
from gateway.options import RequestIds
from gateway.passthrough import LOG_MARK, Passthrough, is_log_endpoint
from gateway.prompts.assemble import PROMPT_FIELDS
from gateway.protocol import GROUP_COMMIT
from gateway.routing import Exchange
from gateway.runtime import Runtime
from ratelimit import CostEstimate, estimate_cost

logger = logging.getLogger("gateway.dataplane")

Handler = Callable[[Scope, Receive, Send, dict[str, str], RequestContext], Awaitable[None]]

_UNIFIED_ENDPOINTS = ("/chat/completions", "/responses", "/embeddings")


class DataPlane:
    """Pure-ASGI middleware: answers data-plane routes, passes the rest to ``app``.

    ``trusted_proxies``: the addresses whose ``X-Forwarded-For`` and ``X-Forwarded-Proto``
    rewrite the client and scheme that ``app`` sees (uvicorn's ``ProxyHeadersMiddleware``,
    put here in front of ``app`` alone; ``gateway serve`` turns uvicorn's own off). The data
    plane reads neither the client address nor the scheme, so its requests skip the header
    scan and one more coroutine frame at every resume; None: ``app`` is called as it is.
    """

    def __init__(
        self, app: ASGIApp, runtime: Runtime, *, trusted_proxies: str | None = None
    ) -> None:
        self.app = app
        # uvicorn types ASGI apps with its own scope and event classes: the same calls.
        self.control: ASGIApp = (
            app if trusted_proxies is None
            else cast(ASGIApp, ProxyHeadersMiddleware(cast(Any, app), trusted_proxies))
        )  # fmt: skip
        """Where everything but the data plane goes: ``app``, behind the proxy headers."""
        self.runtime = runtime
        self.passthrough = Passthrough(runtime)
        self.fallbacks = FallbackRelay(runtime)
        self.manual_log = ManualLogRoute(runtime)
        routes: dict[str, tuple[Route, Handler]] = {}
        for endpoint in _UNIFIED_ENDPOINTS:
            unified: tuple[Route, Handler] = ("unified", self._make_unified(endpoint))
            routes[endpoint] = routes["/v1" + endpoint] = unified
        routes["/models"] = routes["/v1/models"] = ("models", self._models)
        routes["/models/multimodal"] = routes["/v1/models/multimodal"] = (
            "models", self._multimodal_models,
        )  # fmt: skip
        self.routes = routes
        self.request_ids = RequestIds()
        finished = runtime.finished
        self.finish = finished.add if finished is not None else None
        """Once per request at its end: the metrics and the request line (None: both off)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            if scope["type"] == "lifespan":
                send = self._lifespan_send(scope, send)
            await self.control(scope, receive, send)
            return
        headers = header_map(scope)
        ctx = RequestContext(parse_options(headers, self.request_ids))
        path: str = scope["path"]
        handler: Handler | None
        if path in INGEST_PATHS:
            handler = None  # OpenTelemetry ingestion (gateway/api/otel.py), whatever the headers
        elif LOG_MARK in path and is_log_endpoint(path):
            handler = self.manual_log  # logged, never forwarded, whatever the headers
            ctx.route = "manual_log"
        elif ctx.options.fallbacks is not None:
            handler = self.fallbacks
            ctx.route = "fallbacks"
        elif ctx.options.target_url is not None:
            handler = self.passthrough.generic
            ctx.route = "target_url"
        elif (known := self.routes.get(path)) is not None:
            ctx.route, handler = known
        else:
            handler = self.passthrough.match(path)
            ctx.route = "passthrough"
        if handler is None:
            await self.control(scope, receive, _with_request_id(send, ctx))
            return
        error: GatewayError | None = None
        unexpected: Exception | None = None
        try:
            await handler(scope, receive, send, headers, ctx)
        except GatewayError as exc:
            error = exc
        except BodyTooLarge as exc:
            error = GatewayError(
                413,
                f"Request body is larger than the gateway's limit of {exc.limit} bytes "
                "(GATEWAY_MAX_BODY_BYTES).",
                code="request_too_large",
            )
        except ClientDisconnected:
            if ctx.capture is not None:
                ctx.capture.status = ctx.capture.status or 499
        except asyncio.CancelledError:
            # Cut by the server: a shutdown past GATEWAY_SHUTDOWN_GRACE_SECONDS (uvicorn cancels
            # what still runs). Answered 503 if nothing was sent yet, else the connection
            # closes mid-answer; recorded either way (what was relayed so far). Not re-raised:
            # uvicorn would log a traceback for each request cut.
            task = asyncio.current_task()
            if task is None or not task.cancelling():
                raise
            task.uncancel()
            logger.warning(
                "request %s cut by the shutdown (GATEWAY_SHUTDOWN_GRACE_SECONDS)", ctx.request_id
            )
            error = GatewayError(
                503, "The gateway is shutting down; retry the request.", code="shutting_down"
            )
        except Exception as exc:
            error = GatewayError(500, "Internal gateway error; the request id is in Helicone-Id.")
            unexpected = exc
        if error is not None:
            if error.status >= 500:
                # The path may carry a gateway key (the key-in-path forms): never log it.
                where = f"{scope['method']} {KEY_PATTERN.sub('{key}', path)}"
                self.runtime.request_failed(ctx, error, where, unexpected)
            capture = ctx.capture
            if capture is not None and not capture.status:
                capture.status = error.status
                capture.response_body = error.body()
            ctx.log()  # journaled before the answer goes out
            try:
                await send_error(send, error, ctx.base_headers)
            except Exception:  # pragma: no cover - the response had already started
                logger.warning("could not send error after response start: %s", error.message)
        if ctx.capture is not None:  # a client that left mid-request: its record all the same
            ctx.log()
        finish = self.finish
        if finish is not None:
            finish(ctx, error)

    def _lifespan_send(self, scope: Scope, send: Send) -> Send:
        """Once started, hand the server the record journal's group commit (logging on) in
        the lifespan state, where the server keeps one (``gateway serve``: uvicorn gives it
        to every connection's protocol, gateway/protocol.py)."""
        state = scope.get("state")
        if state is None:
            return send

        async def started(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete" and self.runtime.writer is not None:
                state[GROUP_COMMIT] = self.runtime.writer.journal.group
            await send(message)

        return started

    def _make_unified(self, endpoint: str) -> Handler:
        # A partial, not a wrapping coroutine: one frame fewer on every request.
        return functools.partial(self._unified, endpoint)

    async def _unified(
        self,
        endpoint: str,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        ctx: RequestContext,
    ) -> None:
        runtime = self.runtime
        if scope["method"] != "POST":
            raise GatewayError(405, f"Method {scope['method']} not allowed; use POST {endpoint}.")
        raw = await runtime.start_request(ctx, scope, receive, headers, json_body=True)
        credentials = ctx.credentials or ctx.request_credentials(headers)  # set by the start
        payload = _parse_json_object(raw)
        if not PROMPT_FIELDS.isdisjoint(payload):  # a managed prompt (gateway/prompts)
            payload, raw = await runtime.expand_prompt(ctx, endpoint, payload)
        model = payload.get("model")
        if model is None:
            raise GatewayError(400, "Missing required field 'model'.", param="model")
        if not isinstance(model, str):
            raise GatewayError(400, "'model' must be a string.", param="model")
        options = ctx.options
        if options.cache is not None or options.cache_error is not None:  # else no await
            if await runtime.serve_from_cache(ctx, send, "unified " + endpoint, raw, payload):
                return
        authorization = credentials.provider_authorization
        client_key = bearer_token(authorization) if authorization else None
        assert ctx.identity is not None  # authenticated by start_request
        org_id = ctx.identity.org_id
        # Looked up once for the plan and the walk (the usual case: a cache hit, no await).
        policy = runtime.meter.cached_policy(org_id)
        attempts = await runtime.router.plan_request(model, endpoint, client_key, org_id, policy)
        exchange = Exchange(runtime, ctx, endpoint, payload, raw, headers)
        if not runtime.limiter.wanted(ctx):
            await exchange.walk(attempts, client_key, receive, send, policy)
            return

        def estimate() -> CostEstimate:  # a cents policy's reservation (ratelimit/_cost.py)
            assert runtime.registry is not None
            candidates = [(attempt.provider, attempt.model) for attempt in attempts]
            return estimate_cost(runtime.registry, candidates, payload, len(raw), endpoint)

        # Limiter.limit's steps without its context manager (a generator and two frames more
        # on every limited request): a request policy's ticket has nothing to settle.
        limiter = runtime.limiter
        ticket = await limiter.acquire(ctx, estimate)
        if ticket is None or ticket.capture is None:
            await exchange.walk(attempts, client_key, receive, send, policy)
            return
        try:
            await exchange.walk(attempts, client_key, receive, send, policy)
        finally:
            await limiter.settle(ticket, limiter.real_cost(ticket))

    async def _models(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        ex: RequestContext,
    ) -> None:
        """``GET /v1/models``: every registry model a configured provider serves.

        Public like the reference (no key needed), and free: the body was computed once at
        startup from the model registry (:mod:`gateway.listing` has the id conventions), so
        no request reaches a provider.
        """
        if scope["method"] != "GET":
            raise GatewayError(405, f"Method {scope['method']} not allowed; use GET /v1/models.")
        body = self.runtime.listing.models_body
        await send_bytes(send, 200, body, ex.base_headers, b"application/json")

    async def _multimodal_models(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        ex: RequestContext,
    ) -> None:
        """``GET /v1/models/multimodal``: the models of ``/v1/models`` that take more than
        one input modality or give more than one output modality."""
        if scope["method"] != "GET":
            raise GatewayError(
                405, f"Method {scope['method']} not allowed; use GET /v1/models/multimodal."
            )
        body = self.runtime.listing.multimodal_body
        await send_bytes(send, 200, body, ex.base_headers, b"application/json")


def _with_request_id(send: Send, ctx: RequestContext) -> Send:
    """Wrap ``send`` so framework-served responses carry ``Helicone-Id`` too."""

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), *ctx.base_headers]
        await send(message)

    return wrapped


def _parse_json_object(raw: bytes) -> dict[str, Any]:
    if not raw or raw.isspace():  # empty or blank (no stripped copy of the body)
        raise GatewayError(400, "The request body is empty; send a JSON object.")
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise GatewayError(400, f"The request body is not valid JSON: {exc}.") from exc
    if not isinstance(payload, dict):
        raise GatewayError(
            400, f"The request body must be a JSON object, not {type(payload).__name__}."
        )
    if too_deep(raw, payload):  # see gateway.jsondepth: a re-encode would fail past 254
        raise GatewayError(400, depth_message(), code="json_too_deep")
    return payload
