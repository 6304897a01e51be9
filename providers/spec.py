"""The provider table: every fact the gateway knows about a provider, in one record each.

Settings (which ``<PREFIX>_API_KEY`` / ``<PREFIX>_BASE_URL`` to read), routing (which
``model/provider`` suffixes exist), the passthrough routes (``/v1/gateway/{provider}``,
``/oai``), the passthrough allow-list (provider hosts) and the model registry (which
providers serve which models, their ``genai-prices`` ids, first-party price names) all read
:data:`PROVIDERS`; no other module lists providers. Adding a provider that speaks the OpenAI
wire format is one :class:`ProviderSpec` in :data:`PROVIDERS` with its slug, base URL
(including the version prefix, so that ``base_url + "/chat/completions"`` is the endpoint),
env prefix and hosts.

Two kinds of record:

* *routed* (``base_url`` set): selectable by ``model/<slug>``, by ``/v1/gateway/<slug>/...``,
  configured by ``<PREFIX>_API_KEY`` / ``<PREFIX>_BASE_URL``, listed by ``/v1/models`` (its
  models in the registry).
  Only wire formats with an adapter can be routed (:data:`ROUTABLE`: the OpenAI-compatible
  family with bearer keys, Anthropic, the Gemini API); the table refuses anything else, so an
  entry can never be half supported.
* *host-only* (no ``base_url``): a provider the gateway does not route to yet whose API hosts
  are on the passthrough allow-list (``Helicone-Target-Url``) and whose prices the registry
  may know.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from yarl import URL

from providers.addresses import is_local_host
from providers.vertex.paths import answer_wire

WireFormat = Literal["openai", "anthropic", "gemini", "bedrock", "vertex"]
"""The request/response format a provider speaks (one adapter per format). ``vertex`` is
Google's and Anthropic's formats on Vertex AI's paths, by the model's publisher: its answers
are read as ``gemini`` or ``anthropic`` (:meth:`ProviderTable.wire_for`)."""

AuthStyle = Literal["bearer", "x-api-key", "x-goog-api-key", "api-key", "sigv4", "oauth"]
"""How a provider takes its credential: ``Authorization: Bearer``, ``x-api-key``,
``x-goog-api-key`` (the Gemini API), ``api-key`` (Azure), AWS SigV4 (Bedrock) or an OAuth
token (Vertex)."""

ApiStyle = Literal["openai", "azure"]
"""How an OpenAI-format provider's URLs are built: ``base_url + endpoint``, or Azure OpenAI's
deployments (``/openai/deployments/{deployment}{endpoint}?api-version=…``, or its ``/openai/v1``
API when no version is set; see :mod:`providers.azure`)."""

Endpoint = Literal["/chat/completions", "/responses", "/embeddings", "/models"]

OPENAI_ENDPOINTS: frozenset[Endpoint] = frozenset(
    {"/chat/completions", "/responses", "/embeddings", "/models"}
)
"""Every OpenAI endpoint, as OpenAI itself serves them."""
CHAT_ENDPOINTS: frozenset[Endpoint] = frozenset({"/chat/completions", "/embeddings", "/models"})
"""What most OpenAI-compatible servers serve: no Responses API (the gateway translates it)."""

ROUTABLE: frozenset[tuple[WireFormat, AuthStyle]] = frozenset(
    {
        ("openai", "bearer"),
        ("openai", "api-key"),
        ("anthropic", "x-api-key"),
        ("gemini", "x-goog-api-key"),
        ("bedrock", "sigv4"),
        ("vertex", "oauth"),
    }
)
"""(wire format, auth style) pairs the gateway has an adapter for, so may route to."""

TRANSLATED: Mapping[WireFormat, frozenset[Endpoint]] = MappingProxyType(
    {
        "anthropic": frozenset({"/chat/completions", "/responses"}),
        "gemini": frozenset({"/chat/completions", "/responses", "/embeddings"}),
        "bedrock": frozenset({"/chat/completions", "/responses"}),
        "vertex": frozenset({"/chat/completions", "/responses", "/embeddings"}),
    }
)
"""Unified endpoints a native wire format serves through its adapter's translation."""

