"""Live validation of provider keys: one cheap authenticated request to the provider.

PostHog's semantics (prompts-and-peer-apis.md A.3.2): the outcome is a *state* — ``ok``,
``invalid`` (the provider refused the key), ``error`` (the check itself failed: rate limited,
unreachable, an unexpected answer) or ``unknown`` (no live check exists for the provider) —
with PostHog's messages, never an exception. The request asks for the cheapest thing that
needs the key: the model list (OpenAI-compatible ``GET {base}/models``, Anthropic
``GET {base}/v1/models``, Gemini ``GET /v1beta/models``), OpenRouter's ``GET /key`` (its model
list is public) or Azure's deployment list. Each check has a 10 s budget and never follows a
redirect (a key must not be carried to wherever a user-supplied endpoint points).

User-supplied endpoints are checked before anything is sent: an Azure endpoint must be https
on an Azure domain (or on the operator's allow-list, ``GATEWAY_ALLOWED_TARGET_HOSTS``), and a
custom base URL must be on the passthrough allow-list (:class:`gateway.targets.TargetPolicy`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import aiohttp
from yarl import URL

from gateway.store import Deployment
from gateway.targets import TargetPolicy
from providers.spec import PROVIDERS, ProviderSpec

logger = logging.getLogger("gateway.keycheck")

TIMEOUT_SECONDS = 10.0
ANTHROPIC_VERSION = "2023-06-01"
AZURE_DEFAULT_API_VERSION = "2024-10-21"
"""Persisted with an Azure endpoint saved without a version (PostHog's ``DEFAULT_API_VERSION``),
so a later change of the default does not move existing keys."""
_AZURE_LIST_API_VERSION = "2023-03-15-preview"
_AZURE_SUFFIXES = (".openai.azure.com", ".cognitiveservices.azure.com", ".services.ai.azure.com")
AZURE_DISALLOWED = (
    "Azure endpoint must be an https:// URL on an Azure domain (e.g. *.openai.azure.com)."
)
_UNSUPPORTED = frozenset({"bedrock", "vertex"})
"""Credentials that are not one header (SigV4, OAuth): stored, never checked live."""

_LABELS = {
    "openai": "OpenAI",
    "anthropic": "Anthropic",
    "azure": "Azure OpenAI",
    "google-ai-studio": "Gemini",
    "openrouter": "OpenRouter",
}

_RATE_LIMITED = "Rate limited, please try again later"
_INVALID_KEY = "Invalid API key"
_FAILED = "Validation failed, please try again"


@dataclass(frozen=True, slots=True)
class Validation:
    """A check's outcome. ``error_field`` names the input at fault (Azure only, as PostHog)."""

    state: str
    error_message: str | None = None
    error_field: str | None = None


def format_error(provider: str, api_key: str) -> str | None:
    """PostHog's format pre-check (a 400 before any request), or None when it passes."""
    if provider == "openai" and not api_key.startswith("sk-"):
        return "Invalid OpenAI API key format. Key should start with 'sk-' or 'sk-proj-'."
    if provider == "anthropic" and not api_key.startswith("sk-ant-"):
        return "Invalid Anthropic API key format. Key should start with 'sk-ant-'."
    return None


def azure_endpoint_allowed(endpoint: str, targets: TargetPolicy) -> bool:
    """https on an Azure domain, or an endpoint the operator allow-listed."""
    try:
        url = URL(endpoint)
    except (ValueError, TypeError):
        return False
    if not url.absolute or url.raw_user is not None or url.raw_password is not None:
        return False
    host = (url.raw_host or "").lower()
    if url.scheme == "https" and host.endswith(_AZURE_SUFFIXES):
        return True
    return targets.allows(endpoint)


def base_url_allowed(base_url: str, targets: TargetPolicy) -> bool:
    """A custom base URL must be somewhere passthrough may go (no open relay, no SSRF)."""
    try:
        url = URL(base_url)
    except (ValueError, TypeError):
        return False
    if not url.absolute or url.scheme not in ("http", "https") or url.query_string:
        return False
    return targets.permits(url.with_path("/"))


def _error_field(message: str | None) -> str | None:
    if message is None:
        return None
    if message.startswith(
        ("Azure endpoint is required", "Azure endpoint must be", "Azure endpoint not found",
         "Could not connect to Azure")
    ):
        return "azure_endpoint"
    if message.startswith(_INVALID_KEY):
        return "api_key"
    return None


class KeyValidator:
    """Runs the live checks through an injected HTTP session.

    ``session``: returns the aiohttp session to use (the gateway's upstream pool, created at
    startup). ``base_urls``: each routed provider's configured base URL (``OPENAI_BASE_URL``…).
    """

    def __init__(
        self,
        session: Callable[[], aiohttp.ClientSession],
        base_urls: Mapping[str, str],
        targets: TargetPolicy,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self._session = session
        self._base_urls = base_urls
        self._targets = targets
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def validate(
        self, provider: str, api_key: str, deployment: Deployment | None = None
    ) -> Validation:
        deployment = deployment or Deployment()
        spec = PROVIDERS.get(provider)
        if spec is None:
            return Validation("error", f"Unknown provider {provider!r}")
        try:
            if provider == "azure":
                outcome = await self._azure(api_key, deployment)
                return Validation(outcome.state, outcome.error_message,
                                  _error_field(outcome.error_message))
            return await self._check(spec, api_key, deployment)
        except Exception:  # a bug here must not become a 500 (PostHog: the same message)
            logger.exception("validating a %s key failed", provider)
            return Validation("error", _FAILED)

    async def _check(self, spec: ProviderSpec, api_key: str, deployment: Deployment) -> Validation:
        name = spec.name
        if name in _UNSUPPORTED:
            return Validation("unknown", f"Live validation is not available for {name} keys")
        if name == "openai" and not api_key.startswith("sk-"):
            return Validation(
                "invalid", "Invalid key format (should start with 'sk-' or 'sk-proj-')"
            )
        if deployment.base_url is not None:
            if not base_url_allowed(deployment.base_url, self._targets):
                return Validation("invalid", "Base URL is not on the gateway's allow-list")
            base = deployment.base_url.rstrip("/")
        else:
            base = self._base_urls.get(name) or (spec.base_url or "")
        headers: dict[str, str]
        if spec.wire == "anthropic":
            url = f"{base}/v1/models"
            headers = {"x-api-key": api_key, "anthropic-version": ANTHROPIC_VERSION}
        elif spec.wire == "gemini":
            url = f"{base}/v1beta/models"
            headers = {"x-goog-api-key": api_key}
        elif name == "openrouter":
            url = f"{base}/key"
            headers = {"authorization": f"Bearer {api_key}"}
        else:
            url = f"{base}/models"
            headers = dict([spec.auth_header(api_key)]) if api_key else {}
        return await self._get(url, headers, _LABELS.get(name, name), generic=name == "openai")

    async def _azure(self, api_key: str, deployment: Deployment) -> Validation:
        endpoint = deployment.azure_endpoint
        if not endpoint:
            return Validation("invalid", "Azure endpoint is required")
        if not azure_endpoint_allowed(endpoint, self._targets):
            return Validation("invalid", AZURE_DISALLOWED)
        url = f"{endpoint.rstrip('/')}/openai/deployments?api-version={_AZURE_LIST_API_VERSION}"
        outcome = await self._get(url, {"api-key": api_key}, "Azure OpenAI", generic=False)
        if outcome.error_message == "Azure OpenAI returned 404":
            return Validation("invalid", "Azure endpoint not found — check the URL")
        if outcome.error_message == "Could not connect to Azure OpenAI":
            return Validation("error", "Could not connect to Azure OpenAI endpoint")
        return outcome

    async def _get(
        self, url: str, headers: dict[str, str], label: str, *, generic: bool
    ) -> Validation:
        """``GET url``; the status mapped to a state. ``generic``: other statuses get
        PostHog's OpenAI message rather than naming the status."""
        try:
            async with self._session().get(
                URL(url, encoded=True), headers=headers, allow_redirects=False,
                timeout=self._timeout,
            ) as response:
                status = response.status
                await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError):
            return Validation("error", f"Could not connect to {label}")
        if 200 <= status < 300:
            return Validation("ok")
        if status in (401, 403):
            return Validation("invalid", _INVALID_KEY)
        if status == 429:
            return Validation("error", _RATE_LIMITED)
        return Validation("error", _FAILED if generic else f"{label} returned {status}")
