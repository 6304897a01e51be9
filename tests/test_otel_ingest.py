"""OTLP decoding and span mapping, piece by piece: encodings and limits, which spans become
records, the attribute conventions read (usage, provider, content in every generation of the
GenAI conventions and OpenLLMetry's), sessions and paths. The end-to-end path (real SDK,
real gateway, query API) is tests/test_otel_e2e.py."""

from __future__ import annotations

import base64
import gzip
import zlib
from pathlib import Path
from typing import Any

import orjson
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gateway.ingest.access import Caller
from gateway.ingest.logged import logged_capture
from gateway.ingest.otel import map_spans, provider_of, span_kind, usage_of
from gateway.ingest.otel_content import chat_content
from gateway.ingest.otlp import (
    BodyError,
    Decoded,
    OtelSpan,
    SpanEvent,
    decode,
    decode_json,
    decode_protobuf,
    decompress,
)
from logging_pipeline.estimate import TokenEstimator
from logging_pipeline.record import build_record
from logging_pipeline.schema import INSERT_COLUMNS
from providers.registry import Registry

TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER = Caller("org-1", "key-1", "/v1/traces")
START = 1_780_000_000_000_000_000


def _span(span_id: str = "b7ad6b7169203331", parent: str = "", name: str = "chat",
          events: list[SpanEvent] | None = None, **attributes: Any) -> OtelSpan:  # fmt: skip
    return OtelSpan(
        trace_id=TRACE, span_id=span_id, parent_span_id=parent, name=name, kind=3,
        start_ns=START, end_ns=START + 500_000_000, attributes=attributes,
        events=events or [], resource={"service.name": "svc"},
    )  # fmt: skip


