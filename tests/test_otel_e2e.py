"""End to end: OpenTelemetry traces exported to a real gateway become request records and
sessions, read back through the query API.

The spans are made by the real OpenTelemetry SDK and sent by its real OTLP/HTTP exporter
(protobuf, plain and gzip) to the gateway on its socket; a JSON-encoded export and Helicone's
``/v1/trace/log`` body are posted over HTTP as an OTLP/JSON exporter would. The records are
checked through ``/v1/request/*`` and ``/v1/session/*``: model, provider, tokens, cost, latency,
time to first token, status, properties, user, session and path, bodies.
"""

from __future__ import annotations

import gzip
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from google.rpc.status_pb2 import Status
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Span, SpanKind, StatusCode
from opentelemetry.trace import Status as SpanStatus

from gateway.ingest.otel import record_id
from gateway.scopes import TRACE_READ
from providers.registry import Registry
from providers.usage import Usage
from tests.harness import GatewayServer, create_key, make_settings, wait_for

MS = 1_000_000
T0 = (int(time.time()) - 600) * 1_000_000_000
"""The spans' clock: ten minutes ago, on a whole second (exact latencies)."""


@dataclass
class Gateway:
    server: GatewayServer
    key: str

    @property
    def auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.key}"}

    def exporter(self, compression: Compression = Compression.NoCompression) -> OTLPSpanExporter:
        return OTLPSpanExporter(
            endpoint=self.server.url + "/v1/traces", headers=self.auth, compression=compression,
            timeout=30,
        )  # fmt: skip

    def export(self, spans: list[ReadableSpan], compression: Compression) -> None:
        exporter = self.exporter(compression)
        try:
            assert exporter.export(spans) is SpanExportResult.SUCCESS
        finally:
            exporter.shutdown()

    def get(self, path: str) -> Any:
        response = httpx.get(self.server.url + path, headers=self.auth, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def record(self, trace_id: str, span_id: str) -> dict[str, Any]:
        """The span's record with its bodies, once the writer has stored it."""
        request_id = record_id(trace_id, span_id)

        def landed() -> dict[str, Any] | None:
            response = httpx.get(
                f"{self.server.url}/v1/request/{request_id}?includeBody=true",
                headers=self.auth, timeout=30,
            )  # fmt: skip
            return response.json()["data"] if response.status_code == 200 else None

        return wait_for(f"record of span {span_id}", landed)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    settings = make_settings(
        tmp_path_factory.mktemp("otel"), logging_enabled=True, log_flush_ms=20,
        otel_max_body_bytes=256 * 1024, otel_max_span_bytes=64 * 1024,
    )  # fmt: skip
    key = create_key(settings, org="acme")
    with GatewayServer(settings) as server:
        yield Gateway(server, key)


class Recorder:
    """A tracer whose finished spans are kept (and exported when the test says so)."""

    def __init__(self, service: str) -> None:
        self.memory = InMemorySpanExporter()
        self.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        self.provider.add_span_processor(SimpleSpanProcessor(self.memory))
        self.tracer = self.provider.get_tracer("tests.otel", "1.0")

    def span(self, name: str, parent: Span | None, start_ms: int, **attributes: Any) -> Span:
        context = trace.set_span_in_context(parent) if parent is not None else None
        return self.tracer.start_span(
            name, context=context, kind=SpanKind.CLIENT, start_time=T0 + start_ms * MS,
            attributes=attributes,
        )  # fmt: skip

    def spans(self) -> list[ReadableSpan]:
        return list(self.memory.get_finished_spans())

    def close(self) -> None:
        self.provider.shutdown()


def _ids(span: Span) -> tuple[str, str]:
    context = span.get_span_context()
    return f"{context.trace_id:032x}", f"{context.span_id:016x}"


def _cost(model: str, usage: Usage) -> float:
    return Registry.load().cost("openai", model, usage).nano_usd / 1e9


def test_genai_semconv_trace_becomes_a_three_level_session(gateway: Gateway) -> None:
    """GenAI semantic conventions (structured messages, usage with cache reads), a tool span
    and two plain spans, exported as protobuf: the LLM and tool spans are records in the
    trace's session, at the paths the span tree gives them."""
    recorder = Recorder("trip-planner")
    root = recorder.span("plan-trip", None, 0, **{
        "traceloop.association.properties.Helicone-Property-Environment": "prod",
    })  # fmt: skip
    tool = recorder.span("search", root, 10, **{
        "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search_flights",
        "gen_ai.tool.call.arguments": '{"to": "Paris"}', "gen_ai.tool.call.result": '["AF123"]',
    })  # fmt: skip
    tool.end(end_time=T0 + 110 * MS)
    reason = recorder.span("reason", root, 120)
    messages = [{"role": "user", "parts": [{"type": "text", "content": "Plan Paris"}]}]
    answer = [{"role": "assistant", "finish_reason": "stop",
               "parts": [{"type": "text", "content": "Take AF123."}]}]  # fmt: skip
    llm = recorder.span("chat gpt-4o-mini", reason, 130, **{
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini", "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.request.temperature": 0.2, "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30, "gen_ai.usage.cache_read.input_tokens": 20,
        "gen_ai.system_instructions": '[{"type": "text", "content": "Be brief."}]',
        "gen_ai.input.messages": orjson.dumps(messages).decode(),
        "gen_ai.output.messages": orjson.dumps(answer).decode(),
        "gen_ai.response.id": "chatcmpl-1", "user.id": "alice",
        "traceloop.association.properties.Helicone-Property-Environment": "prod",
    })  # fmt: skip
    llm.set_status(SpanStatus(StatusCode.OK))
    llm.end(end_time=T0 + 1130 * MS)  # 1 s
    reason.end(end_time=T0 + 1140 * MS)
    root.end(end_time=T0 + 1200 * MS)
    gateway.export(recorder.spans(), Compression.NoCompression)
    recorder.close()

    trace_id, llm_id = _ids(llm)
    session = str(uuid.UUID(hex=trace_id))
    row = gateway.record(trace_id, llm_id)
    assert row["model"] == "gpt-4o-mini-2024-07-18"
    assert row["request_model"] == "gpt-4o-mini"
    assert row["provider"] == "openai"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (120, 30)
    assert row["prompt_cache_read_tokens"] == 20 and not row["tokens_estimated"]
    usage = Usage(prompt_tokens=120, completion_tokens=30, cache_read_tokens=20)
    assert row["cost"] == pytest.approx(_cost("gpt-4o-mini-2024-07-18", usage), abs=1e-9)
    assert row["cost"] > 0
    assert row["delay_ms"] == 1000 and row["response_status"] == 200
    assert row["request_path"] == "/v1/traces"
    assert row["request_user_id"] == "alice"
    assert row["properties"] == {
        "environment": "prod",  # lower-cased, as a proxied Helicone-Property-* header
        "Helicone-Session-Id": session,
        "Helicone-Session-Path": "/plan-trip/reason/chat gpt-4o-mini",
        "Helicone-Session-Name": "trip-planner",
    }
    request = row["request_body"]
    assert request["model"] == "gpt-4o-mini" and request["temperature"] == 0.2
    assert request["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Plan Paris"},
    ]
    response = row["response_body"]
    assert response["choices"] == [{
        "index": 0, "finish_reason": "stop",
        "message": {"role": "assistant", "content": "Take AF123."},
    }]  # fmt: skip
    assert response["usage"]["prompt_tokens_details"] == {"cached_tokens": 20}

    tool_row = gateway.record(*_ids(tool))
    assert tool_row["model"] == "tool:search_flights"
    assert tool_row["prompt_tokens"] == 0 and tool_row["delay_ms"] == 100
    assert tool_row["properties"]["Helicone-Session-Path"] == "/plan-trip/search"
    assert tool_row["request_body"] == {
        "_type": "tool", "toolName": "search_flights", "input": {"to": "Paris"},
        "metadata": {"span": "search"},
    }  # fmt: skip
    assert tool_row["response_body"]["output"] == ["AF123"]

    tree = gateway.get(f"/v1/session/{session}/trace")
    assert tree["session_name"] == "trip-planner"
    paths = sorted(r["path"] for r in tree["requests"])
    assert paths == ["/plan-trip/reason/chat gpt-4o-mini", "/plan-trip/search"]
    assert tree["totals"]["requests"] == 2
    # The plain spans (plan-trip, reason) named the path but are not records.
    missing = httpx.get(
        f"{gateway.server.url}/v1/request/{record_id(*_ids(root))}", headers=gateway.auth
    )
    assert missing.status_code == 404


