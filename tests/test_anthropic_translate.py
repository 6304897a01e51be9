"""The Anthropic translation (providers/anthropic), against golden files and the SDKs' own types.

Golden files live in tests/fixtures/anthropic/{request,response,stream}/: each holds an input
and the expected output. Every Anthropic request produced is validated with the anthropic SDK's
``MessageCreateParams`` (unknown keys forbidden, as the emulator does), every chat completion
and chunk with the openai SDK's models. ``UPDATE_GOLDEN=1`` rewrites the expected outputs
(review the diff before committing it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from anthropic.types import Message, RawMessageStreamEvent
from anthropic.types import message_create_params as params
from anthropic.types.beta import message_create_params as beta_params
from openai.types import ErrorObject
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from pydantic import TypeAdapter
from pydantic_core import SchemaValidator

from providers.adapter import ChatStreamDecoder, TranslationError
from providers.anthropic import (
    ANTHROPIC_VERSION,
    CONTEXT_MANAGEMENT_BETA,
    EFFORT_BUDGETS,
    FINISH_REASONS,
    MessagesStreamDecoder,
    chat_to_messages,
    error_to_openai,
    messages_to_chat,
    request_headers,
    summarise_stream,
    usage_from_message,
)
from providers.usage import Usage
from tests.emulator.validation import tighten

FIXTURES = Path(__file__).parent / "fixtures" / "anthropic"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
MODEL = "claude-sonnet-4-5-20250929"

_validators: dict[tuple[bool, bool], SchemaValidator] = {}
_EVENT = TypeAdapter(RawMessageStreamEvent)


def _cases(kind: str) -> list[Path]:
    return sorted((FIXTURES / kind).glob("*.json"))


def _golden(path: Path, actual: Any) -> None:
    """Compare ``actual`` with the file's ``expected`` (or record it under UPDATE_GOLDEN)."""
    case = json.loads(path.read_text())
    if UPDATE:
        case["expected"] = actual
        path.write_text(json.dumps(case, indent=2, ensure_ascii=False) + "\n")
        return
    assert actual == case["expected"]


SAMPLING = {"temperature": (int, float), "top_p": (int, float), "top_k": (int,)}
"""The sampling parameters the Messages API documents for the models that take them; the
installed anthropic SDK (2.15) no longer types them (newer models refuse them), so they are
checked here and the rest of the body against the SDK."""


def assert_anthropic_request(body: dict[str, Any]) -> None:
    """``body`` is a request the Messages API accepts, by the SDK's types (no unknown keys)."""
    for name, types in SAMPLING.items():
        if name in body:
            assert type(body[name]) in types and 0 <= body[name] <= (1 if name != "top_k" else 500)
    body = {key: value for key, value in body.items() if key not in SAMPLING}
    key = (body.get("stream") is True, "context_management" in body)
    if key not in _validators:
        module = beta_params if key[1] else params
        kind = (
            module.MessageCreateParamsStreaming
            if key[0]
            else module.MessageCreateParamsNonStreaming
        )
        _validators[key] = SchemaValidator(tighten(TypeAdapter(kind).core_schema))
    _validators[key].validate_json(orjson.dumps(body), strict=True)


def assert_chunk(chunk: dict[str, Any]) -> None:
    if "error" in chunk:
        assert set(chunk) == {"error"}
        ErrorObject.model_validate(chunk["error"])
    else:
        ChatCompletionChunk.model_validate(chunk)


def base_request(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], **extra}


def translate(payload: dict[str, Any]) -> dict[str, Any]:
    body = chat_to_messages(payload, default_max_tokens=4096)
    assert_anthropic_request(body)
    return body


# --- requests ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", _cases("request"), ids=lambda p: p.stem)
def test_request_golden(path: Path) -> None:
    case = json.loads(path.read_text())
    body = chat_to_messages(case["input"], default_max_tokens=case["default_max_tokens"])
    assert_anthropic_request(body)
    _golden(path, body)


def test_consecutive_tool_results_and_user_text_form_one_user_turn() -> None:
    case = json.loads((FIXTURES / "request" / "parallel_tool_results.json").read_text())
    body = translate(case["input"])
    roles = [turn["role"] for turn in body["messages"]]
    assert roles == ["user", "assistant", "user"]  # alternation, as Anthropic requires
    last = body["messages"][-1]["content"]
    assert [block["type"] for block in last] == ["tool_result", "tool_result", "text"]