DEFAULT_PROVIDER = "openai"
"""Where a ``model`` without a ``/provider`` suffix goes; its ``/v1/models`` ids have none."""


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """One provider.

    ``env_prefix`` names its variables, ``<PREFIX>_API_KEY`` and ``<PREFIX>_BASE_URL``.
    ``hosts`` are allow-list entries (:func:`gateway.targets.parse_pattern` syntax, https on
    443 only); a local server has none (its base URL joins the allow-list only when the
    operator configures it). ``requires_key`` is false for local servers (ollama) that accept
    any or no key; ``local``: its built-in base URL is on the gateway's own network.
    ``price_slug`` is its first-party name for pricing (None: it resells models made by
    others) and ``price_aliases`` are other spellings of that name accepted by the price
    lookup (``x-ai/grok-4``). ``genai_prices`` is its provider id in the ``genai-prices``
    library, where the model registry (:mod:`providers.registry`) takes its prices from
    (None: the library does not price it). ``display_name`` is how listings name it.
    ``path_aliases`` are other passthrough prefixes for it under ``/v1/gateway/``
    (``/v1/gateway/oai``); ``model_aliases`` other names for it in a ``model`` string
    (``gemini-2.5-flash/gemini``, ``!gemini``), read as its slug by the grammar
    (:mod:`providers.grammar`), so that plans, keys and logs only ever see the slug;
    ``root_paths`` are top-level passthrough prefixes
    (``/oai``, ``/anthropic``: Helicone's dedicated proxy hosts).
    ``base_url_header`` is a request header with which a passthrough client names its own
    base URL for it (checked against the allow-list), as Helicone's
    ``Helicone-OpenAI-Api-Base``. ``endpoints`` are the OpenAI-shaped endpoints the provider
    serves itself (forwarded as they are; :meth:`serves` adds what the gateway offers by
    translation). ``quirks`` lists parameter differences adapters must honour, as
    ``(parameter, rule)`` pairs (none in the OpenAI-compatible family yet: bodies are
    forwarded as sent).
    """

    name: str
    base_url: str | None = None
    env_prefix: str | None = None
    wire: WireFormat = "openai"
    auth: AuthStyle = "bearer"
    hosts: tuple[str, ...] = ()
    endpoints: frozenset[Endpoint] = OPENAI_ENDPOINTS
    price_slug: str | None = None
    price_aliases: tuple[str, ...] = ()
    genai_prices: str | None = None
    display_name: str = ""
    path_aliases: tuple[str, ...] = ()
    model_aliases: tuple[str, ...] = ()
    root_paths: tuple[str, ...] = ()
    base_url_var: str | None = None
    """The base URL's variable when it is not ``<PREFIX>_BASE_URL`` (``AZURE_OPENAI_ENDPOINT``).
    A routed provider whose built-in ``base_url`` is ``""`` has none: it is usable only once
    that variable (or an organisation's deployment) names its endpoint."""
    api_style: ApiStyle = "openai"
    requires_key: bool = True
    local: bool = False
    base_url_header: str | None = None
    quirks: tuple[tuple[str, str], ...] = ()

    @property
    def title(self) -> str:
        """The provider's display name (``OpenAI``), its slug when none is set."""
        return self.display_name or self.name

    def serves(self, endpoint: str) -> bool:
        """Whether the unified ``endpoint`` reaches this provider (natively or translated)."""
        return endpoint in self.endpoints or endpoint in self.translated

    @property
    def translated(self) -> frozenset[Endpoint]:
        """Unified endpoints served by translating them: a native format's chat and
        Responses; the Responses API of an OpenAI-compatible server that has only chat."""
        if self.wire != "openai":
            return TRANSLATED.get(self.wire, frozenset())
        if "/chat/completions" in self.endpoints and "/responses" not in self.endpoints:
            return frozenset({"/responses"})
        return frozenset()

    @property
    def routed(self) -> bool:
        """The gateway sends requests to it (not only allow-lists its hosts)."""
        return self.base_url is not None

    @property
    def key_env(self) -> str:
        return f"{self.env_prefix}_API_KEY"

    @property
    def base_url_env(self) -> str:
        return self.base_url_var or f"{self.env_prefix}_BASE_URL"

    @property
    def needs_endpoint(self) -> bool:
        """No built-in base URL: the operator (or an org's deployment) must name one."""
        return self.base_url == ""

    def auth_header(self, key: str) -> tuple[str, str]:
        """The request header carrying ``key`` in this provider's auth style."""
        if self.auth == "bearer":
            return "authorization", f"Bearer {key}"
        if self.auth in ("x-api-key", "x-goog-api-key", "api-key"):
            return self.auth, key
        raise ValueError(f"provider {self.name!r}: {self.auth} credentials are not a header")


