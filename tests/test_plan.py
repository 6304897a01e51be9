"""The attempt plan (providers/plan.py): chains, exclusions, cheapest first, load balancing,
BYOK before credits, pinned providers, deployments, unknown models, exact error messages."""

from __future__ import annotations

from collections import Counter
from fractions import Fraction
from typing import Any

import pytest

from providers.health import Health
from providers.plan import (
    Attempt,
    KeySources,
    NoProvidersError,
    Offer,
    Planner,
    ProviderKey,
    RoundRobin,
    StaticRegistry,
    UnknownModelError,
)

SLUGS = dict.fromkeys(
    ["openai", "azure", "anthropic", "bedrock", "vertex", "groq", "together", "deepinfra",
     "fireworks", "openrouter"]
)
CHAT = frozenset({"/chat/completions", "/responses"})
REGISTRY = StaticRegistry(
    {
        "gpt-4o-mini": [
            Offer("openai", "gpt-4o-mini", Fraction(75, 100)),
            Offer("azure", "gpt-4o-mini", Fraction(75, 100), CHAT),
            Offer("openrouter", "openai/gpt-4o-mini", 0.9, frozenset({"/chat/completions"})),
        ],
        "llama-3.3-70b": [
            Offer("fireworks", "accounts/fireworks/models/llama-v3p3-70b-instruct", None),
            Offer("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo", 1.76),
            Offer("groq", "llama-3.3-70b-versatile", Fraction(138, 100)),
            Offer("deepinfra", "meta-llama/Llama-3.3-70B-Instruct", 0.5),
        ],
        "claude-sonnet-4": [
            Offer("anthropic", "claude-sonnet-4-20250514", 18),
            Offer("bedrock", "anthropic.claude-sonnet-4-20250514-v1:0", 18.0),
            Offer("vertex", "claude-sonnet-4@20250514", Fraction(18)),
        ],
        "meta-llama/Llama-3.3-70B-Instruct": [
            Offer("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo", 1.76),
        ],
    }
)
ALL_CREDITS = frozenset(SLUGS)


def planner(**kwargs: Any) -> Planner:
    return Planner(REGISTRY, SLUGS, **kwargs)


def summary(attempts: list[Attempt]) -> list[str]:
    return [a.source if a.key is None else f"{a.source}:{a.key.id}" for a in attempts]


def test_bare_model_cheapest_first_unpriced_last() -> None:
    attempts = planner().plan("llama-3.3-70b", KeySources(credits=ALL_CREDITS))
    assert [(a.provider, a.model, a.key_source) for a in attempts] == [
        ("deepinfra", "meta-llama/Llama-3.3-70B-Instruct", "credits"),
        ("groq", "llama-3.3-70b-versatile", "credits"),
        ("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo", "credits"),
        ("fireworks", "accounts/fireworks/models/llama-v3p3-70b-instruct", "credits"),
    ]
    assert attempts[0].source == "llama-3.3-70b/deepinfra/credits"
    assert attempts[0].key is None and attempts[0].key_id == "credits"


def test_only_providers_with_a_key_are_attempted() -> None:
    attempts = planner().plan("llama-3.3-70b", KeySources(credits={"together", "fireworks"}))
    assert [a.provider for a in attempts] == ["together", "fireworks"]


def test_byok_before_credits_within_an_item() -> None:
    keys = KeySources(
        byok={
            "together": [ProviderKey("k-tog")],
            "groq": [ProviderKey("k-g1"), ProviderKey("k-g2")],
        },
        credits={"deepinfra", "groq"},
    )
    attempts = planner().plan("llama-3.3-70b", keys)
    assert summary(attempts) == [
        "llama-3.3-70b/groq/byok:k-g1",
        "llama-3.3-70b/groq/byok:k-g2",
        "llama-3.3-70b/together/byok:k-tog",
        "llama-3.3-70b/deepinfra/credits",
        "llama-3.3-70b/groq/credits",
    ]
    byok = attempts[0]
    assert byok.key == ProviderKey("k-g1") and byok.key_id == "k-g1"
    assert byok.model == "llama-3.3-70b-versatile"
    assert byok.item == 0 and byok.requested_model == "llama-3.3-70b"