def test_thinking_blocks_come_first_and_unchanged() -> None:
    case = json.loads((FIXTURES / "request" / "thinking_round_trip.json").read_text())
    body = translate(case["input"])
    blocks = body["messages"][1]["content"]
    assert blocks[:2] == case["input"]["messages"][1]["thinking_blocks"]
    assert blocks[2]["type"] == "tool_use"


@pytest.mark.parametrize("effort", list(EFFORT_BUDGETS))
def test_reasoning_effort_budget_fits_under_max_tokens(effort: str) -> None:
    for limit in (None, 500, 1024, 4096, 20000):
        extra = {} if limit is None else {"max_tokens": limit}
        body = translate(base_request(reasoning_effort=effort, **extra))
        budget = body["thinking"]["budget_tokens"]
        assert body["thinking"]["type"] == "enabled"
        assert budget == EFFORT_BUDGETS[effort] >= 1024
        assert budget < body["max_tokens"]
        # the answer keeps at least the room the client asked for, beside the thinking
        assert body["max_tokens"] >= (limit or 4096)


def test_reasoning_effort_none_and_budget_override() -> None:
    assert "thinking" not in translate(base_request(reasoning_effort="none"))
    body = translate(
        base_request(reasoning_effort="low", reasoning_options={"budget_tokens": 3000})
    )
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 3000}
    assert body["max_tokens"] == 4096


def test_gateway_default_reasoning_matches_the_documented_pair() -> None:
    """§4.3: "the default is 4096 max completion tokens with 2048 budget reasoning tokens"."""
    body = translate(base_request(reasoning_effort="medium"))
    assert (body["max_tokens"], body["thinking"]["budget_tokens"]) == (4096, 2048)


def test_context_editing_defaults_and_disabled() -> None:
    body = translate(base_request(context_editing={"enabled": True}))
    assert body["context_management"] == {"edits": [{"type": "clear_tool_uses_20250919"}]}
    assert "context_management" not in translate(base_request(context_editing={"enabled": False}))
    body = translate(
        base_request(
            reasoning_effort="low",
            context_editing={"enabled": True, "clear_thinking": {"keep": "all"}},
        )
    )
    assert body["context_management"] == {
        "edits": [{"type": "clear_thinking_20251015", "keep": "all"}]
    }


def test_tool_choice_mapping() -> None:
    tools = [{"type": "function", "function": {"name": "f"}}]
    expected = {
        "auto": {"type": "auto"},
        "none": {"type": "none"},
        "required": {"type": "any"},
    }
    for choice, native in expected.items():
        assert translate(base_request(tools=tools, tool_choice=choice))["tool_choice"] == native
    body = translate(base_request(tools=tools, parallel_tool_calls=False))
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert body["tools"] == [{"name": "f", "input_schema": {"type": "object", "properties": {}}}]
    assert "tool_choice" not in translate(base_request(parallel_tool_calls=False))


def test_user_id_sources_and_stop_list() -> None:
    body = translate(base_request(prompt_cache_key="cache-1", stop=["END", "STOP"]))
    assert body["metadata"] == {"user_id": "cache-1"}
    assert body["stop_sequences"] == ["END", "STOP"]
    body = translate(base_request(user="u", safety_identifier="s", prompt_cache_key="c"))
    assert body["metadata"] == {"user_id": "u"}


def test_sampling_defaults_are_not_sent() -> None:
    """1 is both APIs' default; newer Claude models refuse temperature together with top_p."""
    body = translate(base_request(temperature=1, top_p=1.0))
    assert "temperature" not in body and "top_p" not in body
    body = translate(base_request(temperature=0, top_p=1))
    assert body["temperature"] == 0 and "top_p" not in body


def test_system_messages_are_hoisted_and_same_role_turns_merged() -> None:
    body = translate(
        base_request(
            messages=[
                {"role": "user", "content": "one"},
                {"role": "system", "content": "late instruction"},
                {"role": "user", "content": "two"},
                {"role": "assistant", "content": ""},
                {"role": "assistant", "content": "answer"},
            ]
        )
    )
    assert body["system"] == [{"type": "text", "text": "late instruction"}]
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}],
        },
        {"role": "assistant", "content": "answer"},
    ]


