"""The model registry: built from its table and ``genai-prices``, its routing facts, its
pricing rules, and the listings served from it (``/v1/models``,
``/v1/models/multimodal``, ``/v1/public/model-registry/models``) and ``gateway models``.

Known values are list prices per 1M tokens as published by each provider (and kept by the
library); the exact integer rates are pico-USD per token (per-1M price x 1,000,000).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from genai_prices import types as genai
from pydantic import BaseModel, ConfigDict, TypeAdapter

from gateway.cli import main
from gateway.listing import ListingError, ModelListing
from providers.cost import ModelPrice, Usage
from providers.registry import PriceLibrary, Registry
from providers.registry.library import prices_at, to_model_price
from tests.harness import GatewayServer, make_settings


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


@pytest.fixture(scope="module")
def library() -> PriceLibrary:
    return PriceLibrary()


def _pico(price: ModelPrice | None) -> tuple[int, ...] | None:
    """Per-token pico-USD rates in the writer's order: text in, cache read, cache write,
    audio in, text out, reasoning, audio out."""
    assert price is not None
    return price._pico_rates


# --- building ---------------------------------------------------------------------------------


class TestBuild:
    def test_every_offering_is_priced(self, registry: Registry) -> None:
        # A library upgrade that renames a model would leave an offering unpriced: caught here.
        unpriced = [
            f"{o.model}@{o.provider}"
            for m in registry.models()
            for o in m.offerings
            if o.price is None or o.price_source == "none"
        ]
        assert unpriced == []

    def test_prices_come_from_the_library_unless_overridden(self, registry: Registry) -> None:
        sources = {(o.model, o.provider): o.price_source for o in _offerings(registry)}
        assert sources[("gpt-4o", "openai")] == "genai-prices"
        assert sources[("llama-3.3-70b", "together")] == "genai-prices"
        assert sources[("claude-sonnet-4", "anthropic")] == "override"  # library lacks a tier
        assert sources[("deepseek-chat", "deepseek")] == "override"  # library is stale
        overridden = [k for k, v in sources.items() if v == "override"]
        assert len(overridden) <= len(sources) // 4  # the table is mostly routing facts

    @pytest.mark.parametrize(
        ("provider", "model", "rates"),
        [
            # gpt-4o: 2.50 in, 1.25 cached, 10.00 out
            ("openai", "gpt-4o", (2_500_000, 1_250_000, 2_500_000, 2_500_000,
                                  10_000_000, 10_000_000, 10_000_000)),
            # claude-sonnet-4.5: 3 in, 0.30 read, 3.75 write (5 min), 15 out
            ("anthropic", "claude-sonnet-4-5", (3_000_000, 300_000, 3_750_000, 3_000_000,
                                                15_000_000, 15_000_000, 15_000_000)),
            # gemini-2.5-flash: 0.30 text in, 0.03 cached, 1.00 audio in, 2.50 out
            ("google-ai-studio", "gemini-2.5-flash", (300_000, 30_000, 300_000, 1_000_000,
                                            2_500_000, 2_500_000, 2_500_000)),
            # groq llama-3.3-70b-versatile: 0.59 / 0.79
            ("groq", "llama-3.3-70b-versatile", (590_000, 590_000, 590_000, 590_000,
                                                 790_000, 790_000, 790_000)),
        ],
    )  # fmt: skip
    def test_library_prices_become_exact_integer_rates(
        self, registry: Registry, provider: str, model: str, rates: tuple[int, ...]
    ) -> None:
        price = registry.lookup(provider, model)
        assert _pico(price) == rates
        assert price is not None and price.source == "genai-prices"

    def test_library_tiers_become_price_tiers(self, registry: Registry) -> None:
        # claude-sonnet-4.5 above 200k input: 6 in, 0.60 read, 7.50 write, 22.50 out.
        price = registry.lookup("anthropic", "claude-sonnet-4.5")
        assert price is not None and price.source == "genai-prices"
        [tier] = price.tiers
        assert tier.above_prompt_tokens == 200_000
        assert (tier.input, tier.cache_read, tier.cache_write, tier.output) == (
            Fraction(6), Fraction(6, 10), Fraction(75, 10), Fraction(225, 10),
        )  # fmt: skip
        # 300k prompt (100k read) + 1k out: 200k x 6 + 100k x 0.6 + 1k x 22.5 = 1,282,500
        usage = Usage(prompt_tokens=300_000, cache_read_tokens=100_000, completion_tokens=1_000)
        assert registry.cost("anthropic", "claude-sonnet-4.5", usage).nano_usd == 1_282_500_000

    def test_overrides_win_over_the_library(self, library: PriceLibrary) -> None:
        table = {
            "models": [
                {
                    "id": "gpt-4o", "author": "openai",
                    "offerings": [{
                        "provider": "openai", "model_id": "gpt-4o",
                        "prices": {"input": "9", "output": "99"},
                        "source": "https://example.com/pricing", "notes": "test override",
                    }],
                },
                {"id": "gpt-4o-mini", "author": "openai",
                 "offerings": [{"provider": "openai", "model_id": "gpt-4o-mini"}]},
            ]
        }  # fmt: skip
        registry = Registry.from_data(table, library=library)
        overridden = registry.lookup("openai", "gpt-4o")
        assert overridden is not None
        assert (overridden.input, overridden.output, overridden.source) == (9, 99, "override")
        assert overridden.cache_read is None  # nothing of the library's price is mixed in
        mini = registry.lookup("openai", "gpt-4o-mini")
        assert mini is not None and (mini.input, mini.source) == (Fraction(15, 100), "genai-prices")

    def test_an_offering_without_its_own_price_gets_the_makers(
        self, library: PriceLibrary
    ) -> None:
        table = {
            "models": [{
                "id": "gpt-4o-mini", "author": "openai",
                "offerings": [
                    {"provider": "deepinfra", "model_id": "openai/gpt-4o-mini"},
                    {"provider": "openai", "model_id": "gpt-4o-mini"},
                ],
            }]
        }  # fmt: skip
        registry = Registry.from_data(table, library=library)
        resold = registry.offering("gpt-4o-mini", "deepinfra")
        assert resold is not None and resold.price is not None
        assert (resold.price_source, resold.price_from) == ("maker", "openai")
        assert resold.source_label == "maker openai (genai-prices)"
        assert resold.price.source == "maker:openai:genai-prices"
        assert resold.price.provider_model_id == "openai/gpt-4o-mini"
        assert resold.price.input == Fraction(15, 100)

    def test_genai_prices_key_names_the_librarys_model(self, library: PriceLibrary) -> None:
        table = {
            "models": [{
                "id": "gpt-oss-120b", "author": "openai",
                "offerings": [{
                    "provider": "fireworks", "model_id": "my-own-deployment",
                    "genai_prices": "accounts/fireworks/models/gpt-oss-120b",
                }],
            }]
        }  # fmt: skip
        offering = Registry.from_data(table, library=library).offering("gpt-oss-120b", "fireworks")
        assert offering is not None and offering.price_source == "genai-prices"

    def test_ambiguous_names_are_rejected(self) -> None:
        two = {
            "models": [
                {"id": "a", "offerings": [{"provider": "groq", "model_id": "same"}]},
                {"id": "b", "offerings": [{"provider": "cerebras", "model_id": "same"}]},
            ]
        }
        with pytest.raises(ValueError, match="'same' resolves to both"):
            Registry.from_data(two)


def _offerings(registry: Registry) -> list[Any]:
    return [o for m in registry.models() for o in m.offerings]


# --- routing facts ----------------------------------------------------------------------------


class TestRoutingFacts:
    @pytest.mark.parametrize(
        "name",
        [
            "claude-sonnet-4.5", "claude-sonnet-4-5", "claude-sonnet-4-5-20250929",
            "claude-sonnet-4-5-20260101", " Claude-4.5-Sonnet ", "anthropic/claude-sonnet-4.5",
        ],
    )  # fmt: skip
    def test_aliases_resolve_to_one_model(self, registry: Registry, name: str) -> None:
        assert registry.resolve(name) == "claude-sonnet-4.5"
        model = registry.model(name)
        assert model is not None and model.author == "anthropic"

    def test_unknown_names(self, registry: Registry) -> None:
        assert registry.resolve("no-such-model") is None
        assert registry.model("no-such-model") is None
        assert registry.offerings("no-such-model") == ()
        assert registry.resolve("claude-opus-4-6") is None  # not a snapshot of claude-opus-4

    def test_offerings_are_routed_and_cheapest_first(self, registry: Registry) -> None:
        offerings = registry.offerings("llama-3.3-70b-instruct")
        providers = [o.provider for o in offerings]
        assert set(providers) == {"groq", "cerebras", "together", "novita", "openrouter", "bedrock"}
        rates = [o.per_million for o in offerings]
        assert all(rate is not None for rate in rates)
        assert rates == sorted(rates)  # type: ignore[type-var]
        # novita 0.135 + 0.40 is the cheapest; groq and openrouter tie at 0.59 + 0.79 and
        # keep the table's order (groq first) for the load balancer.
        assert providers[0] == "novita"
        assert providers.index("groq") < providers.index("openrouter")
        groq = next(o for o in offerings if o.provider == "groq")
        assert groq.provider_model_id == "llama-3.3-70b-versatile"
        assert groq.per_million == Fraction(59 + 79, 100)

    def test_host_only_providers_are_priced_not_routed(self, library: PriceLibrary) -> None:
        table = {
            "models": [{
                "id": "gemini-2.5-pro", "author": "google",
                "offerings": [
                    {"provider": "cloudflare", "model_id": "gemini-2.5-pro",
                     "prices": {"input": "1.25", "output": 10}, "source": "https://example.com",
                     "notes": "a host-only provider priced by the table"},
                    {"provider": "vertex", "model_id": "gemini-2.5-pro"},
                ],
            }]
        }  # fmt: skip
        registry = Registry.from_data(table, library=library)
        assert [o.provider for o in registry.offerings("gemini-2.5-pro")] == ["vertex"]
        hosted = registry.offering("gemini-2.5-pro", "cloudflare")
        assert hosted is not None and hosted.price is not None
        assert (hosted.routed, hosted.endpoints) == (False, frozenset())
        vertex = registry.offering("gemini-2.5-pro", "vertex")
        assert vertex is not None and vertex.price is not None and vertex.routed
        assert vertex.endpoints == {"/chat/completions", "/responses"}

    def test_gemini_models_route_to_ai_studio_and_its_maker_price_is_googles(
        self, registry: Registry
    ) -> None:
        studio = registry.offering("gemini-2.5-pro", "google-ai-studio")
        assert studio is not None and studio.routed and studio.price is not None
        assert studio.endpoints == {"/chat/completions", "/responses"}
        offered = {o.provider: o for o in registry.offerings("gemini-2.5-flash")}
        assert set(offered) == {"google-ai-studio", "openrouter", "vertex"}
        assert offered["openrouter"].provider_model_id == "google/gemini-2.5-flash"
        assert offered["vertex"].per_million == offered["google-ai-studio"].per_million
        # The author `google` names the AI Studio price list: a reseller's maker price.
        resold = registry.lookup("deepinfra", "google/gemini-2.5-pro")
        assert resold is not None and resold.provider == "google-ai-studio"

    def test_endpoints_and_responses_support(self, registry: Registry) -> None:
        def endpoints(model: str, provider: str) -> frozenset[str]:
            offering = registry.offering(model, provider)
            assert offering is not None
            return offering.endpoints

        chat = {"/chat/completions", "/responses"}
        assert endpoints("gpt-4o-mini", "openai") == chat  # native
        assert endpoints("llama-3.3-70b", "groq") == chat
        assert endpoints("qwen3-32b", "openrouter") == chat  # Responses by translation
        assert endpoints("claude-sonnet-4.5", "anthropic") == chat  # translated both
        assert endpoints("text-embedding-3-small", "openai") == {"/embeddings"}
        assert endpoints("gpt-4o-audio-preview", "openai") == {"/chat/completions"}
        audio = registry.offering("gpt-4o-audio-preview", "openai")
        assert audio is not None and not audio.supports_responses

    def test_model_facts(self, registry: Registry) -> None:
        model = registry.model("gpt-4o")
        assert model is not None
        assert (model.context_window, model.max_output_tokens) == (128_000, 16_384)
        assert model.created == int(datetime(2024, 5, 13, tzinfo=UTC).timestamp())
        assert model.supports_tools and model.supports_vision and not model.supports_reasoning
        assert model.multimodal and "caching" in model.capabilities
        o3 = registry.model("o3-2025-04-16")
        assert o3 is not None and o3.supports_reasoning
        embedding = registry.model("text-embedding-3-large")
        assert embedding is not None and embedding.kind == "embedding"
        assert not embedding.multimodal and embedding.output_modalities == ()
        audio = registry.model("gpt-4o-audio-preview")
        assert audio is not None and {"audio", "tools"} <= audio.capabilities


# --- the library adapter ----------------------------------------------------------------------


class TestLibraryConversion:
    def test_per_field_tiers_merge_into_steps(self) -> None:
        prices = genai.ModelPrice(
            input_mtok=genai.TieredPrices(Decimal("1"), [genai.Tier(100, Decimal("2"))]),
            output_mtok=genai.TieredPrices(
                Decimal("4"), [genai.Tier(100, Decimal("5")), genai.Tier(500, Decimal("6"))]
            ),
            cache_read_mtok=Decimal("0.1"),
        )
        price = to_model_price(prices, model="m", provider="p", provider_model_id="m")
        assert price is not None
        assert [t.above_prompt_tokens for t in price.tiers] == [100, 500]
        # At 600 prompt tokens: input 2 (from the 100 step, inherited), output 6, cache 0.1.
        top = price.for_prompt(600)
        assert (top.input, top.output, top.cache_read) == (2, 6, Fraction(1, 10))
        assert price.for_prompt(100) is price  # strictly above, as the library
        assert price.cost(Usage(prompt_tokens=101, completion_tokens=1)).nano_usd == (
            101 * 2 * 1000 + 5 * 1000
        )

    def test_units_the_cost_model_cannot_count(self) -> None:
        speech = genai.ModelPrice(audio_hours=Decimal("0.111"))
        assert to_model_price(speech, model="m", provider="p", provider_model_id="m") is None
        free = to_model_price(genai.ModelPrice(), model="m", provider="p", provider_model_id="m")
        assert free is not None and (free.input, free.output) == (0, 0)
        searches = genai.ModelPrice(
            input_mtok=Decimal("1"), output_mtok=Decimal("2"), web_searches_kcount=Decimal("10")
        )
        partly = to_model_price(searches, model="m", provider="p", provider_model_id="m")
        assert partly is not None and (partly.input, partly.output) == (1, 2)

    def test_prices_by_date_and_time_of_day(self) -> None:
        old = genai.ModelPrice(input_mtok=Decimal("1"), output_mtok=Decimal("1"))
        new = genai.ModelPrice(input_mtok=Decimal("2"), output_mtok=Decimal("2"))
        peak = genai.ModelPrice(input_mtok=Decimal("3"), output_mtok=Decimal("3"))
        dated = genai.ModelInfo(
            id="m",
            match=genai.ClauseEquals("m"),
            prices=[
                genai.ConditionalPrice(prices=old),
                genai.ConditionalPrice(
                    constraint=genai.StartDateConstraint(date(2026, 1, 1)), prices=new
                ),
            ],
        )
        assert prices_at(dated, datetime(2025, 12, 31, tzinfo=UTC)) is old
        assert prices_at(dated, datetime(2026, 1, 2, tzinfo=UTC)) is new
        hours = genai.ModelInfo(
            id="m",
            match=genai.ClauseEquals("m"),
            prices=[
                genai.ConditionalPrice(prices=old),  # off-peak discount
                genai.ConditionalPrice(
                    constraint=genai.TimeOfDateConstraint(
                        time(0, 30, tzinfo=UTC), time(16, 30, tzinfo=UTC)
                    ),
                    prices=peak,
                ),
            ],
        )
        # Fixed once at build time whatever the hour: the window's price, never the discount.
        for hour in (3, 20):
            assert prices_at(hours, datetime(2026, 1, 1, hour, tzinfo=UTC)) is peak

    def test_registry_prices_are_the_ones_in_force_when_built(self) -> None:
        # The library dates Anthropic's dropping of claude-opus-4-6's long-context surcharge
        # to 2026-03-13: a registry built before it prices the 200k+ tier, one after it not.
        usage = Usage(prompt_tokens=300_000)
        before = Registry.load(at=datetime(2026, 3, 1, tzinfo=UTC))
        after = Registry.load(at=datetime(2026, 4, 1, tzinfo=UTC))
        assert before.cost("anthropic", "claude-opus-4-6", usage).nano_usd == 3_000_000_000
        assert after.cost("anthropic", "claude-opus-4-6", usage).nano_usd == 1_500_000_000

    def test_lookups_are_remembered(self, library: PriceLibrary) -> None:
        first = library.find("openai", "gpt-3.5-turbo")
        assert first is not None and first.price is not None
        assert library.find("openai", "gpt-3.5-turbo") is first
        assert library.find("openai", "x" * 10_000) is None  # no regex over huge names
        assert library.find("deepinfra", "gpt-4o") is None  # the library does not price it


# --- listings ---------------------------------------------------------------------------------


class OAIModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    object: Literal["model"]
    created: float
    owned_by: str


class OAIModelsResponse(BaseModel):
    """The documented ``OAIModelsResponse`` (additionalProperties: false)."""

    model_config = ConfigDict(extra="forbid")
    object: Literal["list"]
    data: list[OAIModel]


Capability = Literal["audio", "video", "image", "thinking", "web_search", "caching", "reasoning"]
Modality = Literal["text", "image", "audio", "video"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModalityPricing(Strict):
    input: float | None = None
    cachedInput: float | None = None
    output: float | None = None


class SimplifiedPricing(Strict):
    prompt: float
    completion: float
    audio: ModalityPricing | None = None
    thinking: float | None = None
    web_search: float | None = None
    image: ModalityPricing | None = None
    video: ModalityPricing | None = None
    file: ModalityPricing | None = None
    cacheRead: float | None = None
    cacheWrite: float | None = None
    threshold: float | None = None


class ModelEndpoint(Strict):
    provider: str
    providerSlug: str
    supportsPtb: bool | None = None
    pricing: SimplifiedPricing
    pricingTiers: list[SimplifiedPricing] | None = None


class ModelRegistryItem(Strict):
    id: str
    name: str
    author: str
    contextLength: float
    endpoints: list[ModelEndpoint]
    maxOutput: float | None = None
    trainingDate: str | None = None
    description: str | None = None
    inputModalities: list[Modality]
    outputModalities: list[Modality]
    supportedParameters: list[str]
    pinnedVersionOfModel: str | None = None


class ProviderFacet(Strict):
    name: str
    displayName: str


class Facets(Strict):
    providers: list[ProviderFacet]
    authors: list[str]
    capabilities: list[Capability]


class ModelRegistryResponse(Strict):
    models: list[ModelRegistryItem]
    total: float
    filters: Facets


class RegistryResult(Strict):
    """``Result<ModelRegistryResponse, string>``: data or error, the other null."""

    data: ModelRegistryResponse | None
    error: str | None


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayServer]:
    keys = {"openai": "sk-o", "groq": "sk-g", "anthropic": "sk-a"}
    dead = "http://127.0.0.1:9/v1"  # nothing is ever sent upstream by these endpoints
    settings = make_settings(
        tmp_path_factory.mktemp("registry"),
        provider_api_keys=keys,
        provider_base_urls=dict.fromkeys(keys, dead),
        allow_anonymous=True,
    )
    with GatewayServer(settings) as server:
        yield server


def _registry(server: GatewayServer, **params: str | list[str]) -> RegistryResult:
    response = httpx.get(server.url + "/v1/public/model-registry/models", params=params)
    result = RegistryResult.model_validate(response.json())
    assert (response.status_code == 200) == (result.error is None), response.text
    return result


class TestListings:
    def test_v1_models_shape_and_ids(self, gateway: GatewayServer) -> None:
        page = OAIModelsResponse.model_validate(httpx.get(gateway.url + "/v1/models").json())
        by_id = {model.id: model for model in page.data}
        assert "gpt-4o-mini" in by_id  # default provider: plain id
        assert "claude-sonnet-4.5/anthropic" in by_id
        assert by_id["claude-sonnet-4.5/anthropic"].owned_by == "anthropic"
        assert "gpt-oss-120b/groq" in by_id
        assert "gpt-oss-120b" not in by_id  # OpenAI does not serve it
        assert not any(i.endswith("/openrouter") for i in by_id)  # no OpenRouter key
        assert not any(i.endswith("/google-ai-studio") for i in by_id)  # no Gemini key

    def test_multimodal_shape(self, gateway: GatewayServer) -> None:
        response = httpx.get(gateway.url + "/v1/models/multimodal")
        page = OAIModelsResponse.model_validate(response.json())
        ids = {model.id for model in page.data}
        assert {"gpt-4o", "claude-sonnet-4.5/anthropic", "llama-4-scout/groq"} <= ids
        assert not ids & {"o3-mini", "llama-3.3-70b/groq", "text-embedding-3-small"}

    def test_public_registry_shape(self, gateway: GatewayServer) -> None:
        result = _registry(gateway)
        assert result.data is not None
        data = result.data
        assert data.total == len(data.models) > 40
        opus = next(m for m in data.models if m.id == "claude-opus-4.1")
        assert (opus.author, opus.contextLength, opus.maxOutput) == ("anthropic", 200000, 32000)
        assert opus.trainingDate == "2025-08-05"
        # same price
        assert [e.provider for e in opus.endpoints] == ["anthropic", "bedrock", "vertex"]
        endpoint = opus.endpoints[0]
        assert (endpoint.provider, endpoint.supportsPtb) == ("anthropic", True)
        pricing = endpoint.pricing
        assert (pricing.prompt, pricing.completion, pricing.cacheRead, pricing.cacheWrite) == (
            15, 75, 1.5, 18.75,
        )  # fmt: skip
        sonnet4 = next(m for m in data.models if m.id == "claude-sonnet-4")
        tiers = sonnet4.endpoints[0].pricingTiers
        assert tiers is not None
        assert [(t.threshold, t.prompt, t.completion) for t in tiers] == [
            (0, 3, 15), (200_000, 6, 22.5),
        ]  # fmt: skip
        llama = next(m for m in data.models if m.id == "llama-3.3-70b")
        assert llama.endpoints[0].provider == "novita"  # cheapest first
        ptb = {e.provider: e.supportsPtb for e in llama.endpoints}
        assert ptb["groq"] is True and ptb["together"] is False
        assert {"name": "groq", "displayName": "Groq"} in [
            p.model_dump() for p in data.filters.providers
        ]
        assert {"anthropic", "openai", "meta-llama"} <= set(data.filters.authors)
        assert {"reasoning", "caching", "image", "audio"} <= set(data.filters.capabilities)

    def test_public_registry_filters(self, gateway: GatewayServer) -> None:
        def ids(**params: str | list[str]) -> set[str]:
            data = _registry(gateway, **params).data
            assert data is not None and data.total == len(data.models)
            return {m.id for m in data.models}

        everything = ids()
        on_groq = ids(providers="groq")
        assert "llama-3.3-70b" in on_groq and "gpt-4o" not in on_groq
        assert ids(providers="groq,cerebras") >= on_groq
        assert ids(providers=["groq", "cerebras"]) == ids(providers="groq,cerebras")
        assert ids(authors="anthropic") == {i for i in everything if i.startswith("claude")}
        reasoning = ids(capabilities="reasoning")
        assert "o3" in reasoning and "gpt-4o" not in reasoning
        vision = ids(inputModalities="image")
        assert "gpt-4o" in vision and "o3-mini" not in vision
        assert ids(outputModalities="audio") == {
            "gpt-4o-audio-preview", "gpt-4o-audio-preview-2024-10-01",
            "gpt-4o-mini-audio-preview",
        }  # fmt: skip
        assert ids(authors="anthropic", capabilities="reasoning") == reasoning & ids(
            authors="anthropic"
        )
        assert ids(search="Sonnet") == {"claude-sonnet-4.5", "claude-sonnet-4", "claude-3.7-sonnet"}
        assert ids(providers="nowhere") == set()
        assert ids(unrelated="x") == everything
        # The facets describe the whole registry, whatever was filtered.
        narrow = _registry(gateway, providers="groq").data
        assert narrow is not None and len(narrow.filters.providers) > 1

    def test_public_registry_bad_filter_is_a_400_in_the_envelope(
        self, gateway: GatewayServer
    ) -> None:
        response = httpx.get(
            gateway.url + "/v1/public/model-registry/models", params={"capabilities": "psychic"}
        )
        assert response.status_code == 400
        result = RegistryResult.model_validate(response.json())
        assert result.data is None and result.error is not None
        assert "psychic" in result.error and "reasoning" in result.error

    def test_listing_honours_the_usable_providers(self, registry: Registry) -> None:
        listing = ModelListing(registry, ["groq"])
        page = OAIModelsResponse.model_validate(json.loads(listing.models_body))
        ids = {model.id for model in page.data}
        assert ids and all(i.endswith("/groq") for i in ids)
        with pytest.raises(ListingError, match="inputModalities"):
            listing.public_registry({"inputModalities": ["smell"]})


# --- gateway models ---------------------------------------------------------------------------


class TestModelsCommand:
    @pytest.fixture(autouse=True)
    def _env(self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
        monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "data"))

    def test_table(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["models"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].split() == [
            "MODEL", "PROVIDER", "PROVIDER", "MODEL", "ID", "INPUT", "OUTPUT", "CACHE", "READ",
            "CACHE", "WRITE", "SOURCE",
        ]  # fmt: skip
        rows = {tuple(line.split()[:2]): line.split() for line in lines[1:]}
        assert rows[("gpt-4o-mini", "openai")][2:] == [
            "gpt-4o-mini", "0.15", "0.6", "0.075", "-", "genai-prices",
        ]  # fmt: skip
        assert rows[("llama-3.3-70b", "groq")][2:] == [
            "llama-3.3-70b-versatile", "0.59", "0.79", "-", "-", "genai-prices",
        ]  # fmt: skip
        assert rows[("gpt-4o-audio-preview", "openai")][-1] == "override"

    def test_json_and_selection(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["models", "--json", "claude-sonnet-4-5", "gpt-4o-mini"]) == 0
        listed = TypeAdapter(list[dict[str, Any]]).validate_json(capsys.readouterr().out)
        assert [m["id"] for m in listed] == ["gpt-4o-mini", "claude-sonnet-4.5"]
        sonnet = listed[1]
        anthropic = next(o for o in sonnet["offerings"] if o["provider"] == "anthropic")
        assert anthropic["price_source"] == "genai-prices"
        assert anthropic["prices"]["input"] == "3"
        assert anthropic["prices"]["tiers"][0] == {
            "above_prompt_tokens": 200000, "input": "6", "output": "22.5",
            "cache_read": "0.6", "cache_write": "7.5", "cache_write_1h": "12",
        }  # fmt: skip

    def test_unknown_model(self, capsys: pytest.CaptureFixture[str]) -> None:
        assert main(["models", "no-such-model"]) == 1
        assert "no-such-model" in capsys.readouterr().err