def _json_span(**overrides: Any) -> dict[str, Any]:
    span = {
        "traceId": TRACE, "spanId": "b7ad6b7169203331", "name": "chat", "kind": 3,
        "startTimeUnixNano": str(START), "endTimeUnixNano": START + 10,
        "attributes": [{"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}}],
        "status": {"code": 0},
    }  # fmt: skip
    span.update(overrides)
    return span


def _body(*spans: Any) -> bytes:
    return orjson.dumps({"resourceSpans": [{"scopeSpans": [{"spans": list(spans)}]}]})


def test_decompression_is_bounded() -> None:
    data = b"x" * 10_000
    assert decompress(gzip.compress(data), "gzip", 10_000) == data
    assert decompress(gzip.compress(data) + gzip.compress(data), "gzip", 20_000) == data * 2
    assert decompress(zlib.compress(data), "deflate", 10_000) == data
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert decompress(raw.compress(data) + raw.flush(), "deflate", 10_000) == data
    assert decompress(data, None, 1) == data  # not compressed: the read limit applies
    with pytest.raises(BodyError) as bomb:
        decompress(gzip.compress(b"\0" * 10_000_000), "gzip", 1_000_000)
    assert bomb.value.status == 413
    with pytest.raises(BodyError) as truncated:
        decompress(gzip.compress(data)[:-12], "gzip", 10_000)
    assert truncated.value.status == 400
    with pytest.raises(BodyError) as unknown:
        decompress(data, "br", 10_000)
    assert unknown.value.status == 415


def test_json_spans_fail_alone() -> None:
    b64_trace = base64.b64encode(bytes.fromhex(TRACE)).decode()
    decoded = decode_json(
        _body(
            _json_span(),
            _json_span(
                traceId=b64_trace,
                spanId="c" * 16,
                kind="SPAN_KIND_CLIENT",
                status={"code": "STATUS_CODE_ERROR", "message": "boom"},
            ),
            _json_span(spanId="short"),
            _json_span(startTimeUnixNano="soon"),
            _json_span(attributes=[{"key": "k", "value": {"mystery": 1}}]),
            _json_span(attributes=[{"key": "big", "value": {"stringValue": "x" * 5000}}]),
            "not a span",
        ),
        max_span_bytes=4096,
    )
    assert [s.span_id for s in decoded.spans] == ["b7ad6b7169203331", "c" * 16]
    assert decoded.spans[1].trace_id == TRACE and decoded.spans[1].status_code == 2
    assert decoded.spans[1].status_message == "boom" and decoded.spans[1].kind == 3
    assert decoded.spans[0].attributes == {"gen_ai.request.model": "gpt-4o"}
    assert decoded.rejected == 5
    message = decoded.error_message()
    assert message.startswith("5 span(s) rejected") and "GATEWAY_OTEL_MAX_SPAN_BYTES" in message


def test_json_values_and_snake_case_names() -> None:
    value = {"kvlistValue": {"values": [
        {"key": "list", "value": {"arrayValue": {"values": [{"intValue": "7"},
                                                            {"doubleValue": 1.5}]}}},
        {"key": "flag", "value": {"boolValue": True}},
        {"key": "raw", "value": {"bytesValue": "AAE="}},
    ]}}  # fmt: skip
    span = {
        "trace_id": TRACE, "span_id": "b7ad6b7169203331", "name": "s",
        "start_time_unix_nano": START, "attributes": [{"key": "v", "value": value}],
        "events": [{"name": "e", "time_unix_nano": str(START), "attributes": []}],
    }  # fmt: skip
    decoded = decode_json(_body(span), 10_000)
    assert decoded.spans[0].attributes["v"] == {"list": [7, 1.5], "flag": True, "raw": "AAE="}
    assert decoded.spans[0].events[0].name == "e" and decoded.spans[0].end_ns == 0
    deep: dict[str, Any] = {"stringValue": "x"}
    for _ in range(20):
        deep = {"arrayValue": {"values": [deep]}}
    nested = decode_json(_body(_json_span(attributes=[{"key": "d", "value": deep}])), 10_000)
    assert nested.rejected == 1 and "nested deeper" in nested.reasons[0]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b"{", "application/json", 400),
        (b"[]", "application/json", 400),
        (b"{}", "application/json", 400),
        (b'{"resourceSpans": 3}', "application/json", 400),
        (b"\xff\xff", "application/x-protobuf", 400),
        (b"", "text/plain", 415),
    ],
)
def test_unusable_bodies(body: bytes, content_type: str, status: int) -> None:
    with pytest.raises(BodyError) as error:
        decode(body, content_type, 10_000)
    assert error.value.status == status


def test_protobuf_spans_fail_alone() -> None:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    for span_id in (bytes.fromhex("b7ad6b7169203331"), b"\x01\x02\x03"):
        span = spans.add(trace_id=bytes.fromhex(TRACE), span_id=span_id, name="chat")
        span.start_time_unix_nano = START
        span.end_time_unix_nano = START - 5  # clocks disagree: latency 0, kept
    spans.add(trace_id=bytes.fromhex(TRACE), span_id=b"\x09" * 8, name="x" * 5000,
              start_time_unix_nano=START)  # fmt: skip
    decoded = decode_protobuf(request.SerializeToString(), 4096)
    assert [s.span_id for s in decoded.spans] == ["b7ad6b7169203331"]
    assert decoded.spans[0].end_ns == START
    assert decoded.rejected == 2 and "span_id must be 8 bytes" in decoded.reasons[0]


@pytest.mark.parametrize(
    ("attributes", "kind"),
    [
        ({"gen_ai.operation.name": "chat"}, "llm"),
        ({"llm.request.type": "chat", "gen_ai.request.model": "gpt-4o"}, "llm"),
        ({"gen_ai.usage.input_tokens": 3}, "llm"),
        ({"gen_ai.operation.name": "text_completion"}, "completion"),
        ({"gen_ai.operation.name": "embeddings"}, "embedding"),
        ({"llm.request.type": "embedding"}, "embedding"),
        ({"gen_ai.operation.name": "execute_tool"}, "tool"),
        ({"traceloop.span.kind": "tool"}, "tool"),
        ({"db.system": "pinecone", "db.operation": "query"}, "vector_db"),
        ({"gen_ai.operation.name": "retrieval"}, "vector_db"),
        # An agent's or workflow's totals would count its LLM calls' tokens twice.
        ({"gen_ai.operation.name": "invoke_agent", "gen_ai.usage.input_tokens": 9}, None),
        ({"traceloop.span.kind": "workflow", "gen_ai.request.model": "gpt-4o"}, None),
        ({"http.request.method": "POST"}, None),
    ],
)
def test_which_spans_become_records(attributes: dict[str, Any], kind: str | None) -> None:
    assert span_kind(_span(**attributes)) == kind