def test_media_spellings() -> None:
    body = translate(
        _user(
            {"type": "image_url", "image_url": {"url": "data:image/jpg;base64,/9j/"}},
            {"type": "image_url", "image_url": "http://example.com/a.gif"},
            {"type": "file", "file": {"file_data": "JVBERi0=", "filename": "a.pdf"}},
            {"type": "file", "file": {"file_data": "data:text/plain,caf%C3%A9"}},
        )
    )
    sources = [block["source"] for block in body["messages"][0]["content"]]
    assert sources == [
        {"type": "base64", "media_type": "image/jpeg", "data": "/9j/"},
        {"type": "url", "url": "http://example.com/a.gif"},
        {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        {"type": "text", "media_type": "text/plain", "data": "café"},
    ]


def _many_breakpoints() -> dict[str, Any]:
    part = {"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}
    return base_request(messages=[{"role": "user", "content": [part] * 5}])


def _user(*parts: dict[str, Any]) -> dict[str, Any]:
    return base_request(messages=[{"role": "user", "content": list(parts)}])


def _assistant_call(arguments: str) -> dict[str, Any]:
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": arguments}}
    return base_request(
        messages=[{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call]}]
    )


_CANNOT = "cannot be expressed by the Anthropic Messages API"
REFUSED: list[tuple[str, dict[str, Any], str, str]] = [
    # (case, request, the param named, what the message must say)
    ("n", base_request(n=2), "n", "`n` = 2 " + _CANNOT),
    ("presence_penalty", base_request(presence_penalty=0.5), "presence_penalty", _CANNOT),
    ("frequency_penalty", base_request(frequency_penalty=-1), "frequency_penalty", _CANNOT),
    ("logprobs", base_request(logprobs=True), "logprobs", "`logprobs` = true " + _CANNOT),
    ("top_logprobs", base_request(top_logprobs=3), "top_logprobs", _CANNOT),
    ("logit_bias", base_request(logit_bias={"50256": -100}), "logit_bias", _CANNOT),
    ("seed", base_request(seed=7), "seed", _CANNOT),
    ("store", base_request(store=True), "store", _CANNOT),
    ("metadata", base_request(metadata={"k": "v"}), "metadata", _CANNOT),
    ("audio_output", base_request(modalities=["text", "audio"]), "modalities", _CANNOT),
    (
        "prediction",
        base_request(prediction={"type": "content", "content": "x"}),
        "prediction",
        _CANNOT,
    ),
    ("functions", base_request(functions=[{"name": "f"}]), "functions", _CANNOT),
    ("verbosity", base_request(verbosity="low"), "verbosity", _CANNOT),
    (
        "unknown",
        base_request(frobnicate=True),
        "frobnicate",
        "Unknown parameter `frobnicate`: the Anthropic Messages API cannot express it",
    ),
    ("temperature_above_1", base_request(temperature=1.5), "temperature", "from 0 to 1"),
    ("temperature_string", base_request(temperature="0.5"), "temperature", "must be a number"),
    (
        "json_object",
        base_request(response_format={"type": "json_object"}),
        "response_format",
        "Anthropic cannot express response_format json_object",
    ),
    (
        "json_schema_description",
        base_request(
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "x", "description": "d", "schema": {"type": "object"}},
            }
        ),
        "response_format.json_schema.description",
        "cannot express `json_schema.description`",
    ),
    (
        "service_tier",
        base_request(service_tier="flex"),
        "service_tier",
        'Anthropic cannot express service_tier "flex"',
    ),
    (
        "tool_type",
        base_request(tools=[{"type": "custom", "custom": {"name": "c"}}]),
        "tools[0].type",
        "Anthropic can only take function tools; got a tool of type 'custom'",
    ),
    (
        "tool_choice_allowed_tools",
        base_request(tool_choice={"type": "allowed_tools", "allowed_tools": {}}),
        "tool_choice",
        'Anthropic cannot express tool_choice "allowed_tools"',
    ),
    (
        "reasoning_effort",
        base_request(reasoning_effort="extreme"),
        "reasoning_effort",
        'Unknown reasoning_effort "extreme"',
    ),
    (
        "small_budget",
        base_request(reasoning_options={"budget_tokens": 512}),
        "reasoning_options.budget_tokens",
        "at least 1024 tokens",
    ),
    (
        "thinking_and_effort",
        base_request(reasoning_effort="low", thinking={"type": "enabled", "budget_tokens": 2000}),
        "thinking",
        "not both",
    ),
    (
        "context_editing_enabled",
        base_request(context_editing={"clear_tool_uses": {}}),
        "context_editing.enabled",
        "needs `enabled`",
    ),
    (
        "context_editing_field",
        base_request(context_editing={"enabled": True, "clear_tool_uses": {"keep_last": 1}}),
        "context_editing.clear_tool_uses",
        "clear_tool_uses takes",
    ),
    (
        "cache_breakpoints",
        _many_breakpoints(),
        "messages[0].content[4].cache_control",
        "at most 4 cache_control breakpoints",
    ),
    (
        "audio_input",
        _user({"type": "input_audio", "input_audio": {"data": "AA", "format": "wav"}}),
        "messages[0].content[0].type",
        "cannot take audio input",
    ),
    (
        "image_type",
        _user({"type": "image_url", "image_url": {"url": "data:image/bmp;base64,Qk0="}}),
        "messages[0].content[0].image_url.url",
        "type 'image/bmp'",
    ),
    (
        "image_scheme",
        _user({"type": "image_url", "image_url": {"url": "ftp://x/y.png"}}),
        "messages[0].content[0].image_url.url",
        "http(s) URL or a base64 data: URL",
    ),
    (
        "file_id",
        _user({"type": "file", "file": {"file_id": "f-1"}}),
        "messages[0].content[0].file.file_id",
        "cannot read OpenAI uploaded files",
    ),
    (
        "file_type",
        _user({"type": "file", "file": {"file_data": "data:application/zip;base64,UA=="}}),
        "messages[0].content[0].file.file_data",
        "type 'application/zip'",
    ),
    (
        "tool_arguments_not_json",
        _assistant_call("{"),
        "messages[1].tool_calls[0].function.arguments",
        "JSON text of an object",
    ),
    (
        "tool_arguments_not_object",
        _assistant_call("[1]"),
        "messages[1].tool_calls[0].function.arguments",
        "JSON text of an object",
    ),
    (
        "tool_message_without_id",
        base_request(messages=[{"role": "tool", "content": "x"}]),
        "messages[0].tool_call_id",
        "needs the `tool_call_id`",
    ),
    (
        "unsigned_thinking",
        base_request(
            messages=[
                {
                    "role": "assistant",
                    "content": "a",
                    "thinking_blocks": [{"type": "thinking", "thinking": "t"}],
                }
            ]
        ),
        "messages[0].thinking_blocks[0]",
        "needs string `thinking` and `signature`",
    ),
    (
        "name",
        base_request(messages=[{"role": "user", "content": "x", "name": "bob"}]),
        "messages[0].name",
        "Anthropic has no participant names",
    ),
    (
        "system_image",
        base_request(
            messages=[
                {
                    "role": "system",
                    "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}],
                }
            ]
        ),
        "messages[0].content[0]",
        "Only text content parts are allowed here; got 'image_url'",
    ),
    (
        "function_role",
        base_request(messages=[{"role": "function", "content": "x"}]),
        "messages[0].role",
        "legacy `function` messages",
    ),
    ("no_messages", base_request(messages=[]), "messages", "non-empty list"),
]