class ProviderTable:
    """The providers, by slug, with the views other modules need (built once, immutable).

    Construction checks the invariants an entry must meet, so a bad entry fails at import
    (and in the tests), never on a request: unique slugs and aliases, routed entries with a
    base URL, an env prefix and an adapter, a remote base URL served by its own hosts.
    """

    __slots__ = (
        "_by_name", "_model_aliases", "_passthrough", "_price_names", "_roots", "_routed"
    )  # fmt: skip

    def __init__(self, specs: tuple[ProviderSpec, ...]) -> None:
        by_name: dict[str, ProviderSpec] = {}
        passthrough: dict[str, str] = {}
        roots: dict[str, str] = {}
        price_names: dict[str, str] = {}
        model_aliases: dict[str, str] = {}
        for spec in specs:
            if spec.name in by_name:
                raise ValueError(f"provider {spec.name!r} is in the table twice")
            by_name[spec.name] = spec
            if spec.routed:
                _check_routed(spec)
                for slug in (*spec.path_aliases, spec.name):
                    if passthrough.setdefault(slug, spec.name) != spec.name:
                        raise ValueError(f"passthrough prefix {slug!r} names two providers")
                for root in spec.root_paths:
                    if roots.setdefault(root, spec.name) != spec.name or root in ("v1", ""):
                        raise ValueError(f"root path {root!r} is taken")
                for alias in spec.model_aliases:
                    if model_aliases.setdefault(alias, spec.name) != spec.name:
                        raise ValueError(f"model alias {alias!r} names two providers")
            if spec.price_slug is not None:
                for spelling in (spec.name, *spec.price_aliases):
                    if price_names.setdefault(spelling, spec.price_slug) != spec.price_slug:
                        raise ValueError(f"price spelling {spelling!r} names two price slugs")
        self._by_name: Mapping[str, ProviderSpec] = MappingProxyType(by_name)
        self._passthrough: Mapping[str, str] = MappingProxyType(passthrough)
        self._roots: Mapping[str, str] = MappingProxyType(roots)
        self._price_names: Mapping[str, str] = MappingProxyType(price_names)
        self._routed: Mapping[str, ProviderSpec] = MappingProxyType(
            {name: spec for name, spec in by_name.items() if spec.routed}
        )
        for alias in model_aliases:
            if alias in by_name or not alias or "/" in alias:
                raise ValueError(f"model alias {alias!r} is a slug or not a plain name")
        self._model_aliases: Mapping[str, str] = MappingProxyType(model_aliases)

    def __iter__(self) -> Iterator[ProviderSpec]:
        return iter(self._by_name.values())

    def get(self, name: str) -> ProviderSpec | None:
        return self._by_name.get(name)

    def routed(self) -> Mapping[str, ProviderSpec]:
        """Routed providers by slug, in table order (built once: routing reads it per
        request)."""
        return self._routed

    def model_aliases(self) -> Mapping[str, str]:
        """Other names of routed providers in a ``model`` string → their slugs
        (``gemini`` → ``google-ai-studio``)."""
        return self._model_aliases

    def passthrough_name(self, slug: str) -> str | None:
        """The routed provider a passthrough prefix (``oai``, ``groq``…) names, or None."""
        return self._passthrough.get(slug)

    def root_name(self, root: str) -> str | None:
        """The routed provider a top-level passthrough prefix (``oai``…) names, or None."""
        return self._roots.get(root)

    def passthrough_slugs(self) -> list[str]:
        """Every passthrough prefix, aliases first (for error messages)."""
        aliases = [slug for slug, name in self._passthrough.items() if slug != name]
        return [*aliases, *(slug for slug, name in self._passthrough.items() if slug == name)]

    def wire_for(self, host: str, provider: str = "", path: str = "") -> WireFormat:
        """The wire format a passthrough target answers in: that of the provider whose
        (literal) host it is, else of the provider the client named, else OpenAI's. Vertex
        answers in the format of the model's publisher, which its ``path`` names."""
        host = host.lower()
        wire: WireFormat = "openai"
        for spec in self._by_name.values():
            if host in spec.hosts or any(_pattern_host(p, host) for p in spec.hosts):
                wire = spec.wire
                break
        else:
            named = self._by_name.get(provider)
            wire = named.wire if named is not None else "openai"
        return answer_wire(path) if wire == "vertex" else wire

    def allowed_hosts(self) -> tuple[str, ...]:
        """The built-in passthrough allow-list: every provider's hosts, in table order."""
        return tuple(host for spec in self._by_name.values() for host in spec.hosts)

    def price_slugs(self) -> frozenset[str]:
        """First-party provider names for pricing (see ``ProviderSpec.price_slug``)."""
        return frozenset(self._price_names.values())

    def price_names(self) -> Mapping[str, str]:
        """Every spelling of a priced provider (its slug, its aliases) → its price slug."""
        return self._price_names


