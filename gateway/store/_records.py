"""Values and errors the control-plane store hands out; free of any database types."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

DEFAULT_ORG = "default"
"""Organisation that keys belong to when none is named (single-tenant deployments)."""


@dataclass(frozen=True, slots=True)
class KeyIdentity:
    """Who an accepted key belongs to; what the request path needs after authentication."""

    key_id: str
    org_id: str
    org_name: str
    scopes: frozenset[str] | None = None
    """Native scopes (:mod:`gateway.scopes`); ``None`` is full access (keys without scopes)."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A stored key as operators see it; never includes the key itself."""

    id: str
    org_id: str
    org_name: str
    name: str | None
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    scopes: frozenset[str] | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None


PROVIDER_KEY_STATES = ("unknown", "ok", "invalid", "error")
"""A provider key's validation state (PostHog's): never checked, accepted, refused by the
provider, or the check itself failed (rate limited, unreachable)."""


@dataclass(frozen=True, slots=True)
class Deployment:
    """Where a provider key's requests go when not to the provider's public API.

    All optional; which ones apply depends on the provider: ``azure_endpoint`` (``https://
    <resource>.openai.azure.com``), ``azure_deployment`` and ``api_version`` for Azure
    OpenAI; ``region`` for Bedrock; ``project`` and ``location`` for Vertex; ``base_url`` for
    any OpenAI-compatible provider served elsewhere (a proxy, a private endpoint).
    """

    base_url: str | None = None
    azure_endpoint: str | None = None
    azure_deployment: str | None = None
    api_version: str | None = None
    region: str | None = None
    project: str | None = None
    location: str | None = None

    def as_dict(self) -> dict[str, str]:
        """The set fields only (what is encrypted with the key)."""
        return {name: value for name in _DEPLOYMENT_FIELDS if (value := getattr(self, name))}

    @property
    def empty(self) -> bool:
        return not self.as_dict()


_DEPLOYMENT_FIELDS = (
    "base_url",
    "azure_endpoint",
    "azure_deployment",
    "api_version",
    "region",
    "project",
    "location",
)


@dataclass(frozen=True, slots=True)
class ProviderKeyRecord:
    """An organisation's own key for a provider (BYOK), decrypted.

    ``deployment_id`` is the key's stable name in model strings (``model/provider/
    deployment_id``), unique per organisation and provider. ``is_default``: the key the router
    prefers for its provider. ``api_key`` is the secret: never logged (it is left out of
    ``repr``), never returned by an API.
    """

    id: str
    org_id: str
    provider: str
    name: str
    deployment_id: str
    api_key: str = field(repr=False)
    api_key_masked: str
    deployment: Deployment
    state: str
    error_message: str | None
    is_default: bool
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None
    last_validated_at: datetime | None


class ProviderKeyNotFound(LookupError):
    """No provider key with this id in the organisation."""


class ProviderKeyConflict(ValueError):
    """A provider key's ``deployment_id`` is taken in its organisation and provider."""


class KeyNotFound(LookupError):
    """No key matches the given id or prefix."""


class AmbiguousKey(LookupError):
    """A prefix matches more than one key; the caller must be more specific."""