@pytest.mark.parametrize(
    ("payload", "param", "says"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_inexpressible_requests_are_refused_naming_the_field(
    payload: dict[str, Any], param: str, says: str
) -> None:
    with pytest.raises(TranslationError) as caught:
        chat_to_messages(payload, default_max_tokens=4096)
    assert caught.value.param == param
    assert says in caught.value.message


def test_refusal_messages_say_anthropic_cannot_express_the_field() -> None:
    for key, value in (("n", 3), ("logprobs", True), ("logit_bias", {"1": 1}), ("seed", 1)):
        with pytest.raises(TranslationError) as caught:
            chat_to_messages(base_request(**{key: value}), default_max_tokens=4096)
        assert f"`{key}`" in caught.value.message
        assert "cannot be expressed by the Anthropic" in caught.value.message


def test_neutral_values_are_accepted() -> None:
    body = translate(
        base_request(
            n=1,
            presence_penalty=0,
            frequency_penalty=0.0,
            logprobs=False,
            top_logprobs=0,
            logit_bias={},
            seed=None,
            store=False,
            metadata={},
            modalities=["text"],
            audio=None,
            response_format={"type": "text"},
            stream_options={"include_usage": True},
            parallel_tool_calls=True,
            reasoning_effort=None,
        )
    )
    assert body == {
        "model": MODEL,
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": "Hi"}],
    }


# --- whole responses -----------------------------------------------------------------------


@pytest.mark.parametrize("path", _cases("response"), ids=lambda p: p.stem)
def test_response_golden(path: Path) -> None:
    case = json.loads(path.read_text())
    Message.model_validate(case["input"])  # the fixture is a real Anthropic Message
    completion = messages_to_chat(case["input"], created=case["created"])
    ChatCompletion.model_validate(completion)
    _golden(path, completion)


@pytest.mark.parametrize(("stop_reason", "finish"), sorted(FINISH_REASONS.items()))
def test_each_stop_reason(stop_reason: str, finish: str) -> None:
    message = json.loads((FIXTURES / "response" / "text.json").read_text())["input"]
    message["stop_reason"] = stop_reason
    Message.model_validate(message)
    completion = messages_to_chat(message)
    assert ChatCompletion.model_validate(completion).choices[0].finish_reason == finish


def test_every_anthropic_stop_reason_is_mapped() -> None:
    from typing import get_args

    from anthropic.types import StopReason

    assert set(get_args(StopReason)) == set(FINISH_REASONS)


def test_tool_call_ids_and_arguments() -> None:
    case = json.loads((FIXTURES / "response" / "parallel_tool_calls.json").read_text())
    parsed = ChatCompletion.model_validate(messages_to_chat(case["input"]))
    calls = parsed.choices[0].message.tool_calls or []
    assert [c.id for c in calls] == ["toolu_01A", "toolu_01B"]
    assert [json.loads(c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        {"city": "Paris"},
        {"city": "Rome"},
    ]
    assert parsed.choices[0].message.content is None


def test_cache_tokens_in_openai_convention() -> None:
    case = json.loads((FIXTURES / "response" / "cache_tokens.json").read_text())
    usage = messages_to_chat(case["input"])["usage"]
    assert usage["prompt_tokens"] == 21 + 1800 + 250
    assert usage["prompt_tokens_details"] == {"cached_tokens": 1800, "cache_write_tokens": 250}
    assert usage["total_tokens"] == usage["prompt_tokens"] + 9
    assert usage_from_message(case["input"]) == Usage(
        prompt_tokens=2071, completion_tokens=9, cache_read_tokens=1800, cache_write_tokens=250
    )


def test_thinking_round_trips_through_a_follow_up_request() -> None:
    case = json.loads((FIXTURES / "response" / "thinking.json").read_text())
    message = messages_to_chat(case["input"])["choices"][0]["message"]
    follow_up = base_request(
        messages=[
            {"role": "user", "content": "What is 27 * 453?"},
            message,
            {"role": "user", "content": "Thanks."},
        ],
        reasoning_effort="low",
    )
    follow_up["messages"][1] = {k: v for k, v in message.items() if k != "refusal"}
    body = translate(follow_up)
    # the blocks go back exactly as Anthropic sent them, signature included
    assert body["messages"][1]["content"] == case["input"]["content"]


# --- streams -------------------------------------------------------------------------------


def _sse(events: list[dict[str, Any]]) -> bytes:
    return b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events
    )


def _decode(
    case: dict[str, Any],
) -> tuple[list[list[dict[str, Any]]], list[dict[str, Any]], MessagesStreamDecoder]:
    decoder = MessagesStreamDecoder(include_usage=case["include_usage"], created=case["created"])
    per_event = [decoder.feed(e["type"], orjson.dumps(e)) for e in case["events"]]
    return per_event, decoder.close(), decoder


@pytest.mark.parametrize("path", _cases("stream"), ids=lambda p: p.stem)
def test_stream_golden(path: Path) -> None:
    case = json.loads(path.read_text())
    for event in case["events"]:
        if event["type"] not in ("ping", "error"):
            _EVENT.validate_python(event)  # the fixture is a real Anthropic event
    per_event, closing, decoder = _decode(case)
    for chunk in [c for chunks in per_event for c in chunks] + closing:
        assert_chunk(chunk)
    usage = decoder.usage
    _golden(
        path,
        {
            "per_event": per_event,
            "close": closing,
            "usage": usage._asdict() if usage is not None else None,
        },
    )


def _carried(event: dict[str, Any]) -> str | None:
    """What an event brings that its own chunks must already carry (None: nothing)."""
    if event["type"] == "content_block_delta":
        delta = event["delta"]
        found = [delta.get(k) for k in ("text", "partial_json", "thinking", "signature")]
        return next((value for value in found if value), None)
    if event["type"] == "content_block_start":
        block = event["content_block"]
        return block.get("id") or block.get("data") or block.get("text") or None
    if event["type"] == "message_start":
        return '"role": "assistant"'
    if event["type"] == "message_delta":
        return f'"finish_reason": "{FINISH_REASONS[event["delta"]["stop_reason"]]}"'
    if event["type"] == "error":
        return event["error"]["message"]
    return None


@pytest.mark.parametrize("path", _cases("stream"), ids=lambda p: p.stem)
def test_stream_chunks_leave_as_each_event_arrives(path: Path) -> None:
    """Each event's content is in the chunks ``feed`` returns for that very event."""
    case = json.loads(path.read_text())
    decoder = MessagesStreamDecoder(include_usage=False)
    for event in case["events"]:
        chunks = json.dumps(decoder.feed(event["type"], orjson.dumps(event)), ensure_ascii=False)
        carried = _carried(event)
        if carried is not None and event["type"] in ("message_start", "message_delta"):
            assert carried in chunks, event
        elif carried is not None:
            assert json.dumps(carried, ensure_ascii=False)[1:-1] in chunks, event
        if event["type"] == "error":
            break  # what follows an error is dropped (test_error_event_mid_stream...)


def test_tool_call_indexes_count_tool_calls_only() -> None:
    case = json.loads((FIXTURES / "stream" / "tool_call.json").read_text())
    per_event, _, _ = _decode(case)
    calls = [
        call
        for chunks in per_event
        for chunk in chunks
        for call in chunk["choices"][0]["delta"].get("tool_calls", [])
    ]
    assert {call["index"] for call in calls} == {0}  # Anthropic's block index was 1
    first = calls[0]
    assert first["id"] == "toolu_01T1x1fJ34qAmk2tNTrN7Up6"
    assert first["function"] == {"name": "get_weather", "arguments": ""}


def _accumulate(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """What an OpenAI client builds from the chunks (the openai SDK's stream accumulation)."""
    message: dict[str, Any] = {"content": "", "reasoning": "", "calls": {}, "thinking": []}
    finish = None
    usage = None
    for chunk in chunks:
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices", []):
            delta = choice["delta"]
            message["content"] += delta.get("content") or ""
            message["reasoning"] += delta.get("reasoning_content") or ""
            message["thinking"] += delta.get("thinking_blocks") or []
            for call in delta.get("tool_calls") or []:
                slot = message["calls"].setdefault(call["index"], {"id": None, "args": ""})
                slot["id"] = call.get("id") or slot["id"]
                slot["args"] += call.get("function", {}).get("arguments", "")
            finish = choice["finish_reason"] or finish
    return {**message, "finish": finish, "usage": usage}


@pytest.mark.parametrize(
    "path", [p for p in _cases("stream") if p.stem != "error_mid_stream"], ids=lambda p: p.stem
)
def test_stream_says_what_the_whole_message_says(path: Path) -> None:
    """Decoded chunks add up to the completion of the Message the stream rebuilds to."""
    case = json.loads(path.read_text())
    per_event, closing, _ = _decode(dict(case, include_usage=True))
    streamed = _accumulate([c for chunks in per_event for c in chunks] + closing)
    summary = summarise_stream(_sse(case["events"]))
    assert summary.final is not None
    Message.model_validate(summary.final)
    whole = messages_to_chat(summary.final)["choices"][0]
    message = whole["message"]
    assert streamed["content"] == (message["content"] or "")
    assert streamed["reasoning"] == message.get("reasoning_content", "")
    assert [
        {"id": call["id"], "args": json.loads(call["args"])} for call in streamed["calls"].values()
    ] == [
        {"id": call["id"], "args": json.loads(call["function"]["arguments"])}
        for call in message.get("tool_calls", [])
    ]
    # signatures arrive as their own deltas; the thinking text arrived as reasoning_content
    signatures = [b.get("signature") or b.get("data") for b in streamed["thinking"]]
    assert signatures == [
        b.get("signature") or b.get("data") for b in message.get("thinking_blocks", [])
    ]
    assert streamed["finish"] == whole["finish_reason"]
    assert streamed["usage"] == messages_to_chat(summary.final)["usage"]
    assert summary.model == MODEL


def test_error_event_mid_stream_becomes_an_error_chunk() -> None:
    case = json.loads((FIXTURES / "stream" / "error_mid_stream.json").read_text())
    per_event, closing, _ = _decode(case)
    assert per_event[3] == [
        {
            "error": {
                "message": "Overloaded",
                "type": "overloaded_error",
                "param": None,
                "code": None,
            }
        }
    ]
    assert per_event[4] == [] and closing == []  # nothing after the error


def test_stream_cut_short_ends_with_an_error_chunk() -> None:
    case = json.loads((FIXTURES / "stream" / "text.json").read_text())
    decoder = MessagesStreamDecoder(include_usage=False)
    for event in case["events"][:4]:
        decoder.feed(event["type"], orjson.dumps(event))
    (chunk,) = decoder.close()
    assert chunk["error"] == {
        "message": "The Anthropic stream ended before the message was complete.",
        "type": "api_error", "param": None, "code": None,
    }  # fmt: skip
    assert decoder.usage == Usage(prompt_tokens=25, completion_tokens=1)


def test_stream_without_message_stop_still_sends_usage() -> None:
    case = json.loads((FIXTURES / "stream" / "text.json").read_text())
    decoder = MessagesStreamDecoder(include_usage=True, created=1)
    for event in case["events"][:-1]:
        decoder.feed(event["type"], orjson.dumps(event))
    (chunk,) = decoder.close()
    assert chunk["choices"] == [] and chunk["usage"]["completion_tokens"] == 15


def test_stream_usage_is_cumulative_and_counts_cache() -> None:
    case = json.loads((FIXTURES / "stream" / "cache_tokens.json").read_text())
    decoder = MessagesStreamDecoder(include_usage=False)
    assert decoder.usage is None
    first = case["events"][0]
    decoder.feed(first["type"], orjson.dumps(first))
    assert decoder.usage == Usage(
        prompt_tokens=2071, completion_tokens=1, cache_read_tokens=1800, cache_write_tokens=250
    )
    for event in case["events"][1:]:
        decoder.feed(event["type"], orjson.dumps(event))
    assert decoder.usage is not None and decoder.usage.completion_tokens == 9


def test_decoder_implements_the_seam() -> None:
    decoder: ChatStreamDecoder = MessagesStreamDecoder(include_usage=False)
    assert decoder.feed("ping", b'{"type": "ping"}') == []
    (chunk,) = decoder.feed(None, b"not json")
    assert chunk["error"]["type"] == "api_error"


# --- passthrough logging -------------------------------------------------------------------


def test_summarise_stream_counts_cache_reads() -> None:
    case = json.loads((FIXTURES / "stream" / "cache_tokens.json").read_text())
    summary = summarise_stream(_sse(case["events"]))
    assert summary.usage == Usage(
        prompt_tokens=2071, completion_tokens=9, cache_read_tokens=1800, cache_write_tokens=250
    )
    assert summary.text == "Cached answer."
    assert summary.final is not None and summary.final["stop_reason"] == "max_tokens"


def test_summarise_stream_rebuilds_tool_input_and_thinking() -> None:
    tool = summarise_stream(
        _sse(json.loads((FIXTURES / "stream" / "tool_call.json").read_text())["events"])
    )
    assert tool.final is not None
    assert tool.final["content"][1]["input"] == {"location": "San Francisco, CA"}
    thinking = summarise_stream(
        _sse(json.loads((FIXTURES / "stream" / "thinking.json").read_text())["events"])
    )
    assert thinking.final is not None
    block = thinking.final["content"][0]
    assert block["thinking"] == "1071 = 2 \u00d7 462 + 147\nso the GCD is 21."
    assert block["signature"].startswith("EqQB")
    assert thinking.usage is not None and thinking.usage.reasoning_tokens == 290


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff\xfe garbage",
        b"data: [DONE]\n\n",
        b'data: {"type": "message_start", "message": 3}\n\n',
        b'data: {"type": "content_block_delta", "index": 0, "delta": 1}\n\n',
        b'data: {"type": "message_start", "message": {"usage": {"input_tokens": "x"}}}'
        b'\n\ndata: {"type": "content_block_start", "index": 0, "content_block": []}\n\n'
        b'data: {"type": "content_block_delta", "index": 0, "delta": {"type": 3}}\n\n'
        b'data: {"type": "message_delta", "delta": null, "usage": {"output_tokens": -4}}',
        b"data: " + b"[" * 100_000 + b"\n\n",
        b'data: {"type": "content_block_start", "index": 0, "content_block": '
        b'{"type": "tool_use", "id": "t", "name": "f", "input": {}}}\n\n'
        b'data: {"type": "content_block_delta", "index": 0, "delta": '
        b'{"type": "input_json_delta", "partial_json": "{\\"a"}}\n\n',
    ],
)
def test_summarise_stream_never_raises(raw: bytes) -> None:
    summary = summarise_stream(raw)
    assert summary.usage is None or summary.usage.prompt_tokens >= 0


def test_usage_from_message_is_tolerant() -> None:
    assert usage_from_message(None) is None
    assert usage_from_message({"usage": "x"}) is None
    assert usage_from_message(
        {
            "type": "message_start",
            "message": {
                "usage": {"input_tokens": 5, "cache_read_input_tokens": 7, "output_tokens": 1}
            },
        }
    ) == Usage(prompt_tokens=12, completion_tokens=1, cache_read_tokens=7)
    assert usage_from_message({"usage": {"input_tokens": True, "output_tokens": -2}}) == Usage()


# --- errors and headers --------------------------------------------------------------------


def test_error_body_keeps_message_and_type() -> None:
    body = orjson.dumps(
        {
            "type": "error",
            "error": {
                "type": "rate_limit_error",
                "message": "Number of request tokens has exceeded",
            },
            "request_id": "req_011",
        }
    )
    error = error_to_openai(429, body)
    assert error == {
        "error": {
            "message": "Number of request tokens has exceeded",
            "type": "rate_limit_error",
            "param": None,
            "code": None,
        }
    }
    ErrorObject.model_validate(error["error"])


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (502, b"<html>Bad gateway</html>", "api_error"),
        (529, b"", "overloaded_error"),
        (401, b'{"error": "nope"}', "authentication_error"),
        (418, b"[1, 2]", "invalid_request_error"),
    ],
)
def test_error_body_that_is_not_anthropics(status: int, body: bytes, kind: str) -> None:
    error = error_to_openai(status, body)["error"]
    assert error["type"] == kind
    assert f"HTTP {status}" in error["message"]
    assert body.decode() in error["message"]