def test_usage_conventions() -> None:
    assert usage_of({}) is None
    assert usage_of({"llm.usage.total_tokens": 30, "gen_ai.usage.completion_tokens": 10}) == {
        "prompt_tokens": 20, "completion_tokens": 10, "cache_read_tokens": 0,
        "cache_write_tokens": 0, "reasoning_tokens": 0,
    }  # fmt: skip
    # Input including the cache (the conventions' rule) is kept; input without it (larger
    # cache traffic than input: Anthropic's own counts) gets it added.
    inclusive = usage_of({"gen_ai.usage.input_tokens": 100,
                          "gen_ai.usage.cache_read.input_tokens": 60})  # fmt: skip
    assert inclusive is not None and inclusive["prompt_tokens"] == 100
    exclusive = usage_of({
        "gen_ai.usage.input_tokens": 10, "gen_ai.usage.cache_read_input_tokens": 200,
        "gen_ai.usage.cache_creation_input_tokens": 50, "gen_ai.usage.output_tokens": 40,
        "gen_ai.usage.reasoning.output_tokens": 25,
    })  # fmt: skip
    assert exclusive == {
        "prompt_tokens": 260, "completion_tokens": 40, "cache_read_tokens": 200,
        "cache_write_tokens": 50, "reasoning_tokens": 25,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("system", "provider"),
    [("openai", "openai"), ("OpenAI", "openai"), ("aws.bedrock", "bedrock"),
     ("az.ai.openai", "azure"), ("gcp.gemini", "google-ai-studio"),
     ("gcp.vertex_ai", "vertex"), ("mistral_ai", "mistral"), ("x_ai", "xai"),
     ("Anthropic", "anthropic"), ("Some_New AI", "some-new-ai")],
)  # fmt: skip
def test_provider_names(system: str, provider: str) -> None:
    assert provider_of({"gen_ai.provider.name": system}) == provider
    assert provider_of({"gen_ai.system": system}) == provider


def test_indexed_tool_calls_and_tool_messages() -> None:
    span = _span(**{
        "gen_ai.prompt.0.role": "user", "gen_ai.prompt.0.content": "weather?",
        "gen_ai.prompt.1.role": "assistant",
        "gen_ai.prompt.1.tool_calls.0.id": "call_1",
        "gen_ai.prompt.1.tool_calls.0.name": "weather",
        "gen_ai.prompt.1.tool_calls.0.arguments": '{"city": "Oslo"}',
        "gen_ai.prompt.2.role": "tool", "gen_ai.prompt.2.tool_call_id": "call_1",
        "gen_ai.prompt.2.content": "sunny",
        "gen_ai.completion.0.role": "assistant", "gen_ai.completion.0.content": "Sunny.",
        "gen_ai.completion.0.finish_reason": "stop",
    })  # fmt: skip
    messages, choices = chat_content(span)
    assert messages[1]["tool_calls"] == [{
        "id": "call_1", "type": "function",
        "function": {"name": "weather", "arguments": '{"city": "Oslo"}'},
    }]  # fmt: skip
    assert messages[2] == {"role": "tool", "content": "sunny", "tool_call_id": "call_1"}
    assert choices == [{"index": 0, "finish_reason": "stop",
                        "message": {"role": "assistant", "content": "Sunny."}}]  # fmt: skip


