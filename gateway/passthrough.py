"""Passthrough mode: forward any path to a provider, with the client's own provider key.

* ``/oai/...`` and ``/v1/gateway/oai/...`` go to OpenAI (or ``Helicone-OpenAI-Api-Base``);
* ``/v1/gateway/{provider}/...`` goes to any provider of the OpenAI-compatible family;
* any request carrying ``Helicone-Target-Url`` goes to that origin, path unchanged.

The gateway key travels in ``Helicone-Auth``; ``Authorization`` (and ``x-api-key``/``api-key``)
belong to the provider and are forwarded. No body is parsed or rewritten. Client-chosen
upstreams are checked against :class:`gateway.targets.TargetPolicy` (no open relay).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gateway.asgi import Receive, Scope, Send, read_body
from gateway.auth import read_credentials
from gateway.errors import GatewayError
from gateway.options import declared_length
from gateway.upstream import Exchange, upstream_request_headers
from providers.openai_compat import OPENAI_COMPATIBLE

if TYPE_CHECKING:
    from gateway.dataplane import Handler
    from gateway.runtime import Runtime

_GATEWAY_PREFIX = "/v1/gateway/"
_PROVIDER_ALIASES = {"oai": "openai", "openai": "openai"}


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
        if path.startswith("/oai/") or path.startswith(_GATEWAY_PREFIX):
            return self.provider
        return None

    async def provider(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], ex: Exchange
    ) -> None:
        path: str = scope["path"]
        if path.startswith("/oai/"):
            slug, rest = "oai", path[len("/oai") :]
        else:
            slug, _, tail = path[len(_GATEWAY_PREFIX) :].partition("/")
            rest = "/" + tail
        name = _PROVIDER_ALIASES.get(slug, slug)
        if name not in OPENAI_COMPATIBLE:
            known = ", ".join(["oai", *OPENAI_COMPATIBLE])
            raise GatewayError(
                404,
                f"Unknown passthrough provider {slug!r} in {path!r}; known: {known}.",
                code="unknown_provider",
            )
        base = self.runtime.providers.config(name).base_url
        override = headers.get("helicone-openai-api-base")
        if override and name == "openai":
            base = self.runtime.targets.check(override, "Helicone-OpenAI-Api-Base")
        await self._forward(
            scope, receive, send, headers, ex, join_overlapping(base, rest), provider=name
        )

    async def generic(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], ex: Exchange
    ) -> None:
        origin = self.runtime.targets.check(headers["helicone-target-url"], "Helicone-Target-Url")
        provider = headers.get("helicone-target-provider", "").strip().lower() or "custom"
        await self._forward(
            scope, receive, send, headers, ex, origin + scope["path"], provider=provider
        )

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        exchange: Exchange,
        url: str,
        provider: str,
    ) -> None:
        runtime = self.runtime
        credentials = read_credentials(headers)
        identity = await runtime.authenticate(credentials)
        capture = runtime.begin_capture(exchange, identity, scope["path"], headers)
        body = await read_body(receive, runtime.settings.max_body_bytes, declared_length(headers))
        query: bytes = scope.get("query_string", b"")
        if query:
            url = f"{url}?{query.decode('latin-1')}"
        if capture is not None:
            capture.request_body = body
            capture.provider = provider
            capture.target_url = url
        await runtime.upstream.relay(
            exchange,
            scope["method"],
            url,
            upstream_request_headers(headers, credentials.provider_authorization),
            body if body or scope["method"] not in ("GET", "HEAD") else None,
            receive,
            send,
        )
