"""Which upstream URLs passthrough mode may forward to.

``Helicone-Target-Url`` and ``Helicone-OpenAI-Api-Base`` let the client name the upstream; an
unrestricted version of that is an open relay (and an SSRF hole into the operator's network).
Targets must be on the provider allow-list, be the host of a configured provider base URL, or
be added by the operator with ``GATEWAY_ALLOWED_TARGET_HOSTS``.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit

from gateway.errors import GatewayError

DEFAULT_ALLOWED_HOSTS: tuple[str, ...] = (
    "api.openai.com",
    "*.openai.azure.com",
    "*.cognitiveservices.azure.com",
    "api.anthropic.com",
    "generativelanguage.googleapis.com",
    "*-aiplatform.googleapis.com",
    "aiplatform.googleapis.com",
    "bedrock-runtime.*.amazonaws.com",
    "api.groq.com",
    "api.x.ai",
    "api.deepseek.com",
    "api.mistral.ai",
    "openrouter.ai",
    "api.together.xyz",
    "api.fireworks.ai",
    "api.perplexity.ai",
    "api.deepinfra.com",
    "api.tokenfactory.nebius.com",
    "api.novita.ai",
    "api.hyperbolic.xyz",
    "integrate.api.nvidia.com",
    "api.cerebras.ai",
    "api.endpoints.anyscale.com",
    "gateway.ai.cloudflare.com",
    "api.lemonfox.ai",
    "api.llama.com",
)
"""Provider API hosts (Helicone's approved domains plus the providers this gateway knows)."""


def _matches(pattern: str, host: str, port: int | None) -> bool:
    """``pattern`` is ``host``, ``host:port`` or contains one ``*`` wildcard."""
    if ":" in pattern and not pattern.startswith("["):
        pattern_host, _, pattern_port = pattern.rpartition(":")
        if str(port) != pattern_port:
            return False
        pattern = pattern_host
    if "*" not in pattern:
        return host == pattern
    prefix, _, suffix = pattern.partition("*")
    return (
        len(host) > len(prefix) + len(suffix)
        and host.startswith(prefix)
        and host.endswith(suffix)
        and "/" not in host
    )


class TargetPolicy:
    """Decides whether an absolute URL may be a passthrough upstream."""

    def __init__(self, extra_hosts: Iterable[str], configured_urls: Iterable[str]) -> None:
        patterns = [*DEFAULT_ALLOWED_HOSTS, *(h.strip().lower() for h in extra_hosts if h.strip())]
        for url in configured_urls:
            parts = urlsplit(url)
            if parts.hostname:
                patterns.append(
                    f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
                )
        self._patterns = tuple(patterns)

    def allows(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return False
        try:
            port = parts.port
        except ValueError:
            return False
        host = parts.hostname.lower()
        return any(_matches(pattern, host, port) for pattern in self._patterns)

    def check(self, url: str, header: str) -> str:
        """Return ``url`` without a trailing slash, or raise a 400 naming the header."""
        if not self.allows(url):
            raise GatewayError(
                400,
                f"{header} {url!r} is not an allowed upstream. Allowed: provider API hosts, the "
                "configured provider base URLs, and hosts in GATEWAY_ALLOWED_TARGET_HOSTS.",
                code="target_not_allowed",
            )
        return url.rstrip("/")
