"""The bench's Gemini and Bedrock lines (issue 13), without running the bench: the fixed
answers read by the providers' own parsers (google-genai's types; botocore's service model and
event-stream parser), the gateway's translation of them into the OpenAI answers, the upstream's
locations and the gateway's environment, the TTFB turns and the report's lines.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import botocore.session
import orjson
import pytest
from botocore.eventstream import EventStream
from botocore.parsers import EventStreamJSONParser, create_parser
from google.genai import types
from openai.types.chat import ChatCompletion

from bench import payloads, phases
from bench.gateway_proc import BEDROCK_KEY, Gateway
from bench.load import RequestSpec
from bench.phases import NATIVE, Paired, Phases, Plan, TargetRun
from bench.render import render
from bench.report import BAR, PAIRED, Results
from bench.upstream import nginx_config, static_files, write_static_files
from gateway.translate import ExchangeTranslation, adapter_for
from providers.bedrock import BedrockAdapter
from providers.bedrock.signing import AwsCredentials
from providers.registry import Registry
from tests.test_bench import (
    _FakeServer,
    _openai_pieces,
    _RecordingTool,
    _results,
    _sse_events,
    _transport_reply,
    _ttfb,
)

_OPENAI = ChatCompletion.model_validate_json(payloads.chat_completion())


class _Chunks:
    """A raw body handed to botocore's :class:`EventStream` in small pieces (cut anywhere, as
    the network cuts it)."""

    def __init__(self, data: bytes, size: int = 7) -> None:
        self.data, self.size = data, size

    def stream(self) -> Iterator[bytes]:
        for start in range(0, len(self.data), self.size):
            yield self.data[start : start + self.size]

    def close(self) -> None:
        pass


def _bedrock_operation(name: str) -> Any:
    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    return model, model.operation_model(name)


# --- the fixed answers, read as the providers' SDKs read them ----------------------------------


def test_gemini_answer_is_a_generate_content_response_with_the_openai_answer() -> None:
    raw = json.loads(payloads.gemini_response())
    response = types.GenerateContentResponse.model_validate(raw)
    assert response.model_dump(mode="json", exclude_none=True, by_alias=True) == raw
    assert response.text == _OPENAI.choices[0].message.content
    assert response.candidates and response.candidates[0].finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None and _OPENAI.usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count) == (
        _OPENAI.usage.prompt_tokens,
        _OPENAI.usage.completion_tokens,
    )


def test_gemini_stream_is_generate_content_responses_with_the_openai_pieces() -> None:
    events = _sse_events(payloads.gemini_sse_stream())
    responses = [types.GenerateContentResponse.model_validate_json(data) for _, data in events]
    assert [r.text for r in responses] == _openai_pieces(payloads.sse_stream())
    assert [bool(r.candidates and r.candidates[0].finish_reason) for r in responses] == [
        *[False] * (len(responses) - 1),
        True,
    ]
    last = responses[-1].usage_metadata
    assert last is not None and last.candidates_token_count == 10


def test_converse_answer_parses_with_botocores_service_model() -> None:
    model, operation = _bedrock_operation("Converse")
    parser = create_parser(model.metadata["protocol"])
    body = payloads.converse_response().encode()
    parsed = parser.parse({"status_code": 200, "headers": {}, "body": body}, operation.output_shape)
    parsed.pop("ResponseMetadata")
    assert parsed == json.loads(body)  # every key is one the service model declares
    assert parsed["output"]["message"]["content"] == [
        {"text": _OPENAI.choices[0].message.content}
    ]


def test_converse_stream_is_a_binary_event_stream_botocore_reads() -> None:
    _, operation = _bedrock_operation("ConverseStream")
    shape = operation.output_shape.members["stream"]
    raw = payloads.bedrock_event_stream()
    stream = EventStream(_Chunks(raw), shape, EventStreamJSONParser(), "ConverseStream")
    events = list(stream)  # botocore checks both CRCs of every message
    assert events == [{name: payload} for name, payload in payloads.converse_events()]
    pieces = [e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e]
    assert pieces == _openai_pieces(payloads.sse_stream())
    assert events[-1]["metadata"]["usage"]["outputTokens"] == 10


@pytest.mark.parametrize("wire", ["gemini", "bedrock"])
def test_the_gateway_translates_the_fixed_answers_into_the_openai_ones(wire: str) -> None:
    """Each translated target answers what the OpenAI target answers: text, tokens, stop."""
    model = {"gemini": "gemini-2.5-flash", "bedrock": payloads.BEDROCK_MODEL_ID}[wire]
    whole_body, stream_body = {
        "gemini": (payloads.gemini_response().encode(), payloads.gemini_sse_stream().encode()),
        "bedrock": (payloads.converse_response().encode(), payloads.bedrock_event_stream()),
    }[wire]
    chat = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    adapter = adapter_for(wire)
    adapter.build_request(chat, api_key="bench", default_max_tokens=1024)
    translated = ChatCompletion.model_validate_json(
        ExchangeTranslation(adapter, include_usage=False).whole(200, whole_body)
    )
    assert translated.choices[0].message.content == _OPENAI.choices[0].message.content
    assert translated.choices[0].finish_reason == "stop"
    assert translated.usage is not None and _OPENAI.usage is not None
    assert translated.usage.total_tokens == _OPENAI.usage.total_tokens
    adapter = adapter_for(wire)
    adapter.build_request({**chat, "stream": True}, api_key="bench", default_max_tokens=1024)
    stream = ExchangeTranslation(adapter, include_usage=False).stream()
    out = b"".join(stream.feed(stream_body[i : i + 50]) for i in range(0, len(stream_body), 50))
    out += stream.flush()
    assert out.endswith(b"data: [DONE]\n\n")
    assert _openai_pieces(out.decode()) == _openai_pieces(payloads.sse_stream())


# --- where the requests go ------------------------------------------------------------------


def test_the_models_route_to_the_upstream_locations() -> None:
    registry = Registry.load()
    model, provider = payloads.BEDROCK_MODEL.split("/")
    (offering,) = [o for o in registry.offerings(model) if o.provider == provider]
    assert offering.provider_model_id == payloads.BEDROCK_MODEL_ID
    bedrock = BedrockAdapter()  # what adapter_for("bedrock") makes for each request
    chat = {"model": payloads.BEDROCK_MODEL_ID, "messages": [{"role": "user", "content": "hi"}]}
    for stream, path in ((False, payloads.BEDROCK_PATH), (True, payloads.BEDROCK_STREAM_PATH)):
        call = bedrock.build_request({**chat, "stream": stream}, api_key=None, default_max_tokens=9)
        assert bedrock.api == "converse"  # not Claude: Converse, not InvokeModel
        encoded = quote(offering.provider_model_id, safe="")  # nginx matches it decoded
        assert call.path == path.replace(payloads.BEDROCK_MODEL_ID, encoded)
    gemini = adapter_for("gemini")
    chat["model"] = payloads.GEMINI_MODEL.split("/")[0]
    for stream, path in ((False, payloads.GEMINI_PATH), (True, payloads.GEMINI_STREAM_PATH)):
        call = gemini.build_request({**chat, "stream": stream}, api_key="k", default_max_tokens=9)
        assert call.path.partition("?")[0] == path


def test_nginx_serves_the_bedrock_event_stream_from_a_file(tmp_path: Path) -> None:
    folder = write_static_files()
    try:
        config = nginx_config(tmp_path, 8080, set(), folder)
        assert folder.stat().st_mode & 0o777 == 0o755  # nginx's workers may run as nobody
        name = next(iter(static_files()))
        assert (folder / name).read_bytes() == payloads.bedrock_event_stream()
        assert (folder / name).stat().st_mode & 0o777 == 0o644
    finally:
        shutil.rmtree(folder)
    location = re.search(
        rf"location = {re.escape(payloads.BEDROCK_STREAM_PATH)} \{{(.*?)\}}", config, re.S
    )
    assert location is not None
    redirect = re.search(r"error_page 405 =200 (\S+);\s*return 405;", location.group(1))
    assert redirect is not None
    assert redirect.group(1).rsplit("/", 1)[1] == name
    assert f"alias {folder}/;" in config
    assert f"default_type {payloads.BEDROCK_CONTENT_TYPE};" in config


@pytest.mark.parametrize(
    ("target", "body"),
    [
        (payloads.GEMINI_PATH, payloads.gemini_response().encode()),
        (payloads.GEMINI_STREAM_PATH + "?alt=sse", payloads.gemini_sse_stream().encode()),
        (quote(payloads.BEDROCK_PATH), payloads.converse_response().encode()),
        (quote(payloads.BEDROCK_STREAM_PATH), payloads.bedrock_event_stream()),
    ],
)
def test_python_fallback_upstream_answers_the_issue_13_paths(target: str, body: bytes) -> None:
    reply = _transport_reply(target)
    assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and reply.endswith(body)


def test_gateway_env_points_gemini_and_bedrock_at_the_upstream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREALKEY")
    monkeypatch.setenv("AWS_REGION", "eu-west-3")
    env = Gateway(tmp_path, "http://127.0.0.1:9", name="g").env
    assert env["GEMINI_BASE_URL"] == env["BEDROCK_BASE_URL"] == "http://127.0.0.1:9"
    assert env["GEMINI_API_KEY"]
    assert env["BEDROCK_API_KEY"] == BEDROCK_KEY
    assert AwsCredentials.parse(BEDROCK_KEY) is not None  # signed with SigV4, not a bearer key
    assert env["GATEWAY_BEDROCK_REGION"] == "us-east-1"
    assert not any(name.startswith("AWS_") for name in env)  # a developer's AWS setup is ignored


# --- the rounds and the report -----------------------------------------------------------------


@pytest.fixture
def measured_ttfb(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    order: list[str] = []

    def fake(label: str, port: int, spec: RequestSpec, count: int) -> Any:
        order.append(label)
        return _ttfb(label, [0.5 + i / 1000 for i in range(count)])

    monkeypatch.setattr(phases, "measure_ttfb", fake)
    yield order


def test_native_paths_run_at_half_length_and_their_streams_join_the_turns(
    tmp_path: Path, measured_ttfb: list[str]
) -> None:
    tool = _RecordingTool()
    plan = Plan(duration_s=4, warmup_s=2, connections=32, ttfb_requests=5, rounds=2)
    bench = Phases(plan, tool, _FakeServer("upstream", 1), tmp_path)  # type: ignore[arg-type]
    names = ["gateway", "translated", *NATIVE]
    servers = [_FakeServer("gateway", 2)] * len(names)
    runs = [TargetRun(n) for n in names]
    chats = [RequestSpec("/v1/chat/completions", n) for n in names]
    stream_gateway = _FakeServer(PAIRED, 9)
    pair_runs = [TargetRun(PAIRED), *runs[1:]]
    pair = [Paired(r, stream_gateway, RequestSpec("/", r.name)) for r in pair_runs]  # type: ignore[arg-type]
    bench._rounds(servers, runs, chats, pair, halved=set(NATIVE))  # type: ignore[arg-type]
    lengths = {label.split("_c32")[0]: seconds for label, seconds in tool.calls if seconds >= 2}
    assert lengths == {"gateway": 4, "translated": 4, "gemini": 2, "bedrock": 2}
    turns = [PAIRED, "translated", *NATIVE]
    assert measured_ttfb == [*turns, *turns[::-1]]
    for run in runs[2:]:
        assert run.ttfb is not None and run.ttfb.requests == 2 * 5


def _native_check(results: Results, start: str) -> tuple[bool, float]:
    (check,) = [c for c in results.checks if c.group == "native" and c.name.startswith(start)]
    assert not check.informational
    return check.passed, check.measured


@pytest.mark.parametrize(
    ("rps", "passed"), [([850, 850], True), ([849, 849], False)], ids=["85%", "84.9%"]
)
@pytest.mark.parametrize("name", list(NATIVE))
def test_native_throughput_bar_is_85_percent_of_the_openai_path(
    name: str, rps: list[float], passed: bool
) -> None:
    other = "bedrock" if name == "gemini" else "gemini"
    results = _results([1000, 1000], [900, 900], native_rps={name: rps, other: [900, 900]})
    assert _native_check(results, f"{name.capitalize()} RPS")[0] is passed
    assert _native_check(results, f"{other.capitalize()} RPS")[0] is True
    assert BAR[f"min_{name}_rps_fraction_32"] == 0.85


@pytest.mark.parametrize(("added", "passed"), [(0.45, True), (0.55, False)])
def test_bedrock_stream_ttfb_bar_is_half_a_millisecond(added: float, passed: bool) -> None:
    results = _results(
        [1000, 1000], [900, 900], native_ttfb_ms={"gemini": 2.0, "bedrock": 0.5 + added}
    )
    d = results.derived
    assert d["bedrock_added_ttfb_p50_over_openai_ms"] == pytest.approx(added)
    assert d["bedrock_added_ttfb_p50_over_openai_ms_round2"] == pytest.approx(added)
    assert d["gemini_added_ttfb_p50_over_openai_ms"] == pytest.approx(1.5)  # reported, no bar
    assert _native_check(results, "Bedrock event stream")[0] is passed


def test_failed_or_missing_native_measurements_fail_the_bar() -> None:
    ok = _results([3000, 3000], [2700, 2700])
    assert _native_check(ok, "no failed") == (True, 0)
    assert all(c.passed for c in ok.checks if c.group == "native")
    failed = _results([3000, 3000], [2700, 2700], native_errors=4)
    assert _native_check(failed, "no failed") == (False, 4)
    assert not failed.passed
    missing = _results([3000, 3000], [2700, 2700], native_rps={"gemini": [2700, 2700]})
    assert math.isnan(missing.derived["bedrock_rps_fraction_of_openai_c32"])
    assert _native_check(missing, "Bedrock RPS")[0] is False
    assert _native_check(missing, "no failed")[0] is False


def test_report_and_json_show_gemini_and_bedrock(tmp_path: Path) -> None:
    results = _results(
        [6000, 2000], [3000, 3000], native_rps={"gemini": [3000, 3000], "bedrock": [4000, 4000]}
    )
    results.meta |= {"gemini_model": payloads.GEMINI_MODEL, "bedrock_model": payloads.BEDROCK_MODEL}
    text = render(results, 32)
    assert "OpenAI path 4,000, gemini 3,000 = 75.0%, bedrock 4,000 = 100.0%" in text
    assert re.search(r"round 1: OpenAI\s+6,000\s+gemini\s+3,000\s+50.0%\s+bedrock\s+4,000", text)
    assert "FAIL  Gemini RPS at 32 connections >= 85% of the OpenAI path's" in text
    assert "PASS  Bedrock RPS at 32 connections >= 85% of the OpenAI path's" in text
    assert "PASS  Bedrock event stream TTFB p50 added over the OpenAI path <= 0.5 ms" in text
    assert re.search(r"bedrock over the pair\s+0\.200", text)
    path = tmp_path / "latest.json"
    results.save(path)
    saved: dict[str, Any] = orjson.loads(path.read_bytes())
    assert saved["bar"]["max_bedrock_added_ttfb_p50_ms"] == 0.5
    assert saved["derived"]["gemini_rps_fraction_of_openai_c32"] == pytest.approx(0.75)
    assert len(saved["ttfb_rounds"]["bedrock"]) == 2
    assert {c["group"] for c in saved["checks"]} >= {"native"}
