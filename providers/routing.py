"""From a model string to one upstream target.

This is the foundation's deliberately small routing: ``model`` goes to ``openai``;
``model/provider`` goes to that provider of the OpenAI-compatible family, with the suffix
stripped before forwarding. The last ``/``-separated segment names the provider, so model ids
that contain slashes themselves (``meta-llama/Llama-3.3-70B-Instruct``) are written with an
explicit provider (``meta-llama/Llama-3.3-70B-Instruct/together``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from providers.openai_compat import OPENAI_COMPATIBLE, ProviderSpec

DEFAULT_PROVIDER = "openai"


class RoutingError(ValueError):
    """The model string cannot be routed; the message says what is missing."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where one request goes: provider, the model id the provider expects, endpoint and key."""

    provider: ProviderSpec
    model: str
    base_url: str
    api_key: str | None


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """A provider as configured for this process (managed key and effective base URL)."""

    spec: ProviderSpec
    base_url: str
    api_key: str | None

    @property
    def usable(self) -> bool:
        return self.api_key is not None or not self.spec.requires_key


def split_model(model: str) -> tuple[str, str]:
    """Split ``model[/provider]`` into ``(model_id, provider_slug)``.

    Raises :class:`RoutingError` when a suffix is present but names no known provider.
    """
    model = model.strip()
    if not model:
        raise RoutingError("'model' must not be empty")
    head, sep, tail = model.rpartition("/")
    if not sep:
        return model, DEFAULT_PROVIDER
    if tail in OPENAI_COMPATIBLE and head:
        return head, tail
    known = ", ".join(OPENAI_COMPATIBLE)
    raise RoutingError(
        f"Unknown provider {tail!r} in model {model!r}. Use 'model' (routes to openai) or "
        f"'model/provider' with one of: {known}"
    )


class ProviderDirectory:
    """The configured providers of this process, built once from settings."""

    def __init__(self, api_keys: Mapping[str, str], base_urls: Mapping[str, str]) -> None:
        self._configs = {
            name: ProviderConfig(
                spec=spec,
                base_url=base_urls.get(name, spec.base_url).rstrip("/"),
                api_key=api_keys.get(name),
            )
            for name, spec in OPENAI_COMPATIBLE.items()
        }

    def config(self, name: str) -> ProviderConfig:
        return self._configs[name]

    def usable(self) -> list[ProviderConfig]:
        """Providers that have a managed key (or need none), in table order."""
        return [config for config in self._configs.values() if config.usable]

    def resolve(self, model: str, client_key: str | None = None) -> Target:
        """Route ``model``; ``client_key`` is a provider key the client sent itself.

        A client key wins over the managed one (the client asked for its own account).
        """
        model_id, provider = split_model(model)
        config = self._configs[provider]
        key = client_key or config.api_key
        if key is None and config.spec.requires_key:
            raise RoutingError(
                f"No API key configured for provider {provider!r}: set "
                f"{config.spec.env_prefix}_API_KEY on the gateway, or send your own key in "
                "'Authorization' together with 'Helicone-Auth'"
            )
        return Target(provider=config.spec, model=model_id, base_url=config.base_url, api_key=key)
