"""Everything one gateway process holds while it runs, created at startup, closed at shutdown.

There is no module-level state: the app factory builds one :class:`Runtime` and hands it to
the data plane and the lifespan, so tests can run several gateways in one process.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
import orjson

from cache.backends import CacheBackend, MemoryBackend, NearRedisBackend, RedisBackend
from cache.key import UNPARSED
from cache.step import open_cache, replay
from cache.store import ResponseCache
from gateway.accesslog import AccessLog, log_fault
from gateway.api.hql_service import HqlService
from gateway.asgi import BodyTooLarge, Receive, Scope, Send, read_body, whole_body
from gateway.auth import Authenticator, Credentials, KeyCache
from gateway.byok import ProviderKeyCache
from gateway.context import RequestContext, read_credentials
from gateway.dashboard.sessions import PLAYGROUND_IDENTITY, DashboardSessions, RedisTable
from gateway.errors import GatewayError
from gateway.fetcher import GuardedFetcher
from gateway.finished import Consumer, FinishedRequests
from gateway.keycheck import KeyValidator
from gateway.listing import ModelListing
from gateway.logconfig import log_config, log_store_problem
from gateway.metering import Meter
from gateway.metrics import Metrics
from gateway.options import check_json_content_type, declared_length
from gateway.prompts.runtime import FALLBACK_HEADER, PromptRuntime
from gateway.readiness import (
    Readiness,
    body_store_probe,
    control_store_probe,
    log_store_probe,
    redis_probe,
)
from gateway.redisconn import SharedRedis
from gateway.routing import Router
from gateway.scopes import INVOKE, TRACE_READ, allows
from gateway.settings import Settings
from gateway.store import (
    DEFAULT_ORG,
    MISSING_KEY_MESSAGE,
    ControlStore,
    EncryptionKeyError,
    KeyIdentity,
)
from gateway.targets import TargetPolicy
from gateway.traces import RequestTracer
from gateway.upstream import UpstreamClient
from gateway.vertex_auth import VertexTokens
from logging_pipeline.annotations import Annotation
from logging_pipeline.bodies import body_store_from_config, decode_bodies
from logging_pipeline.clickhouse import LogStoreError
from logging_pipeline.headers import HeaderScrubber
from logging_pipeline.journal import JournalAppender
from logging_pipeline.remote import WriterProcess
from logging_pipeline.schema import REQUEST_TABLE
from logging_pipeline.sink import LogSink
from logging_pipeline.writer import LogWriter, open_log_writer
from providers.bedrock.signing import Signer
from providers.registry import Registry
from providers.routing import ProviderConfig, ProviderDirectory
from ratelimit import Limiter

LOCAL_MODELS_TIMEOUT_SECONDS = 2.0
"""How long startup waits for a local server's model list (it is then listed without it)."""

DEFAULT_MAX_OUTPUT_TOKENS = 4096
"""``max_tokens`` sent to a provider that requires it (Anthropic) when the client gave none and
the model's own limit is unknown (not in the model registry)."""

logger = logging.getLogger("gateway.runtime")


