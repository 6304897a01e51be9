"""providers.responses: the Responses API over Chat Completions, checked against the openai SDK.

Golden pairs live in ``tests/fixtures/responses/`` (``request/``: a Responses body and the chat
request it becomes; ``response/``: a chat completion and the Response it becomes; ``stream/``:
chat chunks and the Responses events they become). Every chat request is validated with the
SDK's ``CompletionCreateParams`` TypedDicts, every Response with ``Response``, every event
with ``ResponseStreamEvent``. The stream is also checked against the whole translation of the
same answer (two code paths, one result) and served to the real SDK through
``httpx.MockTransport``: ``responses.stream()`` must rebuild the final Response from the
events, ``responses.create(stream=True)`` must iterate them, and an error mid-stream must
raise.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk, completion_create_params
from openai.types.responses import (
    Response,
    ResponseFunctionToolCall,
    ResponseReasoningItem,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
    response_create_params,
)
from pydantic import TypeAdapter

from providers.adapter import TranslationError
from providers.responses import (
    ChatToResponsesStream,
    chat_to_response,
    encode_event,
    responses_to_chat,
)

FIXTURES = Path(__file__).parent / "fixtures" / "responses"
CHAT_REQUEST = {
    False: TypeAdapter(completion_create_params.CompletionCreateParamsNonStreaming),
    True: TypeAdapter(completion_create_params.CompletionCreateParamsStreaming),
}
RESPONSES_REQUEST = {
    False: TypeAdapter(response_create_params.ResponseCreateParamsNonStreaming),
    True: TypeAdapter(response_create_params.ResponseCreateParamsStreaming),
}
EVENT: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
CREATED_AT = 1700000000
COMPLETED_AT = 1700000009


def names(kind: str) -> list[str]:
    return sorted(path.stem for path in (FIXTURES / kind).glob("*.json"))


def load(kind: str, name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / kind / f"{name}.json").read_text())
    return data


def valid_chat_request(chat: dict[str, Any]) -> dict[str, Any]:
    CHAT_REQUEST[chat.get("stream") is True].validate_python(chat)
    return chat


def run_stream(request: dict[str, Any], chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    stream = ChatToResponsesStream(
        request, response_id="resp_stream", created_at=CREATED_AT, clock=lambda: COMPLETED_AT
    )
    events = [event for chunk in chunks for event in stream.feed(chunk)]
    return events + stream.close()


def aggregate(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat completion a chunk stream adds up to, per the unified format's contract
    (providers.adapter): text, reasoning text, one thinking block per signature delta holding
    the reasoning text since the previous block, tool calls by index."""
    content = reasoning = pending = ""
    blocks: list[dict[str, Any]] = []
    calls: dict[int, dict[str, Any]] = {}
    finish: str | None = None
    usage = None
    for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices", []):
            delta = choice["delta"]
            content += delta.get("content") or ""
            reasoning += delta.get("reasoning_content") or ""
            pending += delta.get("reasoning_content") or ""
            for block in delta.get("thinking_blocks", []):
                if block["type"] == "thinking":
                    blocks.append({**block, "thinking": pending + block["thinking"]})
                    pending = ""
                else:
                    blocks.append(block)
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(
                    call["index"],
                    {
                        "id": call.get("id"),
                        "type": "function",
                        "function": {"name": "", "arguments": ""},
                    },
                )
                slot["function"]["name"] += call["function"].get("name") or ""
                slot["function"]["arguments"] += call["function"].get("arguments") or ""
            finish = choice.get("finish_reason") or finish
    message: dict[str, Any] = {"role": "assistant", "content": content or None}
    if reasoning:
        message["reasoning_content"] = reasoning
    if blocks:
        message["thinking_blocks"] = blocks
    if calls:
        message["tool_calls"] = [calls[index] for index in sorted(calls)]
    return {
        "id": "chatcmpl-aggregate",
        "object": "chat.completion",
        "created": CREATED_AT,
        "model": chunks[0]["model"],
        "choices": [{"index": 0, "finish_reason": finish, "message": message}],
        "usage": usage,
    }


# --- request: Responses → chat ----------------------------------------------------------------


@pytest.mark.parametrize("name", names("request"))
def test_request_golden(name: str) -> None:
    case = load("request", name)
    payload = case["responses"]
    RESPONSES_REQUEST[payload.get("stream") is True].validate_python(payload)
    before = copy.deepcopy(payload)
    assert valid_chat_request(responses_to_chat(payload)) == case["chat"]
    assert payload == before  # the caller's body is not modified


