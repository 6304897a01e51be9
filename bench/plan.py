"""``python -m bench.plan``: how long planning one request takes (issue 11's bar: ≤ 50 µs p50).

Planning is what the data plane does before it opens the first attempt: parse the ``model``
string (:mod:`providers.grammar`), look every item up in the registry, order the attempts
(BYOK before credits, cheapest first, round robin among equal costs) and move cooled-down
keys to the end (:mod:`providers.health`). Everything runs in this process with no I/O: a
registry of a realistic size (about 1,500 models, one to four providers each), an org with
BYOK keys for two providers (one an Azure deployment), managed keys for every provider, and a
health record holding a few failing keys so the non-empty path is measured.

Each typical model string is planned ``--iterations`` times, every call timed on its own
(``perf_counter_ns``); the report gives p50 and p99 in µs per string and whether the bar is
met. Not part of ``make test`` (tests/test_bench_plan.py runs it with a tiny count).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from fractions import Fraction

from providers.health import Health
from providers.plan import KeySources, Offer, Planner, ProviderKey, RoundRobin, StaticRegistry

BAR_US = 50.0
"""The issue's bar for planning one request, p50."""

SLUGS = (
    "openai", "azure", "anthropic", "bedrock", "vertex", "groq", "xai", "deepseek", "mistral",
    "openrouter", "together", "fireworks", "perplexity", "deepinfra", "nebius", "novita",
    "cerebras",
)

MODELS = (
    "gpt-4o-mini",
    "gpt-4o-mini/openai",
    "claude-sonnet-4",
    "gpt-4o-mini/azure,gpt-4o-mini/openai,gpt-4o-mini",
    "!openai,gpt-4o-mini",
    "gpt-4o/azure/eu-frankfurt-deployment",
    "meta-llama/Llama-3.3-70B-Instruct/together",
)
"""Typical strings: bare, pinned, equal-cost group, manual chain, exclusion, deployment,
slashed model id with a provider."""


def build_registry(size: int = 1500) -> StaticRegistry:
    """Known models for the strings above plus ``size`` synthetic ones (one to four providers
    each), so lookups run against a table of production size."""
    models: dict[str, list[Offer]] = {
        "gpt-4o-mini": [
            Offer("openai", "gpt-4o-mini", Fraction(75, 100)),
            Offer("azure", "gpt-4o-mini", Fraction(75, 100)),
            Offer("openrouter", "openai/gpt-4o-mini", Fraction(90, 100)),
        ],
        "gpt-4o": [
            Offer("openai", "gpt-4o", Fraction(1250, 100)),
            Offer("azure", "gpt-4o", Fraction(1250, 100)),
        ],
        "claude-sonnet-4": [
            Offer("anthropic", "claude-sonnet-4-20250514", Fraction(18)),
            Offer("bedrock", "anthropic.claude-sonnet-4-20250514-v1:0", Fraction(18)),
            Offer("vertex", "claude-sonnet-4@20250514", Fraction(18)),
        ],
        "meta-llama/Llama-3.3-70B-Instruct": [
            Offer("together", "meta-llama/Llama-3.3-70B-Instruct-Turbo", Fraction(176, 100)),
            Offer("deepinfra", "meta-llama/Llama-3.3-70B-Instruct", Fraction(50, 100)),
        ],
    }
    for n in range(size):
        count = 1 + n % 4
        models[f"model-{n}"] = [
            Offer(SLUGS[(n + i) % len(SLUGS)], f"model-{n}-v{i}", Fraction(n % 7 + i, 3))
            for i in range(count)
        ]
    return StaticRegistry(models)


def build() -> tuple[Planner, KeySources]:
    """The planner and the org's key sources the bench plans with."""
    health = Health(threshold=3, cooldown=30.0)
    for provider, key in (("groq", "credits"), ("xai", "credits"), ("openrouter", "credits")):
        for _ in range(3):
            health.failure(provider, key)
    planner = Planner(
        build_registry(), dict.fromkeys(SLUGS), balancer=RoundRobin(), health=health
    )
    keys = KeySources(
        byok={
            "openai": [ProviderKey("key-openai-1", "main")],
            "azure": [
                ProviderKey("clm1a2b3c", "eu-frankfurt-deployment", {"region": "eu"}),
            ],
        },
        credits=frozenset(SLUGS),
    )
    return planner, keys


def measure(iterations: int, models: Sequence[str] = MODELS) -> dict[str, dict[str, float]]:
    """Per model string: p50 and p99 in µs over ``iterations`` timed calls, and the number of
    attempts planned."""
    planner, keys = build()
    plan = planner.plan
    clock = time.perf_counter_ns
    results: dict[str, dict[str, float]] = {}
    for model in models:
        for _ in range(min(iterations, 200)):  # warm-up
            plan(model, keys)
        samples = []
        for _ in range(iterations):
            start = clock()
            attempts = plan(model, keys)
            samples.append(clock() - start)
        samples.sort()
        results[model] = {
            "p50_us": statistics.median(samples) / 1000,
            "p99_us": samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1000,
            "attempts": float(len(attempts)),
        }
    return results


def render(results: dict[str, dict[str, float]]) -> str:
    width = max(len(model) for model in results)
    lines = [f"{'model string':<{width}}  {'p50 µs':>8}  {'p99 µs':>8}  attempts"]
    for model, row in results.items():
        lines.append(
            f"{model:<{width}}  {row['p50_us']:>8.1f}  {row['p99_us']:>8.1f}  "
            f"{int(row['attempts']):>8}"
        )
    worst = max(row["p50_us"] for row in results.values())
    verdict = "met" if worst <= BAR_US else "NOT met"
    lines.append(f"worst p50 {worst:.1f} µs; bar ≤ {BAR_US:.0f} µs p50: {verdict}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.plan", description=__doc__)
    parser.add_argument("--iterations", type=int, default=20_000)
    args = parser.parse_args(argv)
    print(render(measure(args.iterations)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
