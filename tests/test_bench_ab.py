"""bench/ab.py runs (tiny: one 1 s round; the measurement is `python -m bench.ab`).

Both gateways are real ``gateway serve`` processes behind the bench's nginx upstream; what is
checked is that each imports the tree it was given and that the report has its lines, never
the timings.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import ab
from bench.gateway_proc import Gateway
from bench.procs import BenchError

REPO = Path(__file__).resolve().parent.parent


def test_a_gateway_imports_the_tree_it_is_given(tmp_path: Path) -> None:
    gateway = Gateway(tmp_path, "http://127.0.0.1:9", extra_env={"PYTHONPATH": str(REPO)})
    found = ab.imported_from(gateway.env)
    assert set(found) == set(ab.PACKAGES)
    assert all(Path(path).resolve().is_relative_to(REPO) for path in found.values())
    ab.check_tree(gateway, REPO)
    with pytest.raises(BenchError, match="would import gateway from"):
        ab.check_tree(gateway, tmp_path)


def test_a_directory_that_is_no_tree_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SystemExit):
        ab.parse_args(["--base", str(tmp_path), "--new", str(REPO)])


def test_ab_smoke_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "ab.json"
    argv = ["--base", str(REPO), "--new", str(REPO), "--duration", "1", "--warmup", "1",
            "--rounds", "1", "--connections", "2", "--forwarder", "--json", str(out)]  # fmt: skip
    assert ab.main(argv) == 0
    printed = capsys.readouterr().out
    assert "new/base req/s:" in printed and "new/base CPU us/req:" in printed
    assert "new/forwarder req/s:" in printed
    data = json.loads(out.read_text())
    assert set(data["pooled"]) == {"base", "new", "forwarder"}
    for name, runs in data["runs"].items():
        assert len(runs) == 1, name
        run = runs[0]
        assert run["requests"] > 0 and run["error_total"] == 0, run
        assert run["server_cpu_us_per_request"] > 0, run


def test_ab_policy_sends_the_rate_limit_policy(capsys: pytest.CaptureFixture[str]) -> None:
    """``--policy``: both gateways on Redis, every request limited (the probe fails unless the
    answer carries the limiter's ``Helicone-RateLimit-Policy``)."""
    argv = ["--base", str(REPO), "--new", str(REPO), "--duration", "1", "--warmup", "0.5",
            "--rounds", "1", "--connections", "2", "--policy"]  # fmt: skip
    assert ab.main(argv) == 0
    printed = capsys.readouterr().out
    assert "rate-limit policy on Redis" in printed and "WARNING" not in printed