def test_openllmetry_spans_over_gzip(gateway: Gateway) -> None:
    """OpenLLMetry's indexed attributes and association properties, a stream with a chunk
    event (time to first token), and a failed call, exported gzip-compressed."""
    recorder = Recorder("unknown_service")
    session = str(uuid.uuid4())
    labels = {
        "traceloop.association.properties.Helicone-Session-Id": session,
        "traceloop.association.properties.Helicone-Session-Name": "Course Plan",
        "traceloop.association.properties.Helicone-Session-Path": "/abstract",
        "traceloop.association.properties.Helicone-User-Id": "bob",
        "traceloop.association.properties.team": "search",
    }
    stream = recorder.span("openai.chat", None, 0, **labels, **{
        "llm.request.type": "chat", "gen_ai.system": "OpenAI",
        "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
        "gen_ai.usage.prompt_tokens": 50, "gen_ai.usage.completion_tokens": 10,
        "llm.usage.total_tokens": 60, "llm.is_streaming": True,
        "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "hi",
        "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "hello",
        "gen_ai.completion.0.finish_reason": "stop",
    })  # fmt: skip
    stream.add_event("llm.content.completion.chunk", timestamp=T0 + 300 * MS)
    stream.end(end_time=T0 + 800 * MS)
    failed = recorder.span("openai.chat", None, 1000, **labels, **{
        "llm.request.type": "chat", "gen_ai.system": "openai", "gen_ai.request.model": "gpt-4o",
        "error.type": "RateLimitError", "http.response.status_code": 429,
    })  # fmt: skip
    failed.set_status(SpanStatus(StatusCode.ERROR, "Rate limit reached"))
    failed.end(end_time=T0 + 1050 * MS)
    gateway.export(recorder.spans(), Compression.Gzip)
    recorder.close()

    row = gateway.record(*_ids(stream))
    assert row["model"] == "gpt-4o-2024-08-06" and row["provider"] == "openai"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (50, 10)
    usage = Usage(prompt_tokens=50, completion_tokens=10)
    assert row["cost"] == pytest.approx(_cost("gpt-4o-2024-08-06", usage), abs=1e-9)
    assert (row["delay_ms"], row["time_to_first_token"]) == (800, 300)
    assert row["request_user_id"] == "bob"
    assert row["properties"] == {
        "team": "search", "Helicone-Session-Id": session,
        "Helicone-Session-Name": "Course Plan", "Helicone-Session-Path": "/abstract",
    }  # fmt: skip
    assert row["request_body"]["messages"] == [{"role": "user", "content": "hi"}]
    assert row["request_body"]["stream"] is True
    assert row["response_body"]["reconstructed"]["choices"][0]["message"]["content"] == "hello"

    error = gateway.record(*_ids(failed))
    assert error["response_status"] == 429 and error["delay_ms"] == 50
    assert error["response_body"] == {
        "error": {"message": "Rate limit reached", "type": "RateLimitError"}
    }
    sessions = gateway.get(f"/v1/session/{session}/trace")
    assert sessions["totals"]["requests"] == 2 and sessions["session_name"] == "Course Plan"


