"""The manual logger's body → the record the writer builds (gateway/ingest/manual.py).

Each documented body (the cURL page's examples, what helicone-helpers and @helicone/helpers
post) goes through :func:`parse_manual_log` and the writer's own :func:`build_record`, and
the row is checked: timing, precedence of meta over headers over response headers, every
documented usage format, streams rebuilt from SSE and from JSON lines, custom events, model
and provider, cost. Bad bodies are :class:`ManualLogError` naming the field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.ingest.logged import logged_capture
from gateway.ingest.manual import META_KEY, ManualLog, ManualLogError, parse_manual_log
from logging_pipeline.estimate import TokenEstimator
from logging_pipeline.record import build_record
from logging_pipeline.schema import INSERT_COLUMNS
from providers.registry import Registry
from providers.spec import PROVIDERS

NOW = 1_780_000_100.0
TIMING = {
    "startTime": {"seconds": 1677721748, "milliseconds": 123},
    "endTime": {"seconds": 1677721749, "milliseconds": 456},
}
REQUEST_ID = "0190b4a4-1b2c-7def-8123-456789abcdef"


@pytest.fixture(scope="module")
def registry() -> Registry:
    return Registry.load()


def parse(body: Any, hint: str = "", headers: dict[str, str] | None = None) -> ManualLog:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return parse_manual_log(
        raw, hint=hint, headers=headers or {}, organization_id="org-1", api_key_id="key-1",
        path="/custom/v1/log", table=PROVIDERS, now=NOW,
    )  # fmt: skip


def row_of(log: ManualLog, registry: Registry, tmp_path: Path) -> dict[str, Any]:
    capture = logged_capture(log.call)
    record = build_record(capture, registry, TokenEstimator(tmp_path))
    row = dict(zip(INSERT_COLUMNS, record.row, strict=True))
    row["document"] = orjson.loads(record.document) if record.document else None
    return row


def body(response: dict[str, Any] | None = None, *, request: dict[str, Any] | None = None,
         meta: dict[str, Any] | None = None, text: str | None = None, **extra: Any
         ) -> dict[str, Any]:  # fmt: skip
    provider_response: dict[str, Any] = {"headers": {}, "status": 200}
    if response is not None:
        provider_response["json"] = response
    if text is not None:
        provider_response["textBody"] = text
    out: dict[str, Any] = {
        "providerRequest": {
            "url": "custom-model-nopath",
            "json": request if request is not None else {"model": "gpt-4o-mini"},
            "meta": meta or {},
        },
        "providerResponse": provider_response,
    }
    out.update(extra)
    return out


def test_the_documented_basic_example(registry: Registry, tmp_path: Path) -> None:
    example = body(
        {"id": "response-123", "choices": [{"message": {"role": "assistant", "content": "Hi"}}],
         "usage": {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18}},
        request={"model": "my-custom-model", "messages": [{"role": "user", "content": "Hello"}]},
        timing=TIMING,
    )  # fmt: skip
    row = row_of(parse(example), registry, tmp_path)
    assert row["request_created_at"] == datetime.fromtimestamp(1677721748.123, UTC)
    assert row["latency"] == 1333
    assert row["time_to_first_token"] is None
    assert (row["prompt_tokens"], row["completion_tokens"]) == (10, 8)
    assert row["model"] == "my-custom-model" and row["provider"] == "custom"
    assert row["status"] == 200 and not row["is_stream"] and not row["tokens_estimated"]
    assert row["request_path"] == "/custom/v1/log"
    assert row["document"]["request"]["messages"][0]["content"] == "Hello"
    assert row["document"]["response"]["id"] == "response-123"


def test_no_timing_is_now_for_both_ends(registry: Registry, tmp_path: Path) -> None:
    row = row_of(parse(body({"ok": True})), registry, tmp_path)
    assert row["request_created_at"] == datetime.fromtimestamp(NOW, UTC)
    assert row["latency"] == 0


def test_time_to_first_token_and_a_plain_text_stream(registry: Registry, tmp_path: Path) -> None:
    log = parse(body(request={"model": "my-streaming-model", "stream": True},
                     text="Once upon a time...", timing={**TIMING, "timeToFirstToken": 150}))
    row = row_of(log, registry, tmp_path)
    assert row["is_stream"] and row["time_to_first_token"] == 150
    assert row["document"]["response"]["stream"] == "Once upon a time..."
    # No usage: both sides estimated, the streamed text counted as the completion.
    count = TokenEstimator(tmp_path).count
    assert row["tokens_estimated"] and row["completion_tokens"] == count("Once upon a time...") > 0


def test_the_python_string_response_example(registry: Registry, tmp_path: Path) -> None:
    """helicone-helpers' documented send_log with a string response and
    ``time_to_first_token_ms=150``, not streamed: the time to first token is kept (the
    timing's ``timeToFirstToken`` is recorded whatever the call), and the answer's text is
    counted for the estimate."""
    joke = "Why did the chicken cross the road? To get to the other side!"
    log = parse(body(request={"model": "custom-model", "prompt": "Tell me a joke"},
                     text=joke, timing={**TIMING, "timeToFirstToken": 150}))  # fmt: skip
    row = row_of(log, registry, tmp_path)
    assert not row["is_stream"] and row["time_to_first_token"] == 150
    assert row["document"]["response"] == joke
    count = TokenEstimator(tmp_path).count
    assert row["tokens_estimated"] and row["completion_tokens"] == count(joke) > 0
    assert row["prompt_tokens"] == count("Tell me a joke")
    assert row_of(parse(body(request={"model": "m"}, text=joke, timing=TIMING)), registry,
                  tmp_path)["time_to_first_token"] is None  # fmt: skip


def test_a_reported_cost_wins_and_zero_falls_back(registry: Registry, tmp_path: Path) -> None:
    """``usage.cost`` (OpenRouter's, USD) is the record's cost, over the price table (Helicone
    prefers a provider-reported cost); 0 or none: the table's; no price and none: unknown."""
    usage = {"prompt_tokens": 10, "completion_tokens": 5}
    priced = row_of(parse(body({"usage": usage})), registry, tmp_path)
    assert priced["cost"] > 0 and priced["cost_known"]
    reported = row_of(parse(body({"usage": {**usage, "cost": 0.0042}})), registry, tmp_path)
    assert (reported["cost"], reported["cost_known"]) == (4_200_000, True)
    zero = row_of(parse(body({"usage": {**usage, "cost": 0}})), registry, tmp_path)
    assert zero["cost"] == priced["cost"]
    unpriced = {"model": "in-house-7"}
    row = row_of(parse(body({"usage": {**usage, "cost": 0.01}}, request=unpriced)), registry,
                 tmp_path)  # fmt: skip
    assert (row["cost"], row["cost_known"]) == (10_000_000, True)
    row = row_of(parse(body({"usage": usage}, request=unpriced)), registry, tmp_path)
    assert (row["cost"], row["cost_known"]) == (0, False)  # "cost not supported"
    row = row_of(parse(body({"usage": {**usage, "cost": "free"}}, request=unpriced)),
                 registry, tmp_path)  # fmt: skip
    assert row["cost_known"] is False  # not a number: ignored


def test_meta_wins_over_headers_which_win_over_response_headers(
    registry: Registry, tmp_path: Path
) -> None:
    sent = body({"x": 1}, meta={
        "Helicone-User-Id": "meta-user", "Helicone-Property-Tier": "meta",
        "Helicone-Session-Id": "s-1", "metaKey1": "metaValue1",
    })  # fmt: skip
    sent["providerResponse"]["headers"] = {
        "Helicone-User-Id": "response-user", "Helicone-Property-Tier": "response",
        "Helicone-Property-Env": "response", "Helicone-Property-Only": "r",
        "Helicone-Request-Id": REQUEST_ID,
    }  # fmt: skip
    headers = {"helicone-property-tier": "header", "helicone-property-env": "header",
               "helicone-session-path": "/a/b", "helicone-model-override": "gpt-4o"}
    log = parse(sent, headers=headers)
    assert log.call.request_id == REQUEST_ID
    assert log.call.user_id == "meta-user"
    assert log.call.properties == {
        "tier": "meta", "env": "header", "only": "r",
        "Helicone-Session-Id": "s-1", "Helicone-Session-Path": "/a/b",
    }  # fmt: skip
    row = row_of(log, registry, tmp_path)
    assert row["model"] == "gpt-4o" and row["model_override"] == "gpt-4o"
    # Meta keys that are not Helicone-* stay with the stored request only.
    assert row["document"]["request"][META_KEY] == {"metaKey1": "metaValue1"}
    assert "metaKey1" not in row["properties"]


def test_an_invalid_request_id_is_replaced() -> None:
    log = parse(body({"x": 1}, meta={"Helicone-Request-Id": "not-a-uuid"}))
    assert log.call.request_id != "not-a-uuid" and len(log.call.request_id) == 36


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ({"usage": {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}}, (10, 20)),
        ({"usage": {"input_tokens": 10, "output_tokens": 20}}, (10, 20)),
        ({"usageMetadata": {"promptTokenCount": 10, "candidatesTokenCount": 20,
                            "totalTokenCount": 30}}, (10, 20)),
        ({"prompt_token_count": 10, "generation_token_count": 20}, (10, 20)),
        ({"usage": {"inputTokens": 10, "outputTokens": 20, "totalTokens": 30}}, (10, 20)),
    ],
    ids=["openai", "anthropic", "google", "alternative", "bedrock"],
)
@pytest.mark.parametrize("hint", ["", "openai", "anthropic", "google-ai-studio"])
def test_every_documented_usage_format_on_every_path(
    registry: Registry, tmp_path: Path, response: dict[str, Any], expected: tuple[int, int],
    hint: str,
) -> None:  # fmt: skip
    row = row_of(parse(body(response), hint=hint), registry, tmp_path)
    assert (row["prompt_tokens"], row["completion_tokens"]) == expected
    assert not row["tokens_estimated"]