class Runtime:
    """The process's shared resources: upstream pool, control-plane store, key cache."""

    def __init__(self, settings: Settings, store: ControlStore | None = None) -> None:
        self.settings = settings
        self.store = store or ControlStore.from_settings(settings)
        self.providers = ProviderDirectory(settings.provider_api_keys, settings.provider_base_urls)
        self.targets = TargetPolicy(
            settings.allowed_target_hosts, settings.provider_base_urls.values()
        )
        self.upstream = UpstreamClient(
            settings.upstream_connect_timeout,
            settings.upstream_read_timeout,
            settings.upstream_max_connections,
        )
        self.fetcher = GuardedFetcher(
            max_bytes=settings.fetch_max_bytes, timeout=settings.fetch_timeout_seconds
        )
        self.header_scrubber = HeaderScrubber()
        """Credentials out of the request headers a capture keeps (logging_pipeline/headers)."""
        self.signer = Signer()
        """SigV4 for Bedrock, with its caches (parsed credentials, signing keys, URLs)."""
        self.vertex = VertexTokens()
        """Vertex AI access tokens, minted from service-account keys and cached
        (gateway/vertex_auth.py)."""
        self.key_cache = KeyCache(self.store, settings.key_cache_ttl_seconds)
        self.authenticator = Authenticator(self.key_cache, None)
        self.dashboard_sessions = DashboardSessions(settings.dashboard_session_ttl_seconds)
        """The web dashboard's sign-ins (gateway/dashboard/sessions.py): in Redis with
        ``REDIS_URL`` (set below), else in this process."""
        self.provider_keys = ProviderKeyCache(
            self.store.provider_keys, settings.provider_key_cache_ttl_seconds
        )
        """BYOK for the router: ``await runtime.provider_keys.list_provider_keys(org_id,
        provider=None)`` (gateway/byok.py)."""
        self.key_validator = KeyValidator(
            lambda: self.upstream.session,
            {name: self.providers.config(name).base_url for name in self.providers.table.routed()},
            self.targets,
        )
        self.redis: SharedRedis | None = None
        """The shared Redis pool when ``REDIS_URL`` is set (cache and rate limits)."""
        backend: CacheBackend
        if settings.redis_url:
            self.redis = SharedRedis(
                settings.redis_url,
                prefix=settings.redis_key_prefix,
                max_connections=settings.redis_max_connections,
                connect_timeout=settings.redis_connect_timeout,
                retry_after=settings.redis_retry_seconds,
            )
            backend = RedisBackend(self.redis)
            self.dashboard_sessions.table = RedisTable(self.redis)
            if settings.cache_near_seconds > 0 and settings.cache_memory_bytes > 0:
                near = MemoryBackend(settings.cache_memory_bytes)
                backend = NearRedisBackend(backend, near, settings.cache_near_seconds)
        else:
            backend = MemoryBackend(settings.cache_memory_bytes)
        self.cache = ResponseCache(
            backend,
            max_entry_bytes=settings.cache_max_entry_bytes,
            read_timeout=settings.cache_read_timeout_ms / 1000,
            write_timeout=settings.cache_write_timeout_ms / 1000,
        )
        self.prompts = PromptRuntime(
            self.store.prompts,
            ttl=settings.prompt_cache_ttl_seconds,
            fallback=settings.prompt_resolution_fallback,
            substitute_runtime=settings.prompt_substitute_runtime_messages,
            redis=self.redis,
        )
        """Managed prompts at request time: resolution cache and invalidation
        (gateway/prompts/runtime.py)."""
        self.writer: LogSink | None = None
        self.hql = HqlService(
            self.query_log,
            lambda: self.writer.bodies if self.writer is not None else None,
            self.get_bodies,
            data_dir=settings.data_dir,
            link_ttl_seconds=settings.hql_link_ttl_seconds,
            clickhouse_url=settings.hql_clickhouse_url,
        )
        """HQL's engine and CSV exports (gateway/api/hql_service.py)."""
        self.registry: Registry | None = None
        self.limiter = Limiter.create(
            settings.redis_url,
            prices=lambda: self.registry,
            prefix=settings.redis_key_prefix + "rl:",
        )
        """``Helicone-RateLimit-Policy`` (ratelimit/): in process, or on ``REDIS_URL`` over a
        connection of its own (one batch at a time: no pool checkout per call, measured
        ~30 µs of CPU less than the shared pool)."""
        self.tracer: RequestTracer | None = (
            RequestTracer(settings) if settings.traces_enabled else None
        )
        """One OpenTelemetry span per recorded request when traces are on (gateway/traces.py)."""
        self._meter: Meter | None = None
        self._listing: ModelListing | None = None
        self._router: Router | None = None
        self.readiness = self._readiness(settings)
        """``/readyz``: the stores this process needs, asked on demand (gateway/readiness.py)."""
        self.metrics = Metrics.from_environment() if settings.metrics_enabled else None
        """``/metrics`` (gateway/metrics.py); None with ``GATEWAY_METRICS_ENABLED=false``."""
        self.access_log = AccessLog.from_settings(settings)
        """The request line (gateway/accesslog.py); None when off."""
        consumers: list[Consumer] = []
        if self.metrics is not None:
            consumers.append(self.metrics.count)
        if self.access_log is not None:
            consumers.append(self.access_log.requests)
        self.finished = FinishedRequests(consumers) if consumers else None
        """Finished requests on their way to the metrics and the request line (None: both
        off)."""

    def _readiness(self, settings: Settings) -> Readiness:
        readiness = Readiness(timeout=settings.ready_timeout_seconds)
        readiness.add("control_store", control_store_probe(self.store))
        if settings.logging_enabled:
            backlog = settings.ready_max_log_backlog_bytes
            readiness.add("log_store", log_store_probe(lambda: self.writer, backlog))
            readiness.add("body_store", body_store_probe(lambda: self.writer))
        if settings.redis_url:
            readiness.add("redis", redis_probe(settings.redis_url, settings.ready_timeout_seconds))
        return readiness

    async def start(self) -> None:
        if self.store.keyring is None:
            # A server database without GATEWAY_ENCRYPTION_KEY: refuse rather than store
            # provider keys that no other process (or a restart with a new key) could read.
            raise EncryptionKeyError(MISSING_KEY_MESSAGE)
        await self.store.migrate()
        if self.settings.allow_anonymous:
            org_id = await self.store.ensure_org(DEFAULT_ORG)
            anonymous = KeyIdentity(key_id="anonymous", org_id=org_id, org_name=DEFAULT_ORG)
            self.authenticator = Authenticator(self.key_cache, anonymous)
        await self.upstream.start()
        await self.fetcher.start()
        if self.redis is not None:
            await self.redis.start()
        await self.prompts.start()
        self.registry = await asyncio.to_thread(Registry.load)
        if self.metrics is not None:
            self.metrics.bind(self.registry)
        self._router = Router(self, self.registry)
        self._meter = Meter(
            self.store.credits,
            self.registry,
            cache_ttl=self.settings.credits_cache_ttl_seconds,
            hold_ttl=self.settings.credit_hold_ttl_seconds,
            sweep_interval=self.settings.credit_sweep_interval_seconds,
        )
        await self._meter.start()
        usable = self.providers.usable()
        local = await self._local_models([c for c in usable if c.spec.local])
        self._listing = ModelListing(
            self.registry, [c.spec.name for c in usable], self.providers.table, local
        )
        if self.settings.logging_enabled:
            await self._start_logging()
        if self.metrics is not None:
            self.metrics.start(self.sync_metrics)
        if self.tracer is not None:
            self.tracer.start()

    async def _local_models(self, configs: list[ProviderConfig]) -> list[dict[str, Any]]:
        """The model lists of configured local servers (``ollama``), asked once at startup.

        A local server's models are whatever its operator installed, so no registry can list
        them; they join ``/v1/models`` as ``<id>/<provider>``. Asked once, with a short
        timeout, never per request; a server that does not answer is left out (logged).
        """
        configs = [c for c in configs if "/models" in c.spec.endpoints]
        results = await asyncio.gather(
            *(self._provider_models(config) for config in configs), return_exceptions=True
        )
        models: list[dict[str, Any]] = []
        for config, result in zip(configs, results, strict=True):
            if isinstance(result, BaseException):
                logger.info("model list from %s failed: %r", config.spec.name, result)
                continue
            models.extend(result)
        return models

    async def _provider_models(self, config: ProviderConfig) -> list[dict[str, Any]]:
        headers = dict([config.spec.auth_header(config.api_key)]) if config.api_key else {}
        timeout = aiohttp.ClientTimeout(total=LOCAL_MODELS_TIMEOUT_SECONDS)
        session = self.upstream.session
        async with session.get(config.base_url + "/models", headers=headers, timeout=timeout) as r:
            r.raise_for_status()
            body = orjson.loads(await r.read())
        data = body.get("data", []) if isinstance(body, dict) else []
        return [
            {
                "id": f"{item['id']}/{config.spec.name}",
                "object": "model",
                "created": item.get("created", 0) if isinstance(item.get("created"), int) else 0,
                "owned_by": str(item.get("owned_by", config.spec.name)),
            }
            for item in data
            if isinstance(item, dict) and isinstance(item.get("id"), str)
        ]

    async def _start_logging(self) -> None:
        """Open this process's record journal and start the writer that consumes it: in a
        child process (default) or as a task in this one."""
        problem = log_store_problem(self.settings)
        if problem is not None:
            raise LogStoreError(problem)
        config = log_config(self.settings)  # all the writer (and its child) is told
        journal = await asyncio.to_thread(
            JournalAppender, config.journal_root, fsync_ms=config.journal_fsync_ms
        )
        consumer: LogWriter | WriterProcess
        try:
            if self.settings.log_writer_process:
                consumer = WriterProcess(
                    config, body_store_from_config(config.body_store), journal.directory
                )
                await consumer.start()
            else:
                consumer = await open_log_writer(config, journal.directory, self.registry)
        except BaseException:
            journal.close()
            raise
        self.writer = LogSink(journal, consumer)

    async def close(self) -> None:
        await self.readiness.close()  # not ready from here on
        if self.finished is not None:
            self.finished.flush()  # the last requests' counts and lines
        if self.metrics is not None:
            self.sync_metrics()
            await self.metrics.close()
        meter, self._meter = self._meter, None
        if meter is not None:
            await meter.close()
        await self.upstream.close()
        await self.fetcher.close()
        await self.prompts.close()
        if self.redis is not None:
            await self.redis.close()
        await self.limiter.close()
        await self.hql.close()
        writer, self.writer = self.writer, None
        if writer is not None:
            await writer.close()  # writes what is journaled (bounded); the rest waits on disk
        tracer, self.tracer = self.tracer, None
        if tracer is not None:
            await asyncio.to_thread(tracer.close)  # the last spans, exported (bounded)
        await self.store.close()

    # -- the end of a request: the fault line (metrics and request lines: self.finished) -----

    @staticmethod
    def request_failed(ctx: RequestContext, error: GatewayError, where: str,
                       exc: BaseException | None = None) -> None:  # fmt: skip
        """The fault line of a request the gateway failed with a 5xx (gateway/accesslog.py)."""
        if error.status >= 500:
            log_fault(ctx, error, where, exc)

    def sync_metrics(self) -> None:
        """Bring ``/metrics`` up to date: this process's tallies, the log writer's counters,
        the stores' error counts."""
        if self.metrics is None:
            return
        if self.finished is not None:
            self.finished.flush()  # every request answered so far is counted
        stores: dict[str, int] = {}
        cache = self.cache.health()
        stores["cache"] = _int(cache.get("unavailable")) + _int(cache.get("damaged"))
        stores["ratelimit"] = _int(self.limiter.health().get("faults"))
        if self.redis is not None:
            redis = self.redis.health()
            stores["redis"] = _int(redis.get("faults")) + _int(redis.get("timeouts"))
        writer = self.writer
        self.metrics.sync(writer.counters if writer is not None else None, stores)

    def metrics_answer(self, authorization: str | None) -> tuple[int, bytes]:
        """``GET /metrics``: (200, the exposition), (401, …) without the configured token,
        or (404, …) with metrics off."""
        if self.metrics is None:
            return 404, b"Metrics are off (GATEWAY_METRICS_ENABLED=false).\n"
        token = self.settings.metrics_token
        if token is not None and token.get_secret_value():
            expected = f"Bearer {token.get_secret_value()}".encode()
            if not hmac.compare_digest((authorization or "").encode(), expected):
                return 401, b"Send the metrics token as 'Authorization: Bearer <token>'.\n"
        self.sync_metrics()
        return 200, self.metrics.render()

    async def start_request(
        self,
        ctx: RequestContext,
        scope: Scope,
        receive: Receive,
        headers: dict[str, str],
        *,
        json_body: bool = False,
    ) -> bytes:
        """The request-start step every forwarding route shares (unified and passthrough):
        authenticate, start the capture, read the body (checking it is JSON first when
        ``json_body``); returns the body. Errors raised here are recorded by the capture."""
        # The dashboard's playground (gateway/dashboard/playground.py) runs a request in
        # process for its signed-in key: the key's digest rides in the ASGI scope's
        # extensions, which only code in this process can set (never a client's request).
        digest = (scope.get("extensions") or {}).get(PLAYGROUND_IDENTITY)
        if isinstance(digest, str):
            identity = await self.authenticator.authenticate_digest(digest)
        else:
            credentials = ctx.request_credentials(headers)
            identity = self.authenticator.cached(credentials) or await self.authenticate(
                credentials
            )
        if identity.scopes is not None and INVOKE not in identity.scopes:
            raise GatewayError(
                403,
                f"This gateway key lacks the '{INVOKE}' scope needed to send requests through "
                "the gateway.",
                code="missing_scope",
            )
        ctx.identity = identity
        capture = None
        if self.writer is not None:
            # The headers with credentials scrubbed (the capture is journaled to disk); the
            # writer decodes and bounds them, off this path.
            request_headers = self.header_scrubber.scrub(scope["headers"])
            capture = ctx.new_capture(identity, scope["path"], request_headers)
            ctx.capture = capture
            ctx.sink = self.writer.submit
        if self.tracer is not None:
            if capture is None:  # logging off: a capture for the span alone
                capture = ctx.capture = ctx.new_capture(identity, scope["path"])
            ctx.tracer = self.tracer.submit
            traceparent = headers.get("traceparent")
            if traceparent is not None:
                ctx.trace_parent = (traceparent, headers.get("tracestate"))
        if json_body and headers.get("content-type") != "application/json":
            check_json_content_type(headers)  # the usual exact value needs no parse
        limit = self.settings.max_body_bytes
        declared = declared_length(headers)
        if declared is not None and declared > limit:
            raise BodyTooLarge(limit)  # before anything is read
        first = await receive()
        body = whole_body(first, limit)
        if body is None:  # in pieces, over the limit, or the client left: read_body decides
            body = await read_body(receive, limit, None, first)
        if capture is not None:
            capture.request_body = body
        return body

    async def expand_prompt(
        self, ctx: RequestContext, endpoint: str, payload: dict[str, Any]
    ) -> tuple[dict[str, Any], bytes]:
        """The prompt stage of a unified request whose body has a prompt field (after
        :meth:`start_request`): the assembled request and its bytes, which the record keeps
        with the prompt's id, version, inputs and environment."""
        assert ctx.identity is not None
        body, use = await self.prompts.expand(ctx.identity, endpoint, payload)
        raw = orjson.dumps(body)
        capture = ctx.capture
        if capture is not None:
            capture.request_body = raw
            capture.prompt_id, capture.prompt_version = use.prompt_id, use.version_id
            capture.prompt_inputs, capture.prompt_environment = use.inputs, use.environment
        if use.fallback:
            ctx.response_headers = [*(ctx.response_headers or ()), FALLBACK_HEADER]
        return body, raw

    async def serve_from_cache(
        self, ctx: RequestContext, send: Send, endpoint: str, body: bytes, parsed: Any = UNPARSED
    ) -> bool:
        """The cache step (cache/step.py), after :meth:`start_request`: True when the answer
        was replayed from the cache; else the relay stores the provider's when it should.
        ``endpoint`` names what the key hashes besides the body (cache/key.py)."""
        options = ctx.options
        if options.cache_error is not None:
            raise GatewayError(
                400,
                options.cache_error.message,
                code="invalid_cache_header",
                param=options.cache_error.header,
            )
        if options.cache is None:
            return False
        answer = await open_cache(ctx, self.cache, options.cache, endpoint, body, parsed)
        if answer is None:
            return False
        await replay(ctx, answer, send)
        return True

    @property
    def router(self) -> Router:
        """The planning step (built at start, once the registry is loaded)."""
        if self._router is None:
            raise RuntimeError("Runtime.start() was not called")
        return self._router

    @property
    def meter(self) -> Meter:
        """Credit accounts and budgets applied to requests (built at start)."""
        if self._meter is None:
            raise RuntimeError("Runtime.start() was not called")
        return self._meter

    @property
    def listing(self) -> ModelListing:
        """The model listings (``/v1/models``…), built once at start."""
        if self._listing is None:
            raise GatewayError(503, "The gateway is starting; try again shortly.")
        return self._listing

    def max_output_tokens(self, provider: str, model: str) -> int:
        """The model's output limit from the registry (a translation's default
        ``max_tokens``), else :data:`DEFAULT_MAX_OUTPUT_TOKENS`."""
        price = self.registry.lookup(provider, model) if self.registry is not None else None
        if price is None or not price.max_output_tokens:
            return DEFAULT_MAX_OUTPUT_TOKENS
        return price.max_output_tokens

    async def authenticate_org(self, headers: dict[str, str]) -> str:
        """The org of a request-log API caller (same keys and rules as the data plane); a key
        without the log's read scope gets Helicone's 403 (``"Forbidden"``)."""
        identity = await self.rest_identity(headers)
        if not allows(identity.scopes, TRACE_READ):
            raise GatewayError(403, "Forbidden", code="missing_scope")
        return identity.org_id

    async def authenticate_identity(self, headers: dict[str, str]) -> KeyIdentity:
        """The identity of a REST API caller; scopes are the router's to check."""
        return await self.rest_identity(headers)

    async def rest_identity(self, headers: dict[str, str]) -> KeyIdentity:
        """The one place a REST API call is authenticated: by the key it carries, or, with
        none, by the dashboard's session cookie plus its CSRF header (the key the session was
        signed in with is checked again, so it is that key's org and scopes)."""
        credentials = read_credentials(headers)
        if credentials.gateway_key is None:
            session = await self.dashboard_sessions.from_headers(headers)
            if session is not None:
                return await self.authenticator.authenticate_digest(session.key_digest)
        return await self.authenticate(credentials)

    async def query_log(
        self, sql: str, params: Mapping[str, Any], settings: Mapping[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        if self.writer is None:
            raise GatewayError(
                503,
                "Request logging is disabled (GATEWAY_LOGGING_ENABLED=false).",
                code="logging_disabled",
            )
        if settings:
            return await self.writer.transport.query(sql, params, settings)
        return await self.writer.transport.query(sql, params)

    async def prompt_inputs(
        self, org_id: str, request_id: str, version_id: str
    ) -> dict[str, Any] | None:
        """The inputs a logged request of ``org_id`` was assembled from with ``version_id``
        (Helicone's ``…/{versionId}/inputs``); None when there is no such record."""
        rows = await self.query_log(
            f"SELECT toString(request_id) AS id_text, prompt_version, prompt_inputs, "
            f"prompt_environment FROM {REQUEST_TABLE} FINAL WHERE organization_id = {{org:UUID}} "
            "AND request_id = {rid:UUID} AND prompt_version = {vid:String} LIMIT 1",
            {"org": org_id, "rid": request_id, "vid": version_id},
        )
        if not rows:
            return None
        row = rows[0]
        try:
            inputs = orjson.loads(row.get("prompt_inputs") or "{}")
        except orjson.JSONDecodeError:
            inputs = {}
        found: dict[str, Any] = {
            "request_id": row["id_text"],
            "version_id": row["prompt_version"],
            "inputs": inputs,
        }
        if row.get("prompt_environment"):
            found["environment"] = row["prompt_environment"]
        return found

    async def annotate_log(self, annotation: Annotation) -> str:
        """Feedback, scores, properties: stored by the log writer that owns the store."""
        if self.writer is None:
            raise GatewayError(
                503, "Request logging is disabled (GATEWAY_LOGGING_ENABLED=false).",
                code="logging_disabled",
            )
        return await self.writer.annotate(annotation)

    async def get_bodies(self, org_id: str, request_id: str) -> dict[str, Any] | None:
        if self.writer is None:
            return None
        blob = await self.writer.bodies.get(org_id, request_id)
        return None if blob is None else decode_bodies(blob)

    async def authenticate(self, credentials: Credentials) -> KeyIdentity:
        return await self.authenticator.authenticate(credentials)


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0
