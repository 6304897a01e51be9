"""The Gemini translation (providers/gemini), against golden files and the SDKs' own types.

Golden files live in tests/fixtures/gemini/{request,response,stream}/: each holds an input
and the expected output. Every Gemini request produced is validated with google-genai's types
(the emulator's checks: no unknown key, JSON mode), every Gemini answer in a fixture is a
``GenerateContentResponse`` google-genai reads, every chat completion and chunk is validated with
the openai SDK's models. ``UPDATE_GOLDEN=1`` rewrites the expected outputs (review the diff).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from google.genai import types
from openai.types import CreateEmbeddingResponse, ErrorObject
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from gateway.fetcher import Fetched, FetchError, GuardedFetcher
from gateway.translate import inline_image_urls, inlines_images
from providers.adapter import ChatStreamDecoder, TranslationError
from providers.formats import response_reader
from providers.gemini import (
    EFFORT_BUDGETS,
    FINISH_REASONS,
    GeminiAdapter,
    GeminiStreamDecoder,
    chat_to_gemini,
    embeddings_to_gemini,
    error_to_openai,
    gemini_to_chat,
    gemini_to_embeddings,
    model_from_path,
    stream_summary,
    usage_from_gemini,
)
from providers.usage import Usage
from tests.emulator.gemini_validation import check_types

FIXTURES = Path(__file__).parent / "fixtures" / "gemini"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
MODEL = "gemini-2.5-flash"


def _cases(kind: str) -> list[Path]:
    return sorted((FIXTURES / kind).glob("*.json"))


def _golden(path: Path, actual: Any) -> None:
    case = json.loads(path.read_text())
    if UPDATE:
        case["expected"] = actual
        path.write_text(json.dumps(case, indent=2, ensure_ascii=False) + "\n")
        return
    assert actual == case["expected"]


def assert_chunk(chunk: dict[str, Any]) -> None:
    if "error" in chunk:
        assert set(chunk) == {"error"}
        ErrorObject.model_validate(chunk["error"])
    else:
        ChatCompletionChunk.model_validate(chunk)


def translate(payload: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    path, body = chat_to_gemini(payload)
    check_types(body)
    return path, body


def base(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], **extra}


# --- requests ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", _cases("request"), ids=lambda p: p.stem)
def test_request_golden(path: Path) -> None:
    case = json.loads(path.read_text())
    request_path, body = translate(case["input"])
    _golden(path, {"path": request_path, "body": body})


def test_path_depends_on_streaming_and_refuses_a_model_that_leaves_it() -> None:
    assert translate(base())[0] == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert translate(base(model="models/gemini-2.5-flash", stream=True))[0] == (
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    for bad in ("../files/x", "a/b", "gemini:x", "", "a?b"):
        with pytest.raises(TranslationError) as caught:
            chat_to_gemini(base(model=bad))
        assert caught.value.param == "model"


def test_reasoning_effort_budgets_are_googles_mapping() -> None:
    assert EFFORT_BUDGETS == {"none": 0, "minimal": 128, "low": 1024, "medium": 8192,
                              "high": 24576}
    for effort, budget in EFFORT_BUDGETS.items():
        config = translate(base(reasoning_effort=effort))[1]["generationConfig"]
        expected = {"thinkingBudget": budget}
        if budget:
            expected["includeThoughts"] = True
        assert config["thinkingConfig"] == expected
    override = translate(base(reasoning_effort="low", reasoning_options={"budget_tokens": 300}))
    assert override[1]["generationConfig"]["thinkingConfig"]["thinkingBudget"] == 300
    assert "generationConfig" not in translate(base())[1]


def test_tool_choice_mapping() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    cases = {
        "auto": {"mode": "AUTO"},
        "none": {"mode": "NONE"},
        "required": {"mode": "ANY"},
    }
    for choice, config in cases.items():
        body = translate(base(tools=tools, tool_choice=choice))[1]
        assert body["toolConfig"] == {"functionCallingConfig": config}
    assert translate(base(tools=tools))[1]["tools"] == [
        {"functionDeclarations": [{"name": "f"}]}
    ]
    assert "toolConfig" not in translate(base(tool_choice="none"))[1]  # no tools: nothing


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"logprobs": True}, "logprobs"),
        ({"audio": {"voice": "alloy"}}, "audio"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"service_tier": "flex"}, "service_tier"),
        ({"frobnicate": 1}, "frobnicate"),
        ({"temperature": 2.5}, "temperature"),
        ({"stop": ["a", "b", "c", "d", "e", "f"]}, "stop"),
        ({"reasoning_effort": "extreme"}, "reasoning_effort"),
        ({"reasoning_effort": "none", "reasoning_options": {"budget_tokens": 10}},
         "reasoning_options"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}],
          "parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"tools": [{"type": "custom", "custom": {"name": "g"}}]}, "tools[0].type"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
         "response_format.json_schema.schema"),
        ({"safety_settings": {"category": "x"}}, "safety_settings"),
        ({"messages": [{"role": "user", "content": "x", "name": "bob"}]}, "messages[0].name"),
        ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages"),
        ({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]}]},
         "messages[0].content[0].image_url.url"),
        ({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/gif;base64,R0lG"}}]}]},
         "messages[0].content[0].image_url.url"),
        ({"messages": [{"role": "user", "content": [
            {"type": "file", "file": {"file_id": "file-1"}}]}]},
         "messages[0].content[0].file.file_id"),
        ({"messages": [{"role": "user", "content": "x"},
                       {"role": "tool", "tool_call_id": "nowhere", "content": "r"}]},
         "messages[1].tool_call_id"),
        ({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
          "function": {"name": "f", "arguments": "[1]"}}]}]},
         "messages[0].tool_calls[0].function.arguments"),
        ({"messages": [{"role": "assistant", "content": "x", "thinking_blocks": [
            {"type": "redacted_thinking", "data": "d"}]}]},
         "messages[0].thinking_blocks[0]"),
    ],
)
def test_inexpressible_requests_are_refused_naming_the_field(
    extra: dict[str, Any], param: str
) -> None:
    with pytest.raises(TranslationError) as caught:
        chat_to_gemini(base(**extra))
    assert caught.value.param == param


def test_neutral_and_identifying_values_are_accepted_and_not_sent() -> None:
    body = translate(base(
        n=1, logprobs=False, store=False, metadata={}, modalities=["text"], service_tier="auto",
        user="u", safety_identifier="s", prompt_cache_key="k", parallel_tool_calls=True,
    ))[1]
    assert body == {"contents": [{"role": "user", "parts": [{"text": "Hi"}]}]}


# --- whole answers ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", _cases("response"), ids=lambda p: p.stem)
def test_response_golden(path: Path) -> None:
    case = json.loads(path.read_text())
    types.GenerateContentResponse.model_validate_json(orjson.dumps(case["input"]))
    completion = gemini_to_chat(case["input"], created=1700000000)
    ChatCompletion.model_validate(completion)
    _golden(path, completion)


def test_every_safety_type_finish_reason_is_content_filter() -> None:
    for reason in types.FinishReason:
        mapped = FINISH_REASONS.get(reason.value, "stop")
        safety = any(word in reason.value for word in (
            "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED", "SPII", "ARMOR"))
        assert (mapped == "content_filter") == safety, reason
    assert FINISH_REASONS["MAX_TOKENS"] == "length"


def test_usage_rule_and_tolerance() -> None:
    usage = usage_from_gemini({
        "promptTokenCount": 100, "cachedContentTokenCount": 40, "toolUsePromptTokenCount": 10,
        "candidatesTokenCount": 7, "thoughtsTokenCount": 30, "totalTokenCount": 147,
    })
    assert usage == Usage(prompt_tokens=110, completion_tokens=37, cache_read_tokens=40,
                          reasoning_tokens=30)
    assert usage_from_gemini({"promptTokenCount": -3, "cachedContentTokenCount": 9,
                              "candidatesTokenCount": "7"}) == Usage()
    assert usage_from_gemini({"unrelated": 1}) is None
    assert usage_from_gemini([1]) is None


# --- streams ----------------------------------------------------------------------------------


def _decode(case: dict[str, Any]) -> tuple[list[list[Any]], list[Any], GeminiStreamDecoder]:
    decoder = GeminiStreamDecoder(include_usage=case["include_usage"], created=case["created"])
    per_event = [decoder.feed(None, orjson.dumps(e)) for e in case["events"]]
    return per_event, decoder.close(), decoder


@pytest.mark.parametrize("path", _cases("stream"), ids=lambda p: p.stem)
def test_stream_golden(path: Path) -> None:
    case = json.loads(path.read_text())
    for event in case["events"]:
        if "error" not in event:
            types.GenerateContentResponse.model_validate_json(orjson.dumps(event))
    per_event, closing, decoder = _decode(case)
    for chunk in [c for chunks in per_event for c in chunks] + closing:
        assert_chunk(chunk)
    usage = decoder.usage
    _golden(path, {"per_event": per_event, "close": closing,
                   "usage": usage._asdict() if usage is not None else None})


@pytest.mark.parametrize("path", _cases("stream"), ids=lambda p: p.stem)
def test_a_stream_says_what_the_whole_answer_says(path: Path) -> None:
    """The chunks of a stream add up to the completion of the same answer given whole."""
    case = json.loads(path.read_text())
    if any("error" in event for event in case["events"]):
        return
    per_event, _closing, _ = _decode(case)
    text, reasons = "", []
    names = []
    for chunk in (c for chunks in per_event for c in chunks):
        for choice in chunk["choices"]:
            text += choice["delta"].get("content") or ""
            names += [c["function"]["name"] for c in choice["delta"].get("tool_calls", [])]
            reasons.append(choice["finish_reason"])
    merged = {**case["events"][-1]}
    merged_parts = [p for e in case["events"] for c in e.get("candidates", [])
                    for p in c["content"]["parts"]]
    if merged.get("candidates"):
        merged["candidates"] = [{**merged["candidates"][0],
                                 "content": {"role": "model", "parts": merged_parts}}]
    whole = gemini_to_chat(merged)["choices"][0]
    assert text == (whole["message"]["content"] or "")
    assert names == [c["function"]["name"] for c in whole["message"].get("tool_calls", [])]
    assert [r for r in reasons if r] == [whole["finish_reason"]]


def test_a_stream_cut_short_ends_with_an_error_chunk() -> None:
    decoder = GeminiStreamDecoder(include_usage=True)
    decoder.feed(None, orjson.dumps({"candidates": [{"content": {"parts": [{"text": "Hi"}]}}],
                                     "responseId": "r"}))
    [closing] = decoder.close()
    assert "ended before" in closing["error"]["message"]
    [garbage] = GeminiStreamDecoder(include_usage=False).feed(None, b"not json")
    assert garbage["error"]["type"] == "api_error"


def test_decoder_implements_the_seam() -> None:
    decoder: ChatStreamDecoder = GeminiAdapter().stream_decoder(include_usage=True)
    assert decoder.usage is None


# --- errors -----------------------------------------------------------------------------------


def test_errors_keep_message_and_status() -> None:
    body = orjson.dumps({"error": {"code": 429, "message": "Quota exceeded.",
                                   "status": "RESOURCE_EXHAUSTED"}})
    assert error_to_openai(429, body) == {"error": {
        "message": "Quota exceeded.", "type": "rate_limit_error", "param": None,
        "code": "RESOURCE_EXHAUSTED"}}
    wrapped = orjson.dumps([{"error": {"code": 500, "message": "Boom", "status": "INTERNAL"}}])
    assert error_to_openai(500, wrapped)["error"]["message"] == "Boom"
    html = error_to_openai(502, b"<html>bad gateway</html>")["error"]
    assert html["type"] == "api_error" and "HTTP 502" in html["message"]
    too_long = orjson.dumps({"error": {"code": 400, "status": "INVALID_ARGUMENT", "message":
        "The input token count (2000000) exceeds the maximum number of tokens allowed "
        "(1048576)."}})
    error = error_to_openai(400, too_long)["error"]
    assert (error["code"], error["param"]) == ("context_length_exceeded", "messages")


# --- embeddings ------------------------------------------------------------------------------


def test_embeddings_requests_and_answers() -> None:
    path, body = embeddings_to_gemini({"model": "gemini-embedding-001", "input": "a"})
    assert (path, body) == ("/v1beta/models/gemini-embedding-001:embedContent",
                            {"content": {"parts": [{"text": "a"}]}})
    path, body = embeddings_to_gemini({"model": "gemini-embedding-001", "input": ["a", "b"],
                                       "dimensions": 4})
    assert path.endswith(":batchEmbedContents")
    assert body["requests"][1] == {"model": "models/gemini-embedding-001",
                                   "content": {"parts": [{"text": "b"}]},
                                   "outputDimensionality": 4}
    answer = gemini_to_embeddings({"embeddings": [{"values": [0.5]}, {"values": [1.0]}]},
                                  {"model": "gemini-embedding-001"})
    CreateEmbeddingResponse.model_validate(answer)
    assert [d["embedding"] for d in answer["data"]] == [[0.5], [1.0]]
    for bad, param in (({"input": [1, 2]}, "input"), ({"input": []}, "input"),
                       ({"input": "a", "dimensions": 0}, "dimensions"),
                       ({"input": "a", "encoding_format": "int8"}, "encoding_format"),
                       ({"input": "a", "task": "x"}, "task")):
        with pytest.raises(TranslationError) as caught:
            embeddings_to_gemini({"model": "m", **bad})
        assert caught.value.param == param


# --- the log's reader -------------------------------------------------------------------------


def test_the_reader_of_native_traffic() -> None:
    reader = response_reader("gemini")
    case = json.loads((FIXTURES / "stream" / "thinking.json").read_text())
    raw = b"".join(b"data: " + orjson.dumps(e) + b"\r\n\r\n" for e in case["events"])
    summary = reader.summarise_stream(raw)
    assert summary.usage == Usage(prompt_tokens=10, completion_tokens=42, reasoning_tokens=40)
    assert summary.model == MODEL and summary.text == "Hi!"
    assert summary.final is not None
    parts = summary.final["candidates"][0]["content"]["parts"]
    assert parts[0] == {"text": "Thinking about it.", "thought": True}
    types.GenerateContentResponse.model_validate_json(orjson.dumps(summary.final))
    # The array form of streamGenerateContent (no alt=sse) is one JSON answer: a list.
    assert reader.usage(case["events"]) == summary.usage
    assert reader.model(case["events"]) == MODEL
    assert reader.completion_text(case["events"]) == "Hi!"
    assert reader.summarise_stream(b"data: {oops\n\ndata: [1]\n\n").usage is None
    assert model_from_path("/v1beta/models/gemini-2.5-pro:streamGenerateContent") == (
        "gemini-2.5-pro"
    )
    assert model_from_path(
        "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.0-flash:"
        "generateContent"
    ) == "gemini-2.0-flash"
    assert model_from_path("/v1beta/files") is None
    assert stream_summary(b"").final is None


# --- image URLs: fetched by the gateway, never referenced ----------------------------------------


class _Fetcher:
    """Stands in for the guarded fetcher (whose own rules tests/test_fetcher.py covers)."""

    def __init__(self) -> None:
        self.fetched: list[str] = []

    async def fetch(self, url: str, *, accept: tuple[str, ...], param: str | None = None
                    ) -> Fetched:
        self.fetched.append(url)
        if "refused" in url:
            raise FetchError("Could not fetch it.", param)
        assert accept == ("image/*",)
        return Fetched(url, "image/png", b"\x89PNG")


def test_http_images_are_inlined_once_and_gemini_uris_kept() -> None:
    fetcher = _Fetcher()
    memo: dict[str, str] = {}
    messages = [
        {"role": "system", "content": "x"},
        {"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://img.example/a.png",
                                                "detail": "low"}},
            {"type": "image_url", "image_url": {"url": "gs://bucket/b.png"}},
            {"type": "image_url", "image_url": {
                "url": "https://generativelanguage.googleapis.com/v1beta/files/c"}},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        ]},
    ]
    seam: Any = fetcher
    guarded: GuardedFetcher = seam
    out = asyncio.run(inline_image_urls("gemini", messages, guarded, memo))
    again = asyncio.run(inline_image_urls("gemini", messages, guarded, memo))
    assert fetcher.fetched == ["https://img.example/a.png"]  # once, then remembered
    assert out == again and out[0] is messages[0]
    encoded = base64.b64encode(b"\x89PNG").decode()
    assert out[1]["content"][1] == {"type": "image_url", "image_url": {
        "url": f"data:image/png;base64,{encoded}", "detail": "low"}}
    assert out[1]["content"][2:] == messages[1]["content"][2:]
    assert messages[1]["content"][1]["image_url"]["url"] == "https://img.example/a.png"
    translate(base(messages=out))  # what reaches the adapter is expressible
    assert not inlines_images("anthropic") and inlines_images("gemini")
    with pytest.raises(FetchError) as caught:
        refused = [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://refused.example/x.png"}}]}]
        asyncio.run(inline_image_urls("gemini", refused, guarded, {}))
    assert caught.value.param == "messages[0].content[0].image_url.url"
