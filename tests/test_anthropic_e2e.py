"""Anthropic end to end: the real openai and anthropic SDKs → gateway → the emulator speaking
Messages (validated with the anthropic SDK's own types), logging on.

Unified routes (``model/anthropic``, chat and Responses, streamed or not) are translated both
ways; the native routes (``/anthropic/v1/messages``, ``/v1/gateway/anthropic/v1/messages``,
``Helicone-Target-Url``) forward Anthropic's format unchanged; every record is read with
Anthropic's usage (input tokens from ``message_start``, cache reads and writes).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.emulator import Fault, OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings
from tests.test_logging import record

KEY = "sk-ant-emulator"
MODEL = "claude-sonnet-4-5/anthropic"
ECHO = "Hello from the emulator. You said: "
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look something up.",
            "parameters": {"type": "object", "properties": {"echo": {"type": "string"}}},
        },
    }
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator
) -> Iterator[tuple[GatewayServer, str]]:
    settings = make_settings(
        tmp_path_factory.mktemp("gw"),
        provider_api_keys={"anthropic": KEY, "mistral": KEY},
        provider_base_urls={
            "anthropic": upstream.anthropic_base_url,
            "mistral": upstream.base_url,
        },
        allowed_target_hosts=[upstream.origin],
        logging_enabled=True,
        log_flush_ms=20,
    )
    key = create_key(settings)
    with GatewayServer(settings) as server:
        yield server, key


@pytest.fixture(autouse=True)
def _clean(upstream: OpenAIEmulator) -> Iterator[None]:
    yield
    upstream.reset()


@pytest.fixture
def client(gateway: tuple[GatewayServer, str]) -> Iterator[openai.OpenAI]:
    server, key = gateway
    with openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0) as sdk:
        yield sdk


def _sent(upstream: OpenAIEmulator) -> dict[str, Any]:
    request = upstream.requests[-1]
    assert request.path == "/v1/messages"
    body: dict[str, Any] = request.json
    return body


# --- chat completions → Messages --------------------------------------------------------------


def test_chat_is_translated_to_messages_and_back(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    server, _ = gateway
    response = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "what is up"},
        ],
    )
    completion = response.parse()
    assert completion.choices[0].message.content == ECHO + "what is up"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens > 0
    sent = _sent(upstream)
    assert sent["model"] == "claude-sonnet-4-5" and sent["system"]  # an alias: as written
    assert sent["max_tokens"] == 64000  # the model's output limit (providers/models.json)
    headers = upstream.requests[-1].headers
    assert headers["x-api-key"] == KEY and headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in {name.lower() for name in headers}
    row = record(server, response.headers["helicone-id"])
    assert row["provider"] == "anthropic" and row["wire_format"] == "anthropic"
    assert row["prompt_tokens"] == completion.usage.prompt_tokens
    assert row["completion_tokens"] == completion.usage.completion_tokens
    assert row["tokens_estimated"] is False and row["cost"] > 0


def test_streamed_chat_with_the_sdks_stream_helper(client: openai.OpenAI) -> None:
    with client.chat.completions.stream(
        model=MODEL, messages=[{"role": "user", "content": "stream [[text+tool]] it"}],
        tools=TOOLS,
    ) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == ECHO + "stream [[text+tool]] it"
    assert message.tool_calls and message.tool_calls[0].function.name == "lookup"
    assert final.choices[0].finish_reason == "tool_calls"


def test_parallel_tool_calls_stream_with_their_own_indices(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "two [[parallel]]"}],
            tools=TOOLS, stream=True, stream_options={"include_usage": True},
        )
    )
    indices = {call.index for c in chunks for ch in c.choices for call in ch.delta.tool_calls or []}
    assert indices == {0, 1}
    assert chunks[-1].usage is not None and chunks[-1].choices == []


def test_tool_result_follow_up(client: openai.OpenAI, upstream: OpenAIEmulator) -> None:
    first = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "find it"}], tools=TOOLS
    )
    call = first.choices[0].message.tool_calls
    assert call is not None
    follow = client.chat.completions.create(
        model=MODEL,
        tools=TOOLS,
        messages=[
            {"role": "user", "content": "find it"},
            first.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call[0].id, "content": "found"},
        ],
    )
    assert follow.choices[0].finish_reason == "stop"
    last_turn = _sent(upstream)["messages"][-1]
    assert last_turn["role"] == "user"
    assert last_turn["content"][0]["type"] == "tool_result"
    assert last_turn["content"][0]["tool_use_id"] == call[0].id


def test_usage_is_logged_from_message_start_on_a_stream_the_client_did_not_ask_usage_for(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI
) -> None:
    server, _ = gateway
    with client.chat.completions.with_streaming_response.create(
        model=MODEL, messages=[{"role": "user", "content": "count me"}], stream=True
    ) as response:
        request_id = response.headers["helicone-id"]
        chunks = list(response.parse())
    assert all(chunk.usage is None for chunk in chunks)
    row = record(server, request_id)
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    assert row["tokens_estimated"] is False and row["is_stream"] is True


def test_an_inexpressible_parameter_is_a_400_naming_it(
    client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], n=2
        )
    body: Any = caught.value.body
    assert body["param"] == "n" and "Anthropic" in body["message"]
    assert upstream.requests == []


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (401, openai.AuthenticationError),
        (429, openai.RateLimitError),
        (529, openai.InternalServerError),
        (500, openai.InternalServerError),
    ],
)
def test_provider_errors_keep_status_and_message_in_openai_shape(
    client: openai.OpenAI, upstream: OpenAIEmulator, status: int, error_class: type[Exception]
) -> None:
    upstream.inject(Fault(status=status, path="/v1/messages", message=f"failure {status}"))
    with pytest.raises(error_class) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    error: Any = caught.value
    assert error.status_code == status
    assert error.body["message"] == f"failure {status}"
    if status == 429:
        assert error.response.headers["retry-after"] == "1"


def test_a_context_too_long_error(client: openai.OpenAI, upstream: OpenAIEmulator) -> None:
    upstream.inject(
        Fault(status=400, path="/v1/messages", message="prompt is too long: 210000 tokens")
    )
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    assert "prompt is too long" in str(caught.value)


def test_an_error_event_mid_stream_raises_in_the_sdk(
    client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    upstream.inject(Fault(error_after_events=4, path="/v1/messages"))
    received: list[str] = []
    with pytest.raises(openai.APIError, match=r"(?i)overloaded"):
        for chunk in client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "a long answer please"}],
            stream=True,
        ):
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(received)  # what came before the error reached the client


# --- Responses → chat → Messages, and Responses on a chat-only provider ----------------------


@pytest.mark.parametrize("model", [MODEL, "mistral-small-latest/mistral"])
def test_responses_api_is_served_by_translation(client: openai.OpenAI, model: str) -> None:
    response = client.responses.create(
        model=model, input="what is up", instructions="Be brief.", max_output_tokens=200
    )
    assert response.output_text == ECHO + "what is up"
    assert response.status == "completed"
    assert response.usage is not None and response.usage.input_tokens > 0


@pytest.mark.parametrize("model", [MODEL, "mistral-small-latest/mistral"])
def test_responses_stream_helper_gets_the_final_response(
    client: openai.OpenAI, model: str
) -> None:
    with client.responses.stream(
        model=model,
        input="call [[text+tool]] now",
        tools=[{"type": "function", "name": "lookup", "parameters": {"type": "object"},
                "strict": False}],
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_response()
    assert events[0] == "response.created" and events[-1] == "response.completed"
    assert final.output_text == ECHO + "call [[text+tool]] now"
    calls = [item for item in final.output if item.type == "function_call"]
    assert calls and calls[0].name == "lookup"
    assert final.usage is not None and final.usage.output_tokens > 0


def test_previous_response_id_is_a_clear_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.responses.create(model=MODEL, input="again", previous_response_id="resp_1")
    body: Any = caught.value.body
    assert body["param"] == "previous_response_id"


# --- native Anthropic passthrough -------------------------------------------------------------


SYSTEM: Any = [{"type": "text", "text": "cached system", "cache_control": {"type": "ephemeral"}}]


@pytest.mark.parametrize("prefix", ["/anthropic", "/v1/gateway/anthropic"])
def test_the_anthropic_sdk_through_the_native_routes(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator, prefix: str
) -> None:
    server, key = gateway
    sdk = anthropic.Anthropic(
        base_url=server.url + prefix, api_key=KEY, max_retries=0,
        default_headers={"helicone-auth": f"Bearer {key}", "anthropic-version": "2023-06-01"},
    )
    with sdk:
        raw = sdk.messages.with_raw_response.create(
            model="claude-sonnet-4-5", max_tokens=100,
            system=SYSTEM,
            messages=[{"role": "user", "content": "native please"}],
        )
        message = raw.parse()
        with sdk.messages.stream(
            model="claude-sonnet-4-5", max_tokens=100,
            system=SYSTEM,
            messages=[{"role": "user", "content": "native please"}],
        ) as stream:
            streamed = stream.get_final_message()
            stream_id = stream.response.headers["helicone-id"]
    assert message.content[0].type == "text" and message.content[0].text.startswith(ECHO)
    assert [b.model_dump(include={"type", "text"}) for b in streamed.content] == [
        b.model_dump(include={"type", "text"}) for b in message.content
    ]
    row = record(server, raw.headers["helicone-id"])
    assert row["provider"] == "anthropic" and row["wire_format"] == "anthropic"
    usage = message.usage
    cached = (usage.cache_read_input_tokens or 0) + (usage.cache_creation_input_tokens or 0)
    assert row["prompt_tokens"] == usage.input_tokens + cached
    assert row["completion_tokens"] == usage.output_tokens
    streamed_row = record(server, stream_id)
    # Input tokens come in message_start; the second call read its system prompt from cache.
    assert streamed_row["prompt_tokens"] == row["prompt_tokens"]
    assert streamed_row["prompt_cache_read_tokens"] == streamed.usage.cache_read_input_tokens
    assert streamed_row["prompt_cache_read_tokens"] > 0
    assert streamed_row["response_model"] == streamed.model
    assert streamed_row["cost"] > 0


def test_target_url_passthrough_of_anthropic_is_read_as_anthropic(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    response = httpx.post(
        server.url + "/v1/messages",
        headers={
            "helicone-auth": f"Bearer {key}", "helicone-target-url": upstream.origin,
            "helicone-target-provider": "anthropic", "x-api-key": KEY,
            "anthropic-version": "2023-06-01",
        },
        json={"model": "claude-sonnet-4-5", "max_tokens": 50, "stream": True,
              "messages": [{"role": "user", "content": "relayed"}]},
    )
    assert response.status_code == 200
    row = record(server, response.headers["helicone-id"])
    assert row["wire_format"] == "anthropic"
    assert row["prompt_tokens"] > 0 and row["response_model"] == "claude-sonnet-4-5"