def test_request_headers() -> None:
    plain = request_headers("sk-ant-1", translate(base_request()))
    assert plain == {
        "x-api-key": "sk-ant-1",
        "anthropic-version": ANTHROPIC_VERSION,
        "content-type": "application/json",
    }
    edited = request_headers("k", translate(base_request(context_editing={"enabled": True})))
    assert edited["anthropic-beta"] == CONTEXT_MANAGEMENT_BETA


def test_a_streamed_turns_thinking_text_goes_back_into_its_signed_block() -> None:
    """The stream gives the text as reasoning_content and the signature in an empty block:
    sent back, the block carries the text again (Anthropic checks it against the signature)."""
    sent = chat_to_messages(
        {
            "model": "claude-sonnet-4-5",
            "messages": [
                {"role": "user", "content": "think"},
                {
                    "role": "assistant",
                    "content": "done",
                    "reasoning_content": "Let me think.",
                    "thinking_blocks": [{"type": "thinking", "thinking": "", "signature": "c2ln"}],
                },
                {"role": "user", "content": "again"},
            ],
        },
        default_max_tokens=1000,
    )
    assistant = sent["messages"][1]["content"]
    assert assistant[0] == {"type": "thinking", "thinking": "Let me think.", "signature": "c2ln"}


def test_a_prompt_too_long_error_carries_openais_code() -> None:
    body = b'{"type":"error","error":{"type":"invalid_request_error",' \
           b'"message":"prompt is too long: 210000 tokens > 200000 maximum"}}'
    error = error_to_openai(400, body)["error"]
    assert error["code"] == "context_length_exceeded" and error["param"] == "messages"
    assert error["message"].startswith("prompt is too long")
    other = error_to_openai(400, body.replace(b"prompt is too long", b"max_tokens: bad"))
    assert other["error"]["code"] is None
