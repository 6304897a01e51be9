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

Metering (credit accounts and budgets, :mod:`gateway.metering`) wraps each attempt when the
request has any: a hold before it is opened, settled or released after (:meth:`Exchange.walk`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

import orjson
from yarl import URL

from gateway.asgi import Receive, Send
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.metering import Hold, InsufficientCredits, MeterSession
from gateway.relay import forward
from gateway.sse import request_usage_chunk
from gateway.store import MeterPolicy, ProviderKeyRecord
from gateway.translate import (
    IMAGE_INLINING_WIRES,
    ExchangeTranslation,
    adapter_for,
    embeddings_adapter_for,
    has_parts,
    inline_file_urls,
    inline_image_urls,
    translation_error,
    wants_usage,
)
from gateway.upstream import upstream_request_headers
from gateway.vertex_auth import VertexAuth
from providers.adapter import TranslationError
from providers.azure import azure_path, azure_url
from providers.bedrock import endpoint_url, is_region
from providers.bedrock.models import is_model_id
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
from providers.vertex import endpoint_url as vertex_endpoint_url
from providers.vertex import is_location, is_project, location_path

if TYPE_CHECKING:
    from gateway.runtime import Runtime
    from providers.routing import ProviderConfig


class RegistryView:
    """The planner's view of the model registry: which routed providers offer a model, ranked
    by list price (input + output per 1M tokens).

    Only the registry's own canonical id (``llama-3.3-70b``, ``claude-sonnet-4.5``) is
    translated to each provider's id; an alias, a provider's id or a dated snapshot is sent as
    the client wrote it (``…-latest`` must stay "latest", a snapshot that snapshot). Bedrock is
    the exception: its ids are namespaced (``us.anthropic.claude-…-v1:0``), so a name not
    spelled as one of them is always sent as the offering's id; so is Vertex for Claude, whose
    ids name their version after an ``@`` (``claude-sonnet-4@20250514``).
    """

    __slots__ = ("_found", "_registry")

    def __init__(self, registry: Registry) -> None:
        self._registry = registry
        self._found: dict[str, tuple[Offer, ...]] = {}
        """Answers by model name: the registry never changes after start-up, and a process
        sees the same few names again and again (building the offers was ~15 µs a request)."""

    def offerings(self, model_id: str) -> tuple[Offer, ...]:
        found = self._found.get(model_id)
        if found is None:
            found = self._offerings(model_id)
            _remember(self._found, model_id, model_id, found)
        return found

    def _offerings(self, model_id: str) -> tuple[Offer, ...]:
        registry = self._registry
        canonical = registry.resolve(model_id)
        if canonical is None:
            return ()
        as_written = None if model_id.strip().lower() == canonical.lower() else model_id
        return tuple(
            Offer(
                offering.provider,
                _sendable(offering.provider, as_written) or offering.provider_model_id,
                offering.per_million,
                offering.endpoints,
            )
            for offering in registry.offerings(canonical)
            if offering.routed
        )


def _sendable(provider: str, written: str | None) -> str | None:
    """The model name as the client wrote it, if ``provider`` can take it as it is."""
    if written is None or (provider == "bedrock" and not is_model_id(written)):
        return None
    if provider == "vertex" and written.startswith("claude") and "@" not in written:
        return None
    return written


_MAX_REMEMBERED = 4096
"""Distinct model strings whose offers (and parse) a process remembers (then it starts over)."""
_MAX_REMEMBERED_CHARS = 200
"""Longer model strings are worked out every time, never kept."""

K = TypeVar("K")
V = TypeVar("V")


def _remember(store: dict[K, V], key: K, model: str, value: V) -> None:
    """Keep ``value`` under ``key`` unless ``model`` (the client's string the key is made
    of) is too long; model strings come from clients, so the store starts over when full."""
    if len(model) > _MAX_REMEMBERED_CHARS:
        return
    if len(store) >= _MAX_REMEMBERED:
        store.clear()
    store[key] = value


class Router:
    """The planning step of one process: planner, balancer and provider health.

    What does not change while the process runs is worked out once: the providers whose
    managed key is usable (credits), each model string's parse, each model's offers and the
    plain plan of a request that brings no keys (the usual one, ~20 µs a request to build).
    """

    def __init__(self, runtime: Runtime, registry: Registry) -> None:
        self.runtime = runtime
        directory = runtime.providers
        self._credits = frozenset(config.spec.name for config in directory.usable())
        self._parsed: dict[str, ModelSpec] = {}
        self._plans: dict[tuple[str, str, bool], tuple[Attempt, ...]] = {}
        """Plans of requests without keys of their own, by (model string, endpoint, metered):
        only those whose order no balancer changes (ten providers at one price are re-planned
        each time, to rotate)."""
        self._targets: dict[tuple[str, str], NativeTarget | None] = {}
        """:func:`native_target` by (provider, endpoint): a few dozen entries at most."""
        self._targets_of = directory
        self.health = Health(cooldown=runtime.settings.provider_cooldown_seconds)
        self.planner = Planner(
            RegistryView(registry),
            tuple(directory.table.routed()),
            balancer=RoundRobin(),
            health=self.health,
            default_provider=DEFAULT_PROVIDER,
            aliases=directory.table.model_aliases(),
        )

    def native_target(self, provider: str, endpoint: str) -> NativeTarget | None:
        """:func:`native_target` of ``provider``'s configuration, worked out once per endpoint:
        the directory is built from the settings at start and never changes while the
        process runs (a directory put in its place, as tests do, starts the table over)."""
        directory = self.runtime.providers
        if directory is not self._targets_of:
            self._targets.clear()
            self._targets_of = directory
        key = (provider, endpoint)
        try:
            return self._targets[key]
        except KeyError:
            target = self._targets[key] = native_target(directory.config(provider), endpoint)
            return target

    def byok_target(
        self, record: ProviderKeyRecord, provider: str, endpoint: str
    ) -> NativeTarget | None:
        """:func:`byok_native_target` of an organisation's key, remembered with the key
        cache's entry it came from (so a rotated or revoked key, or a changed base URL, drops
        it with the entry) and served only for that very record. None: :meth:`Exchange.prepare`
        works the attempt out (not a native target, or the entry is not cached any more)."""
        entry = self.runtime.provider_keys.cached(record.org_id)
        if entry is None:
            return None
        key = (record.id, endpoint)
        found = entry.memo.get(key)
        if found is not None and found[0] is record:
            target: NativeTarget | None = found[1]
            return target
        target = byok_native_target(self.runtime.providers.config(provider), record, endpoint)
        _remember(entry.memo, key, endpoint, (record, target))
        return target

    async def plan_request(
        self,
        model: str,
        endpoint: str,
        client_key: str | None,
        org_id: str,
        policy: MeterPolicy | None = None,
    ) -> list[Attempt]:
        """:meth:`plan` with the organisation's own provider keys (BYOK), unless the client
        sent its own key (which names one provider and is the only attempt). ``policy``: the
        organisation's meter policy when the caller has it already (else looked up here)."""
        if client_key is not None:
            return self.plan(model, endpoint, client_key)
        # Both lookups are almost always cache hits: answered without an await then.
        runtime = self.runtime
        provider_keys = runtime.provider_keys
        entry = provider_keys.cached(org_id)
        memo: dict[Any, Any] | None = None
        records: Sequence[ProviderKeyRecord]
        if entry is not None:
            records = entry.unsealed or ()
            memo = entry.memo
        else:
            records = await provider_keys.list_provider_keys(org_id)
        if policy is None:
            meter = runtime.meter
            policy = meter.cached_policy(org_id) or await meter.policy(org_id)
        metered = policy.account
        if memo is not None and records:
            # The organisation's keys as cached: its plan is remembered with the cache entry
            # (a changed, rotated or revoked key drops the entry, and the plan with it).
            remembered = memo.get((model, endpoint, metered))
            if remembered is not None:
                return self.health.order(remembered)
        byok: dict[str, list[KeyRecord]] = {}
        for record in records:
            # The grammar's ``model/provider/<deployment>`` names a key's deployment id.
            key = ProviderKey(record.id, record.deployment_id, record)
            byok.setdefault(record.provider, []).append(key)
        return self.plan(model, endpoint, None, byok, metered=metered, memo=memo)

    def plan(
        self,
        model: str,
        endpoint: str,
        client_key: str | None,
        byok: Mapping[str, Sequence[KeyRecord]] | None = None,
        *,
        metered: bool = False,
        memo: dict[Any, Any] | None = None,
    ) -> list[Attempt]:
        """The attempts for ``model`` on ``endpoint`` (a 400 naming what is wrong).

        ``metered``: the organisation has a credit account, so the managed keys serve only
        models the registry prices (an unpriced one cannot be charged). ``memo``: where to
        remember a plan made with ``byok`` (the key cache's entry those keys came from)."""
        memo_key = None
        plans: dict[Any, Any] = self._plans
        if client_key is None and not byok:
            # The usual request: no keys of its own, so its plan depends on the model string,
            # the endpoint and the account only (health reorders it below, per request).
            memo_key = (model, endpoint, metered)
            remembered = plans.get(memo_key)
            if remembered is not None:
                return self.health.order(remembered)
        elif client_key is None and memo is not None:
            memo_key, plans = (model, endpoint, metered), memo
        directory = self.runtime.providers
        try:
            spec = self._parse(model)
            self._check_local(spec)
            if client_key is not None:
                attempts = self._client_key_plan(spec, endpoint)
            else:
                keys = KeySources(
                    byok=byok or {}, credits=self._credits, credits_for_unlisted=not metered
                )
                turns = self.planner.balancer.turns
                attempts = self.planner.plan(spec, keys, endpoint=endpoint)
                if self.planner.balancer.turns != turns:
                    memo_key = None  # load-balanced: the order changes from one plan to the next
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
        if memo_key is not None and self.health.quiet:
            # Kept only when planned with no health record, so in the plain order: health
            # reorders it per request above, and a provider cooled down once does not stay last.
            _remember(plans, memo_key, model, tuple(served))
        return served

    def _parse(self, model: str) -> ModelSpec:
        """The parsed model string (remembered: a :class:`ModelSpec` is immutable); a grammar
        error is raised each time, never remembered."""
        spec = self._parsed.get(model)
        if spec is None:
            spec = self.planner.parse(model)
            _remember(self._parsed, model, model, spec)
        return spec

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
            if not config.base_url:
                hints.append(f" {config.not_configured_message()}.")
            elif config.api_key is None and config.spec.requires_key:
                hints.append(
                    f" No API key configured for provider {item.provider!r}: set "
                    f"{config.spec.key_env} on the gateway, or send your own key in "
                    "'Authorization' together with 'Helicone-Auth'."
                )
        return "".join(dict.fromkeys(hints))


class NativeTarget(NamedTuple):
    """Where an attempt sent to an OpenAI-format provider serving the endpoint itself goes,
    and the parts of its request that do not depend on the request."""

    spec: ProviderSpec
    url: URL
    recorded_url: str
    """What the record keeps instead of ``url`` (an operator's base URL as its placeholder)."""
    api_key: str | None
    """The key ``auth`` was made from (the operator's managed key; None: made per request)."""
    auth: tuple[str, str] | None
    """``spec.auth_header(api_key)``, made once."""
    model: str | None
    """The model id sent (Azure's deployment), None: the attempt's."""


def native_target(config: ProviderConfig, endpoint: str) -> NativeTarget | None:
    """:class:`NativeTarget` of ``endpoint`` on the operator's own endpoint of a provider, or
    None when such a request goes some other way — translated, signed (SigV4), with a minted
    token (Vertex), to an Azure deployment, or nowhere (no endpoint configured):
    :meth:`Exchange.prepare` then works it out per request, as it always did."""
    return _target(config.spec, config.base_url, config.recorded_base_url, endpoint,
                   config.api_key)  # fmt: skip


def byok_native_target(
    config: ProviderConfig, record: ProviderKeyRecord, endpoint: str
) -> NativeTarget | None:
    """:class:`NativeTarget` of an attempt with an organisation's own key (BYOK) on an
    OpenAI-format provider serving ``endpoint`` itself — the key's own base URL (recorded as
    its ``{byok:<deployment_id>}`` placeholder) else the operator's, the key's auth header made
    once — exactly as :meth:`Exchange.prepare` makes it; None for every other case."""
    base, recorded = config.base_url, config.recorded_base_url
    own = record.deployment.base_url or record.deployment.azure_endpoint
    if own:
        base = own.rstrip("/")
        recorded = f"{{byok:{record.deployment_id}}}"
    return _target(config.spec, base, recorded, endpoint, record.api_key)


def _target(
    spec: ProviderSpec, base: str, recorded: str, endpoint: str, key: str | None
) -> NativeTarget | None:
    """The target both kinds of attempt share: an OpenAI-format provider (not SigV4, OAuth or
    Azure) serving ``endpoint`` itself at ``base``, the key's header made once."""
    if (
        spec.auth == "sigv4"
        or spec.auth == "oauth"
        or spec.api_style == "azure"
        or endpoint not in spec.endpoints
        or not base
    ):
        return None
    auth = spec.auth_header(key) if key else None
    return NativeTarget(spec, URL(base + endpoint), recorded + endpoint, key, auth, None)


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

    @property
    def wire(self) -> str:
        """The format the answer comes in (Vertex: its publisher's, for the log's reader)."""
        return self.translation.adapter.wire if self.translation else self.spec.wire

    def error(self, status: int, body: bytes) -> dict[str, Any]:
        """The answer's error as an OpenAI error body (to choose the final error)."""
        if self.translation is not None:
            return self.translation.adapter.error(status, body)
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
        self._files_inlined = False
        self._fetched_images: dict[str, str] = {}
        """Image URLs fetched for a format that cannot reference them → their data URLs."""

    @property
    def client_wants_usage(self) -> bool:
        """The client asked for the usage chunk itself (read only for a streamed request)."""
        return wants_usage(self.payload)

    def native_call(
        self, router: Router, attempt: Attempt, client_key: str | None
    ) -> UpstreamCall | None:
        """:meth:`prepare`'s usual case, without its coroutine: an attempt on an OpenAI-format
        provider serving the endpoint itself, sent with the client's own key, else the org's
        (BYOK), else the managed key (as :meth:`key_for` chooses), its URL, recorded URL and
        key header worked out once (:meth:`Router.native_target` for the operator's endpoint,
        :meth:`Router.byok_target` for an org's key). None: :meth:`prepare` works the attempt
        out."""
        record = attempt.deployment
        if isinstance(record, ProviderKeyRecord):
            target = router.byok_target(record, attempt.provider, self.endpoint)
            if target is None:
                return None
            return self._native(
                attempt, target, client_key if client_key is not None else record.api_key
            )
        target = router.native_target(attempt.provider, self.endpoint)
        if target is None:
            return None
        return self._native(
            attempt, target, client_key if client_key is not None else target.api_key
        )

    async def prepare(self, attempt: Attempt, key: str | None) -> UpstreamCall:
        """The request for ``attempt``, sent with ``key`` (a 400 ``GatewayError`` for what its
        provider's format cannot express)."""
        config = self.runtime.providers.config(attempt.provider)
        spec = config.spec
        base, recorded = config.base_url, config.recorded_base_url
        record = attempt.deployment
        region: str | None = None
        vertex: tuple[VertexAuth | None, str, str] | None = None
        if spec.auth == "sigv4":
            region = self._region(record)
            if not config.base_url_overridden:
                base = recorded = endpoint_url(region)
        elif spec.auth == "oauth":
            vertex = await self._vertex(record, key)
            if not config.base_url_overridden:
                base = recorded = vertex_endpoint_url(vertex[2])
        if isinstance(record, ProviderKeyRecord):
            # The org's own endpoint for this provider (checked against the allow-list when
            # the key was stored); recorded as a placeholder, it may name internal hosts.
            own = record.deployment.base_url or record.deployment.azure_endpoint
            if own:
                base = own.rstrip("/")
                recorded = f"{{byok:{record.deployment_id}}}"
        if not base:
            raise GatewayError(
                400, config.not_configured_message() + ".", code="provider_not_configured"
            )
        auth: VertexAuth | None = None
        if vertex is not None:  # Vertex: every path is under the project's location
            auth, project, location = vertex
            prefix = location_path(project, location)
            base, recorded = base + prefix, recorded + prefix
        if self.endpoint in spec.endpoints:
            if spec.api_style == "azure":
                model, url, path = self._azure(attempt, base)
                azure = NativeTarget(spec, URL(url), recorded + path, None, None, model)
                return self._native(attempt, azure, key)
            target = NativeTarget(
                spec, URL(base + self.endpoint), recorded + self.endpoint, None, None, None
            )
            return self._native(attempt, target, key)
        try:
            return await self._translated(attempt, spec, base, recorded, key, region, auth)
        except TranslationError as exc:
            raise translation_error(exc, spec.name) from exc

    async def _vertex(
        self, record: object, key: str | None
    ) -> tuple[VertexAuth | None, str, str]:
        """Vertex's access token for ``key``, and the request's project and location: the
        deployment's (BYOK), else the operator's (``GATEWAY_VERTEX_PROJECT`` /
        ``GATEWAY_VERTEX_LOCATION``), the project else the service account's own."""
        settings = self.runtime.settings
        project, location = settings.vertex_project, settings.vertex_location
        if isinstance(record, ProviderKeyRecord):
            project = record.deployment.project or project
            location = record.deployment.location or location
        auth = await self.runtime.vertex.authorize(key) if key else None
        project = project or (auth.project if auth is not None else None)
        if not project:
            raise GatewayError(
                400,
                "Vertex AI needs a Google Cloud project: set GATEWAY_VERTEX_PROJECT on the "
                "gateway, use a service-account key (its project_id), or add a deployment "
                "with vertex_project to your provider keys.",
                code="provider_not_configured",
            )
        for value, valid, name in ((project, is_project, "project"),
                                   (location, is_location, "location")):
            if not valid(value):
                raise GatewayError(
                    400,
                    f"The Vertex AI {name} {value[:64]!r} is not a Google Cloud {name} name.",
                    code="invalid_deployment",
                    param="model",
                )
        return auth, project, location

    def _region(self, record: object) -> str:
        """A SigV4 provider's region: the deployment's (BYOK), else the operator's (checked
        when the settings were read)."""
        if not (isinstance(record, ProviderKeyRecord) and record.deployment.region):
            return self.runtime.settings.bedrock_region
        region = record.deployment.region
        if not is_region(region):
            raise GatewayError(
                400,
                f"The deployment's region {region[:64]!r} is not an AWS region name.",
                code="invalid_deployment",
                param="model",
            )
        return region

    def _native(self, attempt: Attempt, target: NativeTarget, key: str | None) -> UpstreamCall:
        """An OpenAI-format provider serving the endpoint itself: the body as sent (zero-copy)
        unless the model id changes or the usage chunk is asked for on the client's behalf."""
        ctx = self.ctx
        payload = self.payload
        body = self.raw
        model = target.model or attempt.model
        inject = (
            (ctx.capture is not None or ctx.tap is not None)
            and self.endpoint == "/chat/completions"
            and payload.get("stream") is True
            and not self.client_wants_usage
        )
        ctx.strip_usage = inject
        if payload.get("model") != model or inject:
            sent = dict(payload)
            sent["model"] = model
            if inject:
                request_usage_chunk(sent)
            body = orjson.dumps(sent)
        credentials = ctx.credentials or ctx.request_credentials(self.headers)
        headers = upstream_request_headers(self.headers, None, credentials.gateway_key)
        if key:
            name, value = (
                target.auth
                if target.auth is not None and key == target.api_key
                else target.spec.auth_header(key)
            )
            headers[name] = value
        headers["content-type"] = "application/json"
        return UpstreamCall(
            target.spec, target.url, headers, body, None, target.recorded_url, model
        )

    def _azure(self, attempt: Attempt, base: str) -> tuple[str, str, str]:
        """Azure OpenAI's deployment and URL for the attempt (providers/azure.py): the
        deployment and API version of the org's key-store deployment, else the model id and
        ``AZURE_OPENAI_API_VERSION``."""
        deployment, version = attempt.model, self.runtime.settings.azure_openai_api_version
        record = attempt.deployment
        if isinstance(record, ProviderKeyRecord):
            deployment = record.deployment.azure_deployment or deployment
            version = record.deployment.api_version or version
        try:
            url = azure_url(base, deployment, self.endpoint, version)
            return deployment, url, azure_path(deployment, self.endpoint, version)
        except ValueError as exc:
            raise GatewayError(400, str(exc), code="invalid_model", param="model") from exc

    async def _translated(
        self,
        attempt: Attempt,
        spec: ProviderSpec,
        base: str,
        recorded: str,
        key: str | None,
        region: str | None = None,
        vertex: VertexAuth | None = None,
    ) -> UpstreamCall:
        """A request its provider serves through translation (gateway/translate.py): a
        Responses request for a chat-only server, anything for a native wire format.

        A SigV4 provider (Bedrock) is signed last, over the exact URL and body sent, with
        ``key`` (AWS credentials or a Bedrock API key) for ``region``; it takes images only
        as bytes, so http(s) image URLs are fetched first (the guarded fetcher). Vertex is
        sent with the access token ``vertex`` (minted from ``key``, or ``key`` itself)."""
        runtime = self.runtime
        adapter = adapter_for(spec.wire)
        responses_request: dict[str, Any] | None = None
        self.ctx.strip_usage = False
        if self.endpoint == "/embeddings":
            return self._embeddings(attempt, spec, recorded, base, key, vertex)
        if self.endpoint == "/responses":
            if not self._files_inlined:
                await inline_file_urls(self.payload, runtime.fetcher)
                self._files_inlined = True
            responses_request = self.payload
            chat = responses_to_chat(self.payload)
        else:
            chat = dict(self.payload)
        chat["model"] = attempt.model
        if spec.wire in IMAGE_INLINING_WIRES and has_parts(chat.get("messages")):
            chat["messages"] = await inline_image_urls(
                spec.wire, chat.get("messages"), runtime.fetcher, self._fetched_images
            )
        call = adapter.build_request(
            chat,
            api_key=key,
            default_max_tokens=runtime.max_output_tokens(spec.name, attempt.model),
        )
        options = self.payload.get("stream_options")  # self.client_wants_usage, inline
        translation = ExchangeTranslation(  # chat's stream_options are the client's
            adapter,
            responses_request is not None
            or (isinstance(options, dict) and options.get("include_usage") is True),
            responses_request,
        )
        body = orjson.dumps(call.body)
        headers = call.headers
        if region is not None:
            # The path is already encoded as it must be signed (a model id's ``:`` as %3A);
            # the URL is sent as written, so its text is what is signed (no ``str(url)``).
            target = base + call.path
            url = URL(target, encoded=True)
            if key:
                headers = runtime.signer.auth_headers("POST", target, headers, body, key, region)
        else:
            url = URL(base + call.path)
        if vertex is not None:
            headers["authorization"] = f"Bearer {vertex.token}"
        return UpstreamCall(
            spec, url, headers, body, translation, recorded + call.path, attempt.model
        )

    def _embeddings(
        self,
        attempt: Attempt,
        spec: ProviderSpec,
        recorded: str,
        base: str,
        key: str | None,
        vertex: VertexAuth | None = None,
    ) -> UpstreamCall:
        """An embeddings request for a native wire format with an embeddings translation
        (Vertex: sent with the access token ``vertex``, like its chat)."""
        embedder = embeddings_adapter_for(spec.wire)
        if embedder is None:  # the provider table says which formats serve /embeddings
            raise GatewayError(
                400, f"Provider {spec.name!r} does not serve /embeddings.",
                code="unsupported_endpoint", param="model",
            )
        request = dict(self.payload)
        request["model"] = attempt.model
        call = embedder.build_embeddings_request(request, api_key=key)
        headers = call.headers
        if vertex is not None:
            headers["authorization"] = f"Bearer {vertex.token}"
        translation = ExchangeTranslation(
            adapter_for(spec.wire), False, embeddings=(embedder, request)
        )
        return UpstreamCall(
            spec, URL(base + call.path), headers, orjson.dumps(call.body), translation,
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
        self,
        attempts: list[Attempt],
        client_key: str | None,
        receive: Receive,
        send: Send,
        policy: MeterPolicy | None = None,
    ) -> None:
        """Try ``attempts`` in order until one is committed to the client.

        Metering (gateway/metering), when the request has any: each attempt holds its
        worst-case cost before it is sent (a credits attempt the account cannot cover fails
        over with 429 "Insufficient credits"; a budget that cannot is the answer), and the hold
        is settled to the real cost once the attempt is committed, or released. ``policy``:
        the organisation's meter policy when the caller looked it up already."""
        ctx = self.ctx
        meter = self.runtime.meter
        assert ctx.identity is not None
        if policy is None:
            policy = meter.cached_policy(ctx.identity.org_id)  # the usual case: no await
        if policy is None:
            metering = await meter.session(ctx)
        elif policy.account or policy.budgets:
            metering = meter.session_under(ctx, policy)
        else:  # the usual organisation: nothing metered, no session to ask for
            metering = None
        outcomes: list[Outcome] = []
        several = len(attempts) > 1
        router = self.runtime.router
        for index, attempt in enumerate(attempts):
            try:
                call = self.native_call(router, attempt, client_key) or await self.prepare(
                    attempt, self.key_for(attempt, client_key)
                )
            except GatewayError as exc:  # what this provider's format cannot express
                if not several:
                    raise
                outcomes.append(Outcome(attempt.source, exc.status, orjson.loads(exc.body())))
                continue
            self._record(call, attempt)
            if several:
                ctx.served_by_fallback(index)
            hold: Hold | None = None
            if metering is not None:
                try:
                    hold = await self._reserve(metering, attempt, call, client_key)
                except InsufficientCredits as refused:
                    self._note(attempt, 429, time.perf_counter())
                    outcomes.append(refused.outcome)
                    continue
            try:
                outcome = await self._try(attempt, call, several, receive, send)
            finally:
                if metering is not None:
                    await metering.finish(hold)
            if outcome is None:
                return  # committed
            outcomes.append(outcome)
        ctx.served_by_none()
        raise _all_failed(outcomes)

    async def _reserve(
        self, metering: MeterSession, attempt: Attempt, call: UpstreamCall, client_key: str | None
    ) -> Hold | None:
        """Hold an attempt's worst-case cost: on the budgets, and on the credit account when
        the operator's managed key pays (not the org's own key, nor the client's)."""
        return await metering.reserve(
            provider=attempt.provider,
            model=attempt.model,
            wire=call.wire,
            body_size=len(call.body),
            payload=self.payload,
            path=self.endpoint,
            credits=client_key is None and attempt.key_source == "credits",
            source=attempt.source,
        )

    async def _try(
        self,
        attempt: Attempt,
        call: UpstreamCall,
        may_fail_over: bool,
        receive: Receive,
        send: Send,
    ) -> Outcome | None:
        """Open ``call``: commit its answer (None), or return the outcome of a failure that
        fails over (only when ``may_fail_over``: a single attempt's error is the answer)."""
        runtime = self.runtime
        health = runtime.router.health
        started = time.perf_counter()
        try:
            async with runtime.upstream.attempt(
                self.ctx, "POST", call.url, call.headers, call.body, call.spec.name
            ) as response:
                status = response.status
                if status >= 400 and may_fail_over:
                    body = await response.read()
                    outcome = Outcome(attempt.source, status, call.error(status, body))
                    if triggers_failover(outcome):
                        health.failure(attempt.provider, attempt.key_id)
                        self._note(attempt, status, started, failed=True)
                        return outcome
                if status < 400:
                    health.success(attempt.provider, attempt.key_id)
                self._note(attempt, status, started)
                await forward(self.ctx, response, receive, send, call.translation, started)
                return None
        except GatewayError as exc:
            if exc.code not in ("upstream_unreachable", "upstream_timeout"):
                raise
            health.failure(attempt.provider, attempt.key_id)
            self._note(attempt, exc.status, started, failed=True)
            if not may_fail_over:
                raise
            return Outcome(attempt.source, exc.status, orjson.loads(exc.body()))

    def _record(self, call: UpstreamCall, attempt: Attempt) -> None:
        self.ctx.provider = call.spec.name
        self.ctx.model = call.model
        if self.ctx.cache is not None:
            self.ctx.cache.note_upstream(
                call.spec.name, call.model, call.recorded_url, call.wire
            )
        capture = self.ctx.capture
        if capture is not None:
            capture.provider = call.spec.name
            capture.request_model = call.model
            capture.target_url = call.recorded_url
            capture.wire = call.wire

    def _note(self, attempt: Attempt, status: int, started: float, *, failed: bool = False) -> None:
        """Count an attempt (and keep it in the record); ``failed``: it fails over, and its
        time was spent on the provider (the committed one's is counted by the relay)."""
        ctx = self.ctx
        ctx.attempts += 1
        elapsed = time.perf_counter() - started
        if failed:
            ctx.upstream_seconds += elapsed
        capture = ctx.capture
        if capture is not None:
            capture.attempts.append((attempt.source, status, round(elapsed * 1000)))


def _all_failed(outcomes: list[Outcome]) -> GatewayError:
    """The error of a walk whose every attempt failed (no fallback index: none served)."""
    status, body = final_error(outcomes)
    error = body["error"]
    return GatewayError(
        status, str(error.get("message")), code=error.get("code"), param=error.get("param"),
        payload=body,
    )
