"""The bench's routing lines (issue 11), without running the bench: the upstream's locations,
the routing gateway's configuration and plans, the requests, the failover checks, the rounds
and the arithmetic of the report (on synthetic numbers).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import orjson
import pytest
from openai.types import Model
from openai.types.shared import ErrorObject
from pydantic import TypeAdapter

from bench import payloads, phases, pyupstream
from bench.gateway_proc import Gateway
from bench.load import RequestSpec
from bench.phases import Phases, Plan, TargetRun
from bench.render import render
from bench.report import BAR, Results
from bench.routing import (
    CLIENT_KEY,
    KINDS,
    direct_problem,
    failed_problem,
    failover_problem,
    pool_failover,
    routing_gateway,
    routing_specs,
)
from bench.ttfb import Exchange
from bench.upstream import nginx_config
from gateway.auth import resolve_credentials
from gateway.routing import Router
from gateway.runtime import Runtime
from gateway.settings import Settings
from providers.plan import ProviderKey
from providers.registry import Registry
from tests.test_bench import (
    _FakeServer,
    _RecordingTool,
    _results,
    _Transport,
    failover_round,
)

UPSTREAM = "http://127.0.0.1:9"

# --- the upstream -------------------------------------------------------------------------------


def _location(config: str, path: str) -> str:
    match = re.search(rf"location (?:= )?{re.escape(path)} \{{(.*?)\n        \}}", config, re.S)
    assert match, path
    return match.group(1)


def _returned(block: str) -> tuple[int, str]:
    match = re.search(r"return (\d+) '((?:[^'\\]|\\.)*)';", block)
    assert match
    return int(match.group(1)), re.sub(r"\\(.)", r"\1", match.group(2))


def test_nginx_is_the_orgs_endpoint_and_a_failing_provider(tmp_path: Path) -> None:
    config = nginx_config(tmp_path, 8080, set())
    byok = _location(config, payloads.BYOK_PATH)
    assert f"x-request-id {payloads.BYOK_REQUEST_ID}" in byok
    assert _returned(byok) == (200, payloads.chat_completion())
    status, listing = _returned(_location(config, payloads.BYOK_MODELS_PATH))
    assert status == 200
    assert [m.id for m in TypeAdapter(list[Model]).validate_python(orjson.loads(listing)["data"])]
    status, error = _returned(_location(config, payloads.FAILING_PREFIX + "/"))
    assert status == 503
    ErrorObject.model_validate(orjson.loads(error)["error"])
    # the failing provider's chat path falls in that prefix, and in no exact location
    assert payloads.FAILING_PATH.startswith(payloads.FAILING_PREFIX + "/")
    assert f"location = {payloads.FAILING_PATH} " not in config


@pytest.mark.parametrize(
    ("path", "head", "body"),
    [
        (payloads.BYOK_PATH, b"HTTP/1.1 200 OK\r\n", payloads.chat_completion()),
        (payloads.BYOK_MODELS_PATH, b"HTTP/1.1 200 OK\r\n", payloads.model_list()),
        (payloads.FAILING_PATH, b"HTTP/1.1 503 ", payloads.overloaded_error()),
    ],
)
def test_python_fallback_upstream_answers_the_routing_paths(
    path: str, head: bytes, body: str
) -> None:
    protocol = pyupstream.FixedResponse()
    transport = _Transport()
    protocol.transport = transport  # type: ignore[assignment]
    protocol.data_received(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    (reply,) = transport.written
    assert reply.startswith(head) and reply.endswith(body.encode())
    if path == payloads.BYOK_PATH:
        assert f"x-request-id: {payloads.BYOK_REQUEST_ID}\r\n".encode() in reply


# --- the routing gateway ------------------------------------------------------------------------


def _settings(gateway: Gateway, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Settings:
    """The settings ``gateway serve`` would read from the bench's environment."""
    for name in list(gateway.env):
        monkeypatch.delenv(name, raising=False)
    for name, value in gateway.env.items():
        if name.isupper() and "_" in name:
            monkeypatch.setenv(name, value)
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "data"))
    return Settings(_env_file=None)  # type: ignore[call-arg]


