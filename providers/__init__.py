"""Everything that knows a provider: the OpenAI-compatible family table and model-string parsing."""

from providers.openai_compat import OPENAI_COMPATIBLE, ProviderSpec, provider_names

__all__ = ["OPENAI_COMPATIBLE", "ProviderSpec", "provider_names"]