def test_content_from_events() -> None:
    older = _span(events=[
        SpanEvent("gen_ai.content.prompt", START,
                  {"gen_ai.prompt": '[{"role": "user", "content": "hi"}]'}),
        SpanEvent("gen_ai.content.completion", START,
                  {"gen_ai.completion": '[{"role": "assistant", "content": "yo"}]'}),
    ])  # fmt: skip
    assert chat_content(older) == (
        [{"role": "user", "content": "hi"}],
        [{"index": 0, "finish_reason": None, "message": {"role": "assistant", "content": "yo"}}],
    )
    per_message = _span(events=[
        SpanEvent("gen_ai.system.message", START, {"content": "be nice"}),
        SpanEvent("gen_ai.user.message", START, {"gen_ai.event.content": '{"content": "hi"}'}),
        SpanEvent("gen_ai.choice", START, {"index": 0, "finish_reason": "stop",
                                           "message": '{"content": "hello"}'}),
    ])  # fmt: skip
    messages, choices = chat_content(per_message)
    assert messages == [{"role": "system", "content": "be nice"},
                        {"role": "user", "content": "hi"}]  # fmt: skip
    assert choices[0]["message"] == {"role": "assistant", "content": "hello"}
    details = _span(events=[SpanEvent("gen_ai.client.inference.operation.details", START, {
        "gen_ai.input.messages": [{"role": "user", "parts": [
            {"type": "text", "content": "look"},
            {"type": "uri", "modality": "image", "uri": "https://x/cat.png"}]}],
        "gen_ai.output.messages": [{"role": "assistant", "parts": [
            {"type": "tool_call", "id": "c1", "name": "zoom", "arguments": {"x": 2}}]}],
    })])  # fmt: skip
    messages, choices = chat_content(details)
    assert messages[0]["content"][1] == {"type": "image_url",
                                         "image_url": {"url": "https://x/cat.png"}}  # fmt: skip
    assert choices[0]["message"]["tool_calls"][0]["function"] == {
        "name": "zoom", "arguments": '{"x":2}'}  # fmt: skip
    assert chat_content(_span(**{"gen_ai.request.model": "gpt-4o"})) == ([], [])


def test_sessions_paths_and_labels() -> None:
    root = _span("a" * 16, name="agent")
    middle = _span("b" * 16, parent="a" * 16, name="step/1")
    llm = _span("c" * 16, parent="b" * 16, name="chat", **{
        "gen_ai.operation.name": "chat", "session.id": "s-1", "enduser.id": "eve",
        "traceloop.association.properties.Helicone-Omit-Response": "true",
        "traceloop.association.properties.helicone-property-Tier": "gold",
    })  # fmt: skip
    orphan = _span("d" * 16, parent="f" * 16, name="late", **{"gen_ai.operation.name": "chat"})
    loop = _span("e" * 16, parent="e" * 16, name="self", **{"gen_ai.operation.name": "chat"})
    decoded = Decoded(spans=[root, middle, llm, orphan, loop])
    mapped = map_spans(decoded, CALLER)
    assert mapped.dropped == 2 and decoded.rejected == 0
    by_path = {c.properties["Helicone-Session-Path"]: c for c in mapped.calls}
    assert set(by_path) == {"/agent/step-1/chat", "/late", "/self"}
    call = by_path["/agent/step-1/chat"]
    assert call.properties["Helicone-Session-Id"] == "s-1"
    assert call.properties["tier"] == "gold" and call.user_id == "eve"  # lower-cased, as proxied
    assert call.omit_response and not call.omit_request
    assert by_path["/late"].properties["Helicone-Session-Id"] == (
        "0af76519-16cd-43dd-8448-eb211c80319c"
    )
    assert call.properties["Helicone-Session-Name"] == "svc"


