"""Metric labels for a provider and a model: bounded, whatever the clients send.

A label value becomes a time series in every Prometheus server that scrapes the gateway, so
values that come from clients must be folded into a fixed set before they are used: a provider
name is kept only when the provider table knows it (a ``Helicone-Target-Provider`` of a
generic passthrough is free text), a model only when the model registry knows it, as its
registry id (so an alias, a provider's id and a dated snapshot count as one model). Everything
else is :data:`OTHER`; nothing at all (a request refused before any provider) is
:data:`NONE`. Used by the gateway's metrics and by the log writer's token and cost totals.
"""

from __future__ import annotations

from providers.registry import Registry
from providers.spec import PROVIDERS, ProviderTable

OTHER = "other"
"""A provider or model outside the provider table or the model registry."""
NONE = "none"
"""No provider or model (a request refused before it reached one)."""

_MAX_REMEMBERED = 4096
_MAX_CHARS = 200


class MetricLabels:
    """Folds provider and model names into bounded label values (remembered per name)."""

    __slots__ = ("_models", "_providers", "_registry")

    def __init__(self, registry: Registry | None, table: ProviderTable = PROVIDERS) -> None:
        self._registry = registry
        self._providers = {spec.name: spec.name for spec in table}
        self._models: dict[str, str] = {"": NONE}

    def provider(self, name: str) -> str:
        """``name`` if the provider table has it, else :data:`OTHER` (:data:`NONE` if empty)."""
        if not name:
            return NONE
        return self._providers.get(name, OTHER)

    def model(self, name: str) -> str:
        """The registry id ``name`` stands for, else :data:`OTHER` (:data:`NONE` if empty).

        Resolving a name costs a few microseconds; the answer is remembered, for a bounded
        number of short names (the names come from clients)."""
        label = self._models.get(name)
        if label is not None:
            return label
        registry = self._registry
        label = (registry.resolve(name) if registry is not None else None) or OTHER
        if len(name) <= _MAX_CHARS:
            if len(self._models) >= _MAX_REMEMBERED:
                self._models.clear()
                self._models[""] = NONE
            self._models[name] = label
        return label