def _json_span(trace_id: str, span_id: str, **attributes: Any) -> dict[str, Any]:
    return {
        "traceId": trace_id, "spanId": span_id, "name": "chat claude", "kind": 3,
        "startTimeUnixNano": str(T0), "endTimeUnixNano": str(T0 + 250 * MS),
        "attributes": [
            {"key": k, "value": {"intValue": str(v)} if isinstance(v, int)
             else {"stringValue": v}}
            for k, v in attributes.items()
        ],
        "droppedAttributesCount": 0, "events": [], "droppedEventsCount": 0,
        "status": {"code": 1}, "links": [], "droppedLinksCount": 0,
    }  # fmt: skip


def _document(*spans: dict[str, Any]) -> dict[str, Any]:
    return {"resourceSpans": [{
        "resource": {"droppedAttributesCount": 0, "attributes": [
            {"key": "service.name", "value": {"stringValue": "json-app"}}]},
        "scopeSpans": [{"scope": {"name": "manual", "version": "1"}, "spans": list(spans)}],
    }]}  # fmt: skip


CLAUDE = {
    "gen_ai.operation.name": "chat", "gen_ai.system": "anthropic",
    "gen_ai.request.model": "claude-3-5-haiku-20241022", "gen_ai.usage.input_tokens": 40,
    "gen_ai.usage.output_tokens": 8,
}  # fmt: skip