def test_request_stream_asks_for_usage() -> None:
    chat = responses_to_chat({"model": "m", "input": "hi", "stream": True})
    assert chat["stream_options"] == {"include_usage": True}
    assert "stream" not in responses_to_chat({"model": "m", "input": "hi", "stream": False})


def test_request_store_metadata_and_summary_are_not_forwarded() -> None:
    chat = responses_to_chat(
        {
            "model": "m",
            "input": "hi",
            "store": True,
            "metadata": {"a": "b"},
            "max_tool_calls": 3,
            "reasoning": {"summary": "concise"},
            "stream_options": {"include_obfuscation": False},
        }
    )
    assert chat == {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def test_request_consecutive_assistant_items_are_one_message() -> None:
    chat = responses_to_chat(
        {
            "model": "m",
            "input": [
                {"role": "user", "content": "q"},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"role": "assistant", "content": "text after the call"},
                {"type": "function_call", "call_id": "c2", "name": "g", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "1"},
                {"type": "function_call_output", "call_id": "c2", "output": "2"},
                {
                    "type": "reasoning",
                    "id": "rs",
                    "summary": [],
                    "content": [{"type": "reasoning_text", "text": "raw thought"}],
                },
                {
                    "role": "assistant",
                    "content": [
                        {"type": "output_text", "text": "a", "annotations": []},
                        {"type": "refusal", "refusal": "no"},
                        {"type": "output_text", "text": "b", "annotations": []},
                    ],
                },
            ],
        }
    )
    assistant, first, second, last = chat["messages"][1:]
    assert assistant["content"] == "text after the call"
    assert [call["id"] for call in assistant["tool_calls"]] == ["c1", "c2"]
    assert (first["tool_call_id"], second["tool_call_id"]) == ("c1", "c2")
    # Raw reasoning text stands in for a summary; no encrypted_content, no thinking block.
    assert last == {
        "role": "assistant",
        "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}],
        "refusal": "no",
        "reasoning_content": "raw thought",
    }
    valid_chat_request(chat)


BUILT_IN_TOOLS = [
    {"type": "web_search"},
    {"type": "web_search_preview"},
    {"type": "file_search", "vector_store_ids": ["vs_1"]},
    {
        "type": "computer_use_preview",
        "display_width": 1,
        "display_height": 1,
        "environment": "linux",
    },
    {"type": "code_interpreter", "container": {"type": "auto"}},
    {"type": "mcp", "server_label": "x", "server_url": "https://mcp.example.com"},
    {"type": "image_generation"},
    {"type": "local_shell"},
    {"type": "custom", "name": "grammar_tool"},
]

