"""Walking a request's plan: one attempt after another until one answers (unified routes).

The plan comes from :class:`providers.plan.Planner` (the model-string grammar, BYOK before
credits, cheapest first, load balancing, health). Each attempt is prepared for its provider
(:func:`prepare`: the model id it expects, its key in its auth style, the body as sent or
translated), then *opened* on the staged relay; the answer's status decides:

* success, or an error that does not fail over (a 400 that is not about context length…):
  forwarded to the client as it is — committed;
* an error that fails over (429, 401, 403, 408, 5xx, context length; the provider
  unreachable or timed out) with attempts left: the answer is read and dropped, the provider's
  health records the failure, and the next attempt is opened — nothing has reached the client;
* the last attempt failing after others did: the most actionable error of them all
  (:func:`providers.failover.final_error`), with every attempt in ``details``. A request with a
  single attempt gets its provider's error as it is, as before.

``Helicone-Fallback-Index`` says which attempt served when there was more than one; the record
keeps every attempt (source, status, latency) and is priced as the one that served.

A client's own provider key (``Authorization`` next to ``Helicone-Auth``) names one
provider: the model's ``/provider``, else the default (``openai``); it is the only attempt.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from yarl import URL

from gateway.asgi import Receive, Send
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.relay import forward
from gateway.sse import request_usage_chunk
from gateway.store import ProviderKeyRecord
from gateway.translate import (
    ExchangeTranslation,
    adapter_for,
    inline_file_urls,
    translation_error,
    wants_usage,
)
from gateway.upstream import upstream_request_headers
from providers.adapter import TranslationError
from providers.failover import Outcome, final_error, triggers_failover
from providers.grammar import GrammarError, ModelSpec
from providers.health import Health
from providers.plan import (
    Attempt,
    KeyRecord,
    KeySources,
    Offer,
    Planner,
    ProviderKey,
    RoundRobin,
)
from providers.registry import Registry
from providers.responses import responses_to_chat
from providers.routing import DEFAULT_PROVIDER
from providers.spec import ProviderSpec

if TYPE_CHECKING:
    from gateway.runtime import Runtime


class RegistryView:
    """The planner's view of the model registry: which routed providers offer a model, ranked
    by list price (input + output per 1M tokens).

    Only the registry's own canonical id (``llama-3.3-70b``, ``claude-sonnet-4.5``) is
    translated to each provider's id; an alias, a provider's id or a dated snapshot is sent as
    the client wrote it (``…-latest`` must stay "latest", a snapshot that snapshot).
    """

    __slots__ = ("_registry",)

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    def offerings(self, model_id: str) -> list[Offer]:
        registry = self._registry
        canonical = registry.resolve(model_id)
        if canonical is None:
            return []
        as_written = None if model_id.strip().lower() == canonical.lower() else model_id
        return [
            Offer(
                offering.provider,
                as_written or offering.provider_model_id,
                offering.per_million,
                offering.endpoints,
            )
            for offering in registry.offerings(canonical)
            if offering.routed
        ]


class Router:
    """The planning step of one process: planner, balancer and provider health."""

    def __init__(self, runtime: Runtime, registry: Registry) -> None:
        self.runtime = runtime
        directory = runtime.providers
        self.health = Health(cooldown=runtime.settings.provider_cooldown_seconds)
        self.planner = Planner(
            RegistryView(registry),
            tuple(directory.table.routed()),
            balancer=RoundRobin(),
            health=self.health,
            default_provider=DEFAULT_PROVIDER,
        )

    async def plan_request(
        self, model: str, endpoint: str, client_key: str | None, org_id: str
    ) -> list[Attempt]:
        """:meth:`plan` with the organisation's own provider keys (BYOK), unless the client
        sent its own key (which names one provider and is the only attempt)."""
        byok: dict[str, list[KeyRecord]] = {}
        if client_key is None:
            for record in await self.runtime.provider_keys.list_provider_keys(org_id):
                # The grammar's ``model/provider/<deployment>`` names a key's deployment id.
                key = ProviderKey(record.id, record.deployment_id, record)
                byok.setdefault(record.provider, []).append(key)
        return self.plan(model, endpoint, client_key, byok)

    def plan(
        self,
        model: str,
        endpoint: str,
        client_key: str | None,
        byok: Mapping[str, Sequence[KeyRecord]] | None = None,
    ) -> list[Attempt]:
        """The attempts for ``model`` on ``endpoint`` (a 400 naming what is wrong)."""
        directory = self.runtime.providers
        try:
            spec = self.planner.parse(model)
            self._check_local(spec)
            if client_key is not None:
                attempts = self._client_key_plan(spec, endpoint)
            else:
                credits = frozenset(config.spec.name for config in directory.usable())
                keys = KeySources(
                    byok=byok or {}, credits=credits, credits_for_unlisted=True
                )
                attempts = self.planner.plan(spec, keys, endpoint=endpoint)
        except GrammarError as exc:
            message = exc.message
            if exc.code == "no_providers":
                message += self._key_hints(spec)
            raise GatewayError(400, message, code="invalid_model", param="model") from exc
        # A model the registry does not list at a provider is planned whatever the endpoint:
        # the provider table says what each provider serves.
        served = [a for a in attempts if directory.config(a.provider).spec.serves(endpoint)]
        if not served:
            raise GatewayError(
                400,
                f"Provider {attempts[0].provider!r} does not serve {endpoint}.",
                code="unsupported_endpoint",
                param="model",
            )
        return served

    def _client_key_plan(self, spec: ModelSpec, endpoint: str) -> list[Attempt]:
        item = spec.items[0]
        provider = item.provider or DEFAULT_PROVIDER
        pinned = ModelSpec((item.__class__(item.model, provider, None, item.online, 0, item.text),),
                           spec.excluded, spec.text)
        keys = KeySources(credits=frozenset({provider}), credits_for_unlisted=True)
        return self.planner.plan(pinned, keys, endpoint=endpoint)[:1]

    def _check_local(self, spec: ModelSpec) -> None:
        for item in spec.items:
            if item.provider is None:
                continue
            config = self.runtime.providers.config(item.provider)
            if config.local_unconfigured:
                raise GatewayError(
                    400, config.not_configured_message(), code="invalid_model", param="model"
                )

    def _key_hints(self, spec: ModelSpec) -> str:
        hints: list[str] = []
        for item in spec.items:
            if item.provider is None:
                continue
            config = self.runtime.providers.config(item.provider)
            if config.api_key is None and config.spec.requires_key:
                hints.append(
                    f" No API key configured for provider {item.provider!r}: set "
                    f"{config.spec.key_env} on the gateway, or send your own key in "
                    "'Authorization' together with 'Helicone-Auth'."
                )
        return "".join(dict.fromkeys(hints))


@dataclass(slots=True)
class UpstreamCall:
    """One attempt, ready to open."""

    spec: ProviderSpec
    url: URL
    headers: dict[str, str]
    body: bytes
    translation: ExchangeTranslation | None
    recorded_url: str
    model: str

    def error(self, status: int, body: bytes) -> dict[str, Any]:
        """The answer's error as an OpenAI error body (to choose the final error)."""
        return adapter_for(self.spec.wire).error(status, body)


