"""bench/plan.py runs (a tiny iteration count; the real measurement is `python -m bench.plan`)."""

from __future__ import annotations

import pytest

from bench import plan


def test_bench_plan_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan.main(["--iterations", "20"]) == 0
    out = capsys.readouterr().out
    for model in plan.MODELS:
        assert model in out
    assert "bar ≤ 50 µs p50" in out


def test_bench_plans_what_it_says() -> None:
    results = plan.measure(5)
    assert set(results) == set(plan.MODELS)
    attempts = {model: int(row["attempts"]) for model, row in results.items()}
    # BYOK openai + azure deployment, credits openai + azure; openrouter (cooled) last.
    assert attempts["gpt-4o-mini"] == 5
    assert attempts["gpt-4o-mini/openai"] == 2
    assert attempts["gpt-4o/azure/eu-frankfurt-deployment"] == 1
    assert all(row["p50_us"] > 0 for row in results.values())