def test_routing_gateway_has_a_failing_provider_and_no_cooldown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = routing_gateway(tmp_path, UPSTREAM)
    settings = _settings(gateway, monkeypatch, tmp_path)
    assert settings.provider_cooldown_seconds == 0
    assert not settings.logging_enabled
    failing = settings.provider_base_urls[payloads.FAILING_PROVIDER]
    assert failing + payloads.CHAT_PATH.removeprefix("/v1") == UPSTREAM + payloads.FAILING_PATH
    assert settings.provider_base_urls["openai"] + "/chat/completions" == (
        UPSTREAM + payloads.CHAT_PATH
    )


def test_routing_gateway_plans_byok_first_and_keeps_failing_over(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The routed model: the org's key, then the managed one. The chain: the failing provider
    first, on every request however often it failed (no cool-down), then the org's key."""
    settings = _settings(routing_gateway(tmp_path, UPSTREAM), monkeypatch, tmp_path)
    router = Router(Runtime(settings), Registry.load())
    byok = {"openai": [ProviderKey("k1", "own")]}
    routed = router.plan(payloads.ROUTED_MODEL, "/chat/completions", None, byok)
    assert [(a.provider, a.key_source) for a in routed[:2]] == [
        ("openai", "byok"),
        ("openai", "credits"),
    ]
    for _ in range(10):
        chain = router.plan(payloads.FAILOVER_MODEL, "/chat/completions", None, byok)
        assert [(a.provider, a.key_source) for a in chain] == [
            (payloads.FAILING_PROVIDER, "credits"),
            ("openai", "byok"),
            ("openai", "credits"),
        ]
        router.health.failure(chain[0].provider, chain[0].key_id)
    direct = router.plan(payloads.PINNED_MODEL, "/chat/completions", None, byok)
    same = ("provider", "model", "key_source", "key", "source")
    assert [[getattr(a, f) for f in same] for a in direct] == [
        [getattr(a, f) for f in same] for a in chain[1:]
    ]
    pinned = router.plan(payloads.PINNED_MODEL, "/chat/completions", CLIENT_KEY)
    assert [(a.provider, a.key_source) for a in pinned] == [("openai", "credits")]


def test_the_pinned_request_carries_the_clients_own_key() -> None:
    specs = routing_specs("gw-key")
    pinned = specs.pinned.headers
    credentials = resolve_credentials(pinned["Helicone-Auth"], pinned["Authorization"])
    assert credentials.gateway_key == "gw-key"
    assert credentials.provider_authorization == f"Bearer {CLIENT_KEY}"
    routed = specs.routed.headers
    assert resolve_credentials(None, routed["Authorization"]).gateway_key == "gw-key"
    models = {
        name: orjson.loads(getattr(specs, name).body)["model"]
        for name in ("routed", "pinned", "failover", "direct")
    }
    assert models == {
        "routed": "gpt-4o-mini",
        "pinned": "gpt-4o-mini/openai",
        "failover": f"gpt-4o-mini/{payloads.FAILING_PROVIDER},gpt-4o-mini/openai",
        "direct": "gpt-4o-mini/openai",
    }
    assert specs.failed.path == payloads.FAILING_PATH


# --- the failover turns -------------------------------------------------------------------------


def _exchange(status: int, body: str, **headers: str) -> Exchange:
    named = {k.replace("_", "-"): v for k, v in headers.items()}
    return Exchange(status, 0.001, 0.001, body.encode(), named)


SERVED = payloads.chat_completion()
BYOK = payloads.BYOK_REQUEST_ID


@pytest.mark.parametrize(
    ("exchange", "problem"),
    [
        (_exchange(200, SERVED, x_request_id=BYOK, helicone_fallback_index="1"), None),
        (_exchange(200, SERVED, x_request_id=BYOK, helicone_fallback_index="0"), "did not fail"),
        (_exchange(200, SERVED, x_request_id=BYOK), "did not fail over"),
        (_exchange(200, SERVED, x_request_id="req_bench_fixed", helicone_fallback_index="1"),
         "served by"),
        (_exchange(503, payloads.overloaded_error(), helicone_fallback_index="1"), "status 503"),
    ],
)  # fmt: skip
def test_a_failover_turn_must_be_served_by_the_second_attempt(
    exchange: Exchange, problem: str | None
) -> None:
    found = failover_problem(exchange)
    assert found == problem if problem is None else problem in (found or "")


def test_direct_and_failed_requests_are_checked_too() -> None:
    assert direct_problem(_exchange(200, SERVED, x_request_id=BYOK)) is None
    assert direct_problem(_exchange(200, SERVED, x_request_id="other")) is not None
    assert failed_problem(_exchange(503, payloads.overloaded_error())) is None
    assert failed_problem(_exchange(200, SERVED)) is not None


def test_pooled_failover_takes_percentiles_over_all_samples() -> None:
    fast, slow = failover_round(0.8, 0.5, 0.1), failover_round(1.8, 1.5, 0.1, count=300)
    pooled = pool_failover([fast, slow])
    assert pooled.requests == 400
    assert pooled.ms["direct"]["p50"] == pytest.approx(1.5, abs=0.01)  # the slow round weighs 3x
    assert pooled.added_p50_ms == pytest.approx(0.2, abs=0.01)
    assert "samples_s" not in pooled.to_json()
    assert set(pooled.to_json()["ms"]) == set(KINDS)


# --- the rounds ---------------------------------------------------------------------------------


def test_routing_targets_run_half_length_and_failover_follows_each_round(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(phases, "measure_ttfb", lambda *a, **k: pytest.fail("no TTFB pair"))
    tool = _RecordingTool()
    plan = Plan(duration_s=4, warmup_s=2, connections=32, ttfb_requests=5, rounds=3)
    bench = Phases(plan, tool, _FakeServer("upstream", 1), tmp_path)  # type: ignore[arg-type]
    names = ["gateway", "routed", "pinned"]
    servers = [_FakeServer(n, i) for i, n in enumerate(names)]
    runs = [TargetRun(n) for n in names]
    after: list[tuple[int, int]] = []
    bench._rounds(
        servers, runs, [RequestSpec("/", n) for n in names], [],  # type: ignore[arg-type]
        halved={"routed", "pinned"}, after_round=lambda n: after.append((n, len(tool.calls))),
    )  # fmt: skip
    seconds: dict[str, list[float]] = {}
    for label, duration in tool.calls:
        seconds.setdefault(label.split("_c32")[0], []).append(duration)
    assert seconds["gateway"] == [2, 4] * 3  # warm-up, measured, every round
    assert seconds["routed"] == seconds["pinned"] == [1, 2] * 3
    assert after == [(1, 6), (2, 12), (3, 18)]  # after all six runs of each round
    assert all(len(run.rounds) == 3 for run in runs)


# --- the report ---------------------------------------------------------------------------------


def _check(results: Results, start: str) -> tuple[bool, float]:
    (check,) = [c for c in results.checks if c.group == "routing" and c.name.startswith(start)]
    assert not check.informational
    return check.passed, check.measured


def test_routed_throughput_is_pooled_over_the_rounds() -> None:
    # per round 50% and 150%; pooled (requests over time) 6000 / 8000 = 75%
    results = _results([3000, 3000], [2700, 2700], routed_rps=[3000, 3000], pinned_rps=[6000, 2000])
    d = results.derived
    assert d["routed_rps_fraction_of_pinned_c32"] == pytest.approx(0.75)
    assert d["routed_rps_fraction_of_pinned_c32_round1"] == pytest.approx(0.5)
    assert d["routed_rps_fraction_of_pinned_c32_round2"] == pytest.approx(1.5)
    assert _check(results, "routed RPS") == (False, pytest.approx(75.0))
    assert not results.passed


@pytest.mark.parametrize(("routed", "passed"), [(950, True), (949, False)], ids=["95%", "94.9%"])
def test_routed_throughput_bar_is_95_percent(routed: float, passed: bool) -> None:
    results = _results([3000, 3000], [2700, 2700], routed_rps=[routed] * 2, pinned_rps=[1000] * 2)
    assert _check(results, "routed RPS")[0] is passed
    assert _verdict(results) is passed  # a line of the verdict
    assert BAR["min_routed_rps_fraction_32"] == 0.95


@pytest.mark.parametrize(
    ("chain", "passed"), [(1.55, True), (1.65, False)], ids=["+0.95 ms", "+1.05 ms"]
)
def test_failover_adds_at_most_one_ms_beyond_its_failed_attempt(chain: float, passed: bool) -> None:
    # direct 0.5 ms, failed attempt 0.1 ms: the chain may take 0.6 + 1 ms
    rounds = [failover_round(chain, 0.5, 0.1), failover_round(chain, 0.5, 0.1)]
    results = _results([3000, 3000], [2700, 2700], failover_rounds=rounds)
    d = results.derived
    assert d["failover_added_p50_ms"] == pytest.approx(chain - 0.6, abs=1e-3)
    assert d["failover_added_p50_ms_round2"] == pytest.approx(chain - 0.6, abs=1e-3)
    assert d["failover_failed_p50_ms"] == pytest.approx(0.1, abs=1e-3)
    assert _check(results, "failover p50") == (passed, pytest.approx(chain - 0.6, abs=1e-3))
    assert BAR["max_failover_added_p50_ms"] == 1.0


def test_failed_or_missing_routing_measurements_fail_the_bar() -> None:
    ok = _results([3000, 3000], [2700, 2700])
    assert _check(ok, "no failed") == (True, 0)
    assert _verdict(ok)
    errors = [failover_round(0.9, 0.5, 0.2, errors=2), failover_round(0.9, 0.5, 0.2)]
    failed = _results([3000, 3000], [2700, 2700], failover_rounds=errors)
    assert _check(failed, "no failed") == (False, 2)
    missing = _results([3000, 3000], [2700, 2700], failover_rounds=[])
    assert math.isnan(missing.derived["failover_added_p50_ms"])
    assert _check(missing, "failover p50")[0] is False
    assert _check(missing, "no failed")[0] is False


def test_report_and_json_show_routing_and_failover(tmp_path: Path) -> None:
    rounds = [failover_round(1.0, 0.5, 0.1), failover_round(1.2, 0.6, 0.1)]
    results = _results(
        [1000, 1000], [900, 900], routed_rps=[3000, 3000], pinned_rps=[6000, 2000],
        failover_rounds=rounds,
    )  # fmt: skip
    results.meta |= {"failover_model": payloads.FAILOVER_MODEL}
    text = render(results, 32)
    assert "pinned 4,000, routed 3,000 = 75.0%" in text
    assert re.search(r"round 1: pinned\s+6,000 req/s\s+routed\s+3,000 req/s\s+50.0%", text)
    assert "FAIL  routed RPS at 32 connections >= 95% of the pinned model's" in text
    assert "PASS  failover p50 added beyond its failed attempt <= 1 ms" in text
    added = r"added beyond the failed attempt \(chain - direct - failed\): p50 \+0\.4"
    assert re.search(added, text)
    path = tmp_path / "latest.json"
    results.save(path)
    saved: dict[str, Any] = orjson.loads(path.read_bytes())
    assert saved["bar"]["min_routed_rps_fraction_32"] == 0.95
    assert saved["derived"]["routed_rps_fraction_of_pinned_c32"] == pytest.approx(0.75)
    assert saved["failover"]["requests"] == 200
    assert len(saved["failover_rounds"]) == 2
    assert "samples_s" not in saved["failover"]
    assert {c["group"] for c in saved["checks"]} >= {"routing"}


def _verdict(results: Any) -> bool:
    """The verdict without the rate-limit group (the synthetic runs have no Redis rounds, so
    that group's line says "not measured" and fails)."""
    return all(c.passed for c in results.checks if not c.informational and c.group != "ratelimit")