def _row(span: OtelSpan, tmp_path: Path) -> tuple[dict[str, Any], Any]:
    [call] = map_spans(Decoded(spans=[span]), CALLER).calls
    record = build_record(logged_capture(call), Registry.load(), TokenEstimator(tmp_path))
    row = dict(zip(INSERT_COLUMNS, record.row, strict=True))
    return row, orjson.loads(record.document) if record.document else None


def test_a_streamed_span_is_stored_as_a_stream(tmp_path: Path) -> None:
    span = _span(**{
        "gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.stream": True, "gen_ai.response.time_to_first_chunk": 0.125,
        "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 4,
        "gen_ai.completion.0.content": "hey", "gen_ai.completion.0.finish_reason": "stop",
    })  # fmt: skip
    row, document = _row(span, tmp_path)
    assert (row["latency"], row["time_to_first_token"]) == (500, 125)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (12, 4) and row["cost"] > 0
    final = document["response"]["reconstructed"]
    assert final["choices"][0]["message"]["content"] == "hey"


def test_tool_and_vector_records_have_no_tokens(tmp_path: Path) -> None:
    vector, document = _row(_span(**{
        "db.system": "chroma", "db.operation": "query", "db.vector.query.top_k": 3,
        "gen_ai.retrieval.query.text": "cats",
    }), tmp_path)  # fmt: skip
    assert vector["model"] == "vector_db:chroma" and vector["prompt_tokens"] == 0
    assert not vector["tokens_estimated"] and vector["cost"] == 0
    assert vector["cost_known"]  # not an LLM call: a known 0, not "cost not supported"
    tool, _ = _row(_span(**{"gen_ai.operation.name": "execute_tool",
                            "gen_ai.tool.name": "calculator"}), tmp_path)  # fmt: skip
    assert (tool["model"], tool["cost"], tool["cost_known"]) == ("tool:calculator", 0, True)
    paid, _ = _row(_span(**{"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "web",
                            "gen_ai.usage.cost": 0.01}), tmp_path)  # fmt: skip
    assert (paid["cost"], paid["cost_known"]) == (10_000_000, True)  # a paid tool's own cost
    assert document["request"] == {"_type": "vector_db", "operation": "search", "text": "cats",
                                   "topK": 3, "databaseName": "chroma"}  # fmt: skip
    embedding, document = _row(_span(**{
        "gen_ai.operation.name": "embeddings", "gen_ai.request.model": "text-embedding-3-small",
        "gen_ai.usage.input_tokens": 8, "gen_ai.prompt.0.content": "a cat",
    }), tmp_path)  # fmt: skip
    assert embedding["prompt_tokens"] == 8 and embedding["cost"] > 0
    assert document["request"]["input"] == "a cat"


def test_a_reported_cost_is_the_record_cost(tmp_path: Path) -> None:
    """``gen_ai.usage.cost`` (USD) wins over the price table, as a provider-reported cost does
    in Helicone's calculation; one that is not a number >= 0 is ignored."""
    attributes = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o-mini",
                  "gen_ai.usage.input_tokens": 12, "gen_ai.usage.output_tokens": 4}
    priced, _ = _row(_span(**attributes), tmp_path)
    assert priced["cost"] > 0 and priced["cost"] != 2_500_000
    reported, _ = _row(_span(**attributes, **{"gen_ai.usage.cost": 0.0025}), tmp_path)
    assert (reported["cost"], reported["cost_known"]) == (2_500_000, True)
    as_text, _ = _row(_span(**attributes, **{"gen_ai.usage.cost": "0.0025"}), tmp_path)
    assert as_text["cost"] == 2_500_000
    unknown = {**attributes, "gen_ai.request.model": "in-house-model-7"}
    row, _ = _row(_span(**unknown, **{"gen_ai.usage.cost": 0.5}), tmp_path)
    assert (row["cost"], row["cost_known"]) == (500_000_000, True)
    row, _ = _row(_span(**unknown, **{"gen_ai.usage.cost": -1}), tmp_path)
    assert (row["cost"], row["cost_known"]) == (0, False)  # ignored: no price, no cost