def test_pinned_provider_byok_then_credits_for_it_only() -> None:
    keys = KeySources(byok={"groq": [ProviderKey("k")], "deepinfra": [ProviderKey("d")]},
                      credits=ALL_CREDITS)
    attempts = planner().plan("llama-3.3-70b/groq", keys)
    assert summary(attempts) == ["llama-3.3-70b/groq/byok:k", "llama-3.3-70b/groq/credits"]
    assert {a.model for a in attempts} == {"llama-3.3-70b-versatile"}


def test_deployment_selects_only_that_key_by_id_or_name() -> None:
    eu = ProviderKey("clm1a2b3c", "eu-frankfurt-deployment", {"endpoint": "https://eu.example"})
    us = ProviderKey("clm9z8y7x", "us-east", {"endpoint": "https://us.example"})
    keys = KeySources(byok={"azure": [us, eu]}, credits=ALL_CREDITS)
    by_name = planner().plan("gpt-4o-mini/azure/eu-frankfurt-deployment", keys)
    by_id = planner().plan("gpt-4o-mini/azure/clm1a2b3c", keys)
    for attempts in (by_name, by_id):
        assert len(attempts) == 1
        assert attempts[0].key is eu
        assert attempts[0].deployment == {"endpoint": "https://eu.example"}
        assert attempts[0].source == "gpt-4o-mini/azure/byok"
    # Without a deployment, every azure key of the org, then the managed key.
    assert summary(planner().plan("gpt-4o-mini/azure", keys)) == [
        "gpt-4o-mini/azure/byok:clm9z8y7x",
        "gpt-4o-mini/azure/byok:clm1a2b3c",
        "gpt-4o-mini/azure/credits",
    ]


def test_missing_deployment_is_no_providers() -> None:
    keys = KeySources(byok={"azure": [ProviderKey("a", "us-east")]}, credits=ALL_CREDITS)
    with pytest.raises(NoProvidersError) as caught:
        planner().plan("gpt-4o-mini/azure/eu-1", keys)
    assert str(caught.value) == (
        "No available providers for the requested models. Check provider names and see "
        "supported models at /v1/models. 'gpt-4o-mini/azure/eu-1': no azure deployment or key "
        "'eu-1' in the organisation's provider keys"
    )
    assert caught.value.status == 400 and caught.value.code == "no_providers"


def test_chain_items_keep_their_order_byok_does_not_jump_ahead() -> None:
    keys = KeySources(byok={"anthropic": [ProviderKey("mine")]}, credits={"openai"})
    attempts = planner().plan("gpt-4o-mini/openai,claude-sonnet-4/anthropic", keys)
    assert summary(attempts) == [
        "gpt-4o-mini/openai/credits",
        "claude-sonnet-4/anthropic/byok:mine",
    ]
    assert [a.item for a in attempts] == [0, 1]


def test_manual_fallback_chain_and_duplicates() -> None:
    keys = KeySources(byok={"openai": [ProviderKey("o")]}, credits={"openai", "azure"})
    attempts = planner(balancer=None).plan(
        "gpt-4o-mini/azure,gpt-4o-mini/openai,gpt-4o-mini", keys
    )
    # The bare item adds nothing new: openai (byok, credits) and azure credits already planned.
    assert summary(attempts) == [
        "gpt-4o-mini/azure/credits",
        "gpt-4o-mini/openai/byok:o",
        "gpt-4o-mini/openai/credits",
    ]


def test_exclusions_apply_everywhere() -> None:
    keys = KeySources(byok={"openai": [ProviderKey("o")]}, credits=ALL_CREDITS)
    attempts = planner().plan("gpt-4o-mini/openai,!openai,gpt-4o-mini", keys)
    assert {a.provider for a in attempts} == {"azure", "openrouter"}
    with pytest.raises(NoProvidersError) as caught:
        planner().plan("!openai,gpt-4o-mini/openai", keys)
    assert str(caught.value).endswith("'gpt-4o-mini/openai': provider openai is excluded")
    with pytest.raises(NoProvidersError) as every:
        planner().plan("!openai,!azure,!openrouter,gpt-4o-mini", keys)
    assert str(every.value).endswith("'gpt-4o-mini': every provider of the model is excluded")


