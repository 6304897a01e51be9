"""The bench's translated path, without running the bench: its fixed Anthropic answers, the
upstream's locations for them, the gateway's environment, the interleaving of the rounds and
the arithmetic of the report (on synthetic numbers).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import TypeAdapter

from bench import payloads, phases, pyupstream
from bench.gateway_proc import Gateway
from bench.load import LoadResult, RequestSpec
from bench.pairing import PairedResult
from bench.phases import Paired, Phases, Plan, TargetRun
from bench.render import render
from bench.report import BAR, PAIRED, Results, evaluate
from bench.requestlog import LogAccount, RequestTally
from bench.routing import FailoverResult, pool_failover, summarise
from bench.ttfb import TtfbResult, pool_ttfb
from bench.upstream import nginx_config
from gateway.translate import ExchangeTranslation, adapter_for, parse_event
from providers.anthropic.adapter import MESSAGES_PATH
from providers.routing import split_model
from tests.emulator.wire import dump

_EVENT: TypeAdapter[Any] = TypeAdapter(RawMessageStreamEvent)


def _sse_events(body: str) -> list[tuple[str | None, bytes]]:
    events = [parse_event(raw.encode()) for raw in body.split("\n\n") if raw]
    return [event for event in events if event is not None]


def _openai_pieces(body: str) -> list[str]:
    """The content deltas of an OpenAI chunk stream, each chunk validated by the SDK."""
    pieces = []
    for _, data in _sse_events(body):
        if data == b"[DONE]":
            continue
        chunk = ChatCompletionChunk.model_validate_json(data)
        content = chunk.choices[0].delta.content if chunk.choices else None
        if content:
            pieces.append(content)
    return pieces


# --- payloads --------------------------------------------------------------------------------


def test_anthropic_message_is_a_message_with_the_openai_answer() -> None:
    raw = json.loads(payloads.anthropic_message())
    message = Message.model_validate(raw)
    assert dump(message) == raw  # every key declared by the SDK, nothing lost
    openai = ChatCompletion.model_validate_json(payloads.chat_completion())
    assert [b.text for b in message.content if b.type == "text"] == [
        openai.choices[0].message.content
    ]
    assert message.stop_reason == "end_turn"
    assert openai.usage is not None
    assert (message.usage.input_tokens, message.usage.output_tokens) == (
        openai.usage.prompt_tokens,
        openai.usage.completion_tokens,
    )


def test_anthropic_stream_is_the_documented_event_sequence_of_the_openai_stream() -> None:
    events = _sse_events(payloads.anthropic_sse_stream())
    kinds = []
    for name, data in events:
        raw = json.loads(data)
        if raw == {"type": "ping"}:  # documented, but no member of the SDK's event union
            kinds.append(name)
            continue
        event = _EVENT.validate_python(raw)
        assert dump(event) == raw
        assert name == raw["type"]  # the `event:` line names the data's type
        kinds.append(name)
    assert kinds == [
        "message_start", "content_block_start", "ping", *["content_block_delta"] * 6,
        "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    text = [json.loads(d)["delta"]["text"] for n, d in events if n == "content_block_delta"]
    assert text == _openai_pieces(payloads.sse_stream())
    assert json.loads(events[-2][1])["usage"]["output_tokens"] == 10


def test_the_gateway_translates_the_fixed_answers_into_the_openai_ones() -> None:
    """The translated target answers what the OpenAI target answers: same text, tokens, stop."""
    adapter = adapter_for("anthropic")
    whole = ExchangeTranslation(adapter, include_usage=False).whole(
        200, payloads.anthropic_message().encode()
    )
    translated = ChatCompletion.model_validate_json(whole)
    openai = ChatCompletion.model_validate_json(payloads.chat_completion())
    assert translated.choices[0].message.content == openai.choices[0].message.content
    assert translated.choices[0].finish_reason == openai.choices[0].finish_reason == "stop"
    assert translated.usage is not None and openai.usage is not None
    assert translated.usage.total_tokens == openai.usage.total_tokens
    stream = ExchangeTranslation(adapter, include_usage=False).stream()
    out = stream.feed(payloads.anthropic_sse_stream().encode()) + stream.flush()
    assert out.endswith(b"data: [DONE]\n\n")
    assert _openai_pieces(out.decode()) == _openai_pieces(payloads.sse_stream())


def test_translated_request_routes_to_anthropic_at_the_upstream_location() -> None:
    body = json.loads(payloads.request_body(payloads.TRANSLATED_MODEL, stream=True))
    assert split_model(body["model"]) == ("claude-sonnet-4-5", "anthropic")
    assert body["stream"] is True
    assert "stream" not in json.loads(payloads.request_body(payloads.TRANSLATED_MODEL))
    call = adapter_for("anthropic").build_request(
        {**body, "model": "claude-sonnet-4-5"}, api_key="bench", default_max_tokens=1024
    )
    assert call.path == MESSAGES_PATH == payloads.MESSAGES_PATH
    assert payloads.ANTHROPIC_STREAM_PATH == payloads.ANTHROPIC_STREAM_PREFIX + call.path


# --- the upstream and the gateway's environment ----------------------------------------------


def _nginx_locations(config: str) -> dict[str, tuple[str, str]]:
    """``path -> (content type, body)`` of every exact location that returns a fixed 200."""
    found = {}
    pattern = re.compile(
        r"location = (\S+) \{\s*default_type (\S+);.*?return 200 '((?:[^'\\]|\\.)*)';", re.S
    )
    for path, content_type, text in pattern.findall(config):
        found[path] = (content_type, re.sub(r"\\(.)", r"\1", text))
    return found


def test_nginx_answers_each_path_with_its_fixed_body(tmp_path: Path) -> None:
    locations = _nginx_locations(nginx_config(tmp_path, 8080, set()))
    assert locations == {
        payloads.CHAT_PATH: ("application/json", payloads.chat_completion()),
        payloads.STREAM_UPSTREAM_PATH: ("text/event-stream", payloads.sse_stream()),
        payloads.MESSAGES_PATH: ("application/json", payloads.anthropic_message()),
        payloads.ANTHROPIC_STREAM_PATH: ("text/event-stream", payloads.anthropic_sse_stream()),
        payloads.GEMINI_PATH: ("application/json", payloads.gemini_response()),
        payloads.GEMINI_STREAM_PATH: ("text/event-stream", payloads.gemini_sse_stream()),
        payloads.BEDROCK_PATH: ("application/json", payloads.converse_response()),
        payloads.BYOK_PATH: ("application/json", payloads.chat_completion()),
        payloads.BYOK_MODELS_PATH: ("application/json", payloads.model_list()),
    }  # the Bedrock event stream is binary: a file (tests/test_bench_native.py)


@dataclass
class _Transport:
    written: list[bytes] = field(default_factory=list)

    def write(self, data: bytes) -> None:
        self.written.append(data)


def _transport_reply(target: str) -> bytes:
    """What the fallback upstream writes for one POST to ``target`` (path and query)."""
    protocol = pyupstream.FixedResponse()
    transport = _Transport()
    protocol.transport = transport  # type: ignore[assignment]
    request = b'{"model":"m"}'
    head = f"POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(request)}\r\n\r\n"
    protocol.data_received(head.encode() + request)
    assert len(transport.written) == 1
    return transport.written[0]


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (payloads.MESSAGES_PATH, payloads.anthropic_message()),
        (payloads.ANTHROPIC_STREAM_PATH, payloads.anthropic_sse_stream()),
    ],
)
def test_python_fallback_upstream_answers_the_anthropic_paths(path: str, body: str) -> None:
    reply = _transport_reply(path)
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n")
    assert reply.endswith(body.encode())


@pytest.mark.parametrize(("stream", "suffix"), [(False, ""), (True, "/anthropic-stream")])
def test_gateway_env_points_anthropic_at_the_upstream(
    tmp_path: Path, stream: bool, suffix: str
) -> None:
    gateway = Gateway(tmp_path, "http://127.0.0.1:9", name="g", anthropic_stream=stream)
    assert gateway.env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9" + suffix
    assert gateway.env["ANTHROPIC_API_KEY"]
    # the gateway appends the adapter's path: the upstream's location for that variant
    path = gateway.env["ANTHROPIC_BASE_URL"].removeprefix("http://127.0.0.1:9") + MESSAGES_PATH
    assert path == (payloads.ANTHROPIC_STREAM_PATH if stream else payloads.MESSAGES_PATH)


# --- the rounds --------------------------------------------------------------------------------


def _load(label: str, rps: float, p50: float = 0.3, conns: int = 32) -> LoadResult:
    latency = {"p50": p50, "p90": 2 * p50, "p99": 4 * p50, "max": 10 * p50}
    return LoadResult(
        label, conns, 2, 10.0, int(rps * 10), rps, latency, {"status": 0},
        sent=int(rps * 10), server_cpu_s=5.0, server_main_cpu_s=4.0,
    )  # fmt: skip


def _ttfb(label: str, samples_ms: list[float], errors: int = 0) -> TtfbResult:
    """A measured TTFB result, built by pooling one synthetic round (so the maths is real)."""
    seconds = [s / 1000 for s in samples_ms]
    one = TtfbResult(label, len(seconds), {}, {}, errors, sent=len(seconds), answered=len(seconds))
    one.ttfb_samples_s, one.total_samples_s = seconds, [s + 0.00002 for s in seconds]
    return pool_ttfb(label, [one])


class _FakeServer:
    logging = False

    def __init__(self, name: str, port: int) -> None:
        self.name, self.port = name, port
        self.base_url = f"http://127.0.0.1:{port}"

    def cpu_seconds(self) -> float:
        return 0.0

    def main_cpu_seconds(self) -> float:
        return 0.0

    def check_alive(self) -> None:
        pass


class _RecordingTool:
    tool = "fake"

    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []

    def version(self) -> str:
        return "0"

    def run(
        self, label: str, base_url: str, spec: RequestSpec, connections: int,
        duration_s: float, count_sent: bool = False,
    ) -> LoadResult:  # fmt: skip
        self.calls.append((label, duration_s))
        return _load(label, 1000.0 + len(self.calls))


@pytest.fixture
def measured_ttfb(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """``measure_ttfb`` replaced: records who was measured and returns distinct samples."""
    order: list[str] = []

    def fake(label: str, port: int, spec: RequestSpec, count: int) -> TtfbResult:
        order.append(label)
        base = 1.0 if label == "translated" else 0.5
        return _ttfb(label, [base + i / 1000 for i in range(count)])

    monkeypatch.setattr(phases, "measure_ttfb", fake)
    yield order


def test_rounds_alternate_the_order_and_pair_the_streams(
    tmp_path: Path, measured_ttfb: list[str]
) -> None:
    tool = _RecordingTool()
    plan = Plan(duration_s=3, warmup_s=1, connections=32, ttfb_requests=5, rounds=4)
    bench = Phases(plan, tool, _FakeServer("upstream", 1), tmp_path)  # type: ignore[arg-type]
    names = ["gateway", "translated", "gateway_logging", "forwarder"]
    servers = [_FakeServer(n, i) for i, n in enumerate(names)]
    runs = [TargetRun(n) for n in names]
    chats = [RequestSpec("/v1/chat/completions", n) for n in names]
    stream_gateway = _FakeServer("gateway_stream", 9)
    pair_runs = [TargetRun(PAIRED), runs[1]]
    pair = [Paired(r, stream_gateway, RequestSpec("/", r.name)) for r in pair_runs]  # type: ignore[arg-type]
    bench._rounds(servers, runs, chats, pair)  # type: ignore[arg-type]

    measured = [label.split("_c32")[0] for label, seconds in tool.calls if seconds == 3]
    forward, backward = names, names[::-1]
    assert measured == [*forward, *backward, *forward, *backward]
    assert measured_ttfb == [PAIRED, "translated", "translated", PAIRED] * 2
    for run in runs:
        assert len(run.rounds) == 4
        assert run.load["c32"].requests == sum(r.requests for r in run.rounds)
    translated, openai = runs[1], pair_runs[0]
    assert translated.ttfb is not None and openai.ttfb is not None
    assert translated.ttfb.requests == openai.ttfb.requests == 4 * 5
    assert len(translated.ttfb_rounds) == 4
    assert translated.ttfb.ttfb_ms["p50"] == pytest.approx(1.002)
    assert openai.ttfb.ttfb_ms["p50"] == pytest.approx(0.502)


def test_pooled_ttfb_takes_percentiles_over_all_samples() -> None:
    """Not the mean of the rounds' percentiles: a slow round weighs by its samples."""
    fast = _ttfb("t", [0.4] * 9 + [0.5] * 1)
    slow = _ttfb("t", [0.9] * 10)
    pooled = pool_ttfb("t", [fast, slow, fast])
    assert pooled.requests == 30
    assert pooled.ttfb_ms["p50"] == pytest.approx(0.4)  # rank 15 of 30: still a fast sample
    assert (fast.ttfb_ms["p50"] + slow.ttfb_ms["p50"] + fast.ttfb_ms["p50"]) / 3 > 0.55
    assert pooled.ttfb_ms["max"] == pytest.approx(0.9)
    assert "ttfb_samples_s" not in pooled.to_json()


