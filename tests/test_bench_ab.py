"""bench/ab.py runs (tiny: one 1 s round; the measurement is `python -m bench.ab`).

Both gateways are real ``gateway serve`` processes behind the bench's nginx upstream; what is
checked is that each imports the tree it was given and that the report has its lines, never
the timings.
"""

from __future__ import annotations

import json
import re
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


def test_models_must_be_known_and_distinct() -> None:
    base = ["--base", str(REPO), "--new", str(REPO)]
    assert ab.parse_args([*base, "--models", "openai, bedrock"]).models == ["openai", "bedrock"]
    for bad in ("openai,mistral", "gemini,gemini", ","):
        with pytest.raises(SystemExit):
            ab.parse_args([*base, "--models", bad])
    with pytest.raises(SystemExit):  # the forwarder is compared with the OpenAI path
        ab.parse_args([*base, "--models", "gemini", "--forwarder"])


def test_providers_run_one_tree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every translated path through one gateway, next to the OpenAI path: each probe gets a
    chat completion (the request really went through that provider's translation), and the
    report has each provider's line over the OpenAI path."""
    out = tmp_path / "ab.json"
    argv = ["--new", str(REPO), "--no-base", "--models", "openai,gemini,bedrock,anthropic",
            "--duration", "1", "--warmup", "1", "--rounds", "1", "--connections", "2",
            "--json", str(out)]  # fmt: skip
    assert ab.main(argv) == 0
    printed = capsys.readouterr().out
    for model in ("gemini", "bedrock", "anthropic"):
        line = rf"new {model}/openai req/s: [\d.]+% pooled .*; CPU us/req [+-]\d+ pooled"
        assert re.search(line, printed), printed
    assert "new/base" not in printed and "base:" not in printed
    data = json.loads(out.read_text())
    assert data["base"] is None
    assert data["models"]["bedrock"] == "nova-lite/bedrock"
    assert set(data["runs"]) == {f"new/{m}" for m in ("openai", "gemini", "bedrock", "anthropic")}
    for name, runs in data["runs"].items():
        assert len(runs) == 1 and runs[0]["requests"] > 0 and runs[0]["error_total"] == 0, name


def test_routed_and_pinned(capsys: pytest.CaptureFixture[str]) -> None:
    """The routing line's two requests: the routed one is served by the organisation's BYOK
    endpoint (the probe checks the upstream's ``/byok`` request id), and each tree has its
    routed/pinned line."""
    argv = ["--base", str(REPO), "--new", str(REPO), "--models", "routed,pinned",
            "--duration", "1", "--warmup", "0.5", "--rounds", "1", "--connections", "2"]
    assert ab.main(argv) == 0
    printed = capsys.readouterr().out
    for tree in ("base", "new"):
        line = rf"{tree} routed/pinned req/s: [\d.]+% pooled .*; CPU us/req [+-]\d+ pooled"
        assert re.search(line, printed), printed
    assert "WARNING" not in printed


def test_every_target_takes_every_position() -> None:
    targets = [ab.Target(name, None, None) for name in "ABCD"]  # type: ignore[arg-type]
    orders = ["".join(t.name for t in ab.round_order(targets, n)) for n in range(1, 9)]
    assert orders[:2] == ["ABCD", "DCBA"]
    for position in range(4):
        assert sorted(order[position] for order in orders) == sorted("ABCD" * 2), orders
    two = targets[:2]
    assert ["".join(t.name for t in ab.round_order(two, n)) for n in range(1, 5)] == [
        "AB", "BA", "BA", "AB",
    ]


def test_logging_both_measures_each_tree_with_and_without(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--logging both``: the tree's gateway twice, logging off and on, in the same rounds;
    the on/off line, and the writer's CPU in the logging gateway's row only."""
    out = tmp_path / "ab.json"
    argv = ["--new", str(REPO), "--no-base", "--logging", "both", "--forwarder",
            "--duration", "1", "--warmup", "0.5", "--rounds", "1", "--connections", "2",
            "--json", str(out)]  # fmt: skip
    assert ab.main(argv) == 0
    printed = capsys.readouterr().out
    line = r"new logging on/off req/s: [\d.]+% pooled .*; CPU us/req [+-]\d+ pooled \(median"
    assert re.search(line, printed), printed
    assert "new-on/forwarder req/s:" in printed and "new-off/forwarder req/s:" in printed
    data = json.loads(out.read_text())
    assert data["logging"] == "both" and set(data["runs"]) == {"new-off", "new-on", "forwarder"}
    off, on = data["pooled"]["new-off"], data["pooled"]["new-on"]
    assert off["requests"] > 0 and on["requests"] > 0
    assert on["server_cpu_us_per_request"] > on["server_main_cpu_us_per_request"]  # the writer
    assert off["server_cpu_us_per_request"] == off["server_main_cpu_us_per_request"]
