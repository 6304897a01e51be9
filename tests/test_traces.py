"""OpenTelemetry traces end to end: a real gateway exporting over OTLP/HTTP to a collector on a
real socket (tests/otlp_collector.py decodes each export with opentelemetry-proto), one span per
request with the GenAI semantic conventions and the gateway's own attributes.

The SDK's batch processor is told (``OTEL_BSP_SCHEDULE_DELAY``, its standard variable) to export
every 50 ms, so a test waits for its span by request id, within a bound.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from gateway.settings import Settings
from gateway.traces import finish_reasons, operation_name, traces_problems
from tests.emulator import OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings
from tests.otlp_collector import OtlpCollector, ReceivedSpan

KEY = "sk-emulator"
CHAT = "/v1/chat/completions"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SPAN_KIND_SERVER
STATUS_ERROR = 2


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def collector() -> Iterator[OtlpCollector]:
    saved = os.environ.get("OTEL_BSP_SCHEDULE_DELAY")
    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "50"
    try:
        with OtlpCollector() as running:
            yield running
    finally:
        if saved is None:
            os.environ.pop("OTEL_BSP_SCHEDULE_DELAY", None)
        else:
            os.environ["OTEL_BSP_SCHEDULE_DELAY"] = saved


def _gateway(
    tmp: Path, upstream: OpenAIEmulator, collector: OtlpCollector, **extra: Any
) -> tuple[GatewayServer, str]:
    settings = make_settings(
        tmp,
        provider_api_keys={"openai": KEY},
        provider_base_urls={"openai": upstream.base_url},
        traces_enabled=True,
        otel_exporter_otlp_endpoint=collector.endpoint,
        otel_service_name="gateway-under-test",
        otel_exporter_otlp_headers="x-backend-key=k%20ey,x-team=gateway",
        **extra,
    )
    return GatewayServer(settings), create_key(settings)


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator, collector: OtlpCollector
) -> Iterator[tuple[GatewayServer, str]]:
    server, key = _gateway(tmp_path_factory.mktemp("traces"), upstream, collector)
    with server:
        yield server, key


def _post(
    server: GatewayServer, key: str, body: dict[str, Any], headers: dict[str, str] | None = None
) -> httpx.Response:
    sent = {"authorization": f"Bearer {key}", **(headers or {})}
    response = httpx.post(server.url + CHAT, json=body, headers=sent, timeout=30)
    return response


def _span_of(collector: OtlpCollector, request_id: str) -> ReceivedSpan:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        found = [s for s in collector.spans if s.attributes.get("gateway.request_id") == request_id]
        if found:
            assert len(found) == 1, found  # one span per request
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no span for request {request_id} reached the collector")


def _chat(text: str | None = None, **extra: Any) -> dict[str, Any]:
    content = text or f"trace test {uuid.uuid4()}"
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], **extra}


def test_a_request_is_one_server_span_with_the_genai_attributes(
    gateway: tuple[GatewayServer, str], collector: OtlpCollector
) -> None:
    server, key = gateway
    before_ns = time.time_ns()
    traceparent = f"00-{TRACE_ID}-{PARENT_ID}-01"
    response = _post(server, key, _chat(), {"traceparent": traceparent})
    after_ns = time.time_ns()
    assert response.status_code == 200, response.text
    answer = response.json()
    span = _span_of(collector, response.headers["helicone-id"])

    assert span.kind == SERVER_KIND
    assert span.name == "chat gpt-4o-mini"
    # The client's trace: the gateway's span is a child of the span that sent the request.
    assert (span.trace_id, span.parent_span_id) == (TRACE_ID, PARENT_ID)
    # From the request's arrival to its record, on the wall clock.
    assert before_ns <= span.start_ns <= span.end_ns <= after_ns
    attributes = span.attributes
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.system"] == "openai"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.response.model"] == answer["model"]
    assert attributes["gen_ai.response.id"] == answer["id"]
    assert attributes["gen_ai.usage.input_tokens"] == answer["usage"]["prompt_tokens"]
    assert attributes["gen_ai.usage.output_tokens"] == answer["usage"]["completion_tokens"]
    assert attributes["gen_ai.response.finish_reasons"] == [answer["choices"][0]["finish_reason"]]
    assert attributes["http.response.status_code"] == 200
    assert attributes["gateway.provider"] == "openai"
    assert attributes["gateway.attempts"] == 1
    assert attributes["gateway.retries"] == 0
    assert attributes["gateway.route"] == "unified"
    assert attributes["gateway.stream"] is False
    assert attributes["gateway.overhead_ms"] == pytest.approx(
        float(response.headers["x-gateway-overhead-ms"]), abs=0.001
    )
    assert "gateway.cache" not in attributes  # the request did not use the cache
    assert span.resource["service.name"] == "gateway-under-test"
    # OTEL_EXPORTER_OTLP_HEADERS (URL-encoded pairs) on every export: a hosted backend's key.
    assert {(h.get("x-backend-key"), h.get("x-team")) for h in collector.headers} == {
        ("k ey", "gateway")
    }
    assert span.status_code != STATUS_ERROR
    # No content, no key, no user id unless asked.
    assert not {"gen_ai.input.messages", "gen_ai.output.messages"} & set(attributes)
    flat = orjson.dumps(attributes).decode()
    assert key not in flat and KEY not in flat and "trace test" not in flat


def test_a_stream_span_reads_usage_and_finish_reason_from_the_stream(
    gateway: tuple[GatewayServer, str], collector: OtlpCollector
) -> None:
    server, key = gateway
    with httpx.stream(
        "POST", server.url + CHAT, json=_chat(stream=True),
        headers={"authorization": f"Bearer {key}"}, timeout=30,
    ) as response:  # fmt: skip
        assert response.status_code == 200
        text = "".join(response.iter_text())
        request_id = response.headers["helicone-id"]
    assert "[DONE]" in text
    span = _span_of(collector, request_id)
    attributes = span.attributes
    assert span.trace_id and span.parent_span_id == ""  # no traceparent: a trace of its own
    assert attributes["gateway.stream"] is True
    assert attributes["gen_ai.usage.input_tokens"] > 0
    assert attributes["gen_ai.usage.output_tokens"] > 0
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attributes["gateway.time_to_first_token_ms"] >= 0
    assert attributes["gateway.overhead_ms"] >= 0
    # The usage chunk the gateway asked for on the client's behalf did not reach the client.
    assert '"usage":{' not in text


def test_a_cache_hit_span_says_hit_and_no_upstream_attempt(
    gateway: tuple[GatewayServer, str], collector: OtlpCollector
) -> None:
    server, key = gateway
    body = _chat()
    on = {"helicone-cache-enabled": "true"}
    first = _post(server, key, body, on)
    second = _post(server, key, body, on)
    assert second.headers["helicone-cache"] == "HIT"
    miss = _span_of(collector, first.headers["helicone-id"]).attributes
    hit = _span_of(collector, second.headers["helicone-id"]).attributes
    assert (miss["gateway.cache"], miss["gateway.attempts"]) == ("miss", 1)
    assert (hit["gateway.cache"], hit["gateway.attempts"]) == ("hit", 0)


def test_an_upstream_failure_is_an_error_span(
    gateway: tuple[GatewayServer, str], collector: OtlpCollector, upstream: OpenAIEmulator
) -> None:
    from tests.emulator import Fault

    server, key = gateway
    upstream.inject(Fault(status=503, path=CHAT, times=10))
    try:
        response = _post(server, key, _chat())
    finally:
        upstream.reset()
    assert response.status_code >= 500
    span = _span_of(collector, response.headers["helicone-id"])
    assert span.status_code == STATUS_ERROR
    assert span.attributes["error.type"] == str(response.status_code)
    assert span.attributes["gateway.attempts"] >= 1


def test_content_only_when_asked_and_never_when_omitted(
    tmp_path: Path, upstream: OpenAIEmulator, collector: OtlpCollector
) -> None:
    server, key = _gateway(tmp_path, upstream, collector, traces_capture_content=True)
    with server:
        shown = _post(server, key, _chat("what is in a span?"))
        omitted = _post(
            server, key, _chat("keep this private"),
            {"helicone-omit-request": "true", "helicone-omit-response": "true"},
        )  # fmt: skip
    answer = shown.json()
    attributes = _span_of(collector, shown.headers["helicone-id"]).attributes
    assert orjson.loads(attributes["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "what is in a span?"}]}
    ]
    assert orjson.loads(attributes["gen_ai.output.messages"]) == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": answer["choices"][0]["message"]["content"]}],
            "finish_reason": "stop",
        }
    ]
    private = _span_of(collector, omitted.headers["helicone-id"]).attributes
    assert not {"gen_ai.input.messages", "gen_ai.output.messages"} & set(private)
    assert "keep this private" not in orjson.dumps(private).decode()


# --- the pieces -----------------------------------------------------------------------------


def test_configuration_problems_are_one_line_each(tmp_path: Path) -> None:
    on = make_settings(tmp_path, traces_enabled=True)
    assert len(problems := traces_problems(on)) == 1
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in problems[0]
    grpc = make_settings(
        tmp_path, traces_enabled=True, otel_exporter_otlp_endpoint="http://collector:4317",
        otel_exporter_otlp_protocol="grpc",
    )  # fmt: skip
    assert [p.split(":")[0] for p in traces_problems(grpc)] == ["OTEL_EXPORTER_OTLP_PROTOCOL=grpc"]
    odd = make_settings(tmp_path, traces_enabled=True, otel_exporter_otlp_endpoint="collector")
    assert "absolute http(s) URL" in traces_problems(odd)[0]
    off: Settings = make_settings(tmp_path, otel_exporter_otlp_protocol="grpc")
    assert traces_problems(off) == []  # traces off: other tools' OTEL_* settings are theirs


def test_finish_reasons_in_each_wire_format() -> None:
    assert finish_reasons("openai", {"choices": [{"finish_reason": "length"}]}) == ["length"]
    assert finish_reasons("anthropic", {"stop_reason": "end_turn"}) == ["end_turn"]
    assert finish_reasons("bedrock", {"stopReason": "max_tokens"}) == ["max_tokens"]
    assert finish_reasons("gemini", {"candidates": [{"finishReason": "STOP"}]}) == ["STOP"]
    assert finish_reasons("openai", {"status": "completed"}) == ["completed"]  # Responses API
    assert finish_reasons("openai", None) == []


def test_operation_names() -> None:
    assert operation_name("/v1/chat/completions") == "chat"
    assert operation_name("/v1/completions") == "text_completion"
    assert operation_name("/v1/embeddings") == "embeddings"
    assert operation_name("/v1beta/models/gemini-2.0-flash:generateContent") == "generate_content"
    assert operation_name("/anthropic/v1/messages") == "chat"
