"""``python -m bench.ratelimit`` runs (tiny: one 1 s round; the measurement is the command).

A real ``gateway serve`` with ``REDIS_URL`` behind the bench's nginx upstream, loaded with and
without the policy: checked are the report's lines and that the limited requests really went
through the limiter (their answers carry the rate-limit headers), never the timings.
"""

from __future__ import annotations

import pytest

from bench import payloads
from bench import ratelimit as rl
from bench.load import RequestSpec


def test_limited_requests_carry_the_policy() -> None:
    spec = RequestSpec(payloads.CHAT_PATH, b"{}", {"Authorization": "Bearer k"})
    limited = rl.limited(spec)
    assert limited.headers == {"Authorization": "Bearer k", "Helicone-RateLimit-Policy": rl.POLICY}
    assert spec.headers == {"Authorization": "Bearer k"}  # the plain spec is left alone


def test_ratelimit_smoke_run(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--rounds", "1", "--duration", "1", "--warmup", "0.5", "--c1-duration", "0.5",
            "--connections", "2"]  # fmt: skip
    assert rl.main(argv) == 0
    printed = capsys.readouterr().out
    assert "limited/plain req/s:" in printed and "added p50 at 1 connection:" in printed
    assert "CPU us/req:" in printed and "WARNING" not in printed
    rows = [line.split() for line in printed.splitlines() if line.startswith("  1 ")]
    assert [(r[1], r[2]) for r in rows] == [
        ("plain", "2"), ("limited", "2"), ("plain", "1"), ("limited", "1")
    ]