IMAGE = {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"}
CALL = {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"}


def said(role: str, *parts: dict[str, Any]) -> dict[str, Any]:
    """A request change: ``input`` is one message of ``role`` made of ``parts``."""
    return {"input": [{"role": role, "content": list(parts)}]}


def items(*values: dict[str, Any]) -> dict[str, Any]:
    return {"input": list(values)}


BAD_REQUESTS: list[tuple[str, dict[str, Any], str]] = [
    ("previous response", {"previous_response_id": "resp_1"}, "previous_response_id"),
    ("conversation", {"conversation": "conv_1"}, "conversation"),
    ("stored prompt", {"prompt": {"id": "pmpt_1"}}, "prompt"),
    ("background", {"background": True}, "background"),
    ("truncation auto", {"truncation": "auto"}, "truncation"),
    (
        "include server state",
        {"include": ["reasoning.encrypted_content", "file_search_call.results"]},
        "include[1]",
    ),
    ("include logprobs", {"include": ["message.output_text.logprobs"]}, "include[0]"),
    ("top logprobs", {"top_logprobs": 5}, "top_logprobs"),
    ("context management", {"context_management": [{"type": "compaction"}]}, "context_management"),
    ("unknown parameter", {"prompt_id": "helicone-prompt"}, "prompt_id"),
    ("no model", {"model": None}, "model"),
    ("no input", {"input": None}, "input"),
    ("input not a list", {"input": {"role": "user"}}, "input"),
    ("reasoning mode", {"reasoning": {"effort": "high", "mode": "pro"}}, "reasoning.mode"),
    ("grammar format", {"text": {"format": {"type": "grammar"}}}, "text.format.type"),
    ("no schema", {"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
    ("built-in tool choice", {"tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
    (
        "deferred function",
        {"tools": [{"type": "function", "name": "f", "strict": None, "defer_loading": True}]},
        "tools[0].defer_loading",
    ),
    (
        "image by file id",
        said(
            "user",
            {"type": "input_text", "text": "look"},
            {**IMAGE, "image_url": None, "file_id": "file_1"},
        ),
        "input[0].content[1].file_id",
    ),
    (
        "image without url",
        said("user", {**IMAGE, "image_url": None}),
        "input[0].content[0].image_url",
    ),
    (
        "file by url",
        said("user", {"type": "input_file", "file_url": "https://example.com/a.pdf"}),
        "input[0].content[0].file_url",
    ),
    (
        "file by id",
        said("user", {"type": "input_file", "file_id": "f1"}),
        "input[0].content[0].file_id",
    ),
    (
        "file without data",
        said("user", {"type": "input_file", "filename": "a.pdf"}),
        "input[0].content[0].file_data",
    ),
    ("image in system message", said("system", IMAGE), "input[0].content[0].type"),
    ("image in assistant message", said("assistant", IMAGE), "input[0].content[0].type"),
    ("unknown role", said("critic", {"type": "input_text", "text": "x"}), "input[0].role"),
    ("item reference", items(CALL, {"type": "item_reference", "id": "msg_1"}), "input[1]"),
    ("built-in call item", items(CALL, {"type": "web_search_call", "id": "ws_1"}), "input[1].type"),
    ("unknown item", items({"type": "hologram"}), "input[0].type"),
    ("call without id", items({**CALL, "call_id": None}), "input[0].call_id"),
    (
        "image tool result",
        items(CALL, {"type": "function_call_output", "call_id": "c", "output": [IMAGE]}),
        "input[1].output[0]",
    ),
    (
        "encrypted content not text",
        items({"type": "reasoning", "id": "rs", "summary": [], "encrypted_content": 7}),
        "input[0].encrypted_content",
    ),
]


@pytest.mark.parametrize(
    ("change", "param"),
    [pytest.param(change, param, id=label) for label, change, param in BAD_REQUESTS]
    + [
        pytest.param(
            {"tools": [{"type": "function", "name": "f", "parameters": {}, "strict": True}, tool]},
            "tools[1].type",
            id=f"built-in tool {tool['type']}",
        )
        for tool in BUILT_IN_TOOLS
    ],
)
def test_request_untranslatable_is_a_clear_error(change: dict[str, Any], param: str) -> None:
    payload = {"model": "m", "input": "hi", **change}
    with pytest.raises(TranslationError) as raised:
        responses_to_chat(payload)
    assert raised.value.param == param
    assert raised.value.message


@pytest.mark.parametrize("field", ["previous_response_id", "conversation", "prompt"])
def test_request_stored_state_error_says_nothing_is_stored(field: str) -> None:
    with pytest.raises(TranslationError, match="does not store responses"):
        responses_to_chat({"model": "m", "input": "hi", field: "x"})


# --- whole response: chat → Response ----------------------------------------------------------


@pytest.mark.parametrize("name", names("response"))
def test_response_golden(name: str) -> None:
    case = load("response", name)
    ChatCompletion.model_validate(case["completion"])
    response = chat_to_response(
        case["completion"], case["request"], response_id="resp_golden", completed_at=1700000005
    )
    assert response == case["response"]
    assert "output_text" not in response  # an SDK property, not a field
    Response.model_validate(response)


def test_response_ids_are_fresh_and_prefixed() -> None:
    case = load("response", "tool_calls")
    first = chat_to_response(case["completion"], case["request"])
    second = chat_to_response(case["completion"], case["request"])
    assert first["id"].startswith("resp_") and first["id"] != second["id"]
    assert all(item["id"].startswith("fc_") for item in first["output"])


def test_response_reasoning_round_trips_as_input() -> None:
    """The Response's output items, sent back as the next turn's input, give the provider its
    own assistant message again: text, tool calls, thinking with its signatures, redacted data."""
    case = load("response", "reasoning")
    original = case["completion"]["choices"][0]["message"]
    output = chat_to_response(case["completion"], case["request"])["output"]
    follow_up = [
        {"role": "user", "content": "Weather?"},
        *output,
        {"type": "function_call_output", "call_id": "toolu_9", "output": "-3C"},
    ]
    chat = valid_chat_request(responses_to_chat({"model": "m", "input": follow_up}))
    assistant = chat["messages"][1]
    assert assistant == {
        "role": "assistant",
        **{
            key: original[key]
            for key in ("content", "reasoning_content", "thinking_blocks", "tool_calls")
        },
    }
    assert chat["messages"][2] == {"role": "tool", "tool_call_id": "toolu_9", "content": "-3C"}


# --- stream: chunks → events ------------------------------------------------------------------


@pytest.mark.parametrize("name", names("stream"))
def test_stream_golden(name: str) -> None:
    case = load("stream", name)
    for chunk in case["chunks"]:
        if "error" not in chunk:
            ChatCompletionChunk.model_validate(chunk)
    events = run_stream(case["request"], case["chunks"])
    assert events == case["events"]
    for event in events:
        EVENT.validate_python(event)
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    assert [event["type"] for event in events[:2]] == ["response.created", "response.in_progress"]


COMPLETE_STREAMS = [name for name in names("stream") if name != "error_mid_stream"]


@pytest.mark.parametrize("name", COMPLETE_STREAMS)
def test_stream_agrees_with_whole_translation(name: str) -> None:
    case = load("stream", name)
    events = run_stream(case["request"], case["chunks"])
    final = events[-1]["response"]
    whole = chat_to_response(
        aggregate(case["chunks"]),
        case["request"],
        response_id="resp_stream",
        completed_at=COMPLETED_AT,
    )
    assert final == whole
    added = {e["output_index"]: e["item"] for e in events if e["type"].endswith("item.added")}
    done = {e["output_index"]: e["item"] for e in events if e["type"].endswith("item.done")}
    assert sorted(added) == sorted(done) == list(range(len(final["output"])))
    assert [done[index] for index in sorted(done)] == final["output"]
    assert all(added[index]["id"] == done[index]["id"] for index in added)


@pytest.mark.parametrize("name", COMPLETE_STREAMS)
def test_stream_emits_each_delta_with_its_chunk(name: str) -> None:
    case = load("stream", name)
    stream = ChatToResponsesStream(case["request"])
    for chunk in case["chunks"]:
        events = stream.feed(chunk)
        for choice in chunk.get("choices", []):
            delta = choice["delta"]
            sent = [event.get("delta") for event in events if event["type"].endswith(".delta")]
            expected = [delta.get("reasoning_content"), delta.get("content")] + [
                call["function"].get("arguments") for call in delta.get("tool_calls") or []
            ]
            assert sent == [piece for piece in expected if piece]
    assert stream.close() == []  # the usage chunk already completed the response


def test_stream_waits_for_usage_then_completes_at_once() -> None:
    case = load("stream", "text")
    *body, finish, usage = case["chunks"]
    stream = ChatToResponsesStream(case["request"])
    for chunk in body:
        stream.feed(chunk)
    assert [event["type"] for event in stream.feed(finish)][-1] == "response.output_item.done"
    (completed,) = stream.feed(usage)
    assert completed["type"] == "response.completed"
    assert completed["response"]["usage"]["input_tokens_details"]["cached_tokens"] == 16
    assert stream.feed(usage) == [] and stream.close() == []


def test_stream_without_usage_completes_on_close() -> None:
    case = load("stream", "text")
    stream = ChatToResponsesStream(case["request"])
    for chunk in case["chunks"][:-1]:
        stream.feed(chunk)
    (completed,) = stream.close()
    assert completed["type"] == "response.completed" and completed["response"]["usage"] is None
    EVENT.validate_python(completed)


def test_stream_usage_with_the_finish_chunk() -> None:
    case = load("stream", "text")
    *body, finish, usage = case["chunks"]
    stream = ChatToResponsesStream(case["request"])
    for chunk in body:
        stream.feed(chunk)
    events = stream.feed({**finish, "usage": usage["usage"]})
    assert events[-1]["type"] == "response.completed"
    assert events[-1]["response"]["usage"]["total_tokens"] == 29


def test_stream_cut_off_without_finish_fails() -> None:
    case = load("stream", "tool_call")
    stream = ChatToResponsesStream(case["request"])
    for chunk in case["chunks"][:3]:
        stream.feed(chunk)
    error, failed = stream.close()
    assert error["type"] == "error" and error["error"]["message"]
    assert failed["type"] == "response.failed"
    assert failed["response"]["output"][0]["status"] == "incomplete"
    for event in (error, failed):
        EVENT.validate_python(event)


def test_stream_start_sends_the_opening_events_once() -> None:
    stream = ChatToResponsesStream({"model": "m", "input": "hi"}, response_id="resp_x")
    opening = stream.start()
    assert [event["type"] for event in opening] == ["response.created", "response.in_progress"]
    assert opening[0]["response"]["id"] == "resp_x" and opening[0]["response"]["output"] == []
    events = stream.feed(load("stream", "text")["chunks"][1])
    assert events[0]["type"] == "response.output_item.added"
    assert events[0]["sequence_number"] == 2


def test_stream_rate_limit_error_maps_to_its_code() -> None:
    stream = ChatToResponsesStream({"model": "m", "input": "hi"})
    events = stream.feed(
        {"error": {"message": "slow down", "type": "rate_limit_error", "code": 429, "param": None}}
    )
    assert [event["type"] for event in events][-2:] == ["error", "response.failed"]
    assert events[-2]["code"] == "429"
    assert events[-1]["response"]["error"]["code"] == "rate_limit_exceeded"
    Response.model_validate(events[-1]["response"])


def test_stream_refusal_and_call_without_id() -> None:
    """A refusal is its own content part; a tool call whose first delta has no id still gets
    one call_id, the same on the added and the done item."""
    chunk = load("stream", "text")["chunks"][0]
    chunks = [
        {**chunk, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        for delta, finish in [
            ({"refusal": "I can"}, None),
            ({"refusal": "not."}, None),
            ({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{}"}}]}, None),
            ({}, "tool_calls"),
        ]
    ]
    events = run_stream({"model": "m", "input": "x", "stream": True}, chunks)
    for event in events:
        EVENT.validate_python(event)
    types = [event["type"] for event in events]
    assert types.count("response.refusal.delta") == 2 and "response.refusal.done" in types
    message, call = events[-1]["response"]["output"]
    assert message["content"] == [{"type": "refusal", "refusal": "I cannot."}]
    added = next(
        e["item"] for e in events if e["type"].endswith("added") and e["output_index"] == 1
    )
    assert added["call_id"] == call["call_id"] and call["call_id"]


def test_encode_event_is_one_sse_frame() -> None:
    event = load("stream", "text")["events"][4]
    frame = encode_event(event)
    head, data = frame.split(b"\n", 1)
    assert head == b"event: response.output_text.delta"
    assert data.startswith(b"data: ") and data.endswith(b"\n\n") and data.count(b"\n") == 2
    assert json.loads(data[len(b"data: ") :]) == event


# --- the openai SDK as the client -------------------------------------------------------------


class TranslatingUpstream:
    """What the gateway does for a translated provider, the provider's answer scripted: the
    SDK's body is translated to chat (and validated), the chunks translated back."""

    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self.chunks = chunks
        self.chat: dict[str, Any] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.chat = valid_chat_request(responses_to_chat(body))
        if not body.get("stream"):
            return httpx.Response(200, json=chat_to_response(aggregate(self.chunks), body))
        events = run_stream(body, self.chunks)
        return httpx.Response(
            200,
            headers={"content-type": "text/event-stream"},
            content=b"".join(encode_event(event) for event in events),
        )


@pytest.fixture
def sdk() -> Iterator[tuple[openai.OpenAI, TranslatingUpstream]]:
    upstream = TranslatingUpstream([])
    http = httpx.Client(transport=httpx.MockTransport(upstream))
    with openai.OpenAI(
        api_key="sk-test", base_url="http://gateway.test/v1", http_client=http, max_retries=0
    ) as client:
        yield client, upstream


def sdk_arguments(request: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in request.items() if key != "stream"}


def expected_calls(completion: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [
        (call["id"], call["function"]["name"], call["function"]["arguments"])
        for call in completion["choices"][0]["message"].get("tool_calls", [])
    ]


@pytest.mark.parametrize("name", [name for name in COMPLETE_STREAMS if name != "length"])
def test_sdk_stream_helper_rebuilds_the_response(
    sdk: tuple[openai.OpenAI, TranslatingUpstream], name: str
) -> None:
    client, upstream = sdk
    case = load("stream", name)
    upstream.chunks = case["chunks"]
    completion = aggregate(case["chunks"])
    with client.responses.stream(**sdk_arguments(case["request"])) as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    message = completion["choices"][0]["message"]
    assert final.status == "completed"
    assert final.output_text == "".join(deltas) == (message["content"] or "")
    calls = [item for item in final.output if isinstance(item, ResponseFunctionToolCall)]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == expected_calls(completion)
    reasoning = [item for item in final.output if isinstance(item, ResponseReasoningItem)]
    assert [item.encrypted_content for item in reasoning] == [
        block.get("signature") or "redacted_thinking:" + block.get("data", "")
        for block in message.get("thinking_blocks", [])
    ]
    usage = completion["usage"]
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens) == (
        usage["prompt_tokens"],
        usage["completion_tokens"],
        usage["total_tokens"],
    )
    assert final.usage.input_tokens_details.cached_tokens == 16
    assert upstream.chat["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("name", names("stream"))
def test_sdk_create_stream_iterates_the_events(
    sdk: tuple[openai.OpenAI, TranslatingUpstream], name: str
) -> None:
    client, upstream = sdk
    case = load("stream", name)
    upstream.chunks = case["chunks"]
    received = []
    stream = client.responses.create(**sdk_arguments(case["request"]), stream=True)
    if name == "error_mid_stream":
        with pytest.raises(openai.APIError, match="Overloaded"):
            received.extend(stream)
    else:
        received.extend(stream)
    expected = [e for e in case["events"] if e["type"] not in ("error", "response.failed")]
    assert [event.type for event in received] == [event["type"] for event in expected]
    assert any(isinstance(event, ResponseTextDeltaEvent) for event in received) == any(
        event["type"] == "response.output_text.delta" for event in expected
    )


def test_sdk_stream_helper_raises_on_a_provider_error(
    sdk: tuple[openai.OpenAI, TranslatingUpstream],
) -> None:
    client, upstream = sdk
    case = load("stream", "error_mid_stream")
    upstream.chunks = case["chunks"]
    texts: list[str] = []
    with pytest.raises(openai.APIError) as raised:
        with client.responses.stream(**sdk_arguments(case["request"])) as stream:
            texts.extend(e.delta for e in stream if e.type == "response.output_text.delta")
    assert texts == ["Partial"]
    assert raised.value.message == "Overloaded"
    assert raised.value.body == {
        "type": "overloaded_error",
        "code": None,
        "message": "Overloaded",
        "param": None,
    }


def test_sdk_stream_incomplete_response(sdk: tuple[openai.OpenAI, TranslatingUpstream]) -> None:
    client, upstream = sdk
    case = load("stream", "length")
    upstream.chunks = case["chunks"]
    with client.responses.stream(**sdk_arguments(case["request"])) as stream:
        last = list(stream)[-1]
    assert last.type == "response.incomplete"
    assert last.response.incomplete_details is not None
    assert last.response.incomplete_details.reason == "max_output_tokens"
    assert last.response.output_text == "Once upon a"


@pytest.mark.parametrize("name", COMPLETE_STREAMS)
def test_sdk_create_whole_response(
    sdk: tuple[openai.OpenAI, TranslatingUpstream], name: str
) -> None:
    client, upstream = sdk
    case = load("stream", name)
    upstream.chunks = case["chunks"]
    completion = aggregate(case["chunks"])
    response = client.responses.create(**sdk_arguments(case["request"]))
    assert response.output_text == (completion["choices"][0]["message"]["content"] or "")
    calls = [item for item in response.output if isinstance(item, ResponseFunctionToolCall)]
    assert [(c.call_id, c.name, c.arguments) for c in calls] == expected_calls(completion)
    assert "stream" not in upstream.chat


def test_sdk_follow_up_turn_sends_reasoning_and_tool_results_back(
    sdk: tuple[openai.OpenAI, TranslatingUpstream],
) -> None:
    """A tool-use turn as an SDK user writes it: the previous output items, then the tool's
    result. The chat request the provider gets holds its own signed thinking again."""
    client, upstream = sdk
    case = load("stream", "reasoning_then_text")
    upstream.chunks = case["chunks"]
    request = sdk_arguments(case["request"])
    first = client.responses.create(**request)
    follow_up = [
        *[item.model_dump(exclude_none=True) for item in first.output],
        {"role": "user", "content": "And now?"},
    ]
    client.responses.create(**{**request, "input": follow_up})
    assistant = upstream.chat["messages"][0]
    assert assistant == {
        "role": "assistant",
        "content": "Answer: 42.",
        "reasoning_content": "Hmm, easy.",
        "thinking_blocks": [
            {"type": "thinking", "thinking": "Hmm, easy.", "signature": "U2lnbmF0dXJl"},
            {"type": "redacted_thinking", "data": "UmVkYWN0ZWQ="},
        ],
    }
    assert upstream.chat["messages"][1] == {"role": "user", "content": "And now?"}