def test_endpoint_filters_offerings() -> None:
    keys = KeySources(credits=ALL_CREDITS)
    chat = planner().plan("gpt-4o-mini", keys, endpoint="/chat/completions")
    responses = planner().plan("gpt-4o-mini", keys, endpoint="/responses")
    embeddings = planner().plan("gpt-4o-mini", keys, endpoint="/embeddings")
    assert {a.provider for a in chat} == {"openai", "azure", "openrouter"}
    assert {a.provider for a in responses} == {"openai", "azure"}
    assert [a.provider for a in embeddings] == ["openai"]
    with pytest.raises(NoProvidersError) as caught:
        planner().plan("gpt-4o-mini/openrouter", keys, endpoint="/embeddings")
    assert str(caught.value).endswith(
        "'gpt-4o-mini/openrouter': openrouter does not serve /embeddings"
    )


def test_unknown_bare_model() -> None:
    with pytest.raises(UnknownModelError) as caught:
        planner().plan("gpt-9-turbo", KeySources(credits=ALL_CREDITS))
    assert caught.value.reason == (
        "Unknown model: gpt-9-turbo. Please specify a provider (e.g., gpt-9-turbo/openai) or "
        "use a supported model. See /v1/models"
    )
    assert caught.value.item == "gpt-9-turbo"
    assert caught.value.status == 400
    # Even in a chain: a typo never silently falls through to the next item.
    with pytest.raises(UnknownModelError):
        planner().plan("gpt-4o-mni,gpt-4o-mini", KeySources(credits=ALL_CREDITS))


def test_unknown_model_only_through_byok() -> None:
    byok = KeySources(byok={"openai": [ProviderKey("o")]}, credits=ALL_CREDITS)
    attempts = planner().plan("my-fine-tune/openai", byok)
    assert summary(attempts) == ["my-fine-tune/openai/byok:o"]
    assert attempts[0].model == "my-fine-tune"
    # A known model at a provider the registry does not list it at: also BYOK only.
    assert summary(planner().plan("claude-sonnet-4/openai", byok)) == [
        "claude-sonnet-4/openai/byok:o"
    ]
    with pytest.raises(NoProvidersError) as caught:
        planner().plan("my-fine-tune/openai", KeySources(credits=ALL_CREDITS))
    assert str(caught.value).endswith(
        "'my-fine-tune/openai': my-fine-tune is not listed at openai; only the organisation's "
        "own openai keys can serve it"
    )


def test_unlisted_models_on_unmetered_credits() -> None:
    keys = KeySources(credits=ALL_CREDITS, credits_for_unlisted=True)
    attempts = planner().plan("meta-llama/Llama-3.1-8B/together", keys)
    assert summary(attempts) == ["meta-llama/Llama-3.1-8B/together/credits"]
    assert attempts[0].model == "meta-llama/Llama-3.1-8B"


def test_default_provider_reads_unknown_bare_models_as_pinned() -> None:
    keys = KeySources(credits={"openai"}, credits_for_unlisted=True)
    attempts = planner(default_provider="openai").plan("gpt-9-turbo", keys)
    assert summary(attempts) == ["gpt-9-turbo/openai/credits"]
    with pytest.raises(ValueError, match="not a provider"):
        planner(default_provider="nope")


def test_slashed_registry_model_bare_and_pinned() -> None:
    keys = KeySources(credits=ALL_CREDITS)
    bare = planner().plan("meta-llama/Llama-3.3-70B-Instruct", keys)
    pinned = planner().plan("meta-llama/Llama-3.3-70B-Instruct/together", keys)
    assert summary(bare) == summary(pinned) == [
        "meta-llama/Llama-3.3-70B-Instruct/together/credits"
    ]
    assert bare[0].model == "meta-llama/Llama-3.3-70B-Instruct-Turbo"


def test_no_key_at_all() -> None:
    with pytest.raises(NoProvidersError) as caught:
        planner().plan("gpt-4o-mini,llama-3.3-70b/groq", KeySources())
    assert str(caught.value) == (
        "No available providers for the requested models. Check provider names and see "
        "supported models at /v1/models. 'gpt-4o-mini': no key (own or managed) for openai, "
        "azure, openrouter; 'llama-3.3-70b/groq': no key (own or managed) for groq"
    )


