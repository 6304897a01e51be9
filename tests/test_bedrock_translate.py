"""The Bedrock wire format without a network: requests, answers, streams, errors, signing.

Request bodies are checked against botocore's service model of ``bedrock-runtime`` (the
emulator's validator) and compared with golden files under ``tests/fixtures/bedrock/``
(``UPDATE_GOLDEN=1`` rewrites them); answers and chunks with the openai SDK's types. Streams
are real binary event streams (the emulator's encoder) fed to the gateway's framer cut at
every byte, so decoding is shown incremental. SigV4 is checked against the published AWS
test-suite signatures and against botocore recomputing it on the received request.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import random
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from gateway.translate import ChatEncoder, EventTranslator, framer_for
from providers.adapter import TranslationError
from providers.bedrock import (
    BedrockAdapter,
    ConverseStreamDecoder,
    EventStreamFramer,
    InvokeStreamDecoder,
    base_model,
    chat_to_converse,
    chat_to_invoke,
    converse_to_chat,
    endpoint_url,
    error_to_openai,
    is_anthropic,
    model_path,
    summarise_stream,
    usage_from_answer,
)
from providers.bedrock.models import is_model_id
from providers.bedrock.signing import AwsCredentials, Signer, auth_headers, signed_headers
from providers.formats import response_reader
from providers.usage import Usage
from tests.emulator import eventstream
from tests.emulator.bedrock import converse_events, converse_plan
from tests.emulator.bedrock_validation import BedrockError, BedrockValidator, verify_signature
from tests.emulator.messages_plan import PromptCache

FIXTURES = Path(__file__).parent / "fixtures" / "bedrock"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
        "0000000d49444154789c6360f8cfc000000301010018dd8db00000000049454e44ae426082"
    )
).decode()
PDF = base64.b64encode(b"%PDF-1.4 tiny").decode()
NOVA = "us.amazon.nova-pro-v1:0"
CLAUDE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look something up.",
            "parameters": {"type": "object", "properties": {"echo": {"type": "string"}}},
        },
        "cache_control": {"type": "ephemeral"},
    }
]
VALIDATOR = BedrockValidator()


def golden(name: str, actual: Any) -> None:
    path = FIXTURES / f"{name}.json"
    actual = json.loads(json.dumps(actual))
    if UPDATE or not path.exists():
        assert UPDATE, f"{path.name} is missing: record it with UPDATE_GOLDEN=1"
        FIXTURES.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(actual, indent=1, ensure_ascii=False) + "\n")
        return
    assert actual == json.loads(path.read_text())


FULL_CHAT: dict[str, Any] = {
    "model": CLAUDE,
    "messages": [
        {"role": "system", "content": "Be brief."},
        {
            "role": "developer",
            "content": [
                {
                    "type": "text",
                    "text": "Use tools.",
                    "cache_control": {"type": "ephemeral", "ttl": "1h"},
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is in these"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
                {
                    "type": "file",
                    "file": {
                        "file_data": f"data:application/pdf;base64,{PDF}",
                        "filename": "report_2024.pdf",
                    },
                },
            ],
        },
        {
            "role": "assistant",
            "content": "Looking.",
            "reasoning_content": "The user asked.",
            "thinking_blocks": [
                {"type": "thinking", "thinking": "", "signature": "sig=="},
                {"type": "redacted_thinking", "data": "cmVkYWN0ZWQ="},
            ],
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"echo": "a"}'},
                },
                {
                    "id": "call_2",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"echo": "b"}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "found a"},
        {
            "role": "tool",
            "tool_call_id": "call_2",
            "content": [{"type": "text", "text": "found b"}],
        },
        {"role": "user", "content": "and now?"},
    ],
    "tools": TOOLS,
    "tool_choice": {"type": "function", "function": {"name": "lookup"}},
    "max_completion_tokens": 1000,
    "temperature": 0.2,
    "top_p": 0.9,
    "stop": ["END"],
    "reasoning_effort": "medium",
    "response_format": {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "schema": {"type": "object", "properties": {"x": {"type": "string"}}},
        },
    },
    "metadata": {"team": "search"},
    "user": "user-42",
    "stream": False,
    "n": 1,
}


# --- requests -------------------------------------------------------------------------------------


def test_a_full_chat_request_becomes_a_valid_converse_request() -> None:
    body = chat_to_converse(FULL_CHAT, claude=True, default_max_tokens=4096)
    VALIDATOR.request("Converse", CLAUDE, orjson.dumps(body))  # botocore's shapes, AWS's rules
    golden("converse_request_full", body)
    # The details that matter, whatever the golden file says:
    assert body["system"][1] == {"text": "Use tools."}
    assert body["system"][2] == {"cachePoint": {"type": "default", "ttl": "1h"}}
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    reasoning = body["messages"][1]["content"][0]["reasoningContent"]["reasoningText"]
    assert reasoning == {"text": "The user asked.", "signature": "sig=="}  # streamed text put back
    results = body["messages"][2]["content"]
    assert [b.get("toolResult", {}).get("toolUseId") for b in results] == ["call_1", "call_2", None]
    assert body["inferenceConfig"]["maxTokens"] == 1000 + 2048  # the budget did not fit
    assert body["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 2048
    assert json.loads(body["outputConfig"]["textFormat"]["structure"]["jsonSchema"]["schema"])
    assert body["requestMetadata"] == {"team": "search", "user": "user-42"}


def test_a_plain_request_sends_only_what_was_asked() -> None:
    body = chat_to_converse(
        {"model": NOVA, "messages": [{"role": "user", "content": "hi"}]},
        claude=False,
        default_max_tokens=4096,
    )
    assert body == {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    VALIDATOR.request("ConverseStream", NOVA, orjson.dumps(body))


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"n": 2}, "n"),
        ({"logprobs": True}, "logprobs"),
        ({"parallel_tool_calls": False}, "parallel_tool_calls"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"reasoning_effort": "high"}, "reasoning_effort"),  # not Claude
        ({"top_k": 5}, "top_k"),
        ({"tool_choice": "required"}, "tool_choice"),  # without tools
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].image_url.url",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}
                        ],
                    }
                ]
            },
            "messages[0].content[0].type",
        ),
        ({"messages": [{"role": "user", "content": "hi", "name": "bob"}]}, "messages[0].name"),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {
                        "role": "assistant",
                        "tool_calls": [
                            {
                                "id": "c",
                                "type": "function",
                                "function": {"name": "f", "arguments": "[1]"},
                            }
                        ],
                    },
                ]
            },
            "messages[1].tool_calls[0].function.arguments",
        ),
        ({"wat": 1}, "wat"),
    ],
)
def test_what_converse_cannot_express_is_a_400_naming_it(
    change: dict[str, Any], param: str
) -> None:
    chat = {"model": NOVA, "messages": [{"role": "user", "content": "hi"}], **change}
    with pytest.raises(TranslationError) as caught:
        chat_to_converse(chat, claude=False, default_max_tokens=4096)
    assert caught.value.param == param


def test_tool_choice_none_drops_the_tools_unless_the_conversation_used_them() -> None:
    chat = {
        "model": NOVA,
        "messages": [{"role": "user", "content": "hi"}],
        "tools": TOOLS,
        "tool_choice": "none",
    }
    assert "toolConfig" not in chat_to_converse(chat, claude=False, default_max_tokens=1)
    chat["messages"] = [
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "c", "content": "x"},
    ]
    with pytest.raises(TranslationError) as caught:
        chat_to_converse(chat, claude=False, default_max_tokens=1)
    assert caught.value.param == "tool_choice"


def test_claude_invoke_body_is_anthropics_with_bedrocks_version() -> None:
    chat = {
        **FULL_CHAT,
        "response_format": None,
        "metadata": None,
        "stream": True,
        "context_editing": {"enabled": True},
    }
    body = chat_to_invoke(chat, default_max_tokens=4096)
    assert body["anthropic_version"] == "bedrock-2023-05-31"
    assert not {"model", "stream", "metadata", "context_management"} & set(body)
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    golden("invoke_request_full", body)
    with pytest.raises(TranslationError) as caught:
        chat_to_invoke({**chat, "service_tier": "default"}, default_max_tokens=1)
    assert caught.value.param == "service_tier"


def test_the_adapter_picks_the_api_and_the_path_per_model() -> None:
    adapter = BedrockAdapter()
    request = adapter.build_request(
        {"model": CLAUDE, "messages": [{"role": "user", "content": "hi"}], "stream": True},
        api_key=None,
        default_max_tokens=100,
    )
    assert adapter.api == "invoke"
    assert (
        request.path
        == "/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke-with-response-stream"
    )
    assert request.headers["accept"] == "application/vnd.amazon.eventstream"
    request = adapter.build_request(
        {"model": NOVA, "messages": [{"role": "user", "content": "hi"}]},
        api_key=None,
        default_max_tokens=100,
    )
    assert (adapter.api, request.path) == ("converse", "/model/us.amazon.nova-pro-v1%3A0/converse")
    converse = BedrockAdapter(claude_api="converse")
    converse.build_request(
        {"model": CLAUDE, "messages": [{"role": "user", "content": "hi"}]},
        api_key=None,
        default_max_tokens=100,
    )
    assert converse.api == "converse"


@pytest.mark.parametrize(
    ("model_id", "base", "claude", "native"),
    [
        (CLAUDE, "anthropic.claude-sonnet-4-5-20250929-v1:0", True, True),
        (
            "global.anthropic.claude-opus-4-5-20251101-v1:0",
            "anthropic.claude-opus-4-5-20251101-v1:0",
            True,
            True,
        ),
        (
            "arn:aws:bedrock:us-east-1:123456789012:inference-profile/eu.anthropic.claude-x-v1:0",
            "anthropic.claude-x-v1:0",
            True,
            True,
        ),
        ("meta.llama3-3-70b-instruct-v1:0", "meta.llama3-3-70b-instruct-v1:0", False, True),
        ("us-gov.meta.llama3-8b-instruct-v1:0", "meta.llama3-8b-instruct-v1:0", False, True),
        ("claude-sonnet-4-5", "claude-sonnet-4-5", False, False),
        ("claude-3.5-haiku", "claude-3.5-haiku", False, False),
    ],
)
def test_model_ids(model_id: str, base: str, claude: bool, native: bool) -> None:
    assert (base_model(model_id), is_anthropic(model_id), is_model_id(model_id)) == (
        base,
        claude,
        native,
    )


def test_paths_encode_the_id_as_one_segment_and_regions_are_checked() -> None:
    arn = "arn:aws:bedrock:us-east-1:1:inference-profile/us.x"
    assert model_path(arn, "converse") == (
        "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Ainference-profile%2Fus.x/converse"
    )
    plain = "us.anthropic.claude-3-5-sonnet-20240620-v1:0"
    assert model_path(plain, "invoke") == f"/model/{plain.replace(':', '%3A')}/invoke"
    rng = random.Random(13)
    odd = "abcXYZ019-._~:/ %?#é€\n"
    for model_id in [plain, arn, *("".join(rng.choices(odd, k=12)) for _ in range(300))]:
        # the plain ids' shortcut spells every id as quote() does
        assert model_path(model_id, "converse") == f"/model/{quote(model_id, safe='')}/converse"
    assert endpoint_url("eu-west-3") == "https://bedrock-runtime.eu-west-3.amazonaws.com"
    for bad in ("evil.com/x", "us-east-1.evil.com", "US-EAST-1", ""):
        with pytest.raises(ValueError):
            endpoint_url(bad)


# --- answers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("guardrail_intervened", "content_filter"),
        ("content_filtered", "content_filter"),
        ("malformed_model_output", "stop"),
    ],
)
def test_stop_reasons_become_finish_reasons(stop_reason: str, finish: str) -> None:
    answer = {
        "output": {"message": {"role": "assistant", "content": [{"text": "hi"}]}},
        "stopReason": stop_reason,
        "usage": {"inputTokens": 5, "outputTokens": 2, "totalTokens": 7},
        "metrics": {"latencyMs": 1},
    }
    VALIDATOR.answer("Converse", answer)
    completion = converse_to_chat(answer, model=NOVA)
    ChatCompletion.model_validate(completion)
    assert completion["choices"][0]["finish_reason"] == finish


def test_a_converse_answer_with_tools_reasoning_and_cache_usage() -> None:
    answer = {
        "output": {
            "message": {
                "role": "assistant",
                "content": [
                    {"reasoningContent": {"reasoningText": {"text": "hmm", "signature": "s1"}}},
                    {"reasoningContent": {"redactedContent": "cmVk"}},
                    {"text": "Calling."},
                    {"toolUse": {"toolUseId": "t1", "name": "lookup", "input": {"echo": "é"}}},
                ],
            }
        },
        "stopReason": "tool_use",
        "usage": {
            "inputTokens": 10,
            "outputTokens": 4,
            "totalTokens": 64,
            "cacheReadInputTokens": 30,
            "cacheWriteInputTokens": 20,
        },
        "metrics": {"latencyMs": 1},
    }
    VALIDATOR.answer("Converse", answer)
    completion = converse_to_chat(answer, model=NOVA, created=1)
    ChatCompletion.model_validate(completion)
    golden("converse_answer_to_chat", {**completion, "id": "<id>"})
    assert completion["usage"]["prompt_tokens"] == 60
    assert completion["usage"]["prompt_tokens_details"] == {
        "cached_tokens": 30,
        "cache_write_tokens": 20,
    }
    assert usage_from_answer(answer) == Usage(60, 4, 30, 20)


def test_errors_keep_status_message_and_type() -> None:
    body = orjson.dumps({"message": "Too many requests, please wait before trying again."})
    assert error_to_openai(429, body)["error"]["type"] == "ThrottlingException"
    typed = error_to_openai(400, b'{"message": "x"}', "ServiceQuotaExceededException:http://x/")
    assert typed["error"]["type"] == "ServiceQuotaExceededException"
    too_long = error_to_openai(400, b'{"message": "Input is too long for requested model."}')
    assert too_long["error"]["code"] == "context_length_exceeded"
    front_door = error_to_openai(
        403, b'{"Message": "The security token included in the request is invalid."}'
    )
    assert front_door["error"]["message"].startswith("The security token")
    assert error_to_openai(502, b"<html>bad gateway</html>")["error"]["message"] == (
        "Bedrock returned HTTP 502: <html>bad gateway</html>"
    )


# --- streams --------------------------------------------------------------------------------------


def _converse_stream(text: str, *, tools: bool = False, fail_after: int | None = None) -> bytes:
    body: dict[str, Any] = {"messages": [{"role": "user", "content": [{"text": text}]}]}
    if tools:
        body["toolConfig"] = {
            "tools": [
                {"toolSpec": {"name": "lookup", "inputSchema": {"json": {"type": "object"}}}},
                {"toolSpec": {"name": "convert", "inputSchema": {"json": {"type": "object"}}}},
            ]
        }
    plan, stop = converse_plan(body, NOVA, 7, PromptCache())
    frames = [
        eventstream.event(k, VALIDATOR.stream_event(k, p)) for k, p in converse_events(plan, stop)
    ]
    if fail_after is not None:
        frames = [*frames[:fail_after], eventstream.exception("throttlingException", "Slow down.")]
    return b"".join(frames)


def _decode_bytewise(decoder: Any, raw: bytes, wire: str = "bedrock") -> list[dict[str, Any]]:
    """Feed ``raw`` one byte at a time through the translator stage; the SSE it emits,
    parsed. Each complete message must come out at the byte that completes it."""
    translator = EventTranslator(decoder, ChatEncoder(), framer_for(wire))
    out = b"".join(translator.feed(raw[i : i + 1]) for i in range(len(raw))) + translator.flush()
    return [orjson.loads(line[6:]) for line in out.split(b"\n\n") if line.startswith(b"data: {")]


def test_the_encoder_writes_what_botocore_reads() -> None:
    raw = _converse_stream("hello there")
    events = EventStreamFramer().feed(raw)
    assert events[0] == ("messageStart", b'{"role":"assistant"}')
    assert events[-1][0] == "metadata"
    corrupt = bytearray(raw)
    corrupt[20] ^= 0xFF
    broken = EventStreamFramer().feed(bytes(corrupt))
    assert broken[-1][0] == "internalServerException"


def test_converse_stream_is_translated_message_by_message() -> None:
    raw = _converse_stream("two [[parallel]]", tools=True)
    framer = EventStreamFramer()
    first = raw.index(b"contentBlockStart")
    assert framer.feed(raw[:first]) == [("messageStart", b'{"role":"assistant"}')]  # already out
    chunks = _decode_bytewise(ConverseStreamDecoder(include_usage=True, model=NOVA), raw)
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    calls = [
        c
        for ch in chunks
        for choice in ch["choices"]
        for c in choice["delta"].get("tool_calls") or []
    ]
    assert {c["index"] for c in calls} == {0, 1}
    arguments = {
        i: "".join(c["function"]["arguments"] for c in calls if c["index"] == i) for i in (0, 1)
    }
    assert [json.loads(a)["call"] for a in arguments.values()] == [1, 2]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 10


def test_an_exception_in_the_stream_is_an_error_chunk_after_what_came_before() -> None:
    chunks = _decode_bytewise(
        ConverseStreamDecoder(include_usage=False, model=NOVA),
        _converse_stream("a long answer", fail_after=4),
    )
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if "choices" in c)
    assert text == "Hello from the"
    assert chunks[-1] == {
        "error": {
            "message": "Slow down.",
            "type": "ThrottlingException",
            "param": None,
            "code": None,
        }
    }


def test_a_cut_stream_ends_with_an_error() -> None:
    raw = _converse_stream("cut me")
    cut = raw[: raw.index(b"messageStop") - 20]  # before the stop reason
    chunks = _decode_bytewise(ConverseStreamDecoder(include_usage=False, model=NOVA), cut)
    assert chunks[-1]["error"]["message"].startswith("The Bedrock stream ended before")
    complete = raw[: raw.index(b"metadata") - 20]  # only the usage is missing
    chunks = _decode_bytewise(ConverseStreamDecoder(include_usage=False, model=NOVA), complete)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_invoke_stream_chunks_go_through_the_anthropic_decoder() -> None:
    events = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-5-20250929",
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {"input_tokens": 9, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 2},
        },
        {
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": {"inputTokenCount": 9, "outputTokenCount": 2},
        },
    ]
    raw = b"".join(
        eventstream.event("chunk", {"bytes": base64.b64encode(orjson.dumps(e)).decode()})
        for e in events
    )
    chunks = _decode_bytewise(InvokeStreamDecoder(include_usage=True), raw)
    assert chunks[1]["choices"][0]["delta"]["content"] == "Hi"
    assert chunks[-1]["usage"]["prompt_tokens"] == 9
    summary = summarise_stream(raw)
    assert summary.usage == Usage(9, 2) and summary.text == "Hi"
    assert summary.model == "claude-sonnet-4-5-20250929"


def test_the_log_reader_rebuilds_a_recorded_converse_stream() -> None:
    reader = response_reader("bedrock")
    raw = _converse_stream("log [[text+tool]]", tools=True)
    summary = reader.summarise_stream(raw)
    # Words are tokens: two tool names + two user words in; eight words + one call (5) out.
    assert summary.usage == Usage(prompt_tokens=4, completion_tokens=13)
    assert summary.text == "Hello from the emulator. You said: log [[text+tool]]"
    assert summary.final is not None
    content = summary.final["output"]["message"]["content"]
    assert content[1]["toolUse"]["input"] == {"echo": "log [[text+tool]]"}
    assert summary.final["stopReason"] == "tool_use"
    assert reader.usage({"prompt_token_count": 5, "generation_token_count": 3}) == Usage(5, 3)


# --- signing --------------------------------------------------------------------------------------

AWS_SUITE = AwsCredentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")


@pytest.mark.parametrize(
    ("method", "signature"),
    [  # aws-sig-v4-test-suite: get-vanilla, post-vanilla (us-east-1, service "service")
        ("GET", "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"),
        ("POST", "5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b"),
    ],
)
def test_signing_matches_the_aws_test_suite(method: str, signature: str) -> None:
    signed_at = datetime.datetime(2015, 8, 30, 12, 36, tzinfo=datetime.UTC).timestamp()
    headers = Signer(clock=lambda: signed_at).signed_headers(
        method, "https://example.amazonaws.com/", {}, b"", AWS_SUITE, "us-east-1", service="service"
    )
    assert headers["x-amz-date"] == "20150830T123600Z"
    assert headers["authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}"
    )


def test_a_signed_bedrock_request_verifies_with_botocore_and_tampering_does_not() -> None:
    url = "https://bedrock-runtime.eu-west-1.amazonaws.com/model/us.amazon.nova-pro-v1%3A0/converse"
    body = b'{"messages":[]}'
    credentials = AwsCredentials("AKIDTEST", "secret/key+1", "session-token")
    headers = signed_headers(
        "POST",
        url,
        {
            "content-type": "application/json",
            "authorization": "AWS4-HMAC-SHA256 stale",
            "x-amz-date": "19990101T000000Z",
        },
        body,
        credentials,
        "eu-west-1",
    )
    assert headers["x-amz-security-token"] == "session-token"
    assert (
        "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,"
        in headers["authorization"]
    )
    known = {"AKIDTEST": ("secret/key+1", "session-token")}
    assert verify_signature("POST", url, headers, body, known, "eu-west-1") == "AKIDTEST"
    with pytest.raises(BedrockError) as caught:
        verify_signature("POST", url, headers, body + b" ", known, "eu-west-1")
    assert caught.value.kind == "InvalidSignatureException"
    with pytest.raises(BedrockError):
        verify_signature("POST", url, headers, body, known, "us-east-1")


def test_credential_strings() -> None:
    assert AwsCredentials.parse("AK:SK") == AwsCredentials("AK", "SK")
    parsed = AwsCredentials.parse(
        '{"accessKeyId": "AK", "secretAccessKey": "SK", "sessionToken": "T"}'
    )
    assert parsed == AwsCredentials("AK", "SK", "T") and parsed.encode() == "AK:SK:T"
    assert "SK" not in repr(parsed)
    assert AwsCredentials.parse("bedrock-api-key-abc") is None
    bearer = auth_headers(
        "POST", "https://x/", {"x-amz-date": "1"}, b"", "bedrock-api-key-abc", "us-east-1"
    )
    assert bearer == {"authorization": "Bearer bedrock-api-key-abc"}


def test_the_signing_benchmark_reports_per_request_figures(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from bench import sigv4

    status = sigv4.main(["--requests", "50", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert report["requests"] == 50 and report["body_bytes"] > 1000
    assert 0 < report["p50_us"] <= report["p90_us"] <= report["p99_us"]
    assert status == (0 if report["ok"] else 1) and report["ok"] == (report["p50_us"] <= 100)