def test_cached_and_reasoning_details(registry: Registry, tmp_path: Path) -> None:
    openai = {"usage": {
        "prompt_tokens": 100, "completion_tokens": 50,
        "prompt_tokens_details": {"cached_tokens": 40, "audio_tokens": 5},
        "completion_tokens_details": {"reasoning_tokens": 30, "audio_tokens": 2},
    }}  # fmt: skip
    row = row_of(parse(body(openai), hint="openai"), registry, tmp_path)
    assert (row["prompt_cache_read_tokens"], row["reasoning_tokens"]) == (40, 30)
    assert (row["prompt_audio_tokens"], row["completion_audio_tokens"]) == (5, 2)
    anthropic = {"type": "message", "model": "claude-sonnet-4-5", "usage": {
        "input_tokens": 10, "output_tokens": 20,
        "cache_creation_input_tokens": 30, "cache_read_input_tokens": 40,
    }}  # fmt: skip
    for hint in ("", "anthropic"):
        log = parse(body(anthropic, request={"model": "claude-sonnet-4-5"}), hint=hint)
        row = row_of(log, registry, tmp_path)
        assert (row["prompt_tokens"], row["completion_tokens"]) == (80, 20)
        assert (row["prompt_cache_write_tokens"], row["prompt_cache_read_tokens"]) == (30, 40)
        assert row["provider"] == "anthropic" and row["wire_format"] == "anthropic"
        assert row["cost"] > 0 and row["cost_known"]
    gemini = {"modelVersion": "gemini-2.5-flash", "usageMetadata": {
        "promptTokenCount": 100, "cachedContentTokenCount": 60, "candidatesTokenCount": 10,
        "thoughtsTokenCount": 5,
    }}  # fmt: skip
    row = row_of(parse(body(gemini, request={}), hint="google-ai-studio"), registry, tmp_path)
    assert (row["prompt_tokens"], row["completion_tokens"]) == (100, 15)
    assert (row["prompt_cache_read_tokens"], row["reasoning_tokens"]) == (60, 5)
    assert row["model"] == "gemini-2.5-flash" and row["cost"] > 0


