"""An OpenTelemetry SDK set up from the standard environment variables, exporting through its
default batch processor to a real ``gateway serve`` process (its own data dir, a key from
``gateway keys create``, the log writer child): the deployment's wiring (route order in front
of the passthrough catch-alls, the writer) for OTLP, as an application would use it. The rules
are covered in-process (tests/test_otel_e2e.py, tests/test_otel_ingest.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span

from bench.gateway_proc import Gateway
from gateway.ingest.otel import record_id
from tests.harness import wait_for


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("otel-serve"), "http://127.0.0.1:9")
    gateway.create_key()
    gateway.start()
    try:
        yield gateway
    finally:
        gateway.stop()


def _ids(span: Span) -> tuple[str, str]:
    context = span.get_span_context()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def test_sdk_from_the_environment_to_gateway_serve(
    served: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{served.port}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"Authorization=Bearer {served.key}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    provider = TracerProvider(resource=Resource.create({"service.name": "support-bot"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    tracer = provider.get_tracer("tests.otel.process")
    try:
        with tracer.start_as_current_span("handle-ticket"), tracer.start_as_current_span(
            "draft-reply"
        ), tracer.start_as_current_span("chat gpt-4o-mini") as llm:
            llm.set_attributes({
                "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o-mini", "gen_ai.usage.input_tokens": 200,
                "gen_ai.usage.output_tokens": 50,
                "gen_ai.input.messages":
                    '[{"role": "user", "parts": [{"type": "text", "content": "Refund?"}]}]',
                "traceloop.association.properties.Helicone-Property-Queue": "billing",
            })  # fmt: skip
        assert provider.force_flush(30_000)
    finally:
        provider.shutdown()

    trace_id, span_id = _ids(llm)
    request_id = record_id(trace_id, span_id)

    def landed() -> dict[str, Any] | None:
        status, body = served.call("POST", "/v1/request/query-ids", {"requestIds": [request_id]})
        assert status == 200, body
        return body["data"][0] if body["data"] else None

    row = wait_for("the span's record", landed)
    assert (row["model"], row["provider"], row["response_status"]) == ("gpt-4o-mini", "openai", 200)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (200, 50) and row["cost"] > 0
    assert row["request_path"] == "/v1/traces" and row["delay_ms"] >= 0
    session = str(uuid.UUID(hex=trace_id))
    assert row["properties"] == {
        "queue": "billing",  # lower-cased, as a proxied Helicone-Property-* header
        "Helicone-Session-Id": session,
        "Helicone-Session-Path": "/handle-ticket/draft-reply/chat gpt-4o-mini",
        "Helicone-Session-Name": "support-bot",
    }
    status, body = served.call("GET", f"/v1/session/{session}/trace")
    assert status == 200, body
    [node] = body["data"]["tree"]["children"]
    assert node["name"] == "handle-ticket" and body["data"]["totals"]["requests"] == 1
    assert served.log_problems() == []
