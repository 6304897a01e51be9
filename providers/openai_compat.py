"""The OpenAI-compatible provider family, as data.

Adding a provider that speaks the OpenAI wire format is one entry in :data:`OPENAI_COMPATIBLE`:
its slug (used after ``/`` in the model string), its real default base URL (including the
version prefix the provider uses, so that ``base_url + "/chat/completions"`` is the endpoint),
and the environment variable prefix (``<PREFIX>_API_KEY``, ``<PREFIX>_BASE_URL``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """One OpenAI-compatible provider.

    ``requires_key`` is false for local servers (ollama) that accept any or no key.
    """

    name: str
    base_url: str
    env_prefix: str
    requires_key: bool = True


def _table(*specs: ProviderSpec) -> Mapping[str, ProviderSpec]:
    return MappingProxyType({spec.name: spec for spec in specs})


OPENAI_COMPATIBLE: Mapping[str, ProviderSpec] = _table(
    ProviderSpec("openai", "https://api.openai.com/v1", "OPENAI"),
    ProviderSpec("groq", "https://api.groq.com/openai/v1", "GROQ"),
    ProviderSpec("xai", "https://api.x.ai/v1", "XAI"),
    ProviderSpec("deepseek", "https://api.deepseek.com/v1", "DEEPSEEK"),
    ProviderSpec("mistral", "https://api.mistral.ai/v1", "MISTRAL"),
    ProviderSpec("openrouter", "https://openrouter.ai/api/v1", "OPENROUTER"),
    ProviderSpec("together", "https://api.together.xyz/v1", "TOGETHER"),
    ProviderSpec("fireworks", "https://api.fireworks.ai/inference/v1", "FIREWORKS"),
    ProviderSpec("perplexity", "https://api.perplexity.ai", "PERPLEXITY"),
    ProviderSpec("deepinfra", "https://api.deepinfra.com/v1/openai", "DEEPINFRA"),
    ProviderSpec("nebius", "https://api.tokenfactory.nebius.com/v1", "NEBIUS"),
    ProviderSpec("novita", "https://api.novita.ai/v3/openai", "NOVITA"),
    ProviderSpec("hyperbolic", "https://api.hyperbolic.xyz/v1", "HYPERBOLIC"),
    ProviderSpec("nvidia", "https://integrate.api.nvidia.com/v1", "NVIDIA"),
    ProviderSpec("cerebras", "https://api.cerebras.ai/v1", "CEREBRAS"),
    ProviderSpec("ollama", "http://localhost:11434/v1", "OLLAMA", requires_key=False),
)
"""Every OpenAI-compatible provider the gateway knows, by slug."""


def provider_names() -> list[str]:
    """Known provider slugs, in table order (used in error messages)."""
    return list(OPENAI_COMPATIBLE)
