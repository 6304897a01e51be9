"""Everything that knows a provider: the provider table, model-string routing, prices."""

from providers.spec import PROVIDERS, ProviderSpec, ProviderTable

__all__ = ["PROVIDERS", "ProviderSpec", "ProviderTable"]