def test_json_export_with_a_malformed_span_is_a_partial_success(gateway: Gateway) -> None:
    """OTLP/JSON: the answer is JSON; the span with a bad trace id is rejected alone. No
    content attributes (content tracing off): the body has no messages."""
    trace_id = uuid.uuid4().hex
    body = _document(
        _json_span(trace_id, "a1" * 8, **CLAUDE),
        _json_span("not-a-trace-id", "b2" * 8, **CLAUDE),
    )
    response = httpx.post(
        gateway.server.url + "/v1/traces", content=orjson.dumps(body),
        headers={**gateway.auth, "content-type": "application/json"},
    )  # fmt: skip
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1" and "traceId" in partial["errorMessage"]
    assert response.headers["gateway-spans-logged"] == "1"
    row = gateway.record(trace_id, "a1" * 8)
    assert row["provider"] == "anthropic" and row["model"] == "claude-3-5-haiku-20241022"
    assert (row["prompt_tokens"], row["completion_tokens"], row["delay_ms"]) == (40, 8, 250)
    assert row["cost"] > 0
    assert "messages" not in row["request_body"] and "choices" not in row["response_body"]
    assert row["properties"]["Helicone-Session-Name"] == "json-app"


def test_helicone_trace_log_answers_204(gateway: Gateway) -> None:
    """The documented ``OTELTrace`` body on ``/v1/trace/log``, gzip-compressed."""
    trace_id = uuid.uuid4().hex
    body = gzip.compress(orjson.dumps(_document(_json_span(trace_id, "c3" * 8, **CLAUDE))))
    response = httpx.post(
        gateway.server.url + "/v1/trace/log", content=body,
        headers={**gateway.auth, "content-type": "application/json", "content-encoding": "gzip"},
    )  # fmt: skip
    assert response.status_code == 204, response.text
    row = gateway.record(trace_id, "c3" * 8)
    assert row["request_path"] == "/v1/trace/log" and row["prompt_tokens"] == 40


def test_helicone_async_python_path_takes_the_sdk_exporter(gateway: Gateway) -> None:
    """``helicone-async`` (Python) points the SDK's protobuf exporter at
    ``/v1/trace/log-python``; a proxy header (``Helicone-Target-Url``) does not divert it."""
    recorder = Recorder("async-app")
    span = recorder.span("anthropic.chat", None, 0, **CLAUDE)
    span.end(end_time=T0 + 40 * MS)
    exporter = OTLPSpanExporter(
        endpoint=gateway.server.url + "/v1/trace/log-python",
        headers={**gateway.auth, "Helicone-Target-Url": "http://127.0.0.1:9"}, timeout=30,
    )  # fmt: skip
    try:
        assert exporter.export(recorder.spans()) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()
        recorder.close()
    row = gateway.record(*_ids(span))
    assert row["request_path"] == "/v1/trace/log-python" and row["delay_ms"] == 40


