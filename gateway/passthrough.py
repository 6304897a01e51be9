"""Passthrough mode: forward any path to a provider, with the client's own provider key.

* ``/oai/...`` and ``/v1/gateway/oai/...`` go to OpenAI (or ``Helicone-OpenAI-Api-Base``);
* ``/v1/gateway/{provider}/...`` goes to any routed provider of :mod:`providers.spec` (or
  one of its ``path_aliases``, such as ``oai``);
* ``/bedrock/v1/{region}/...`` (and ``/v1/gateway/bedrock/v1/{region}/...``) goes to that
  region's Bedrock runtime, re-signed with the caller's AWS credentials
  (:mod:`gateway.bedrock_passthrough`);
* ``/v1/gateway/vertex/v1/projects/{project}/locations/{location}/...`` goes to that
  location's Vertex AI host (``aiplatform.googleapis.com`` for ``global``, the ``rep`` hosts for
  the multi-regions ``us`` and ``eu``) with the caller's
  ``Authorization: Bearer`` access token, and is logged in the format of the model's
  publisher (Google's ``generateContent`` or Anthropic's ``rawPredict``);
* any request carrying ``Helicone-Target-Url`` goes to that origin, path unchanged.

The gateway key travels in ``Helicone-Auth``; ``Authorization`` (and ``x-api-key``/``api-key``)
belong to the provider and are forwarded (a header carrying the gateway key itself is not).
No body is parsed or rewritten, with two exceptions: with logging or metering on, a streamed chat
(``POST .../chat/completions`` with ``"stream": true``) on the provider routes gets
``stream_options.include_usage`` like a unified one, so that its tokens are the provider's
count rather than an estimate; the usage chunk is then stripped from the answer unless the
client asked for it (:func:`usage_rewrite`); and a request of an organisation with a budget that
applies is parsed for its ``model`` and output cap, to hold its worst-case cost before it is
sent and settle it after from the answer (gateway/metering). Client-chosen upstreams are
checked against :class:`gateway.targets.TargetPolicy` (no open relay).

The forwarded path stays under the provider's base path: a ``.`` or ``..`` segment, plain or
percent-encoded (even twice), in the decoded or the raw path, is a 400. Otherwise
``/v1/gateway/ollama/../api/delete`` would reach ``DELETE /api/delete`` (yarl removes dot
segments when the URL is built). The path is re-encoded before joining, so an encoded ``?`` or
``#`` stays a character of the path.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit

import orjson
from yarl import URL

from gateway import bedrock_passthrough
from gateway.asgi import Receive, Scope, Send
from gateway.context import RequestContext
from gateway.errors import GatewayError
from gateway.keys import KEY_PATTERN, KEY_SCHEME, looks_like_key
from gateway.redact import redact_url
from gateway.sse import request_usage_chunk
from gateway.upstream import upstream_request_headers
from providers.gemini import model_from_path
from providers.vertex import answer_wire, endpoint_url, is_location, location_in_path
from ratelimit import CostEstimate, estimate_cost, json_payload

if TYPE_CHECKING:
    from gateway.dataplane import Handler
    from gateway.metering.meter import Hold, MeterSession
    from gateway.runtime import Runtime

_GATEWAY_PREFIX = "/v1/gateway/"
_SEPARATORS = re.compile(r"[/\\]")
# RFC 3986 pchar plus "/": what ``quote`` leaves alone when re-encoding a decoded path.
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_DECODE_ROUNDS = 3
LOG_MARK = "/v1/log"
"""Every manual-logger path contains this: the cheap pre-test before :func:`is_log_endpoint`."""
_LOG_HEADS = (["oai"], ["anthropic"], ["custom"], ["googleapis"], ["v1", "trace", "custom"])


def is_log_endpoint(path: str) -> bool:
    """Whether ``path`` is one of the manual-logger ingest endpoints (not a proxy path).

    ``/{oai,anthropic,custom,googleapis}/v1/log`` (Helicone's worker), ``/v1/trace/custom/v1/log``
    (the self-hosted variant) and ``/v1/gateway/{provider}/v1/log`` (a logger whose base URL
    is a gateway prefix), with or without a gateway key in the path or a trailing slash.
    No provider serves ``/v1/log``: forwarding one would hand the user's logged prompts and
    answers to the provider. Called only for paths containing :data:`LOG_MARK`.
    """
    path = path.rstrip("/")
    if not path.endswith(LOG_MARK):
        return False
    head = [s for s in path[: -len(LOG_MARK)].split("/") if s and not looks_like_key(s)]
    return head in _LOG_HEADS or (len(head) == 3 and head[:2] == ["v1", "gateway"])


def take_path_key(rest: str) -> tuple[str | None, str]:
    """The gateway key carried in the path (reference §1.2) and ``rest`` without it.

    The key may be the first segment (``/oai/{key}/v1/...``) or the second one (the
    hyperbolic form ``/v1/{key}/chat/completions``). A key-shaped string anywhere else is a
    400, so that a gateway key never reaches a provider. Costs a substring test when the
    path has no key.
    """
    if KEY_SCHEME not in rest:
        return None, rest
    segments = rest.split("/")
    for index in (1, 2):
        if index < len(segments) and looks_like_key(segments[index]):
            key = segments.pop(index)
            stripped = "/".join(segments) or "/"
            if KEY_PATTERN.search(stripped) is None:
                return key, stripped
            break
    raise GatewayError(
        400,
        "A gateway key may appear in the path only right after the provider prefix "
        "('/oai/{key}/v1/...') or after the version ('/v1/gateway/{provider}/v1/{key}/...'), "
        "once; it is never forwarded. Send it in Helicone-Auth instead.",
        code="invalid_path",
    )


def _without_path_key(scope: Scope, path: str) -> Scope:
    """The request as if the path had not carried the key (the capture records ``path``)."""
    return {**scope, "path": path}


def leaves_base(path: str) -> bool:
    """True if ``path`` has a ``.``/``..`` segment, plain or percent-encoded up to three times.

    Backslashes count as separators too (some servers treat them as ``/``). A path still
    encoded after three rounds of decoding is refused as well. Costs a substring test for
    the usual path without ``.``, ``%`` or ``\\``.
    """
    if "." not in path and "%" not in path and "\\" not in path:
        return False
    for _ in range(_DECODE_ROUNDS):
        if any(segment in (".", "..") for segment in _SEPARATORS.split(path)):
            return True
        decoded = unquote(path)
        if decoded == path:
            return False
        path = decoded
    return True


def check_path(scope: Scope) -> None:
    """A 400 when the path would leave the target's base path (see :func:`leaves_base`)."""
    raw_path: bytes = scope.get("raw_path") or b""
    if leaves_base(scope["path"]) or leaves_base(raw_path.decode("latin-1")):
        raise GatewayError(
            400,
            "The path has a '.' or '..' segment (plain or percent-encoded); passthrough paths "
            "must stay under the provider's base path.",
            code="invalid_path",
        )


def join_overlapping(base: str, path: str) -> str:
    """Append ``path`` to ``base``, dropping the segments they share at the seam.

    ``https://api.openai.com/v1`` + ``/v1/chat/completions`` →
    ``https://api.openai.com/v1/chat/completions``; a base without a path just gets the path.
    """
    base = base.rstrip("/")
    base_segments = [s for s in urlsplit(base).path.split("/") if s]
    path_segments = path.lstrip("/").split("/")
    for size in range(min(len(base_segments), len(path_segments)), 0, -1):
        if base_segments[-size:] == path_segments[:size]:
            path_segments = path_segments[size:]
            break
    return base + ("/" + "/".join(path_segments) if path_segments else "")


class Passthrough:
    """Handlers for the passthrough routes."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def match(self, path: str) -> Handler | None:
        if path.startswith(_GATEWAY_PREFIX):
            return self.provider
        root = path[1 : path.find("/", 1)] if path.count("/") > 1 else ""
        if root and self.runtime.providers.table.root_name(root) is not None:
            return self.provider
        return None

    async def provider(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        ctx: RequestContext,
    ) -> None:
        path: str = scope["path"]
        check_path(scope)
        table = self.runtime.providers.table
        if path.startswith(_GATEWAY_PREFIX):
            slug, _, tail = path[len(_GATEWAY_PREFIX) :].partition("/")
            rest = "/" + tail
            name = table.passthrough_name(slug)
        else:  # a root path (``/oai/...``, ``/anthropic/...``): match() checked it
            slug, _, tail = path[1:].partition("/")
            rest = "/" + tail
            name = table.root_name(slug)
        key, stripped = take_path_key(rest)
        if key is not None:
            path = path[: len(path) - len(rest)] + stripped
            scope = _without_path_key(scope, path)
            ctx.use_path_key(key, headers)
            rest = stripped
        if name is None:
            known = ", ".join(table.passthrough_slugs())
            raise GatewayError(
                404,
                f"Unknown passthrough provider {slug!r} in {path!r}; known: {known}.",
                code="unknown_provider",
            )
        config = self.runtime.providers.config(name)
        if config.local_unconfigured or not config.base_url:
            raise GatewayError(
                400, config.not_configured_message() + ".", code="provider_not_configured"
            )
        if config.spec.auth == "sigv4":  # Bedrock: re-signed for AWS (its own module)
            await bedrock_passthrough.forward(
                self.runtime, scope, receive, send, headers, ctx, rest, config
            )
            return
        query: bytes = scope.get("query_string", b"")
        header = config.spec.base_url_header
        override = ctx.options.openai_api_base if header else None
        wire = config.spec.wire
        if wire == "vertex":
            base = config.base_url if config.base_url_overridden else _vertex_host(rest)
            url, tail = _join(base, rest, query)
            recorded = (config.recorded_base_url if config.base_url_overridden else base) + (
                redact_url(tail)
            )
            await self._forward(
                scope, receive, send, headers, ctx, url, recorded, name, answer_wire(rest),
                provider_route=True, model_in_path=True,
            )
            return
        if header and override:
            base = str(self.runtime.targets.check(override, header))
            url, tail = _join(base, rest, query)
            self.runtime.targets.require(url, header)
            recorded = redact_url(base + tail)
        else:
            url, tail = _join(config.base_url, rest, query)
            recorded = config.recorded_base_url + redact_url(tail)
        await self._forward(
            scope, receive, send, headers, ctx, url, recorded, name, config.spec.wire,
            provider_route=True,
        )

    async def generic(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        ctx: RequestContext,
    ) -> None:
        header = "Helicone-Target-Url"
        check_path(scope)
        key, stripped = take_path_key(scope["path"])
        if key is not None:
            scope = _without_path_key(scope, stripped)
            ctx.use_path_key(key, headers)
        target_url = ctx.options.target_url
        assert target_url is not None  # the data plane routes here only when it is set
        origin = str(self.runtime.targets.check(target_url, header))
        query: bytes = scope.get("query_string", b"")
        url, tail = _join(origin, scope["path"], query, overlap=False)
        self.runtime.targets.require(url, header)
        recorded = redact_url(origin + tail)
        provider = ctx.options.target_provider
        path: str = scope["path"]
        wire = self.runtime.providers.table.wire_for(url.raw_host or "", provider, path)
        await self._forward(
            scope, receive, send, headers, ctx, url, recorded, provider, wire,
            model_in_path=location_in_path(path) is not None,
        )

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        ctx: RequestContext,
        url: URL,
        recorded_url: str,
        provider: str,
        wire: str,
        provider_route: bool = False,
        model_in_path: bool = False,
    ) -> None:
        """Send to ``url`` (already checked); the log records ``recorded_url`` instead.

        ``wire``: the format the provider answers in, which the record is read with. On an
        OpenAI-format provider route a logged streamed chat may ask for usage; a
        ``Helicone-Target-Url`` body is never rewritten (its format is only a guess).
        ``model_in_path``: the path names the model (a Vertex path, whatever its publisher).
        """
        runtime = self.runtime
        body = await runtime.start_request(ctx, scope, receive, headers)
        credentials = ctx.request_credentials(headers)
        meter = runtime.meter
        assert ctx.identity is not None  # authenticated by start_request
        policy = meter.cached_policy(ctx.identity.org_id)  # the usual case: no await
        metering = await meter.session(ctx) if policy is None else meter.session_under(ctx, policy)
        ctx.provider = provider
        capture = ctx.capture
        if capture is not None:
            capture.provider = provider
            capture.target_url = recorded_url
            capture.wire = wire
        # The cache key names the upstream as recorded (no key in it) and the client's body;
        # a hit is never rate limited, reserved or charged.
        if await runtime.serve_from_cache(ctx, send, f"{scope['method']} {recorded_url}", body):
            return
        if ctx.cache is not None:
            ctx.cache.note_upstream(provider, "", recorded_url, wire)

        estimate = body_cost_estimate(runtime, provider, body, scope["path"])
        if wire == "gemini" or model_in_path:
            # Gemini and Vertex name the model in the path, not in the body.
            ctx.model = model_from_path(scope["path"]) or ""
            if capture is not None:
                capture.request_model = ctx.model

        async with runtime.limiter.limit(ctx, estimate):
            if (
                (capture is not None or metering is not None)
                and provider_route
                and wire == "openai"
                and scope["method"] == "POST"
            ):
                rewritten = usage_rewrite(scope["path"], body)
                if rewritten is not None:
                    body = rewritten
                    ctx.strip_usage = True
            hold = None
            if metering is not None and scope["method"] == "POST":
                hold = await reserve_client_key(
                    metering, provider=provider, wire=wire, body=body, path=scope["path"]
                )
            try:
                await runtime.upstream.relay(
                    ctx,
                    scope["method"],
                    url,
                    upstream_request_headers(
                        headers, credentials.provider_authorization, credentials.gateway_key
                    ),
                    body if body or scope["method"] not in ("GET", "HEAD") else None,
                    receive,
                    send,
                    provider,
                )
            finally:
                if metering is not None:
                    await metering.finish(hold)


def _body_model(body: bytes) -> tuple[dict[str, Any] | None, str | None]:
    """``(JSON object, the model it names)`` of a body forwarded as the client wrote it
    (either None when the body does not say)."""
    payload = json_payload(body)
    model = payload.get("model") if payload is not None else None
    return payload, model if isinstance(model, str) else None


def body_cost_estimate(
    runtime: Runtime, provider: str, body: bytes, path: str
) -> Callable[[], CostEstimate]:
    """A cents policy's reservation (ratelimit/_cost.py) for a forwarded body: priced as the
    model its JSON names, if any, at ``provider`` (passthrough and fallbacks)."""

    def estimate() -> CostEstimate:
        assert runtime.registry is not None
        payload, model = _body_model(body)
        candidates = [(provider, model)] if model is not None else []
        return estimate_cost(runtime.registry, candidates, payload, len(body), path)

    return estimate


async def reserve_client_key(
    metering: MeterSession, *, provider: str, wire: str, body: bytes, path: str
) -> Hold | None:
    """The budget hold of a forwarded body: it always goes with the client's own provider
    key (never the operator's credits), priced as the model its JSON names."""
    payload, model = _body_model(body)
    return await metering.reserve(
        provider=provider,
        model=model,
        wire=wire,
        body_size=len(body),
        payload=payload,
        path=path,
        credits=False,
    )


def usage_rewrite(path: str, body: bytes) -> bytes | None:
    """``body`` asking for the usage chunk, if it is a streamed chat that did not; else None.

    Only a path ending in ``/chat/completions`` whose body has ``"stream"`` in it is parsed
    (a substring test first, so other requests stay zero-copy). A body that is not a JSON
    object, or too deep to re-encode, is forwarded as it is: passthrough leaves judging it
    to the provider.
    """
    if not path.rstrip("/").endswith("/chat/completions") or b'"stream"' not in body:
        return None
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or payload.get("stream") is not True:
        return None
    if not request_usage_chunk(payload):
        return None
    try:
        return orjson.dumps(payload)
    except orjson.JSONEncodeError:
        return None


def _join(base: str, path: str, query: bytes, overlap: bool = True) -> tuple[URL, str]:
    """The upstream URL (``base`` joined with the decoded ``path``, re-encoded, and the query)
    and what it adds to ``base`` (for the record). ``overlap``: drop the segments ``base``
    and ``path`` share at the seam (provider routes); else append (``Helicone-Target-Url``).

    The URL keeps ``base``'s path as its prefix (``path`` has no dot segments, checked
    before); anything else is a 400 rather than a request elsewhere.
    """
    base = base.rstrip("/")
    quoted = quote(path, safe=_PATH_SAFE)
    joined = join_overlapping(base, quoted) if overlap else base + quoted
    if query:
        joined = f"{joined}?{query.decode('latin-1')}"
    url = URL(joined)
    base_path = URL(base).raw_path.rstrip("/")
    if base_path and not (url.raw_path + "/").startswith(base_path + "/"):
        raise GatewayError(400, "The path leaves the provider's base path.", code="invalid_path")
    return url, joined[len(base) :]


def _vertex_host(rest: str) -> str:
    """The Vertex AI host of the location a passthrough path names (a 400 for a path that
    names none, or a location that could not be a host label)."""
    location = location_in_path(rest)
    if location is None or not is_location(location):
        raise GatewayError(
            400,
            "Vertex AI passthrough paths are /v1/gateway/vertex/v1/projects/{project}/"
            "locations/{location}/... with 'global', 'us', 'eu' or a Google Cloud region as the "
            "location.",
            code="invalid_path",
        )
    return endpoint_url(location)


def join_target(origin: str, path: str, query: bytes) -> tuple[URL, str]:
    """A client-named target's URL (origin + the request's path and query, as
    ``Helicone-Target-Url`` relays) and what it adds to ``origin``."""
    return _join(origin, path, query, overlap=False)