class Exchange:
    """One unified request walking its plan."""

    def __init__(
        self,
        runtime: Runtime,
        ctx: RequestContext,
        endpoint: str,
        payload: dict[str, Any],
        raw: bytes,
        headers: dict[str, str],
    ) -> None:
        self.runtime = runtime
        self.ctx = ctx
        self.endpoint = endpoint
        self.payload = payload
        self.raw = raw
        self.headers = headers
        self.client_wants_usage = wants_usage(payload)
        self._files_inlined = False

    async def prepare(self, attempt: Attempt, key: str | None) -> UpstreamCall:
        """The request for ``attempt``, sent with ``key`` (a 400 ``GatewayError`` for what its
        provider's format cannot express)."""
        config = self.runtime.providers.config(attempt.provider)
        spec = config.spec
        base, recorded = config.base_url, config.recorded_base_url
        record = attempt.deployment
        if isinstance(record, ProviderKeyRecord) and record.deployment.base_url:
            # The org's own endpoint for this provider (checked against the allow-list when
            # the key was stored); recorded as a placeholder, it may name internal hosts.
            base = record.deployment.base_url.rstrip("/")
            recorded = f"{{byok:{record.deployment_id}}}"
        if self.endpoint in spec.endpoints:
            return self._native(attempt, spec, base, recorded, key)
        try:
            return await self._translated(attempt, spec, base, recorded, key)
        except TranslationError as exc:
            raise translation_error(exc, spec.name) from exc

    def _native(
        self, attempt: Attempt, spec: ProviderSpec, base: str, recorded: str, key: str | None
    ) -> UpstreamCall:
        """An OpenAI-format provider serving the endpoint itself: the body as sent (zero-copy)
        unless the model id changes or the usage chunk is asked for on the client's behalf."""
        ctx = self.ctx
        payload = self.payload
        body = self.raw
        rewrite = payload.get("model") != attempt.model
        inject = (
            ctx.capture is not None
            and self.endpoint == "/chat/completions"
            and payload.get("stream") is True
            and not self.client_wants_usage
        )
        ctx.strip_usage = inject
        if rewrite or inject:
            sent = dict(payload)
            sent["model"] = attempt.model
            if inject:
                request_usage_chunk(sent)
            body = orjson.dumps(sent)
        credentials = ctx.request_credentials(self.headers)
        authorization = f"Bearer {key}" if key else None
        headers = upstream_request_headers(self.headers, authorization, credentials.gateway_key)
        headers["content-type"] = "application/json"
        return UpstreamCall(
            spec, URL(base + self.endpoint), headers, body, None, recorded + self.endpoint,
            attempt.model,
        )

    async def _translated(
        self, attempt: Attempt, spec: ProviderSpec, base: str, recorded: str, key: str | None
    ) -> UpstreamCall:
        """A request its provider serves through translation (gateway/translate.py): a
        Responses request for a chat-only server, anything for a native wire format."""
        runtime = self.runtime
        adapter = adapter_for(spec.wire)
        responses_request: dict[str, Any] | None = None
        self.ctx.strip_usage = False
        if self.endpoint == "/responses":
            if not self._files_inlined:
                await inline_file_urls(self.payload, runtime.fetcher)
                self._files_inlined = True
            responses_request = self.payload
            chat = responses_to_chat(self.payload)
        else:
            chat = dict(self.payload)
        chat["model"] = attempt.model
        call = adapter.build_request(
            chat,
            api_key=key,
            default_max_tokens=runtime.max_output_tokens(spec.name, attempt.model),
        )
        translation = ExchangeTranslation(
            adapter, responses_request is not None or wants_usage(chat), responses_request
        )
        return UpstreamCall(
            spec, URL(base + call.path), call.headers, orjson.dumps(call.body), translation,
            recorded + call.path, attempt.model,
        )

    def key_for(self, attempt: Attempt, client_key: str | None) -> str | None:
        """The key an attempt is sent with: the client's own, the org's (BYOK), else the
        operator's managed key (credits)."""
        if client_key is not None:
            return client_key
        record = attempt.deployment
        if isinstance(record, ProviderKeyRecord):
            return record.api_key
        return self.runtime.providers.config(attempt.provider).api_key

    async def walk(
        self, attempts: list[Attempt], client_key: str | None, receive: Receive, send: Send
    ) -> None:
        """Try ``attempts`` in order until one is committed to the client."""
        runtime = self.runtime
        ctx = self.ctx
        health = runtime.router.health
        outcomes: list[Outcome] = []
        several = len(attempts) > 1
        for index, attempt in enumerate(attempts):
            last = index == len(attempts) - 1
            try:
                call = await self.prepare(attempt, self.key_for(attempt, client_key))
            except GatewayError as exc:
                if not several:
                    raise
                outcomes.append(Outcome(attempt.source, exc.status, orjson.loads(exc.body())))
                if last:
                    ctx.response_headers = None
                    raise _all_failed(outcomes) from exc
                continue
            self._record(call, attempt)
            if several:
                ctx.served_by_fallback(index)
            started = time.perf_counter()
            try:
                async with runtime.upstream.attempt(
                    ctx, "POST", call.url, call.headers, call.body, call.spec.name
                ) as response:
                    status = response.status
                    if status >= 400 and several:
                        body = await response.read()
                        outcome = Outcome(attempt.source, status, call.error(status, body))
                        if triggers_failover(outcome):
                            health.failure(attempt.provider, attempt.key_id)
                            outcomes.append(outcome)
                            self._note(attempt, status, started)
                            if not last:
                                continue
                            ctx.response_headers = None
                            raise _all_failed(outcomes)
                    if status < 400:
                        health.success(attempt.provider, attempt.key_id)
                    self._note(attempt, status, started)
                    await forward(ctx, response, receive, send, call.translation, started)
                    return
            except GatewayError as exc:
                if exc.code not in ("upstream_unreachable", "upstream_timeout"):
                    raise
                health.failure(attempt.provider, attempt.key_id)
                self._note(attempt, exc.status, started)
                if not several:
                    raise
                outcomes.append(Outcome(attempt.source, exc.status, orjson.loads(exc.body())))
                if last:
                    ctx.response_headers = None
                    raise _all_failed(outcomes) from exc

    def _record(self, call: UpstreamCall, attempt: Attempt) -> None:
        capture = self.ctx.capture
        if capture is not None:
            capture.provider = call.spec.name
            capture.request_model = call.model
            capture.target_url = call.recorded_url
            capture.wire = call.spec.wire

    def _note(self, attempt: Attempt, status: int, started: float) -> None:
        capture = self.ctx.capture
        if capture is not None:
            latency = round((time.perf_counter() - started) * 1000)
            capture.attempts.append((attempt.source, status, latency))


def _all_failed(outcomes: list[Outcome]) -> GatewayError:
    """The error of a walk whose every attempt failed (no fallback index: none served)."""
    status, body = final_error(outcomes)
    error = body["error"]
    return GatewayError(
        status, str(error.get("message")), code=error.get("code"), param=error.get("param"),
        payload=body,
    )
