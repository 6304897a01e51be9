"""From a model string to one upstream target.

This is the foundation's deliberately small routing: ``model`` goes to ``openai``;
``model/provider`` goes to that routed provider of the table (:mod:`providers.spec`), with
the suffix stripped before forwarding. The last ``/``-separated segment names the provider,
so model ids that contain slashes themselves (``meta-llama/Llama-3.3-70B-Instruct``) are
written with an explicit provider (``meta-llama/Llama-3.3-70B-Instruct/together``).

A provider whose built-in base URL is on the local network (``ollama``) is usable only when
the operator configured it (its ``<PREFIX>_BASE_URL`` or ``<PREFIX>_API_KEY`` set): it needs
no key, so without that rule every key holder could reach the gateway host's ``localhost``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from providers.spec import DEFAULT_PROVIDER, PROVIDERS, ProviderSpec, ProviderTable

__all__ = [
    "DEFAULT_PROVIDER",
    "ProviderConfig",
    "ProviderDirectory",
    "RoutingError",
    "Target",
    "split_model",
]


class RoutingError(ValueError):
    """The model string cannot be routed; the message says what is missing."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where one request goes: provider, the model id the provider expects, endpoint and key."""

    provider: ProviderSpec
    model: str
    base_url: str
    api_key: str | None
    recorded_base_url: str
    """What the request log stores instead of ``base_url`` (see ``ProviderConfig``)."""


@dataclass(frozen=True, slots=True)
class ProviderConfig:
    """A provider as configured for this process (managed key and effective base URL).

    ``configured``: the operator set its base URL or key. ``base_url_overridden``: the base
    URL is the operator's, which may name internal hosts, so records show the placeholder
    ``{<PREFIX>_BASE_URL}`` (``recorded_base_url``) instead of it.
    """

    spec: ProviderSpec
    base_url: str
    api_key: str | None
    configured: bool = False
    base_url_overridden: bool = False
    local_unconfigured: bool = False
    """A local-network provider the operator did not turn on: never called, never listed."""

    @property
    def usable(self) -> bool:
        """The operator's own key (credits) can be used: configured, with an endpoint."""
        if self.local_unconfigured or not self.base_url:
            return False
        return self.api_key is not None or not self.spec.requires_key

    @property
    def recorded_base_url(self) -> str:
        if self.base_url_overridden:
            return f"{{{self.spec.base_url_env}}}"
        return self.base_url

    def not_configured_message(self) -> str:
        spec = self.spec
        if spec.needs_endpoint:
            return (
                f"Provider {spec.name!r} has no endpoint configured: set {spec.base_url_env} "
                "on the gateway, or add a deployment with its endpoint to your provider keys"
            )
        return (
            f"Provider {spec.name!r} is a server on the gateway's own network and is off "
            f"until the operator configures it: set {spec.base_url_env} (or {spec.key_env}) "
            "on the gateway"
        )


def split_model(model: str, table: ProviderTable = PROVIDERS) -> tuple[str, str]:
    """Split ``model[/provider]`` into ``(model_id, provider_slug)``.

    Raises :class:`RoutingError` when a suffix is present but names no routed provider.
    """
    model = model.strip()
    if not model:
        raise RoutingError("'model' must not be empty")
    head, sep, tail = model.rpartition("/")
    if not sep:
        return model, DEFAULT_PROVIDER
    routed = table.routed()
    tail = table.model_aliases().get(tail, tail)
    if tail in routed and head:
        return head, tail
    known = ", ".join(routed)
    raise RoutingError(
        f"Unknown provider {tail!r} in model {model!r}. Use 'model' (routes to "
        f"{DEFAULT_PROVIDER}) or 'model/provider' with one of: {known}"
    )


class ProviderDirectory:
    """The configured providers of this process, built once from settings (and ``table``,
    which tests may replace)."""

    def __init__(
        self,
        api_keys: Mapping[str, str],
        base_urls: Mapping[str, str],
        table: ProviderTable = PROVIDERS,
    ) -> None:
        self.table = table
        self._configs: dict[str, ProviderConfig] = {}
        for name, spec in table.routed().items():
            assert spec.base_url is not None  # routed
            base_url = base_urls.get(name, spec.base_url).rstrip("/")
            configured = name in base_urls or name in api_keys
            self._configs[name] = ProviderConfig(
                spec=spec,
                base_url=base_url,
                api_key=api_keys.get(name),
                configured=configured,
                base_url_overridden=name in base_urls,
                local_unconfigured=not configured and spec.local,
            )

    def config(self, name: str) -> ProviderConfig:
        return self._configs[name]

    def usable(self) -> list[ProviderConfig]:
        """Providers that have a managed key (or need none), in table order; local-network
        providers only when configured."""
        return [config for config in self._configs.values() if config.usable]

    def resolve(self, model: str, client_key: str | None = None) -> Target:
        """Route ``model``; ``client_key`` is a provider key the client sent itself.

        A client key wins over the managed one (the client asked for its own account).
        """
        model_id, provider = split_model(model, self.table)
        config = self._configs[provider]
        if config.local_unconfigured:
            raise RoutingError(config.not_configured_message())
        key = client_key or config.api_key
        if key is None and config.spec.requires_key:
            raise RoutingError(
                f"No API key configured for provider {provider!r}: set "
                f"{config.spec.key_env} on the gateway, or send your own key in "
                "'Authorization' together with 'Helicone-Auth'"
            )
        return Target(
            provider=config.spec,
            model=model_id,
            base_url=config.base_url,
            api_key=key,
            recorded_base_url=config.recorded_base_url,
        )