def test_no_usage_is_estimated_like_a_proxied_request(registry: Registry, tmp_path: Path) -> None:
    answer = {"choices": [{"message": {"role": "assistant", "content": "Hello there friend"}}]}
    row = row_of(parse(body(answer, request={"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": "Hello"}]})), registry, tmp_path)  # fmt: skip
    assert row["tokens_estimated"] and row["completion_tokens"] > 0


CHUNKS = [
    {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
     "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]},
    {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
     "choices": [{"index": 0, "delta": {"content": "lo"}, "finish_reason": "stop"}]},
    {"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini", "choices": [],
     "usage": {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}},
]  # fmt: skip
STREAM_REQUEST = {"model": "gpt-4o-mini", "stream": True,
                  "messages": [{"role": "user", "content": "hi"}]}  # fmt: skip


@pytest.mark.parametrize(
    "text",
    [
        "\n".join(orjson.dumps(c).decode() for c in CHUNKS),  # Python: "\n".join(chunk json)
        "".join(orjson.dumps(c).decode() + "\n" for c in CHUNKS),  # TypeScript builder
        "".join(f"data: {orjson.dumps(c).decode()}\n\n" for c in CHUNKS) + "data: [DONE]\n\n",
        "Error: boom\n    at x (y.js:1:2)\n\n"
        + "".join(orjson.dumps(c).decode() + "\n" for c in CHUNKS),  # setError
    ],
    ids=["python-lines", "typescript-lines", "sse", "error-then-lines"],
)
def test_streams_are_rebuilt_as_the_proxy_does(
    registry: Registry, tmp_path: Path, text: str
) -> None:
    log = parse(body(request=STREAM_REQUEST, text=text, timing={**TIMING, "timeToFirstToken": 40}),
                hint="openai")  # fmt: skip
    row = row_of(log, registry, tmp_path)
    assert row["is_stream"] and row["time_to_first_token"] == 40
    assert (row["prompt_tokens"], row["completion_tokens"]) == (9, 2)
    assert not row["tokens_estimated"] and row["cost"] > 0
    reconstructed = row["document"]["response"]["reconstructed"]
    assert reconstructed["choices"][0]["message"]["content"] == "Hello"


def test_the_python_chunks_recipe_and_an_anthropic_stream(
    registry: Registry, tmp_path: Path
) -> None:
    row = row_of(parse(body({"chunks": CHUNKS, "time_to_first_token_ms": 12.0},
                            request=STREAM_REQUEST, timing=TIMING), hint="openai"),
                 registry, tmp_path)  # fmt: skip
    assert row["is_stream"] and (row["prompt_tokens"], row["completion_tokens"]) == (9, 2)
    assert row["time_to_first_token"] == 12
    # OpenAI-shaped chunks read as OpenAI's whatever provider the model's name guesses.
    claude = [{**c, "model": "claude-sonnet-4-5"} for c in CHUNKS]
    text = "".join(orjson.dumps(c).decode() + "\n" for c in claude)
    log = parse(body(request={"model": "claude-sonnet-4-5", "stream": True}, text=text))
    row = row_of(log, registry, tmp_path)
    assert (row["provider"], row["wire_format"]) == ("anthropic", "openai")
    assert (row["prompt_tokens"], row["completion_tokens"]) == (9, 2) and row["cost"] > 0
    events = [
        {"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant",
         "model": "claude-sonnet-4-5", "content": [],
         "usage": {"input_tokens": 12, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Yo"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
         "usage": {"output_tokens": 7}},
        {"type": "message_stop"},
    ]  # fmt: skip
    text = "".join(orjson.dumps(e).decode() + "\n" for e in events)
    for hint in ("", "anthropic"):
        log = parse(body(request={"model": "claude-sonnet-4-5", "stream": True}, text=text),
                    hint=hint)  # fmt: skip
        row = row_of(log, registry, tmp_path)
        assert row["wire_format"] == "anthropic" and row["is_stream"]
        assert (row["prompt_tokens"], row["completion_tokens"]) == (12, 7)
        assert row["provider"] == "anthropic" and row["cost"] > 0


def test_a_json_answer_sent_as_text_is_read_as_json(registry: Registry, tmp_path: Path) -> None:
    answer = {"model": "gpt-4o-mini", "choices": [], "usage": {"prompt_tokens": 3,
              "completion_tokens": 4}}  # fmt: skip
    row = row_of(parse(body({}, text=orjson.dumps(answer).decode())), registry, tmp_path)
    assert not row["is_stream"] and (row["prompt_tokens"], row["completion_tokens"]) == (3, 4)
    assert row["document"]["response"]["model"] == "gpt-4o-mini"


@pytest.mark.parametrize(
    ("request_json", "model"),
    [
        ({"_type": "tool", "toolName": "calculator", "input": {"expression": "2 + 2"}},
         "tool:calculator"),
        ({"_type": "vector_db", "operation": "search", "text": "pasta", "topK": 3},
         "vector_db:search"),
        ({"_type": "data", "name": "user_query", "query": "SELECT 1"}, "data:user_query"),
    ],
)  # fmt: skip
def test_custom_events(
    registry: Registry, tmp_path: Path, request_json: dict[str, Any], model: str
) -> None:
    log = parse(body({"result": 4, "_type": request_json["_type"]}, request=request_json))
    assert log.event_type == request_json["_type"]
    row = row_of(log, registry, tmp_path)
    assert row["model"] == model
    assert (row["prompt_tokens"], row["completion_tokens"], row["cost"]) == (0, 0, 0)
    assert row["cost_known"]  # not an LLM call: a known 0, not "cost not supported"
    assert not row["tokens_estimated"]
    assert row["document"]["request"] == request_json


@pytest.mark.parametrize(
    ("extra", "url", "model", "provider"),
    [
        ({"provider": "GOOGLE"}, "custom-model-nopath", "x", "google-ai-studio"),
        ({}, "https://api.groq.com/openai/v1/chat/completions", "llama", "groq"),
        ({}, "https://my.openai.azure.com/openai/deployments/d/chat", "x", "azure"),
        ({}, "custom-model-nopath", "claude-3-opus-20240229", "anthropic"),
        ({}, "custom-model-nopath", "my-model", "custom"),
    ],
)
def test_provider_from_body_url_and_model(
    extra: dict[str, Any], url: str, model: str, provider: str
) -> None:
    sent = body({"x": 1}, request={"model": model}, **extra)
    sent["providerRequest"]["url"] = url
    assert parse(sent).call.provider == provider


def test_hints_name_the_provider_and_status_is_kept(registry: Registry, tmp_path: Path) -> None:
    sent = body({"error": {"message": "overloaded"}}, request={"model": "claude-sonnet-4-5"})
    sent["providerResponse"]["status"] = 529
    log = parse(sent, hint="anthropic")
    row = row_of(log, registry, tmp_path)
    assert (row["provider"], row["status"], row["tokens_estimated"]) == ("anthropic", 529, False)
    sent["providerResponse"]["status"] = -3  # the SDKs' cancelled stream
    assert parse(sent).call.status == -3


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty"),
        (b"{", "not valid JSON"),
        (b"[]", "must be a JSON object, not an array"),
        (b"{}", "'providerRequest'"),
        (b'{"providerRequest": {"json": {}}}', "'providerResponse'"),
        (b'{"providerRequest": {}, "providerResponse": {}}', "'providerRequest.json'"),
        (b'{"providerRequest": {"json": []}, "providerResponse": {}}', "an object, not an array"),
        (b'{"providerRequest": {"json": {}, "meta": {"a": {}}}, "providerResponse": {}}',
         "'providerRequest.meta.a'"),
        (b'{"providerRequest": {"json": {}}, "providerResponse": {"status": "200"}}',
         "'providerResponse.status'"),
        (b'{"providerRequest": {"json": {}}, "providerResponse": {"status": 1e6}}',
         "out of range"),
        (b'{"providerRequest": {"json": {}}, "providerResponse": {"json": "x"}}', "textBody"),
        (b'{"providerRequest": {"json": {}}, "providerResponse": {"textBody": 5}}',
         "'providerResponse.textBody'"),
        (b'{"providerRequest": {"json": {}}, "providerResponse": {}, "timing": 5}', "'timing'"),
        (b'{"providerRequest": {"json": {}, "meta": {"Helicone-Property-X": "'
         + b"x" * 70_000 + b'"}}, "providerResponse": {}}', "exceed 65536 characters"),
        (b'{"providerRequest": {"json": {}}, "providerResponse": {}, "timing": {}}',
         "'timing.startTime'"),
        (b'{"providerRequest": {"json": {}}, "providerResponse": {}, "timing": {"startTime":'
         b' {"seconds": 1677721748123, "milliseconds": 0}, "endTime": {"seconds": 1}}}',
         "milliseconds sent by mistake"),
        (b'{"providerRequest": {"json": {}}, "providerResponse": {}, "timing": {"startTime":'
         b' {"seconds": 1, "milliseconds": 1e20}, "endTime": {"seconds": 1}}}', "year 5000"),
        (b'{"providerRequest": {"json": {}}, "providerResponse": {}, "timing": {"startTime":'
         b' {"seconds": 1, "milliseconds": 0}, "endTime": {"seconds": 2},'
         b' "timeToFirstToken": -1}}', "'timing.timeToFirstToken'"),
        (b'{"providerRequest": {"json": {"a": ' + b"[" * 200 + b"]" * 200 + b"}},"
         b' "providerResponse": {}}', "nest"),
    ],
)  # fmt: skip
def test_bad_bodies_are_refused_naming_the_problem(raw: bytes, message: str) -> None:
    with pytest.raises(ManualLogError, match=message if message != "nest" else None) as caught:
        parse(raw)
    if message == "nest":
        assert "deep" in str(caught.value) or "nest" in str(caught.value)