def _status(response: httpx.Response) -> Status:
    assert response.headers["content-type"] == "application/x-protobuf"
    status = Status()
    status.ParseFromString(response.content)
    return status


def test_bad_exports_get_clear_errors(gateway: Gateway) -> None:
    url = gateway.server.url + "/v1/traces"
    protobuf = {"content-type": "application/x-protobuf"}
    missing = httpx.post(url, content=b"\x0a\x00", headers=protobuf)
    assert missing.status_code == 401 and _status(missing).message
    garbage = httpx.post(url, content=b"\xff\xff\xff", headers={**gateway.auth, **protobuf})
    assert garbage.status_code == 400
    assert "ExportTraceServiceRequest" in _status(garbage).message
    wrong = httpx.post(url, content=b"x", headers={**gateway.auth, "content-type": "text/plain"})
    assert wrong.status_code == 415
    bad_json = httpx.post(url, content=b"{", headers={**gateway.auth,
                          "content-type": "application/json"})  # fmt: skip
    assert bad_json.status_code == 400 and "JSON" in bad_json.json()["message"]
    # A gzip bomb: 64 KiB that expands past the 256 KiB limit stops at the limit.
    bomb = gzip.compress(b"\x00" * (4 * 1024 * 1024))
    assert len(bomb) < 64 * 1024
    exploded = httpx.post(url, content=bomb, headers={**gateway.auth, **protobuf,
                          "content-encoding": "gzip"})  # fmt: skip
    assert exploded.status_code == 413
    assert "GATEWAY_OTEL_MAX_BODY_BYTES" in _status(exploded).message
    helicone = httpx.post(gateway.server.url + "/v1/trace/log", content=b"[1]",
                          headers={**gateway.auth, "content-type": "application/json"})  # fmt: skip
    assert helicone.status_code == 400 and "resourceSpans" in helicone.json()["error"]
    reader, _ = gateway.server.call(
        gateway.server.runtime.store.create_key("acme", scopes=frozenset({TRACE_READ}))
    )
    denied = httpx.post(url, content=b"\x0a\x00", headers={
        **protobuf, "authorization": f"Bearer {reader}"})  # fmt: skip
    assert denied.status_code == 403 and "trace:write" in _status(denied).message
    # An empty export is a success with nothing rejected.
    empty = httpx.post(url, content=b"", headers={**gateway.auth, **protobuf})
    assert empty.status_code == 200
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(empty.content)
    assert not answer.HasField("partial_success")


def test_protobuf_partial_success(gateway: Gateway) -> None:
    """A protobuf export with one span whose id is the wrong length: the answer's
    ``partial_success`` counts it, the good span is logged."""
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    trace_id = uuid.uuid4().bytes
    for span_id in (b"\x0d" * 8, b"\x0e" * 3):
        span = spans.add(trace_id=trace_id, span_id=span_id, name="chat",
                         start_time_unix_nano=T0, end_time_unix_nano=T0 + 5 * MS)  # fmt: skip
        for key, value in CLAUDE.items():
            attribute = span.attributes.add(key=key)
            if isinstance(value, int):
                attribute.value.int_value = value
            else:
                attribute.value.string_value = value
    response = httpx.post(
        gateway.server.url + "/v1/traces", content=request.SerializeToString(),
        headers={**gateway.auth, "content-type": "application/x-protobuf"},
    )  # fmt: skip
    assert response.status_code == 200
    answer = ExportTraceServiceResponse()
    answer.ParseFromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "span_id must be 8 bytes" in answer.partial_success.error_message
    row = gateway.record(trace_id.hex(), "0d" * 8)
    assert row["delay_ms"] == 5 and row["completion_tokens"] == 8
