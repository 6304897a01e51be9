"""The provider table (providers/spec.py) is the one source of provider facts.

Invariants of :data:`providers.spec.PROVIDERS` itself, that every consumer (settings,
routing, passthrough, the allow-list, pricing) honours every entry, and, end to end, that a
provider added to a table is served by a real gateway (chat, passthrough)
against the upstream emulator.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from yarl import URL

from gateway.settings import Settings, _ProviderEnvSource
from gateway.targets import TargetPolicy, parse_pattern
from providers import cost
from providers.registry import Registry
from providers.routing import ProviderDirectory, RoutingError, split_model
from providers.spec import DEFAULT_PROVIDER, PROVIDERS, ProviderSpec, ProviderTable
from tests.emulator import OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings

BUILT_IN_HOSTS = {
    "api.openai.com", "*.openai.azure.com", "*.cognitiveservices.azure.com",
    "api.anthropic.com", "generativelanguage.googleapis.com", "*-aiplatform.googleapis.com",
    "aiplatform.googleapis.com", "aiplatform.us.rep.googleapis.com",
    "aiplatform.eu.rep.googleapis.com", "bedrock-runtime.{region}.amazonaws.com", "api.groq.com",
    "api.x.ai", "api.deepseek.com", "api.mistral.ai", "openrouter.ai", "api.together.xyz",
    "api.fireworks.ai", "api.perplexity.ai", "api.deepinfra.com",
    "api.tokenfactory.nebius.com", "api.novita.ai", "api.hyperbolic.xyz",
    "integrate.api.nvidia.com", "api.cerebras.ai", "api.endpoints.anyscale.com",
    "gateway.ai.cloudflare.com", "api.lemonfox.ai", "api.llama.com",
}  # fmt: skip
"""The allow-list before the table existed (gateway/targets.py): none may be lost."""

ROUTED = list(PROVIDERS.routed().values())
ACME = ProviderSpec(
    "acme", "https://api.acme.example/v1", "ACME", hosts=("api.acme.example",),
    path_aliases=("acme-ai",),
)  # fmt: skip
ACME_KEY = "sk-acme-emulator"


def with_acme(*extra: ProviderSpec) -> ProviderTable:
    return ProviderTable((*PROVIDERS, ACME, *extra))


# -- the table's invariants -------------------------------------------------------------------


def test_slugs_are_unique_and_a_duplicate_is_refused() -> None:
    names = [spec.name for spec in PROVIDERS]
    assert len(names) == len(set(names))
    with pytest.raises(ValueError, match="'groq' is in the table twice"):
        ProviderTable((*PROVIDERS, ProviderSpec("groq", hosts=("api.groq.example",))))


@pytest.mark.parametrize("spec", ROUTED, ids=lambda spec: spec.name)
def test_routed_provider_has_a_base_url_on_its_own_hosts(spec: ProviderSpec) -> None:
    if spec.needs_endpoint:  # Azure: a per-resource endpoint, configured or per deployment
        assert spec.base_url == "" and spec.base_url_var and spec.hosts
        return
    url = URL(spec.base_url or "")
    assert url.absolute and url.raw_host
    if spec.local:
        # Never on the built-in allow-list: reachable only once the operator configures it.
        assert spec.hosts == () and not spec.requires_key and url.raw_host == "localhost"
    else:
        # Bedrock's hosts are one per region: its pattern (``{region}``) must match.
        assert url.scheme == "https"
        assert any(parse_pattern(host).matches(url) for host in spec.hosts)
        assert TargetPolicy([], []).allows(spec.base_url or "")


@pytest.mark.parametrize("spec", ROUTED, ids=lambda spec: spec.name)
def test_env_names_follow_the_convention(spec: ProviderSpec) -> None:
    if spec.name == "azure":  # Azure's own names (ARCHITECTURE.md, Configuration)
        assert (spec.key_env, spec.base_url_env) == (
            "AZURE_OPENAI_API_KEY", "AZURE_OPENAI_ENDPOINT"
        )
        return
    # The Gemini API's own SDKs read GEMINI_API_KEY (ARCHITECTURE.md, configuration).
    vendor_names = {"google-ai-studio": "GEMINI"}
    prefix = vendor_names.get(spec.name, spec.name.upper().replace("-", "_"))
    assert spec.env_prefix == prefix
    assert (spec.key_env, spec.base_url_env) == (f"{prefix}_API_KEY", f"{prefix}_BASE_URL")


def test_only_formats_with_an_adapter_can_be_routed() -> None:
    assert {(spec.wire, spec.auth) for spec in ROUTED} == {
        ("openai", "bearer"), ("openai", "api-key"), ("anthropic", "x-api-key"),
        ("gemini", "x-goog-api-key"), ("bedrock", "sigv4"), ("vertex", "oauth"),
    }
    anthropic = PROVIDERS.get("anthropic")
    assert anthropic is not None
    oauth_anthropic = dataclasses.replace(anthropic, auth="oauth")
    with pytest.raises(ValueError, match="no adapter for anthropic with oauth auth"):
        ProviderTable((oauth_anthropic,))


def test_vertex_answers_in_its_publishers_formats() -> None:
    vertex = PROVIDERS.get("vertex")
    assert vertex is not None and vertex.routed and vertex.wire == "vertex"
    assert vertex.translated == {"/chat/completions", "/responses", "/embeddings"}
    claude = "/v1/projects/p/locations/us-east5/publishers/anthropic/models/claude-x:rawPredict"
    gemini = "/v1/projects/p/locations/global/publishers/google/models/g:generateContent"
    assert PROVIDERS.wire_for("us-east5-aiplatform.googleapis.com", "", claude) == "anthropic"
    assert PROVIDERS.wire_for("aiplatform.googleapis.com", "", gemini) == "gemini"
    assert PROVIDERS.wire_for("proxy.example", "vertex", claude) == "anthropic"
    assert PROVIDERS.wire_for("evil.example-aiplatform.googleapis.com.x", "") == "openai"


def test_what_each_provider_serves_natively_and_by_translation() -> None:
    openai, groq, mistral, anthropic = (
        PROVIDERS.get(name) for name in ("openai", "groq", "mistral", "anthropic")
    )
    assert openai is not None and groq is not None and mistral is not None
    assert anthropic is not None
    assert openai.translated == groq.translated == frozenset()  # Responses API of their own
    assert mistral.translated == {"/responses"} and mistral.serves("/responses")
    assert anthropic.serves("/chat/completions") and anthropic.serves("/responses")
    assert not anthropic.serves("/embeddings") and anthropic.endpoints == frozenset()
    gemini = PROVIDERS.get("google-ai-studio")
    assert gemini is not None and gemini.endpoints == frozenset()
    assert gemini.translated == {"/chat/completions", "/responses", "/embeddings"}


def test_root_paths_and_wire_formats_of_passthrough_targets() -> None:
    assert PROVIDERS.root_name("oai") == "openai"
    assert PROVIDERS.root_name("anthropic") == "anthropic"
    assert PROVIDERS.root_name("groq") is None  # only under /v1/gateway/
    assert PROVIDERS.wire_for("api.anthropic.com") == "anthropic"
    assert PROVIDERS.wire_for("API.ANTHROPIC.COM") == "anthropic"
    assert PROVIDERS.wire_for("proxy.example", "anthropic") == "anthropic"
    assert PROVIDERS.wire_for("api.groq.com", "anthropic") == "openai"  # the host decides
    assert PROVIDERS.wire_for("proxy.example", "custom") == "openai"
    # Helicone-Target-Url to Google's host is read as Gemini whatever the client names.
    assert PROVIDERS.wire_for("generativelanguage.googleapis.com") == "gemini"
    assert PROVIDERS.wire_for("proxy.example", "google-ai-studio") == "gemini"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"base_url": "http://api.acme.example/v1"}, "must be https on one of its hosts"),
        ({"base_url": "https://elsewhere.example/v1"}, "must be https on one of its hosts"),
        ({"base_url": "http://localhost:9/v1"}, "'local' must say"),
        ({"env_prefix": "acme"}, "UPPER_CASE"),
        ({"env_prefix": None}, "UPPER_CASE"),
        ({"path_aliases": ("oai",)}, "prefix 'oai' names two providers"),
    ],
)
def test_the_table_refuses_a_bad_entry(change: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=error):
        with_acme(dataclasses.replace(ACME, name="acme2", **change))  # type: ignore[arg-type]


def test_aliases_resolve() -> None:
    assert PROVIDERS.passthrough_name("oai") == "openai"
    for spec in ROUTED:
        assert PROVIDERS.passthrough_name(spec.name) == spec.name
        for alias in spec.path_aliases:
            assert PROVIDERS.passthrough_name(alias) == spec.name
    assert PROVIDERS.passthrough_name("gemini") == "google-ai-studio"
    assert PROVIDERS.passthrough_name("google") is None  # a price spelling, not a route
    # The error lists the aliases first, then every routed slug, as before the table.
    assert PROVIDERS.passthrough_slugs() == ["oai", "gemini", *PROVIDERS.routed()]
    assert PROVIDERS.get(DEFAULT_PROVIDER) in ROUTED


def test_model_aliases_name_routed_providers_and_no_slug() -> None:
    assert PROVIDERS.model_aliases() == {"gemini": "google-ai-studio"}
    acme = dataclasses.replace(ACME, name="acme2", path_aliases=())
    with pytest.raises(ValueError, match="model alias 'groq' is a slug"):
        with_acme(dataclasses.replace(acme, model_aliases=("groq",)))
    with pytest.raises(ValueError, match="model alias 'gemini' names two providers"):
        with_acme(dataclasses.replace(acme, model_aliases=("gemini",)))


def test_allow_list_is_the_tables_hosts_and_keeps_every_host_allowed_before() -> None:
    assert set(PROVIDERS.allowed_hosts()) == BUILT_IN_HOSTS
    hosts = {host for spec in PROVIDERS for host in spec.hosts}
    assert set(PROVIDERS.allowed_hosts()) == hosts
    policy = TargetPolicy([], [])
    samples = {"*": "eastus", "{region}": "us-east-1"}
    for host in hosts:
        for pattern, sample in samples.items():
            host = host.replace(pattern, sample)
        assert policy.allows(f"https://{host}/v1"), host
        assert not policy.allows(f"http://{host}/v1"), host
    assert not policy.allows("https://api.acme.example/v1")
    assert TargetPolicy([], [], with_acme()).allows("https://api.acme.example/v1")


def test_pricing_reads_the_table() -> None:
    assert cost.ALLOWED_PROVIDERS == PROVIDERS.price_slugs()
    assert cost.ALLOWED_PROVIDERS == {
        "openai", "anthropic", "google-ai-studio", "xai", "mistral", "deepseek", "groq",
    }  # fmt: skip
    prices = Registry.load()
    for spec in PROVIDERS:
        for spelling in (spec.name, *spec.price_aliases):
            expected = spec.price_slug or spelling
            assert prices._normalise_provider(spelling) == expected, spelling
    assert {price.provider for price in prices.prices()} <= {spec.name for spec in PROVIDERS}
    # A provider's price comes through its table entry's slug and aliases.
    gpt = prices.lookup("openai", "gpt-4o-mini")
    grok = prices.lookup("x-ai", "grok-4")
    assert gpt is not None and gpt.provider == "openai"
    assert grok is not None and grok.provider == "xai"
    # ... and its genai-prices id: every id the table names exists in the library.
    from genai_prices.data import providers as library

    library_ids = {provider.id for provider in library}
    assert {spec.genai_prices for spec in PROVIDERS if spec.genai_prices} <= library_ids


# -- every entry is honoured by every consumer ------------------------------------------------


def test_settings_read_every_routed_providers_env_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for spec in ROUTED:
        monkeypatch.setenv(spec.key_env, f"key-{spec.name}")
        monkeypatch.setenv(spec.base_url_env, f"http://127.0.0.1:9/{spec.name}")
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    assert settings.provider_api_keys == {spec.name: f"key-{spec.name}" for spec in ROUTED}
    assert set(settings.provider_base_urls) == {spec.name for spec in ROUTED}
    assert settings.provider_api_keys["anthropic"] == "key-anthropic"
    monkeypatch.setenv("GOOGLE_API_KEY", "not read: google is not routed yet")
    assert "google" not in Settings(_env_file=None).provider_api_keys  # type: ignore[call-arg]


def test_settings_source_reads_a_provider_added_to_the_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ACME_API_KEY", "ak")
    monkeypatch.setenv("ACME_BASE_URL", "https://acme.internal/v1")
    found = _ProviderEnvSource(Settings, with_acme())()
    assert found["provider_api_keys"]["acme"] == "ak"
    assert found["provider_base_urls"]["acme"] == "https://acme.internal/v1"
    assert "acme" not in _ProviderEnvSource(Settings)().get("provider_api_keys", {})


@pytest.mark.parametrize("spec", ROUTED, ids=lambda spec: spec.name)
def test_routing_honours_every_routed_provider(spec: ProviderSpec) -> None:
    assert split_model(f"some/model/{spec.name}") == ("some/model", spec.name)
    target = ProviderDirectory({spec.name: "k"}, {}).resolve(f"m/{spec.name}")
    assert (target.provider, target.base_url, target.api_key) == (spec, spec.base_url, "k")


def test_routing_honours_a_provider_added_to_the_table() -> None:
    with pytest.raises(RoutingError, match="Unknown provider 'acme'"):
        split_model("m/acme")
    assert split_model("m/acme", with_acme()) == ("m", "acme")
    directory = ProviderDirectory({"acme": "ak"}, {}, with_acme())
    target = directory.resolve("m/acme")
    assert (target.provider, target.base_url, target.api_key) == (ACME, ACME.base_url, "ak")
    with pytest.raises(RoutingError, match="set ACME_API_KEY on the gateway"):
        ProviderDirectory({}, {}, with_acme()).resolve("m/acme")
    assert [c.spec.name for c in directory.usable()] == ["acme"]


# -- end to end: a provider added to a table, served by a real gateway ------------------------


@pytest.fixture(scope="module")
def acme_upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=ACME_KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, acme_upstream: OpenAIEmulator
) -> Iterator[tuple[GatewayServer, str]]:
    """A gateway whose table has ``acme`` (pointed at the emulator) and ``acme-lite``, which
    serves chat only (no ``/embeddings``, no ``/models``)."""
    lite = dataclasses.replace(
        ACME, name="acme-lite", env_prefix="ACME_LITE", path_aliases=(),
        endpoints=frozenset({"/chat/completions"}),
    )  # fmt: skip
    table = with_acme(lite)
    urls = {"acme": acme_upstream.base_url, "acme-lite": acme_upstream.base_url}
    keys = {"acme": ACME_KEY, "acme-lite": ACME_KEY}
    settings = make_settings(
        tmp_path_factory.mktemp("spec"), provider_api_keys=keys, provider_base_urls=urls
    )
    key = create_key(settings)
    server = GatewayServer(settings)
    server.runtime.providers = ProviderDirectory(keys, urls, table)
    server.runtime.targets = TargetPolicy([], urls.values(), table)
    with server:
        yield server, key


@pytest.fixture
def client(gateway: tuple[GatewayServer, str]) -> Iterator[openai.OpenAI]:
    server, key = gateway
    with openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0) as sdk:
        yield sdk


def test_added_provider_serves_chat_and_models(
    client: openai.OpenAI, acme_upstream: OpenAIEmulator
) -> None:
    reply = client.chat.completions.create(
        model="gpt-4o-mini/acme", messages=[{"role": "user", "content": "hi"}]
    )
    assert reply.choices[0].message.content
    sent = acme_upstream.requests[-1]
    assert (sent.path, sent.headers["authorization"]) == (
        "/v1/chat/completions", f"Bearer {ACME_KEY}",
    )  # fmt: skip
    # /v1/models lists the model registry, which has no offering on a provider added to
    # the table only: nothing of acme's is listed, and nothing is asked of it.
    before = len(acme_upstream.requests)
    ids = [model.id for model in client.models.list()]
    assert not any(i.endswith(("/acme", "/acme-lite")) for i in ids)
    assert len(acme_upstream.requests) == before


def test_added_provider_endpoints_are_honoured(client: openai.OpenAI) -> None:
    client.chat.completions.create(
        model="gpt-4o-mini/acme-lite", messages=[{"role": "user", "content": "hi"}]
    )
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="text-embedding-3-small/acme-lite", input="x")
    error = caught.value.body
    assert isinstance(error, dict)
    assert error["code"] == "unsupported_endpoint"
    assert error["message"] == "Provider 'acme-lite' does not serve /embeddings."


def test_added_provider_passthrough_and_alias(
    gateway: tuple[GatewayServer, str], acme_upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    headers = {"helicone-auth": f"Bearer {key}", "authorization": f"Bearer {ACME_KEY}"}
    for prefix in ("acme", "acme-ai"):
        response = httpx.get(f"{server.url}/v1/gateway/{prefix}/v1/models", headers=headers)
        assert response.status_code == 200, response.text
        assert acme_upstream.requests[-1].path == "/v1/models"
    unknown = httpx.get(f"{server.url}/v1/gateway/nowhere/v1/models", headers=headers)
    assert unknown.status_code == 404
    assert "known: oai, gemini, acme-ai, openai, groq" in unknown.json()["error"]["message"]
