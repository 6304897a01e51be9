"""bench/hql.py runs (a tiny log; the measurement is `python -m bench.hql`)."""

from __future__ import annotations

import pytest

from bench import hql


def test_bench_hql_runs(capsys: pytest.CaptureFixture[str]) -> None:
    assert hql.main(["--rows", "3000", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    for name in hql.EXAMPLES:
        assert name in out
    assert "bar: p50 <= 100 ms" in out


def test_bench_hql_examples_are_the_documented_ones() -> None:
    from tests.hql_cases import EXAMPLES

    documented = {sql for name, sql in EXAMPLES.items() if name != "cost_usd"}
    assert set(hql.EXAMPLES.values()) == documented
    results = hql.measure(3000, 1)
    assert results["cost_by_model_30d"]["rows"] == 3
    assert results["download_1d"]["rows"] > 0
