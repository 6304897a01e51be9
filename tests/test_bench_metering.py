"""bench/metering.py runs (a tiny count; the measurement is `python -m bench.metering`)."""

from __future__ import annotations

import pytest

from bench import metering


def test_bench_metering_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert metering.main(["--iterations", "200"]) == 0
    out = capsys.readouterr().out
    assert "unmetered" in out and "metered" in out
    assert "bar ≤ 1 µs p50" in out


def test_bench_metering_measures_both_kinds() -> None:
    results = metering.measure(50)
    assert set(results) == {"unmetered", "metered"}
    assert all(0 < row["p50_us"] <= row["p99_us"] for row in results.values())
