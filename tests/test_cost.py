"""Cost calculation: hand-computed prices, model-name resolution and the registry data file.

Expected values are worked out by hand from the per-1M list prices (from ``genai-prices``, or
the overrides in ``providers/models.json`` where noted):
``nano_usd = sum(tokens x price_per_1M) x 1000`` (USD per 1M x tokens / 1e6 x 1e9).
"""

from __future__ import annotations

import copy
import json
from dataclasses import fields
from decimal import Decimal
from fractions import Fraction
from importlib import resources
from typing import Any

import pytest

from providers.cost import (
    _PRICE_FIELDS,
    CostResult,
    ModelPrice,
    PriceTier,
    Usage,
)
from providers.registry import Registry
from providers.spec import PROVIDERS


@pytest.fixture(scope="module")
def table() -> Registry:
    return Registry.load()


def _priced_by(price: ModelPrice) -> str:
    """The provider whose price list applies (the maker's, for a maker price)."""
    if price.source.startswith("maker:"):
        return price.source.split(":")[1]
    return price.provider


def _registry() -> dict[str, Any]:
    text = resources.files("providers").joinpath("models.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text, parse_float=Decimal)
    return data


# --- hand-computed costs --------------------------------------------------------------------


class TestHandComputedCosts:
    def test_openai_cached_tokens_are_billed_at_cache_price_not_twice(
        self, table: Registry
    ) -> None:
        # gpt-4o: input 2.50, cached 1.25, output 10.00.
        # 6,000 x 2.50 + 4,000 x 1.25 + 500 x 10 = 15,000 + 5,000 + 5,000 = 25,000 -> $0.025
        usage = Usage(prompt_tokens=10_000, completion_tokens=500, cache_read_tokens=4_000)
        result = table.cost("openai", "gpt-4o", usage)
        assert result == CostResult(nano_usd=25_000_000, known=True)
        assert result.usd == pytest.approx(0.025)

    def test_anthropic_cache_writes_and_reads(self, table: Registry) -> None:
        # Anthropic raw usage: input_tokens=1000 (uncached), cache_creation_input_tokens=2000,
        # cache_read_input_tokens=5000, output_tokens=300. Adapter: prompt_tokens = sum = 8000.
        # claude-sonnet-4.5: 1000 x 3 + 5000 x 0.30 + 2000 x 3.75 + 300 x 15
        #                  = 3000 + 1500 + 7500 + 4500 = 16,500 -> $0.0165
        usage = Usage(
            prompt_tokens=8_000,
            completion_tokens=300,
            cache_read_tokens=5_000,
            cache_write_tokens=2_000,
        )
        result = table.cost("anthropic", "claude-sonnet-4-5-20250929", usage)
        assert result == CostResult(nano_usd=16_500_000, known=True)

    def test_anthropic_opus_matches_registry_example(self, table: Registry) -> None:
        # The design doc's example entry: prompt 15, completion 75, cacheRead 1.5, write 18.75.
        # 1M uncached + 1M read + 1M write + 1M output = 15 + 1.5 + 18.75 + 75 = $110.25
        usage = Usage(
            prompt_tokens=3_000_000,
            completion_tokens=1_000_000,
            cache_read_tokens=1_000_000,
            cache_write_tokens=1_000_000,
        )
        assert table.cost("anthropic", "claude-opus-4-1", usage).nano_usd == 110_250_000_000

    def test_anthropic_long_context_tier_counts_cache_traffic(self, table: Registry) -> None:
        # claude-sonnet-4 above 200k total input: input 6, read 0.60, write 7.50, output 22.50.
        # 150k x 6 + 100k x 0.60 + 50k x 7.50 + 1k x 22.50
        #   = 900,000 + 60,000 + 375,000 + 22,500 = 1,357,500 -> $1.3575
        usage = Usage(
            prompt_tokens=300_000,
            completion_tokens=1_000,
            cache_read_tokens=100_000,
            cache_write_tokens=50_000,
        )
        assert table.cost("anthropic", "claude-sonnet-4", usage).nano_usd == 1_357_500_000

    def test_gemini_pro_long_prompt_tier(self, table: Registry) -> None:
        # gemini-2.5-pro above 200k: input 2.50, cached 0.25, output 15 (thinking included).
        # 200k x 2.50 + 50k x 0.25 + 2k x 15 = 500,000 + 12,500 + 30,000 = 542,500 -> $0.5425
        usage = Usage(
            prompt_tokens=250_000,
            completion_tokens=2_000,
            cache_read_tokens=50_000,
            reasoning_tokens=1_500,
        )
        assert table.cost("google", "gemini-2.5-pro", usage).nano_usd == 542_500_000

    def test_gemini_pro_tier_boundary_is_exclusive(self, table: Registry) -> None:
        # Exactly 200k is still "<= 200k": 200,000 x 1.25 = 250,000 -> $0.25.
        at = table.cost("google", "gemini-2.5-pro", Usage(prompt_tokens=200_000))
        above = table.cost("google", "gemini-2.5-pro", Usage(prompt_tokens=200_001))
        assert at.nano_usd == 250_000_000
        assert above.nano_usd == 500_002_500  # 200,001 x 2.50 = 500,002.5 -> x1000

    def test_grok_tier_keeps_inherited_cache_price(self, table: Registry) -> None:
        # grok-4 above 128k: input 6, output 30; cache_read not overridden -> 0.75.
        # 100k x 6 + 30k x 0.75 + 1k x 30 = 600,000 + 22,500 + 30,000 = 652,500
        usage = Usage(prompt_tokens=130_000, completion_tokens=1_000, cache_read_tokens=30_000)
        assert table.cost("xai", "grok-4", usage).nano_usd == 652_500_000

    def test_reasoning_tokens_are_part_of_completion_at_output_price(
        self, table: Registry
    ) -> None:
        # o3: input 2, output 8; reasoning has no own price and is inside completion_tokens.
        # 1000 x 2 + 5000 x 8 = 42,000 -> $0.042 (not 1000 x 2 + 9000 x 8)
        usage = Usage(prompt_tokens=1_000, completion_tokens=5_000, reasoning_tokens=4_000)
        assert table.cost("openai", "o3", usage).nano_usd == 42_000_000

    def test_separately_priced_reasoning(self, table: Registry) -> None:
        # gemini-2.5-flash-preview-04-17: input 0.15, output 0.60, thinking 3.50.
        # 1000 x 0.15 + 200 x 0.60 + 800 x 3.50 = 150 + 120 + 2800 = 3,070 -> $0.00307
        usage = Usage(prompt_tokens=1_000, completion_tokens=1_000, reasoning_tokens=800)
        result = table.cost("google", "gemini-2.5-flash-preview-05-20", usage)
        assert result.nano_usd == 3_070_000

    def test_audio_tokens_at_audio_prices(self, table: Registry) -> None:
        # gpt-4o-audio-preview: text 2.50/10, audio 40/80.
        # 400 x 2.5 + 600 x 40 + 100 x 10 + 400 x 80 = 1000 + 24000 + 1000 + 32000 = 58,000
        usage = Usage(
            prompt_tokens=1_000,
            completion_tokens=500,
            prompt_audio_tokens=600,
            completion_audio_tokens=400,
        )
        result = table.cost("openai", "gpt-4o-audio-preview-2024-12-17", usage)
        assert result.nano_usd == 58_000_000

    def test_audio_input_without_audio_output_price(self, table: Registry) -> None:
        # gemini-2.0-flash: text input 0.10, audio input 0.70, output 0.40 (no audio output).
        # 1000 x 0.10 + 1000 x 0.70 + 1000 x 0.40 = 100 + 700 + 400 = 1,200
        usage = Usage(prompt_tokens=2_000, completion_tokens=1_000, prompt_audio_tokens=1_000)
        assert table.cost("google", "gemini-2.0-flash-001", usage).nano_usd == 1_200_000

    def test_deepseek_cache_hit_and_miss(self, table: Registry) -> None:
        # deepseek-chat: miss 0.28, hit 0.028, output 0.42.
        # 400k x 0.28 + 600k x 0.028 + 10k x 0.42 = 112,000 + 16,800 + 4,200 = 133,000
        usage = Usage(prompt_tokens=1_000_000, completion_tokens=10_000, cache_read_tokens=600_000)
        assert table.cost("deepseek", "deepseek-chat", usage).nano_usd == 133_000_000

    def test_embeddings_have_no_output(self, table: Registry) -> None:
        # 1M tokens of text-embedding-3-small at $0.02.
        result = table.cost("openai", "text-embedding-3-small", Usage(prompt_tokens=1_000_000))
        assert result.nano_usd == 20_000_000

    def test_groq_and_mistral(self, table: Registry) -> None:
        # llama-3.3-70b-versatile 0.59/0.79: 1000 x 0.59 + 1000 x 0.79 = 1,380
        # mistral-small 0.10/0.30: 1000 x 0.10 + 1000 x 0.30 = 400
        usage = Usage(prompt_tokens=1_000, completion_tokens=1_000)
        assert table.cost("groq", "llama-3.3-70b-versatile", usage).nano_usd == 1_380_000
        assert table.cost("mistral", "mistral-small-latest", usage).nano_usd == 400_000


class TestIntegerExactness:
    def test_one_token_at_fifteen_cents_per_million(self, table: Registry) -> None:
        assert table.cost("openai", "gpt-4o-mini", Usage(prompt_tokens=1)).nano_usd == 150

    def test_sums_are_exact_where_floats_are_not(self, table: Registry) -> None:
        # 3 x 0.10 in floats is 0.30000000000000004; in nano-USD it is exactly 300.
        result = table.cost("openai", "gpt-4.1-nano", Usage(prompt_tokens=3))
        assert result.nano_usd == 300
        assert isinstance(result.nano_usd, int)

    def test_rounds_half_up_once_at_the_end(self, table: Registry) -> None:
        # gpt-oss-20b cached input 0.0375 per 1M = 37.5 nano-USD per token.
        one = table.cost("groq", "openai/gpt-oss-20b", Usage(prompt_tokens=1, cache_read_tokens=1))
        two = table.cost("groq", "openai/gpt-oss-20b", Usage(prompt_tokens=2, cache_read_tokens=2))
        assert one.nano_usd == 38
        assert two.nano_usd == 75  # not 2 x 38: rounding happens on the total only

    def test_large_usage_stays_exact(self, table: Registry) -> None:
        # 10^9 output tokens of claude-opus-4.1 at $75 = $75,000 = 7.5e13 nano-USD.
        result = table.cost("anthropic", "claude-opus-4.1", Usage(completion_tokens=10**9))
        assert result.nano_usd == 75_000_000_000_000


    def test_prices_finer_than_a_pico_usd_per_token_stay_exact(self) -> None:
        # $1/3 per 1M tokens is not a whole number of pico-USD per token: the Fraction path.
        price = ModelPrice(
            model="m", provider="p", provider_model_id="m",
            input=Fraction(1, 3), output=Fraction(2), cache_read=Fraction(1, 7),
        )
        assert price.cost(Usage(prompt_tokens=3)).nano_usd == 1_000  # $1e-6
        assert price.cost(Usage(prompt_tokens=1)).nano_usd == 333  # 333.33...
        assert price.cost(Usage(prompt_tokens=2)).nano_usd == 667  # 666.66... rounds up
        assert price.cost(Usage(prompt_tokens=3_000_000)).nano_usd == 1_000_000_000  # $1
        # 7 cached at 1/7 + 3 plain at 1/3 + 1 output at 2 = $4 per 1M tokens, exactly.
        mixed = price.cost(Usage(prompt_tokens=10, cache_read_tokens=7, completion_tokens=1))
        assert mixed.nano_usd == 4_000

    def test_tier_merge_recomputes_the_per_token_rates(self, table: Registry) -> None:
        price = table.lookup("google", "gemini-2.5-pro")
        assert price is not None and price.tiers
        above = price.tiers[0].above_prompt_tokens + 1
        merged = price.for_prompt(above)
        assert merged.input != price.input
        # USD per 1M tokens x tokens / 1e6 x 1e9 nano-USD per USD
        assert price.cost(Usage(prompt_tokens=above)).nano_usd == merged.input * above * 1000

class TestUnknownAndEmpty:
    def test_unknown_model_is_zero_and_not_known(self, table: Registry) -> None:
        usage = Usage(prompt_tokens=1_000, completion_tokens=1_000)
        result = table.cost("openai", "definitely-not-a-model", usage)
        assert result == CostResult(nano_usd=0, known=False)
        assert result.usd == 0.0

    @pytest.mark.parametrize(
        ("provider", "model"),
        [
            ("openai", ""),
            ("", "   "),
            ("openrouter", "some-vendor/unknown"),
            ("deepinfra", "qwen3-32b"),  # no maker offering, several resellers: no guess
        ],
    )
    def test_unpriced_inputs_never_raise(
        self, table: Registry, provider: str, model: str
    ) -> None:
        assert table.cost(provider, model, Usage(prompt_tokens=5)) == CostResult(0, False)

    @pytest.mark.parametrize(
        ("provider", "model", "not_as"),
        [
            ("openai", "o3-pro", "o3"),  # a different, pricier model, not a snapshot of o3
            ("anthropic", "claude-opus-4-6", "claude-opus-4"),  # not a snapshot of opus 4
        ],
    )
    def test_similar_names_are_not_priced_as_the_shorter_model(
        self, table: Registry, provider: str, model: str, not_as: str
    ) -> None:
        # Not in the registry's table, so the provider's own library price is used (the
        # library prices both); never the price of the registry model they extend.
        price = table.lookup(provider, model)
        shorter = table.lookup(provider, not_as)
        assert shorter is not None
        assert price is None or (price.model, price.source) == (model, "genai-prices")
        assert price is None or (price.input, price.output) != (shorter.input, shorter.output)

    def test_zero_usage_of_known_model(self, table: Registry) -> None:
        assert table.cost("openai", "gpt-5", Usage()) == CostResult(nano_usd=0, known=True)

    def test_inconsistent_usage_is_clamped_not_negative(self, table: Registry) -> None:
        # More cached than prompt tokens: all 100 prompt tokens billed as cached (1.25), never
        # a negative uncached count; reasoning beyond completion likewise capped.
        usage = Usage(
            prompt_tokens=100, cache_read_tokens=500, completion_tokens=10, reasoning_tokens=99
        )
        assert table.cost("openai", "gpt-4o", usage).nano_usd == 100 * 1250 + 10 * 10_000
        negative = Usage(prompt_tokens=-5, completion_tokens=-1, cache_read_tokens=-3)
        assert table.cost("openai", "gpt-4o", negative) == CostResult(0, True)


# --- name resolution ------------------------------------------------------------------------


class TestLookup:
    def test_remembered_answers_match_fresh_ones_and_stay_bounded(self) -> None:
        remembering = Registry.load()
        pairs = [("openai", "gpt-4o-mini-2024-07-18"), ("anthropic", "claude-haiku-4-5"),
                 ("openai", "no-such-model"), ("OpenAI", " GPT-4o ")]
        first = [remembering.lookup(p, m) for p, m in pairs]
        assert first[0] is not None and first[0].model == "gpt-4o-mini"
        assert first[2] is None
        assert [remembering.lookup(p, m) for p, m in pairs] == first
        # client-chosen model strings cannot grow the memory without bound
        for number in range(10_000):
            assert remembering.lookup("openai", f"made-up-{number}") is None
        assert len(remembering._found) <= 4096
        assert [remembering.lookup(p, m) for p, m in pairs] == first
        # a huge model string (a request body can carry one) is answered but not kept
        huge = "gpt-4o-mini-" + "x" * 1_000_000
        assert remembering.lookup("openai", huge) is None
        assert all(len(model) < 1000 for _, model in remembering._found)

    @pytest.mark.parametrize(
        ("provider", "model", "canonical"),
        [
            ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
            ("openai", "GPT-4o-2024-11-20", "gpt-4o"),
            ("openai", "gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
            ("openai", "gpt-4.1-2025-04-14", "gpt-4.1"),
            ("openai", "gpt-5-chat-latest", "gpt-5"),
            ("anthropic", "claude-3-7-sonnet-20250219", "claude-3.7-sonnet"),
            ("anthropic", "claude-3-5-haiku-latest", "claude-3.5-haiku"),
            ("anthropic", "claude-haiku-4-5", "claude-haiku-4.5"),
            ("anthropic", "claude-opus-4-20250514", "claude-opus-4"),
            ("google-ai-studio", "gemini-2.5-flash-lite-preview-06-17", "gemini-2.5-flash-lite"),
            ("xai", "grok-4-0709", "grok-4"),
            ("mistral", "mistral-large-2411", "mistral-large"),
            ("mistral", "codestral-latest", "codestral"),
            ("groq", "llama-3.1-8b-instant", "llama-3.1-8b"),
        ],
    )
    def test_aliases_and_provider_ids(
        self, table: Registry, provider: str, model: str, canonical: str
    ) -> None:
        price = table.lookup(provider, model)
        assert price is not None
        assert (price.provider, price.model) == (provider, canonical)

    @pytest.mark.parametrize(
        ("provider", "model", "canonical"),
        [
            ("openai", "gpt-4o-2025-03-01", "gpt-4o"),
            ("openai", "o4-mini-2099-01-01", "o4-mini"),
            ("anthropic", "claude-sonnet-4-5-20260101", "claude-sonnet-4.5"),
            ("anthropic", "claude-3-5-haiku@20241022", "claude-3.5-haiku"),
            ("xai", "grok-3-mini-0411", "grok-3-mini"),
            ("mistral", "mistral-medium-2609", "mistral-medium"),
            ("google", "gemini-2.0-flash-002", "gemini-2.0-flash"),
        ],
    )
    def test_unlisted_dated_snapshots_match_by_prefix(
        self, table: Registry, provider: str, model: str, canonical: str
    ) -> None:
        price = table.lookup(provider, model)
        assert price is not None
        assert price.model == canonical

    def test_listed_snapshot_beats_prefix_match(self, table: Registry) -> None:
        price = table.lookup("openai", "gpt-4o-2024-05-13")
        assert price is not None
        assert (price.model, price.input, price.output) == (
            "gpt-4o-2024-05-13",
            Fraction(5),
            Fraction(15),
        )

    def test_longest_prefix_wins(self, table: Registry) -> None:
        # claude-opus-4-1-20990101 extends both claude-opus-4 and claude-opus-4-1.
        price = table.lookup("anthropic", "claude-opus-4-1-20990101")
        assert price is not None
        assert price.model == "claude-opus-4.1"

    @pytest.mark.parametrize(
        ("provider", "model", "expected"),
        [
            ("openai", "openai/gpt-4o", ("openai", "gpt-4o")),
            ("OpenAI", " openai/GPT-4O ", ("openai", "gpt-4o")),
            # DeepInfra has no price of its own anywhere: the prefix's / maker's price.
            ("deepinfra", "anthropic/claude-sonnet-4.5", ("anthropic", "claude-sonnet-4.5")),
            ("deepinfra", "x-ai/grok-4", ("xai", "grok-4")),
            ("deepinfra", "google/gemini-2.5-pro", ("google-ai-studio", "gemini-2.5-pro")),
            ("deepinfra", "mistralai/codestral-2508", ("mistral", "codestral")),
            ("deepinfra", "groq/llama-3.3-70b-versatile", ("groq", "llama-3.3-70b")),
            # OpenRouter serves it in the registry: its own price.
            ("openrouter", "anthropic/claude-sonnet-4.5", ("openrouter", "claude-sonnet-4.5")),
            ("google", "models/gemini-2.5-flash", ("google-ai-studio", "gemini-2.5-flash")),
            ("gemini", "gemini-2.5-flash", ("google-ai-studio", "gemini-2.5-flash")),
            ("openai", "gpt-4o-mini/openai", ("openai", "gpt-4o-mini")),
            # Groq's own id contains a slash: the full string is tried before stripping.
            ("groq", "openai/gpt-oss-120b", ("groq", "gpt-oss-120b")),
            ("groq", "groq/llama-3.3-70b-versatile", ("groq", "llama-3.3-70b")),
        ],
    )
    def test_provider_prefixes(
        self, table: Registry, provider: str, model: str, expected: tuple[str, str]
    ) -> None:
        price = table.lookup(provider, model)
        assert price is not None
        assert (_priced_by(price), price.model) == expected

    def test_reseller_uses_its_own_offering(self, table: Registry) -> None:
        price = table.lookup("together", "llama-3.3-70b-instruct")
        assert price is not None
        assert (price.provider, price.model) == ("together", "llama-3.3-70b")
        assert price.provider_model_id == "meta-llama/Llama-3.3-70B-Instruct-Turbo"
        unknown_reseller = table.lookup("some-new-reseller", "gpt-4o-2024-08-06")
        assert unknown_reseller is not None and _priced_by(unknown_reseller) == "openai"

    def test_first_party_slug_never_borrows_a_resellers_price(self, table: Registry) -> None:
        # gpt-oss-120b's maker (OpenAI) serves it nowhere in the registry: a request that
        # OpenAI answered is priced at OpenAI's own library price, never at Groq's.
        groq = table.lookup("groq", "openai/gpt-oss-120b")
        openai = table.lookup("openai", "openai/gpt-oss-120b")
        assert groq is not None
        assert openai is None or (openai.provider, openai.source) == ("openai", "genai-prices")

    def test_a_known_model_on_a_provider_without_a_price_costs_the_makers_price(
        self, table: Registry
    ) -> None:
        # The case: gpt-4o-mini/groq logged no cost. Groq has no price for it, so it
        # costs what OpenAI (the maker) charges, flagged in the source.
        maker = table.lookup("openai", "gpt-4o-mini")
        price = table.lookup("groq", "gpt-4o-mini")
        assert maker is not None and price is not None
        assert (price.provider, price.model, price.source) == (
            "groq", "gpt-4o-mini", "maker:openai:genai-prices",
        )  # fmt: skip
        assert (price.input, price.output, price.cache_read) == (
            maker.input, maker.output, maker.cache_read,
        )  # fmt: skip
        usage = Usage(prompt_tokens=1_000, completion_tokens=1_000)
        # 1000 x 0.15 + 1000 x 0.60 = 750 -> $0.00075
        assert table.cost("groq", "gpt-4o-mini", usage) == CostResult(750_000, True)
        assert table.cost("anthropic", "gpt-4o", usage).known


def _synthetic(models: list[dict[str, Any]]) -> Registry:
    return Registry.from_data({"models": models})


def _offering(provider: str, model_id: str, input_price: str = "1") -> dict[str, Any]:
    return {
        "provider": provider,
        "model_id": model_id,
        "prices": {"input": input_price, "output": "2"},
        "source": "https://example.com/pricing",
        "notes": "a test price",
    }


class TestAmbiguity:
    def test_model_served_by_two_providers_needs_a_provider(self) -> None:
        table = _synthetic(
            [
                {
                    "id": "shared-model",
                    "aliases": [],
                    "offerings": [
                        _offering("groq", "shared-model", "1"),
                        _offering("mistral", "shared-model", "3"),
                    ],
                }
            ]
        )
        assert table.lookup("together", "shared-model") is None
        assert table.cost("together", "shared-model", Usage(prompt_tokens=1)).known is False
        groq = table.lookup("openrouter", "groq/shared-model")
        mistral = table.lookup("mistral", "shared-model")
        assert groq is not None and groq.provider == "groq"
        assert mistral is not None and mistral.input == 3

    def test_reseller_falls_back_to_the_only_offering(self) -> None:
        table = _synthetic(
            [{"id": "solo", "author": "meta-llama", "offerings": [_offering("groq", "solo-v")]}]
        )
        reseller = table.lookup("together", "solo")
        assert reseller is not None and reseller.provider == "groq"
        # A first-party slug does not borrow another provider's (non-maker) price.
        assert table.lookup("mistral", "solo") is None

    @pytest.mark.parametrize(
        "broken",
        [
            lambda m: m[0]["aliases"].append("other-model"),  # alias collides with another id
            lambda m: m[0]["offerings"][0]["prices"].update(input="-1"),
            lambda m: m[0]["offerings"][0].update(provider="nowhere"),
            lambda m: m[0]["offerings"][0].pop("notes"),  # an override says why
            lambda m: m[0]["offerings"][0].update(source="not a url"),
            lambda m: m[0]["offerings"][0]["prices"].pop("output"),
            lambda m: m[0]["offerings"][0]["prices"].update(cached="1"),  # typo'd field
            lambda m: m[0]["offerings"].append(m[0]["offerings"][0]),  # priced twice
            lambda m: m.append(copy.deepcopy(m[0])),  # duplicate id
        ],
    )
    def test_malformed_registry_is_rejected(self, broken: Any) -> None:
        models: list[dict[str, Any]] = [
            {"id": "one-model", "aliases": [], "offerings": [_offering("groq", "one-model")]},
            {"id": "other-model", "aliases": [], "offerings": [_offering("groq", "other")]},
        ]
        _synthetic(copy.deepcopy(models))  # the unbroken document loads
        broken(models)
        with pytest.raises(ValueError):
            _synthetic(models)


# --- the data file --------------------------------------------------------------------------


class TestRegistryData:
    def test_load_reads_fresh_each_time(self) -> None:
        assert Registry.load() is not Registry.load()

    def test_every_offering_is_well_formed(self) -> None:
        for model in _registry()["models"]:
            assert model["offerings"], model["id"]
            for key in ("context_window", "max_output_tokens"):
                assert model[key] is None or model[key] > 0, model["id"]
            for offering in model["offerings"]:
                label = f"{model['id']}@{offering['provider']}"
                assert PROVIDERS.get(offering["provider"]) is not None, label
                if "prices" not in offering:
                    continue  # priced by the library
                assert offering["source"].startswith("https://"), label
                assert offering["notes"].strip(), label  # why the library is overridden
                prices = offering["prices"]
                assert prices["input"] >= 0 and prices["output"] >= 0, label
                assert all(value >= 0 for value in prices.values()), label
                for tier in offering.get("tiers", []):
                    assert tier["above_prompt_tokens"] > 0, label
                    assert all(value >= 0 for value in tier["prices"].values()), label

    def test_no_duplicate_ids_or_aliases(self) -> None:
        names: list[str] = []
        for model in _registry()["models"]:
            names.append(model["id"].lower())
            names.extend(alias.lower() for alias in model["aliases"])
        duplicates = sorted({name for name in names if names.count(name) > 1})
        assert duplicates == []

    def test_every_name_resolves_to_its_own_model(self, table: Registry) -> None:
        for model in _registry()["models"]:
            for offering in model["offerings"]:
                for name in (model["id"], *model["aliases"], offering["model_id"]):
                    price = table.lookup(offering["provider"], name)
                    assert price is not None, name
                    assert price.model == model["id"], name

    def test_required_models_are_covered(self, table: Registry) -> None:
        required = {
            "openai": [
                "gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "gpt-4.1-nano", "o1", "o3",
                "o3-mini", "o4-mini", "gpt-5", "gpt-5-mini", "gpt-5-nano",
                "text-embedding-3-small", "text-embedding-3-large",
            ],
            "anthropic": [
                "claude-opus-4.1", "claude-opus-4", "claude-sonnet-4.5", "claude-sonnet-4",
                "claude-3.7-sonnet", "claude-3.5-haiku", "claude-haiku-4.5",
            ],
            "google": [
                "gemini-2.5-pro", "gemini-2.5-flash", "gemini-2.5-flash-lite", "gemini-2.0-flash",
            ],
            "xai": ["grok-4", "grok-3", "grok-3-mini"],
            "mistral": ["mistral-large", "mistral-medium", "mistral-small", "codestral"],
            "deepseek": ["deepseek-chat", "deepseek-reasoner"],
            "groq": ["llama-3.3-70b-versatile", "llama-3.1-8b-instant", "openai/gpt-oss-120b"],
        }  # fmt: skip
        missing = [
            f"{provider}:{model}"
            for provider, models in required.items()
            for model in models
            if table.lookup(provider, model) is None
        ]
        assert missing == []

    def test_cache_prices_are_discounts(self, table: Registry) -> None:
        # A cached read costing more than a fresh input token would be a data-entry error.
        for price in table.prices():
            if price.cache_read is not None:
                assert price.cache_read < price.input, price.model

    def test_price_fields_match_dataclasses(self) -> None:
        tier_fields = {f.name for f in fields(PriceTier)} - {"above_prompt_tokens"}
        model_fields = {f.name for f in fields(ModelPrice)}
        assert set(_PRICE_FIELDS) == tier_fields
        assert set(_PRICE_FIELDS) <= model_fields
