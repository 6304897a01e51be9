"""Usage extraction and stream reconstruction (logging_pipeline.usage), on real emulator output."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from logging_pipeline.capture import Capture
from providers.openai_format import summarise_stream, usage_from
from providers.sse import iter_sse_data
from tests.emulator import OpenAIEmulator

KEY = "sk-emulator"


@pytest.fixture(scope="module")
def upstream() -> OpenAIEmulator:
    with OpenAIEmulator(api_key=KEY) as emulator:
        yield emulator  # type: ignore[misc]


def _post(upstream: OpenAIEmulator, path: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(
        upstream.base_url + path, json=body, headers={"authorization": f"Bearer {KEY}"}
    )


MESSAGES = [{"role": "user", "content": "count these four words"}]


def test_chat_usage() -> None:
    usage = usage_from(
        {
            "usage": {
                "prompt_tokens": 10,
                "completion_tokens": 7,
                "prompt_tokens_details": {"cached_tokens": 4, "audio_tokens": 1},
                "completion_tokens_details": {"reasoning_tokens": 3, "audio_tokens": 2},
            }
        }
    )
    assert (usage.prompt_tokens, usage.completion_tokens) == (10, 7)
    assert (usage.cache_read_tokens, usage.reasoning_tokens) == (4, 3)
    assert (usage.prompt_audio_tokens, usage.completion_audio_tokens) == (1, 2)


def test_responses_usage() -> None:
    usage = usage_from(
        {
            "usage": {
                "input_tokens": 12,
                "output_tokens": 5,
                "input_tokens_details": {"cached_tokens": 2},
                "output_tokens_details": {"reasoning_tokens": 1},
            }
        }
    )
    assert (usage.prompt_tokens, usage.completion_tokens) == (12, 5)
    assert (usage.cache_read_tokens, usage.reasoning_tokens) == (2, 1)


@pytest.mark.parametrize("value", [None, "text", {"usage": "x"}, {"no": 1}])
def test_no_usage(value: object) -> None:
    assert usage_from(value) is None


def test_chat_stream_reconstruction_matches_plain(upstream: OpenAIEmulator) -> None:
    plain = _post(upstream, "/chat/completions", {"model": "gpt-4o-mini", "messages": MESSAGES})
    streamed = _post(
        upstream,
        "/chat/completions",
        {
            "model": "gpt-4o-mini",
            "messages": MESSAGES,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    summary = summarise_stream(streamed.content)
    expected = plain.json()
    assert summary.final is not None
    assert summary.final["choices"][0]["message"]["content"] == (
        expected["choices"][0]["message"]["content"]
    )
    assert summary.final["choices"][0]["finish_reason"] == "stop"
    assert summary.usage is not None
    assert summary.usage.prompt_tokens == expected["usage"]["prompt_tokens"]
    assert summary.usage.completion_tokens == expected["usage"]["completion_tokens"]
    assert summary.model == "gpt-4o-mini"


def test_chat_stream_without_usage_has_text_but_no_usage(upstream: OpenAIEmulator) -> None:
    streamed = _post(
        upstream,
        "/chat/completions",
        {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True},
    )
    summary = summarise_stream(streamed.content)
    assert summary.usage is None
    assert summary.text.endswith("count these four words")


def test_tool_call_stream_is_merged(upstream: OpenAIEmulator) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    streamed = _post(
        upstream,
        "/chat/completions",
        {"model": "gpt-4o-mini", "messages": MESSAGES, "tools": tools, "stream": True},
    )
    summary = summarise_stream(streamed.content)
    assert summary.final is not None
    call = summary.final["choices"][0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "lookup"
    assert json.loads(call["function"]["arguments"]) == {"echo": "count these four words"}
    assert summary.final["choices"][0]["finish_reason"] == "tool_calls"


def test_responses_stream_final_object(upstream: OpenAIEmulator) -> None:
    plain = _post(upstream, "/responses", {"model": "gpt-4o-mini", "input": "hello there"})
    streamed = _post(
        upstream, "/responses", {"model": "gpt-4o-mini", "input": "hello there", "stream": True}
    )
    summary = summarise_stream(streamed.content)
    assert summary.final is not None
    assert summary.final["status"] == "completed"
    assert summary.usage is not None
    assert summary.usage.prompt_tokens == plain.json()["usage"]["input_tokens"]
    assert summary.text == plain.json()["output"][0]["content"][0]["text"]


def test_sse_parsing_handles_crlf_and_multiline_data() -> None:
    raw = b"event: a\r\ndata: 1\r\ndata: 2\r\n\r\ndata: [DONE]\r\n\r\n"
    assert iter_sse_data(raw) == [("a", b"1\n2"), (None, b"[DONE]")]


def test_garbage_stream_is_harmless() -> None:
    summary = summarise_stream(b"data: {not json\n\ndata: [DONE]\n\n")
    assert summary.final is None and summary.usage is None


def _chat_capture(model: str, request_body: bytes, response_body: bytes) -> Capture:
    """A finished, successful OpenAI chat-completions capture."""
    capture = Capture(
        request_id="9b2f4a3e-1c2d-4e5f-8a9b-0c1d2e3f4a5b",
        organization_id="5d9f3c1e-7a2b-4c8d-9e0f-112233445566",
        api_key_id="k",
        path="/v1/chat/completions",
        provider="openai",
        request_model=model,
        request_body=request_body,
        status=200,
        response_body=response_body,
    )
    capture.finish()
    return capture


def test_non_stream_answer_without_usage_is_estimated(tmp_path: Path) -> None:
    from logging_pipeline.estimate import TokenEstimator
    from logging_pipeline.record import build_record
    from logging_pipeline.schema import INSERT_COLUMNS
    from providers.registry import Registry

    capture = _chat_capture(
        "gpt-4o-mini",
        b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello there"}]}',
        b'{"id":"x","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,'
        b'"message":{"role":"assistant","content":"general kenobi"},"finish_reason":"stop"}]}',
    )
    record = build_record(capture, Registry.load(), TokenEstimator(tmp_path))
    row = dict(zip(INSERT_COLUMNS, record.row, strict=True))
    assert row["tokens_estimated"] is True
    assert row["prompt_tokens"] == 2  # "hello there" in o200k_base
    assert row["completion_tokens"] == 3  # "general kenobi"
    assert row["cost"] > 0
    assert record.document is not None
    assert json.loads(record.document)["response"]["choices"][0]["message"]["content"] == (
        "general kenobi"
    )


def test_every_usage_detail_is_priced_in_its_own_slot(tmp_path: Path) -> None:
    """The row's cost is the price table's cost of the usage the body reported, field by field."""
    from logging_pipeline.estimate import TokenEstimator
    from logging_pipeline.record import build_record
    from logging_pipeline.schema import INSERT_COLUMNS
    from providers.cost import Usage
    from providers.registry import Registry

    usage = {
        "prompt_tokens": 100_000,
        "completion_tokens": 50_000,
        "prompt_tokens_details": {
            "cached_tokens": 30_000, "cache_write_tokens": 7_000, "audio_tokens": 11_000,
        },
        "completion_tokens_details": {"reasoning_tokens": 20_000, "audio_tokens": 9_000},
    }
    capture = _chat_capture(
        "gpt-4o-audio-preview",
        b'{"model":"gpt-4o-audio-preview","messages":[]}',
        json.dumps({"model": "gpt-4o-audio-preview", "usage": usage}).encode(),
    )
    capture.omit_request = capture.omit_response = True
    prices = Registry.load()
    record = build_record(capture, prices, TokenEstimator(tmp_path), "s3")
    row = dict(zip(INSERT_COLUMNS, record.row, strict=True))
    expected = prices.cost("openai", "gpt-4o-audio-preview", Usage(
        prompt_tokens=100_000, completion_tokens=50_000, cache_read_tokens=30_000,
        cache_write_tokens=7_000, reasoning_tokens=20_000, prompt_audio_tokens=11_000,
        completion_audio_tokens=9_000,
    ))
    assert expected.known and row["cost"] == expected.nano_usd
    # audio is priced apart from text, so a swapped field would change the total
    swapped = prices.cost("openai", "gpt-4o-audio-preview", Usage(
        prompt_tokens=100_000, completion_tokens=50_000, cache_read_tokens=30_000,
        cache_write_tokens=7_000, reasoning_tokens=9_000, prompt_audio_tokens=11_000,
        completion_audio_tokens=20_000,
    ))
    assert swapped.nano_usd != expected.nano_usd
    assert (row["prompt_cache_read_tokens"], row["prompt_cache_write_tokens"]) == (30_000, 7_000)
    assert (row["reasoning_tokens"], row["prompt_audio_tokens"]) == (20_000, 11_000)
    assert row["completion_audio_tokens"] == 9_000
    # both bodies omitted: nothing stored, and the row says so whatever the store is
    assert record.document is None and row["storage_location"] == "omitted"
    capture.omit_response = False
    stored = dict(zip(INSERT_COLUMNS, build_record(
        capture, prices, TokenEstimator(tmp_path), "s3").row, strict=True))
    assert stored["storage_location"] == "s3"
