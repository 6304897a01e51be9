"""The emulator's Anthropic Messages API, driven by the real anthropic SDK (and raw HTTP).

The gateway's Anthropic adapter is tested end to end against this emulator; these tests are
what makes it a fair stand-in: every answer, event and error must parse with the official
SDK exactly as Anthropic's would, and every scenario a translator must handle (tools,
parallel calls, thinking, stop sequences, max_tokens, refusal, caching, mid-stream errors)
must be reachable on demand.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import httpx2
import orjson
import pytest
from anthropic.types import Message

from tests.emulator import Fault, OpenAIEmulator
from tests.emulator.anthropic_errors import prompt_too_long
from tests.emulator.messages_plan import (
    PARALLEL,
    REDACTED_THINKING,
    REFUSE,
    TEXT_THEN_TOOL,
)

KEY = "sk-ant-emulator"
MODEL = "claude-sonnet-4-5"
VERSION = "2023-06-01"
EXPECTED = "Hello from the emulator. You said: what is up"
USER: list[Any] = [{"role": "user", "content": "what is up"}]
TOOLS: list[Any] = [
    {
        "name": "lookup",
        "description": "Look something up.",
        "input_schema": {"type": "object", "properties": {"echo": {"type": "string"}}},
    },
    {"name": "other", "input_schema": {"type": "object"}},
]
THINKING: Any = {"type": "enabled", "budget_tokens": 1024}


@pytest.fixture(scope="module")
def running() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture
def emulator(running: OpenAIEmulator) -> OpenAIEmulator:
    running.reset()
    return running


def _client(emulator: OpenAIEmulator, **headers: str) -> anthropic.Anthropic:
    """A client sending what the gateway sends: ``x-api-key`` and ``anthropic-version``."""
    default = {"x-api-key": KEY, "anthropic-version": VERSION, **headers}
    return anthropic.Anthropic(
        base_url=emulator.anthropic_base_url, api_key=None, default_headers=default, max_retries=0
    )


@pytest.fixture
def client(emulator: OpenAIEmulator) -> Iterator[anthropic.Anthropic]:
    with _client(emulator) as sdk:
        yield sdk


def raw_post(
    emulator: OpenAIEmulator, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    sent = {"x-api-key": KEY, "anthropic-version": VERSION, "content-type": "application/json"}
    sent.update(headers or {})
    url = emulator.anthropic_base_url + "/v1/messages"
    return httpx.post(url, content=content, headers=sent, timeout=10)


def sse_events(body: bytes) -> list[tuple[str, Any]]:
    """(event name, decoded data) of each SSE event."""
    out = []
    for chunk in body.decode().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in chunk.splitlines() if ": " in line)
        if lines:
            out.append((lines["event"], orjson.loads(lines["data"])))
    return out


def create(client: anthropic.Anthropic, **params: Any) -> Message:
    params.setdefault("model", MODEL)
    params.setdefault("max_tokens", 2000)
    params.setdefault("messages", USER)
    return client.messages.create(**params)


def blocks(message: Message) -> list[str]:
    return [block.type for block in message.content]


def normalised(message: Message) -> dict[str, Any]:
    """The message without what differs between two answers to one request (ids)."""
    data = message.model_dump()
    data.pop("id")
    for block in data["content"]:
        if block["type"] == "tool_use":
            block["id"] = block["id"].rsplit("_", 1)[-1]
    return data


class TestPlain:
    def test_echo_usage_ids_and_headers(
        self, emulator: OpenAIEmulator, client: anthropic.Anthropic
    ) -> None:
        raw = client.messages.with_raw_response.create(model=MODEL, max_tokens=100, messages=USER)
        message = raw.parse()
        assert raw.headers["request-id"].startswith("req_emu_")
        assert message.id.startswith("msg_emu_")
        assert (message.type, message.role, message.model) == ("message", "assistant", MODEL)
        assert blocks(message) == ["text"]
        assert message.content[0].text == EXPECTED  # type: ignore[union-attr]
        assert (message.stop_reason, message.stop_sequence) == ("end_turn", None)
        usage = message.usage
        assert (usage.input_tokens, usage.output_tokens) == (3, 9)
        assert (usage.cache_creation_input_tokens, usage.cache_read_input_tokens) == (0, 0)
        sent = emulator.requests[-1]
        assert (sent.method, sent.path) == ("POST", "/v1/messages")
        assert sent.headers["x-api-key"] == KEY
        assert sent.headers["anthropic-version"] == VERSION
        assert sent.json["max_tokens"] == 100

    def test_wire_keys_in_anthropic_order(self, emulator: OpenAIEmulator) -> None:
        body = raw_post(emulator, {"model": MODEL, "max_tokens": 50, "messages": USER}).json()
        assert list(body)[:3] == ["id", "type", "role"]
        assert body["content"] == [{"type": "text", "text": EXPECTED}]

    def test_sdk_own_defaults_bearer_key_and_new_version(self, emulator: OpenAIEmulator) -> None:
        with anthropic.Anthropic(
            base_url=emulator.anthropic_base_url, api_key=KEY, max_retries=0
        ) as sdk:
            assert create(sdk).content[0].text == EXPECTED  # type: ignore[union-attr]
        assert emulator.requests[-1].headers["authorization"] == f"Bearer {KEY}"

    async def test_async_client(self, emulator: OpenAIEmulator) -> None:
        default = {"x-api-key": KEY, "anthropic-version": VERSION}
        async with anthropic.AsyncAnthropic(
            base_url=emulator.anthropic_base_url,
            api_key=None,
            default_headers=default,
            max_retries=0,
        ) as sdk:
            message = await sdk.messages.create(model=MODEL, max_tokens=50, messages=USER)
            async with sdk.messages.stream(model=MODEL, max_tokens=50, messages=USER) as stream:
                final = await stream.get_final_message()
        assert normalised(final) == normalised(message)

    def test_last_user_text_echoed_system_counted_turns_merged(
        self, client: anthropic.Anthropic
    ) -> None:
        messages: Any = [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "an answer"},
            {"role": "user", "content": [{"type": "text", "text": "second"}]},
            {"role": "user", "content": "question"},
        ]
        message = create(client, system="be brief", messages=messages)
        assert message.content[0].text == reply("question")  # type: ignore[union-attr]
        assert message.usage.input_tokens == 2 + 2 + 2 + 1 + 1


def reply(text: str) -> str:
    return f"Hello from the emulator. You said: {text}"


class TestTools:
    def test_tool_call(self, client: anthropic.Anthropic) -> None:
        message = create(client, tools=TOOLS)
        assert message.stop_reason == "tool_use"
        [call] = message.content
        assert call.type == "tool_use"
        assert (call.name, call.input) == ("lookup", {"echo": "what is up"})
        assert call.id.startswith("toolu_")
        assert message.usage.output_tokens == 5

    def test_tool_choice_named_none_and_answered(self, client: anthropic.Anthropic) -> None:
        named = create(client, tools=TOOLS, tool_choice={"type": "tool", "name": "other"})
        assert [b.name for b in named.content] == ["other"]  # type: ignore[union-attr]
        assert blocks(create(client, tools=TOOLS, tool_choice={"type": "none"})) == ["text"]
        call = create(client, tools=TOOLS).content[0]
        answered: Any = [
            *USER,
            {"role": "assistant", "content": [call.model_dump(exclude_none=True)]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id}]},  # type: ignore[union-attr]
        ]
        after = create(client, tools=TOOLS, messages=answered)
        assert after.stop_reason == "end_turn"
        assert after.content[0].text == EXPECTED  # type: ignore[union-attr]

    def test_parallel_calls(self, client: anthropic.Anthropic) -> None:
        text = f"two at once {PARALLEL}"
        message = create(client, tools=TOOLS, messages=[{"role": "user", "content": text}])
        calls = message.content
        assert [c.name for c in calls] == ["lookup", "other"]  # type: ignore[union-attr]
        assert [c.input for c in calls] == [  # type: ignore[union-attr]
            {"echo": text, "call": 1},
            {"echo": text, "call": 2},
        ]
        assert len({c.id for c in calls}) == 2  # type: ignore[union-attr]
        assert message.usage.output_tokens == 10
        single = create(
            client,
            tools=TOOLS,
            tool_choice={"type": "auto", "disable_parallel_tool_use": True},
            messages=[{"role": "user", "content": text}],
        )
        assert blocks(single) == ["tool_use"]

    def test_text_then_tool_only_when_the_model_may_choose(
        self, client: anthropic.Anthropic
    ) -> None:
        text = f"explain then call {TEXT_THEN_TOOL}"
        messages: Any = [{"role": "user", "content": text}]
        message = create(client, tools=TOOLS, messages=messages)
        assert blocks(message) == ["text", "tool_use"]
        assert message.content[0].text == reply(text)  # type: ignore[union-attr]
        assert message.stop_reason == "tool_use"
        forced = create(client, tools=TOOLS, messages=messages, tool_choice={"type": "any"})
        assert blocks(forced) == ["tool_use"]

    def test_server_tools_are_not_called(self, client: anthropic.Anthropic) -> None:
        web: Any = [{"type": "web_search_20250305", "name": "web_search"}]
        assert blocks(create(client, tools=web)) == ["text"]


class TestThinking:
    def test_thinking_block_with_signature_before_the_answer(
        self, client: anthropic.Anthropic
    ) -> None:
        message = create(client, thinking=THINKING)
        assert blocks(message) == ["thinking", "text"]
        thinking = message.content[0]
        assert thinking.thinking == "The user said: what is up"  # type: ignore[union-attr]
        assert thinking.signature  # type: ignore[union-attr]
        assert message.usage.output_tokens == 6 + 9

    def test_signed_thinking_round_trips_and_tampering_is_refused(
        self, client: anthropic.Anthropic
    ) -> None:
        first = create(client, thinking=THINKING, tools=TOOLS)
        assert blocks(first) == ["thinking", "tool_use"]
        assistant = [b.model_dump(exclude_none=True) for b in first.content]
        result = {"type": "tool_result", "tool_use_id": first.content[1].id, "content": "42"}  # type: ignore[union-attr]

        def follow_up(content: list[Any]) -> Message:
            turns: Any = [
                *USER,
                {"role": "assistant", "content": content},
                {"role": "user", "content": [result]},
            ]
            return create(client, thinking=THINKING, tools=TOOLS, messages=turns)

        assert follow_up(assistant).stop_reason == "end_turn"
        tampered = [{**assistant[0], "thinking": "something else"}, assistant[1]]
        with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):
            follow_up(tampered)
        with pytest.raises(anthropic.BadRequestError, match="must start with a thinking block"):
            follow_up(assistant[1:])

    def test_omitted_display_sends_an_empty_thinking_that_still_verifies(
        self, client: anthropic.Anthropic
    ) -> None:
        omitted = {**THINKING, "display": "omitted"}
        first = create(client, thinking=omitted, tools=TOOLS)
        assert first.content[0].thinking == ""  # type: ignore[union-attr]
        turns: Any = [
            *USER,
            {
                "role": "assistant",
                "content": [b.model_dump(exclude_none=True) for b in first.content],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": first.content[1].id}],
            },  # type: ignore[union-attr]
        ]
        assert create(client, thinking=omitted, tools=TOOLS, messages=turns).content

    def test_redacted_thinking_on_request(self, client: anthropic.Anthropic) -> None:
        messages: Any = [{"role": "user", "content": f"hide {REDACTED_THINKING}"}]
        message = create(client, thinking=THINKING, messages=messages)
        assert blocks(message) == ["thinking", "redacted_thinking", "text"]
        assert blocks(create(client, messages=messages)) == ["text"]


class TestStops:
    def test_stop_sequence_cuts_the_text(self, client: anthropic.Anthropic) -> None:
        message = create(client, stop_sequences=["nothing", "is"])
        assert message.content[0].text == "Hello from the emulator. You said: what "  # type: ignore[union-attr]
        assert (message.stop_reason, message.stop_sequence) == ("stop_sequence", "is")
        assert message.usage.output_tokens == 7

    def test_max_tokens_cuts_the_answer(self, client: anthropic.Anthropic) -> None:
        message = create(client, max_tokens=4)
        assert message.content[0].text == "Hello from the emulator."  # type: ignore[union-attr]
        assert (message.stop_reason, message.usage.output_tokens) == ("max_tokens", 4)
        dropped = create(client, max_tokens=3, tools=TOOLS)
        assert (dropped.content, dropped.stop_reason) == ([], "max_tokens")
        exact = create(client, max_tokens=9)
        assert exact.stop_reason == "end_turn"

    def test_max_tokens_before_a_later_stop_sequence_wins(
        self, client: anthropic.Anthropic
    ) -> None:
        message = create(client, max_tokens=2, stop_sequences=["up"])
        assert (message.stop_reason, message.stop_sequence) == ("max_tokens", None)

    def test_refusal(self, client: anthropic.Anthropic) -> None:
        text = f"do the thing {REFUSE} now"
        message = create(client, tools=TOOLS, messages=[{"role": "user", "content": text}])
        assert message.stop_reason == "refusal"
        assert message.stop_details is not None and message.stop_details.type == "refusal"
        assert message.content[0].text == reply("do the thing")  # type: ignore[union-attr]


class TestCache:
    def test_first_sight_writes_then_reads(self, client: anthropic.Anthropic) -> None:
        system: Any = [
            {
                "type": "text",
                "text": "a long shared preamble",
                "cache_control": {"type": "ephemeral"},
            }
        ]
        first = create(client, system=system).usage
        assert (first.cache_creation_input_tokens, first.cache_read_input_tokens) == (4, 0)
        assert first.cache_creation is not None
        assert first.cache_creation.ephemeral_5m_input_tokens == 4
        assert first.input_tokens == 3
        second = create(client, system=system).usage
        assert (second.cache_creation_input_tokens, second.cache_read_input_tokens) == (0, 4)
        assert second.input_tokens == 3

    def test_longest_seen_prefix_is_read_the_rest_written_with_its_ttl(
        self, emulator: OpenAIEmulator, client: anthropic.Anthropic
    ) -> None:
        system: Any = [
            {"type": "text", "text": "shared rules", "cache_control": {"type": "ephemeral"}}
        ]
        create(client, system=system)
        longer: Any = [
            {
                "role": "user",
                "content": [
                    {
                        "type": "text",
                        "text": "what is up",
                        "cache_control": {"type": "ephemeral", "ttl": "1h"},
                    }
                ],
            }
        ]
        usage = create(client, system=system, messages=longer).usage
        assert (usage.cache_read_input_tokens, usage.cache_creation_input_tokens) == (2, 3)
        assert usage.cache_creation is not None
        assert usage.cache_creation.ephemeral_1h_input_tokens == 3
        assert usage.input_tokens == 0
        emulator.reset()
        assert create(client, system=system).usage.cache_read_input_tokens == 0

    def test_top_level_cache_control_marks_the_last_block(
        self, client: anthropic.Anthropic
    ) -> None:
        first = create(client, cache_control={"type": "ephemeral"}).usage
        second = create(client, cache_control={"type": "ephemeral"}).usage
        assert (first.cache_creation_input_tokens, second.cache_read_input_tokens) == (3, 3)


SCENARIOS: list[dict[str, Any]] = [
    {},
    {"tools": TOOLS},
    {"tools": TOOLS, "messages": [{"role": "user", "content": f"go {PARALLEL}"}]},
    {"tools": TOOLS, "messages": [{"role": "user", "content": f"go {TEXT_THEN_TOOL}"}]},
    {"thinking": THINKING, "tools": TOOLS},
    {"thinking": THINKING, "messages": [{"role": "user", "content": f"x {REDACTED_THINKING}"}]},
    {"stop_sequences": ["is"]},
    {"max_tokens": 5},
    {"max_tokens": 0},
    {"messages": [{"role": "user", "content": f"no {REFUSE}"}]},
]


class TestStreaming:
    @pytest.mark.parametrize("params", SCENARIOS)
    def test_final_message_equals_the_plain_answer(
        self, client: anthropic.Anthropic, params: dict[str, Any]
    ) -> None:
        plain = create(client, **params)
        full = {"model": MODEL, "max_tokens": 2000, "messages": USER, **params}
        with client.messages.stream(**full) as stream:
            streamed = stream.get_final_message()
        assert normalised(streamed) == normalised(plain)

    def test_event_sequence(self, emulator: OpenAIEmulator) -> None:
        body = {"model": MODEL, "max_tokens": 50, "messages": USER, "stream": True}
        response = raw_post(emulator, body)
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["request-id"].startswith("req_emu_")
        events = sse_events(response.content)
        assert all(name == data["type"] for name, data in events)
        names = [name for name, _ in events]
        assert names == [
            "message_start",
            "content_block_start",
            "ping",
            *["content_block_delta"] * 9,
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
        start = events[0][1]["message"]
        assert (start["content"], start["stop_reason"]) == ([], None)
        assert (start["usage"]["input_tokens"], start["usage"]["output_tokens"]) == (3, 1)
        text = "".join(
            data["delta"]["text"] for name, data in events if name == "content_block_delta"
        )
        assert text == EXPECTED
        delta = events[-2][1]
        assert delta["delta"] == {"stop_reason": "end_turn", "stop_sequence": None}
        assert delta["usage"] == {"output_tokens": 9}

    def test_tool_input_arrives_in_partial_json_pieces(self, emulator: OpenAIEmulator) -> None:
        body = {
            "model": MODEL,
            "max_tokens": 50,
            "messages": USER,
            "tools": TOOLS,
            "stream": True,
        }
        events = sse_events(raw_post(emulator, body).content)
        start = next(data for name, data in events if name == "content_block_start")
        assert start["content_block"]["input"] == {}
        pieces = [
            data["delta"]["partial_json"] for name, data in events if name == "content_block_delta"
        ]
        assert pieces[0] == "" and len(pieces) >= 4
        with pytest.raises(json.JSONDecodeError):
            json.loads(pieces[1])
        assert json.loads("".join(pieces)) == {"echo": "what is up"}
        assert events[-2][1]["delta"]["stop_reason"] == "tool_use"

    def test_thinking_streams_deltas_then_its_signature(self, emulator: OpenAIEmulator) -> None:
        body = {"model": MODEL, "max_tokens": 2000, "messages": USER, "stream": True}
        events = sse_events(raw_post(emulator, {**body, "thinking": THINKING}).content)
        first_block = [data for name, data in events if data.get("index") == 0]
        assert first_block[0]["content_block"] == {
            "type": "thinking",
            "thinking": "",
            "signature": "",
        }
        kinds = [data["delta"]["type"] for data in first_block if "delta" in data]
        assert kinds == ["thinking_delta"] * 6 + ["signature_delta"]

    def test_text_stream_through_the_sdk(self, client: anthropic.Anthropic) -> None:
        with client.messages.stream(model=MODEL, max_tokens=50, messages=USER) as stream:
            pieces = list(stream.text_stream)
        assert len(pieces) == 9 and "".join(pieces) == EXPECTED


class TestErrors:
    def test_missing_and_wrong_key(self, emulator: OpenAIEmulator) -> None:
        response = raw_post(emulator, {}, {"x-api-key": ""})
        assert response.status_code == 401
        body = response.json()
        assert body["type"] == "error"
        assert body["error"] == {
            "type": "authentication_error",
            "message": "x-api-key header is required",
        }
        assert body["request_id"] == response.headers["request-id"]
        with _client(emulator, **{"x-api-key": "sk-wrong"}) as sdk:
            with pytest.raises(anthropic.AuthenticationError, match="invalid x-api-key"):
                create(sdk)

    def test_version_header_required(self, emulator: OpenAIEmulator) -> None:
        body = {"model": MODEL, "max_tokens": 5, "messages": USER}
        missing = raw_post(emulator, body, {"anthropic-version": ""})
        assert missing.status_code == 400
        assert missing.json()["error"]["message"] == "anthropic-version: header is required"
        assert raw_post(emulator, body, {"anthropic-version": "1999-01-01"}).status_code == 400

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"max_tokens": None}, "max_tokens: Field required"),
            ({"max_tokens": "10"}, "max_tokens: Input should be a valid integer"),
            ({"n": 2}, "n: Extra inputs are not permitted"),
            (
                {"messages": [{"role": "user", "content": [{"type": "text"}]}]},
                "messages.0.content.0.text: Field required",
            ),
            (
                {"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]},
                "messages.0.content.0.tool_use_id: Field required",
            ),
            (
                {"messages": [{"role": "bot", "content": "x"}]},
                "messages.0.role: Input should be 'user', 'assistant' or 'system'",
            ),
            ({"tools": [{"name": "f"}]}, "tools.0.input_schema: Field required"),
            ({"messages": []}, "messages: at least one message is required"),
            (
                {"messages": [{"role": "assistant", "content": "x"}]},
                'first message must use the "user" role',
            ),
            ({"temperature": 1.5}, "temperature: Input should be less than or equal to 1"),
            ({"temperature": "hot"}, "temperature: Input should be a valid number"),
            ({"top_k": -1}, "top_k: Input should be greater than or equal to 0"),
            (
                {"thinking": {"type": "enabled", "budget_tokens": 512}},
                "budget_tokens: Input should be greater than or equal to 1024",
            ),
            (
                {"thinking": {"type": "enabled", "budget_tokens": 4096}},
                "`max_tokens` must be greater than `thinking.budget_tokens`",
            ),
            (
                {"thinking": THINKING, "temperature": 0.2},
                "`temperature` may only be set to 1 when thinking is enabled",
            ),
            (
                {"thinking": THINKING, "tools": TOOLS, "tool_choice": {"type": "any"}},
                "Thinking may not be enabled when tool_choice forces tool use",
            ),
            ({"tools": [TOOLS[0], TOOLS[0]]}, "Tool names must be unique"),
            (
                {"tools": TOOLS, "tool_choice": {"type": "tool", "name": "nope"}},
                "Tool 'nope' not found",
            ),
            (
                {"context_management": {"edits": []}},
                "context_management: Extra inputs are not permitted",
            ),
        ],
    )
    def test_invalid_bodies_are_400_with_anthropic_wording(
        self, emulator: OpenAIEmulator, change: dict[str, Any], message: str
    ) -> None:
        body = {"model": MODEL, "max_tokens": 2000, "messages": USER, **change}
        body = {key: value for key, value in body.items() if value is not None}
        response = raw_post(emulator, body)
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["type"] == "invalid_request_error"
        assert message in error["message"]

    def test_tool_results_must_answer_the_previous_turn(self, client: anthropic.Anthropic) -> None:
        call = {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}}
        stray: Any = [
            *USER,
            {"role": "assistant", "content": "no tools here"},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]},
        ]
        with pytest.raises(
            anthropic.BadRequestError,
            match=re.escape("messages.2.content.0: unexpected `tool_use_id`"),
        ):
            create(client, messages=stray)
        unanswered: Any = [
            *USER,
            {"role": "assistant", "content": [call]},
            {"role": "user", "content": "never mind"},
        ]
        with pytest.raises(
            anthropic.BadRequestError, match=re.escape("messages.1: `tool_use` ids were found")
        ):
            create(client, messages=unanswered)

    def test_beta_header_admits_beta_fields(self, emulator: OpenAIEmulator) -> None:
        body = {
            "model": MODEL,
            "max_tokens": 50,
            "messages": USER,
            "context_management": {"edits": []},
        }
        beta = {"anthropic-beta": "context-management-2025-06-27"}
        assert raw_post(emulator, body, beta).status_code == 200
        assert emulator.requests[-1].headers["anthropic-beta"] == beta["anthropic-beta"]

    def test_bad_json_and_unknown_path(self, emulator: OpenAIEmulator) -> None:
        assert raw_post(emulator, b"{nope").json()["error"]["type"] == "invalid_request_error"
        response = httpx.get(
            emulator.anthropic_base_url + "/v1/nothing",
            headers={"x-api-key": KEY, "anthropic-version": VERSION},
        )
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "not_found_error"


class TestFaults:
    @pytest.mark.parametrize(
        ("status", "exception", "error_type"),
        [
            (429, anthropic.RateLimitError, "rate_limit_error"),
            (529, anthropic.OverloadedError, "overloaded_error"),
            (500, anthropic.InternalServerError, "api_error"),
            (401, anthropic.AuthenticationError, "authentication_error"),
            (403, anthropic.PermissionDeniedError, "permission_error"),
            (413, anthropic.ContentTooLargeError, "request_too_large"),
        ],
    )
    def test_status_faults_carry_anthropic_errors(
        self,
        emulator: OpenAIEmulator,
        client: anthropic.Anthropic,
        status: int,
        exception: type[anthropic.APIStatusError],
        error_type: str,
    ) -> None:
        emulator.inject(Fault(status=status, path="/v1/messages"))
        with pytest.raises(exception) as caught:
            create(client)
        error = caught.value
        assert error.status_code == status
        assert isinstance(error.body, dict)
        assert error.body["type"] == "error"
        assert error.body["error"]["type"] == error_type
        assert error.request_id is not None and error.request_id.startswith("req_emu_")
        assert (error.response.headers.get("retry-after") == "1") == (status == 429)
        assert create(client).content  # the fault was used up

    def test_overloaded_is_an_internal_server_error(self) -> None:
        assert issubclass(anthropic.OverloadedError, anthropic.InternalServerError)

    def test_prompt_too_long(self, emulator: OpenAIEmulator, client: anthropic.Anthropic) -> None:
        emulator.inject(Fault(status=400, message=prompt_too_long(210_000)))
        with pytest.raises(
            anthropic.BadRequestError, match=r"prompt is too long: 210000 tokens > 200000 maximum"
        ):
            create(client)

    def test_retry_after_override(
        self, emulator: OpenAIEmulator, client: anthropic.Anthropic
    ) -> None:
        emulator.inject(Fault(status=529, headers={"retry-after": "7"}))
        with pytest.raises(anthropic.OverloadedError) as caught:
            create(client)
        assert caught.value.response.headers["retry-after"] == "7"

    def test_error_event_mid_stream(
        self, emulator: OpenAIEmulator, client: anthropic.Anthropic
    ) -> None:
        emulator.inject(Fault(error_after_events=5))
        received: list[str] = []
        with pytest.raises(anthropic.APIStatusError) as caught:
            with client.messages.stream(model=MODEL, max_tokens=50, messages=USER) as stream:
                received.extend(stream.text_stream)
        assert received == ["Hello", " from"]
        assert isinstance(caught.value.body, dict)
        assert caught.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}

    def test_error_event_on_the_wire(self, emulator: OpenAIEmulator) -> None:
        emulator.inject(Fault(error_after_events=1, error_type="api_error", message="boom"))
        body = {"model": MODEL, "max_tokens": 50, "messages": USER, "stream": True}
        response = raw_post(emulator, body)
        assert response.status_code == 200
        events = sse_events(response.content)
        assert [name for name, _ in events] == ["message_start", "error"]
        assert events[1][1] == {"type": "error", "error": {"type": "api_error", "message": "boom"}}

    def test_stream_faults_shared_with_openai(
        self, emulator: OpenAIEmulator, client: anthropic.Anthropic
    ) -> None:
        emulator.inject(Fault(drop_after_events=3))
        with pytest.raises(httpx2.RemoteProtocolError):  # what the SDK's HTTP client raises
            with client.messages.stream(model=MODEL, max_tokens=50, messages=USER) as stream:
                stream.get_final_message()

    def test_message_override_on_the_openai_side(self, emulator: OpenAIEmulator) -> None:
        emulator.inject(Fault(status=400, message="custom words"))
        response = httpx.post(
            emulator.base_url + "/chat/completions",
            json={},
            headers={"Authorization": f"Bearer {KEY}"},
        )
        assert response.json()["error"]["message"] == "custom words"
        assert "type" not in response.json()  # still OpenAI's envelope


def test_models_list_reads_with_the_sdk(client: anthropic.Anthropic) -> None:
    """``GET /v1/models`` (what a provider-key check asks for) is a page the SDK reads."""
    page = client.models.list()
    assert [model.id for model in page.data] == ["claude-sonnet-4-5", "claude-haiku-4-5"]
    assert all(model.type == "model" for model in page.data)
    assert page.has_more is False


def test_models_list_refuses_a_wrong_key(emulator: OpenAIEmulator) -> None:
    with _client(emulator, **{"x-api-key": "sk-ant-wrong"}) as sdk, pytest.raises(
        anthropic.AuthenticationError
    ):
        sdk.models.list()