def test_text_that_only_looks_like_a_stream_stays_text(registry: Registry, tmp_path: Path) -> None:
    for text in (':) fine\n', '{"a": 1}\n{"b": 2}\n', 'Answer:\n{"name": "x"}\n'):
        row = row_of(parse(body({}, text=text)), registry, tmp_path)
        assert not row["is_stream"], text
        assert row["document"]["response"] == text


def test_gemini_json_lines_and_array_streams(registry: Registry, tmp_path: Path) -> None:
    chunks = [
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}}],
         "modelVersion": "gemini-2.5-flash"},
        {"candidates": [{"content": {"role": "model", "parts": [{"text": "lo"}]},
                         "finishReason": "STOP"}], "modelVersion": "gemini-2.5-flash",
         "usageMetadata": {"promptTokenCount": 6, "candidatesTokenCount": 2,
                           "totalTokenCount": 8}},
    ]  # fmt: skip
    lines = "".join(orjson.dumps(c).decode() + "\n" for c in chunks)
    for text in (lines, orjson.dumps(chunks).decode()):
        log = parse(body({}, request={"contents": []}, text=text), hint="google-ai-studio")
        row = row_of(log, registry, tmp_path)
        assert row["is_stream"] and row["wire_format"] == "gemini"
        assert (row["prompt_tokens"], row["completion_tokens"]) == (6, 2)
        assert row["model"] == "gemini-2.5-flash" and row["cost"] > 0