_AWS_REGION = re.compile(r"[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}")


def _region_host(pattern: str, host: str) -> bool:
    """Whether ``host`` is ``pattern`` with its ``{region}`` an AWS region name (Bedrock's
    hosts are one per region; :mod:`gateway.targets` reads the same pattern)."""
    head, sep, tail = pattern.partition("{region}")
    if not sep or not (host.startswith(head) and host.endswith(tail)):
        return False
    middle = host[len(head) : len(host) - len(tail)]
    return len(host) >= len(head) + len(tail) and _AWS_REGION.fullmatch(middle) is not None


def _pattern_host(pattern: str, host: str) -> bool:
    """Whether ``host`` matches a host pattern with a ``{region}`` or a leading ``*`` (one
    label or a label's start: ``*-aiplatform.googleapis.com``, ``*.openai.azure.com``)."""
    if pattern.startswith("*"):
        head = host[: len(host) - len(pattern) + 1]
        return host.endswith(pattern[1:]) and bool(head) and "." not in head
    return _region_host(pattern, host)


def _check_routed(spec: ProviderSpec) -> None:
    if (spec.wire, spec.auth) not in ROUTABLE:
        raise ValueError(
            f"provider {spec.name!r}: no adapter for {spec.wire} with {spec.auth} auth yet"
        )
    if not spec.env_prefix or not spec.env_prefix.isidentifier() or not spec.env_prefix.isupper():
        raise ValueError(f"provider {spec.name!r}: env_prefix must be an UPPER_CASE name")
    if spec.needs_endpoint:
        return  # the operator's endpoint is checked like any configured base URL
    url = URL(spec.base_url or "")
    if url.scheme not in ("http", "https") or url.raw_host is None:
        raise ValueError(f"provider {spec.name!r}: the base URL must be absolute http(s)")
    if spec.local != is_local_host(url.raw_host):
        raise ValueError(f"provider {spec.name!r}: 'local' must say whether its host is local")
    host = url.raw_host
    on_hosts = host in spec.hosts or any(_region_host(p, host) for p in spec.hosts)
    if not spec.local and (url.scheme != "https" or not on_hosts):
        raise ValueError(
            f"provider {spec.name!r}: a remote base URL must be https on one of its hosts"
        )


