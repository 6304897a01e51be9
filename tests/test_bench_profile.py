"""bench/profile.py runs (tiny: a 1 s profiled run; the measurement is `python -m bench.profile`).

A real ``gateway serve`` under the profiler's wrapper (bench/profiled_gateway.py), switched
on and off by signals around one wrk run: the table names the gateway's own request path, and
the collector's line is there. Never the timings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import profile

ARGS = ["--duration", "1", "--warmup", "1", "--connections", "2", "--top", "400"]


def test_profile_covers_the_request_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "gateway.prof"
    assert profile.main([*ARGS, "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "garbage collector: gen0:" in printed
    assert "dataplane.py" in printed and "(_unified)" in printed  # the unified route ran
    assert out.stat().st_size > 0


def test_gc_only_prints_the_collector_alone(capsys: pytest.CaptureFixture[str]) -> None:
    assert profile.main([*ARGS, "--gc-only"]) == 0
    printed = capsys.readouterr().out
    assert "garbage collector: gen0:" in printed and "calls/req" not in printed


def test_policy_profiles_the_limiter(capsys: pytest.CaptureFixture[str]) -> None:
    """``--policy``: REDIS_URL set and every request with the rate-limit line's policy, so the
    limiter is on the profiled path."""
    assert profile.main([*ARGS, "--policy"]) == 0
    printed = capsys.readouterr().out
    assert "rate-limit policy on Redis" in printed
    assert "_limiter.py" in printed and "(acquire)" in printed


def test_a_translated_path_can_be_profiled(capsys: pytest.CaptureFixture[str]) -> None:
    """``--model bedrock``: the profile holds the Bedrock translation and the SigV4 signer,
    which the OpenAI path never calls."""
    assert profile.main([*ARGS, "--model", "bedrock"]) == 0
    printed = capsys.readouterr().out
    assert "nova-lite/bedrock" in printed
    assert "(converse_to_chat)" in printed and "(signed_headers)" in printed