def test_equal_cost_round_robin_distribution() -> None:
    rr = RoundRobin()
    p = planner(balancer=rr)
    keys = KeySources(credits=ALL_CREDITS)
    firsts: Counter[str] = Counter()
    orders = []
    for _ in range(300):
        attempts = p.plan("claude-sonnet-4", keys)
        orders.append(tuple(a.provider for a in attempts))
        firsts[attempts[0].provider] += 1
    assert firsts == {"anthropic": 100, "bedrock": 100, "vertex": 100}
    # Every request still gets every provider (cyclic order after the first).
    assert set(orders[:3]) == {
        ("anthropic", "bedrock", "vertex"),
        ("bedrock", "vertex", "anthropic"),
        ("vertex", "anthropic", "bedrock"),
    }
    # openai and azure tie on gpt-4o-mini; openrouter (dearer) stays last.
    mini = [p.plan("gpt-4o-mini", keys) for _ in range(10)]
    assert Counter(plan[0].provider for plan in mini) == {"openai": 5, "azure": 5}
    assert {plan[-1].provider for plan in mini} == {"openrouter"}


def test_weighted_round_robin_distribution() -> None:
    p = planner(balancer=RoundRobin({"anthropic": 2, "vertex": 3}))
    keys = KeySources(credits=ALL_CREDITS)
    firsts = Counter(p.plan("claude-sonnet-4", keys)[0].provider for _ in range(600))
    assert firsts == {"anthropic": 200, "bedrock": 100, "vertex": 300}
    # Smooth: the heavier provider never goes first more than twice in a row here.
    run = [p.plan("claude-sonnet-4", keys)[0].provider for _ in range(6)]
    assert run.count("vertex") == 3 and "vertex,vertex,vertex" not in ",".join(run)
    with pytest.raises(ValueError):
        RoundRobin({"openai": 0})


def test_byok_and_credits_are_balanced_separately() -> None:
    # BYOK for two of the three equal-cost providers, credits for the other two: each
    # source spreads evenly over the providers it has a key for.
    keys = KeySources(
        byok={p: [ProviderKey(f"k-{p}")] for p in ("anthropic", "bedrock")},
        credits={"bedrock", "vertex"},
    )
    p = planner()
    plans = [p.plan("claude-sonnet-4", keys) for _ in range(10)]
    assert Counter(plan[0].provider for plan in plans) == {"anthropic": 5, "bedrock": 5}
    assert Counter(plan[2].provider for plan in plans) == {"bedrock": 5, "vertex": 5}
    assert {tuple(a.key_source for a in plan) for plan in plans} == {
        ("byok", "byok", "credits", "credits")
    }


def test_cooled_down_attempts_move_to_the_end() -> None:
    now = [0.0]
    health = Health(threshold=2, cooldown=30, clock=lambda: now[0])
    keys = KeySources(byok={"groq": [ProviderKey("g")]}, credits={"deepinfra", "groq"})
    p = planner(health=health)
    assert summary(p.plan("llama-3.3-70b", keys))[0] == "llama-3.3-70b/groq/byok:g"
    health.failure("groq", "g")
    health.failure("groq", "g")
    health.failure("deepinfra", "credits")
    health.failure("deepinfra", "credits")
    assert summary(p.plan("llama-3.3-70b", keys)) == [
        "llama-3.3-70b/groq/credits",
        "llama-3.3-70b/groq/byok:g",
        "llama-3.3-70b/deepinfra/credits",
    ]
    now[0] = 31.0
    assert summary(p.plan("llama-3.3-70b", keys))[0] == "llama-3.3-70b/groq/byok:g"


def test_online_flag_carried() -> None:
    keys = KeySources(credits=ALL_CREDITS)
    attempts = planner().plan("claude-sonnet-4:online/anthropic,gpt-4o-mini/openai", keys)
    assert [a.online for a in attempts] == [True, False]
    assert attempts[0].source == "claude-sonnet-4/anthropic/credits"


def test_plan_accepts_a_parsed_spec() -> None:
    p = planner()
    spec = p.parse("gpt-4o-mini/openai")
    assert summary(p.plan(spec, KeySources(credits={"openai"}))) == ["gpt-4o-mini/openai/credits"]