PROVIDERS = ProviderTable(
    (
        # Routed: the OpenAI-compatible family.
        ProviderSpec(
            "openai", "https://api.openai.com/v1", "OPENAI",
            hosts=("api.openai.com",), price_slug="openai", path_aliases=("oai",),
            root_paths=("oai",), base_url_header="Helicone-OpenAI-Api-Base",
            display_name="OpenAI", genai_prices="openai",
        ),
        ProviderSpec(
            "groq", "https://api.groq.com/openai/v1", "GROQ",
            hosts=("api.groq.com",), price_slug="groq",
            display_name="Groq", genai_prices="groq",
        ),
        ProviderSpec(
            "xai", "https://api.x.ai/v1", "XAI",
            hosts=("api.x.ai",), price_slug="xai", price_aliases=("x-ai", "grok"),
            display_name="xAI", genai_prices="x-ai",
        ),
        ProviderSpec(
            "deepseek", "https://api.deepseek.com/v1", "DEEPSEEK",
            hosts=("api.deepseek.com",), price_slug="deepseek",
            endpoints=CHAT_ENDPOINTS,
            display_name="DeepSeek", genai_prices="deepseek",
        ),
        ProviderSpec(
            "mistral", "https://api.mistral.ai/v1", "MISTRAL",
            hosts=("api.mistral.ai",), price_slug="mistral",
            price_aliases=("mistralai", "mistral-ai"),
            endpoints=CHAT_ENDPOINTS,
            display_name="Mistral", genai_prices="mistral",
        ),
        ProviderSpec(
            "openrouter", "https://openrouter.ai/api/v1", "OPENROUTER", hosts=("openrouter.ai",),
            endpoints=CHAT_ENDPOINTS,
            display_name="OpenRouter", genai_prices="openrouter",
        ),
        ProviderSpec(
            "together", "https://api.together.xyz/v1", "TOGETHER", hosts=("api.together.xyz",),
            endpoints=CHAT_ENDPOINTS,
            display_name="Together AI", genai_prices="together",
        ),
        ProviderSpec(
            "fireworks", "https://api.fireworks.ai/inference/v1", "FIREWORKS",
            hosts=("api.fireworks.ai",),
            endpoints=CHAT_ENDPOINTS,
            display_name="Fireworks", genai_prices="fireworks",
        ),
        ProviderSpec(
            "perplexity", "https://api.perplexity.ai", "PERPLEXITY", hosts=("api.perplexity.ai",),
            endpoints=CHAT_ENDPOINTS,
            display_name="Perplexity", genai_prices="perplexity",
        ),
        ProviderSpec(
            "deepinfra", "https://api.deepinfra.com/v1/openai", "DEEPINFRA",
            hosts=("api.deepinfra.com",),
            endpoints=CHAT_ENDPOINTS,
            display_name="DeepInfra",
        ),
        ProviderSpec(
            "nebius", "https://api.tokenfactory.nebius.com/v1", "NEBIUS",
            hosts=("api.tokenfactory.nebius.com",),
            endpoints=CHAT_ENDPOINTS,
            display_name="Nebius Token Factory",
        ),
        ProviderSpec(
            "novita", "https://api.novita.ai/v3/openai", "NOVITA", hosts=("api.novita.ai",),
            endpoints=CHAT_ENDPOINTS,
            display_name="Novita", genai_prices="novita",
        ),
        ProviderSpec(
            "hyperbolic", "https://api.hyperbolic.xyz/v1", "HYPERBOLIC",
            hosts=("api.hyperbolic.xyz",),
            endpoints=CHAT_ENDPOINTS,
            display_name="Hyperbolic",
        ),
        ProviderSpec(
            "nvidia", "https://integrate.api.nvidia.com/v1", "NVIDIA",
            hosts=("integrate.api.nvidia.com",),
            endpoints=CHAT_ENDPOINTS,
            display_name="NVIDIA NIM",
        ),
        ProviderSpec(
            "cerebras", "https://api.cerebras.ai/v1", "CEREBRAS", hosts=("api.cerebras.ai",),
            endpoints=CHAT_ENDPOINTS,
            display_name="Cerebras", genai_prices="cerebras",
        ),
        ProviderSpec(
            "ollama", "http://localhost:11434/v1", "OLLAMA", requires_key=False, local=True,
            endpoints=CHAT_ENDPOINTS,
            display_name="Ollama",
        ),
        # Routed through an adapter of its own wire format.
        ProviderSpec(
            "anthropic", "https://api.anthropic.com", "ANTHROPIC", wire="anthropic",
            auth="x-api-key", hosts=("api.anthropic.com",), price_slug="anthropic",
            endpoints=frozenset(), root_paths=("anthropic",),
            display_name="Anthropic", genai_prices="anthropic",
        ),
        # Bedrock: the base URL is per region (the deployment's, else GATEWAY_BEDROCK_REGION /
        # AWS_REGION); this one is the default region's. Credentials: AWS_ACCESS_KEY_ID /
        # AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, or BEDROCK_API_KEY (gateway/settings.py).
        ProviderSpec(
            "bedrock", "https://bedrock-runtime.us-east-1.amazonaws.com", "BEDROCK",
            wire="bedrock", auth="sigv4", hosts=("bedrock-runtime.{region}.amazonaws.com",),
            endpoints=frozenset(), root_paths=("bedrock",),
            display_name="AWS Bedrock", genai_prices="aws",
        ),
        # Azure OpenAI: the OpenAI format on per-resource endpoints (deployments).
        ProviderSpec(
            "azure", "", "AZURE_OPENAI", auth="api-key",
            hosts=("*.openai.azure.com", "*.cognitiveservices.azure.com"),
            display_name="Azure OpenAI", genai_prices="azure",
            endpoints=frozenset({"/chat/completions", "/responses", "/embeddings"}),
            base_url_var="AZURE_OPENAI_ENDPOINT", api_style="azure",
        ),
        # The Gemini API (Google AI Studio): its base URL has no version, the adapter's paths
        # carry it (/v1beta/models/{model}:generateContent); `gemini` is its alias in a model
        # string and the passthrough path and, with `google`, a spelling of its price slug
        # (logs of older clients say either).
        ProviderSpec(
            "google-ai-studio", "https://generativelanguage.googleapis.com", "GEMINI",
            wire="gemini", auth="x-goog-api-key", hosts=("generativelanguage.googleapis.com",),
            endpoints=frozenset(), price_slug="google-ai-studio",
            price_aliases=("google", "gemini", "googleai", "google-ai"), path_aliases=("gemini",),
            model_aliases=("gemini",), display_name="Google AI Studio", genai_prices="google",
        ),
        # Vertex AI: Gemini and Claude on Google Cloud. The base URL is per location (the
        # deployment's, else GATEWAY_VERTEX_LOCATION, default global: this one); the project
        # comes from the deployment, GATEWAY_VERTEX_PROJECT or the service account. The key
        # (VERTEX_API_KEY, or the file GOOGLE_APPLICATION_CREDENTIALS names) is a
        # service-account key the gateway mints OAuth tokens from, or an access token.
        ProviderSpec(
            "vertex", "https://aiplatform.googleapis.com", "VERTEX", wire="vertex", auth="oauth",
            hosts=("*-aiplatform.googleapis.com", "aiplatform.googleapis.com",
                   "aiplatform.us.rep.googleapis.com", "aiplatform.eu.rep.googleapis.com"),
            endpoints=frozenset(), display_name="Google Vertex AI", genai_prices="google",
        ),
        # Host-only: allow-listed for Helicone-Target-Url (Helicone's approved domains), not
        # routed yet.
        ProviderSpec("anyscale", hosts=("api.endpoints.anyscale.com",)),
        ProviderSpec("cloudflare", hosts=("gateway.ai.cloudflare.com",)),
        ProviderSpec("lemonfox", hosts=("api.lemonfox.ai",)),
        ProviderSpec("llama", hosts=("api.llama.com",)),
    )
)
"""Every provider the gateway knows, by slug (routed ones first, in the order errors list
them)."""