# --- the report --------------------------------------------------------------------------------


def failover_round(
    chain_ms: float, direct_ms: float, failed_ms: float, count: int = 100, errors: int = 0
) -> FailoverResult:
    """One synthetic failover round: ``count`` samples per kind spread around the given
    medians (±0.005 ms), summarised by the bench's own code."""
    spread = [(i - count // 2) * 1e-7 for i in range(count)]
    samples = {
        kind: [base / 1000 + s for s in spread]
        for kind, base in (("failover", chain_ms), ("direct", direct_ms), ("failed", failed_ms))
    }
    return summarise(samples, [f"failover: status 502: {i}" for i in range(errors)], 3 * count)


def _results(
    openai_rps: list[float],
    translated_rps: list[float],
    openai_ttfb_ms: float = 0.5,
    translated_ttfb_ms: float = 0.6,
    translated_errors: int = 0,
    routed_rps: list[float] | None = None,
    pinned_rps: list[float] | None = None,
    failover_rounds: list[FailoverResult] | None = None,
    native_rps: dict[str, list[float]] | None = None,
    native_ttfb_ms: dict[str, float] | None = None,
    native_errors: int = 0,
) -> Results:
    """A complete synthetic run: two rounds, everything else fixed (by default the routed
    model at 98% of the pinned one, a failover adding 0.2 ms beyond its failed attempt, Gemini
    and Bedrock at 90% of the OpenAI path's RPS, their streams 0.2 ms behind the OpenAI one).
    ``native_errors`` failed requests go to Bedrock's first round."""
    native_rps = native_rps or {n: [0.9 * r for r in openai_rps] for n in ("gemini", "bedrock")}
    native_ttfb_ms = native_ttfb_ms or {n: openai_ttfb_ms + 0.2 for n in native_rps}
    rounds = {
        "gateway": [_load(f"gateway_c32_r{i}", r) for i, r in enumerate(openai_rps)],
        "translated": [_load(f"translated_c32_r{i}", r) for i, r in enumerate(translated_rps)],
        "gateway_logging": [_load("gl", 0.9 * r) for r in openai_rps],
        "forwarder": [_load("f", 1.1 * r) for r in openai_rps],
        "routed": [_load("r", r) for r in routed_rps or [0.98 * r for r in openai_rps]],
        "pinned": [_load("p", r) for r in pinned_rps or openai_rps],
        **{n: [_load(f"{n}_c32_r{i}", r) for i, r in enumerate(v)] for n, v in native_rps.items()},
    }
    if native_errors and "bedrock" in rounds:
        rounds["bedrock"][0].errors["status"] = native_errors
    if failover_rounds is None:
        failover_rounds = [failover_round(0.9, 0.5, 0.2), failover_round(0.9, 0.5, 0.2)]
    from bench.load import combine

    load = {
        "direct_c1": _load("d1", 30000, p50=0.05, conns=1),
        "direct_c32": _load("d32", 90000, p50=0.3),
        "gateway_c1": _load("g1", 3000, p50=0.30, conns=1),
        "translated_c1": _load("t1", 2500, p50=0.42, conns=1),
        "gateway_logging_c1": _load("gl1", 2800, p50=0.32, conns=1),
        "forwarder_c1": _load("f1", 4000, p50=0.25, conns=1),
        **{f"{name}_c32": combine(name, runs) for name, runs in rounds.items()},
    }
    base = [0.02] * 100
    ttfb_rounds = {
        "translated": [
            _ttfb("translated", [translated_ttfb_ms] * 100, translated_errors),
            _ttfb("translated", [translated_ttfb_ms + 0.1] * 100),
        ],
        PAIRED: [_ttfb(PAIRED, [openai_ttfb_ms] * 100), _ttfb(PAIRED, [openai_ttfb_ms] * 100)],
        **{n: [_ttfb(n, [ms] * 100), _ttfb(n, [ms] * 100)] for n, ms in native_ttfb_ms.items()},
    }
    ttfb = {
        "direct": _ttfb("direct", base),
        "gateway": _ttfb("gateway", [0.25] * 100),
        "gateway_logging": _ttfb("gateway_logging", [0.3] * 100),
        "forwarder": _ttfb("forwarder", [0.2] * 100),
        **{name: pool_ttfb(name, results) for name, results in ttfb_rounds.items()},
    }
    tally = RequestTally(wrk_sent=10, probes=2)
    account = LogAccount(tally, {"written": 12, "lost": 0, "enqueued": 12}, settled=True)
    meta = {
        "started_at": "now", "cpus": 2, "python": "3.11", "upstream": "nginx", "load_tool": "wrk",
        "duration_s": 10, "warmup_s": 2, "soak_s": 0, "connections": 32, "rounds": 2,
        "ttfb_requests": 100, "gateway_cmd": "gateway serve", "forwarder_cmd": "fwd",
        "chat_path": payloads.CHAT_PATH, "chat_model": payloads.CHAT_MODEL,
        "stream_model": payloads.STREAM_MODEL, "translated_model": payloads.TRANSLATED_MODEL,
        "json_path": "latest.json", "gateway_log_problems": {},
    }  # fmt: skip
    rss = {g: {"before": 1000, "after": 1100} for g in ("gateway", "gateway_logging")}
    rss |= {"forwarder": {"before": 500, "after": 500}, PAIRED: {"before": 900, "after": 900}}
    results = Results(
        meta=meta, load=load, ttfb=ttfb, rss_kib=rss, request_log=account,
        rounds=rounds, ttfb_rounds=ttfb_rounds,
        failover=pool_failover(failover_rounds) if failover_rounds else None,
        failover_rounds=failover_rounds,
    )  # fmt: skip
    evaluate(results, 32)
    return results


def _check(results: Results, start: str) -> tuple[bool, float]:
    (check,) = [c for c in results.checks if c.group == "translation" and c.name.startswith(start)]
    assert not check.informational
    return check.passed, check.measured


def test_translated_throughput_is_pooled_over_the_rounds() -> None:
    # per round 50% and 100%; pooled (requests over time) 6000 / 8000 = 75%
    results = _results(openai_rps=[6000, 2000], translated_rps=[3000, 3000])
    d = results.derived
    assert d["translated_rps_fraction_of_openai_c32"] == pytest.approx(0.75)
    assert d["translated_rps_fraction_of_openai_c32_round1"] == pytest.approx(0.5)
    assert d["translated_rps_fraction_of_openai_c32_round2"] == pytest.approx(1.5)
    assert _check(results, "translated RPS") == (False, pytest.approx(75.0))
    assert not results.passed


@pytest.mark.parametrize(
    ("translated", "passed"), [([850, 850], True), ([849, 849], False)], ids=["85%", "84.9%"]
)
def test_translated_throughput_bar_is_85_percent(translated: list[float], passed: bool) -> None:
    results = _results(openai_rps=[1000, 1000], translated_rps=translated)
    assert _check(results, "translated RPS")[0] is passed
    assert BAR["min_translated_rps_fraction_32"] == 0.85


@pytest.mark.parametrize(("added", "passed"), [(0.25, True), (0.35, False)])
def test_streamed_ttfb_added_over_the_openai_path(added: float, passed: bool) -> None:
    # translated rounds: 100 samples at 0.5 + added, 100 at 0.6 + added: pooled p50 the first
    results = _results([1000, 1000], [900, 900], translated_ttfb_ms=0.5 + added)
    d = results.derived
    assert d["translated_added_ttfb_p50_over_openai_ms"] == pytest.approx(added)
    assert d["translated_added_ttfb_p50_over_openai_ms_round1"] == pytest.approx(added)
    assert d["translated_added_ttfb_p50_over_openai_ms_round2"] == pytest.approx(added + 0.1)
    # against direct it is a different number: the direct stream is the OpenAI one, not paired
    assert d["translated_added_ttfb_p50_ms"] == pytest.approx(0.5 + added - 0.02)
    assert _check(results, "streamed TTFB") == (passed, pytest.approx(added))


def test_translated_latency_at_one_connection_is_reported_next_to_the_openai_path() -> None:
    d = _results([1000, 1000], [900, 900]).derived
    assert d["translated_added_p50_ms_c1"] == pytest.approx(0.42 - 0.05)
    assert d["gateway_added_p50_ms_c1"] == pytest.approx(0.30 - 0.05)
    assert d["translated_added_p50_over_openai_ms_c1"] == pytest.approx(0.12)


def _reference_line(results: Results, start: str) -> tuple[bool, float]:
    (check,) = [c for c in results.checks if c.group == "reference" and c.name.startswith(start)]
    return check.passed, check.measured


def test_the_forwarder_multiple_is_judged_on_the_paired_turns_when_measured() -> None:
    """The separate 1-connection wrk runs (direct 0.05, forwarder 0.25, logging 0.32 ms p50)
    give the logging gateway 0.27 / 0.20 = 1.35x the forwarder's added p50; the paired turns
    of the same run (0.26 against 0.21 ms) give 1.24x, and that one is judged."""
    separate = _results([1000, 1000], [900, 900])
    d = separate.derived
    assert d["gateway_logging_added_p50_multiple_of_forwarder_c1"] == pytest.approx(1.35)
    assert _reference_line(separate, "gateway, logging: added p50 1c <= 1.30x")[0] is False
    assert "paired at 1 conn" not in render(separate, 32)

    paired = _results([1000, 1000], [900, 900])
    paired.paired = {
        name: PairedResult(name, 3000, 0.1 + added, 0.2 + added, added)
        for name, added in (("direct", 0.0), ("forwarder", 0.21), ("gateway", 0.23),
                            ("gateway_logging", 0.26))
    }  # fmt: skip
    evaluate(paired, 32)
    d = paired.derived
    assert d["gateway_logging_added_p50_multiple_of_forwarder_c1"] == pytest.approx(0.26 / 0.21)
    assert d["gateway_logging_added_p50_multiple_of_forwarder_wrk_c1"] == pytest.approx(1.35)
    assert d["gateway_added_p50_ms_paired"] == pytest.approx(0.23)
    assert _reference_line(paired, "gateway, logging: added p50 1c <= 1.30x") == (
        True, pytest.approx(0.26 / 0.21)
    )
    text = render(paired, 32)
    assert "paired at 1 conn (3000 turns" in text and "separate wrk runs 1.35x" in text
    saved = orjson.loads(orjson.dumps(paired.to_json()))
    assert saved["paired"]["forwarder"]["added_p50_ms"] == 0.21


def test_failed_translated_requests_fail_the_translation_bar() -> None:
    ok = _results([3000, 3000], [2700, 2700])
    assert _check(ok, "no failed") == (True, 0)
    # every other line of the synthetic run passes too (it has no rate-limit rounds: that
    # group's line says "not measured")
    assert all(c.passed for c in ok.checks if not c.informational and c.group != "ratelimit")
    failed = _results([3000, 3000], [2700, 2700], translated_errors=3)
    assert _check(failed, "no failed") == (False, 3)
    assert not failed.passed
    assert not all(
        c.passed for c in failed.checks if not c.informational and c.group != "ratelimit"
    )


def test_report_and_json_show_the_translated_path(tmp_path: Path) -> None:
    results = _results([6000, 2000], [3000, 3000])
    text = render(results, 32)
    assert "gateway, translated" in text
    assert "OpenAI path 4,000, translated 3,000 = 75.0%" in text
    assert re.search(r"round 1: OpenAI\s+6,000 req/s\s+translated\s+3,000 req/s\s+50.0%", text)
    assert "FAIL  translated RPS at 32 connections >= 85% of the OpenAI path's" in text
    assert "PASS  streamed TTFB p50 added over the OpenAI path <= 0.3 ms" in text
    path = tmp_path / "latest.json"
    results.save(path)
    saved = orjson.loads(path.read_bytes())
    assert saved["bar"]["max_translated_added_ttfb_p50_ms"] == 0.3
    assert saved["derived"]["translated_rps_fraction_of_openai_c32"] == pytest.approx(0.75)
    assert len(saved["ttfb_rounds"]["translated"]) == 2
    assert "ttfb_samples_s" not in saved["ttfb"]["translated"]
    assert {c["group"] for c in saved["checks"]} >= {"translation"}
    assert math.isclose(saved["load"]["translated_c32"]["rps"], 3000)
