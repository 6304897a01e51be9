"""Gemini end to end: the openai SDK and the official google-genai SDK → gateway → the emulator
speaking the Gemini API (requests validated with google-genai's own types), logging on.

Unified routes (``model/google-ai-studio``: chat, Responses and embeddings, streamed or not)
are translated both ways; the native routes (``/v1/gateway/google-ai-studio/...``, its alias
``/v1/gateway/gemini/...`` and ``Helicone-Target-Url`` with ``?key=``) forward Gemini's format
unchanged, and every record is read with Google's usage (``usageMetadata``) and priced.

Image URLs: Gemini cannot reference them, so the gateway fetches them through its guarded
fetcher, which refuses loopback. The module swaps the running gateway's fetcher for one built
with the fetcher's own test seam (``images.test`` resolves to 127.0.0.1, and that one address is
allowed): every other rule of the fetcher stays in force.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Iterator
from ipaddress import IPv4Address
from typing import Any

import httpx
import openai
import pytest
from google import genai
from google.genai import types

from gateway.fetcher import GuardedFetcher
from providers.addresses import IPAddress, is_public_address
from tests.emulator import Fault, OpenAIEmulator
from tests.emulator.embeddings import vector
from tests.emulator.gemini_errors import too_many_tokens
from tests.emulator.images import PIXEL_PNG
from tests.harness import GatewayServer, create_key, make_settings
from tests.test_logging import record

KEY = "gemini-emulator-key"
MODEL = "gemini-2.5-flash/google-ai-studio"
ECHO = "Hello from the emulator. You said: "
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": "Look something up.",
            "parameters": {"type": "object", "properties": {"echo": {"type": "string"}}},
        },
    }
    for name in ("lookup", "convert")
]
PIXEL_DATA_URL = "data:image/png;base64," + base64.b64encode(PIXEL_PNG).decode()


def _loopback_too(address: IPAddress) -> bool:
    return address == IPv4Address("127.0.0.1") or is_public_address(address)


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
        provider_api_keys={"google-ai-studio": KEY},
        provider_base_urls={"google-ai-studio": upstream.gemini_base_url},
        allowed_target_hosts=[upstream.origin],
        logging_enabled=True,
        log_flush_ms=20,
    )
    key = create_key(settings)
    with GatewayServer(settings) as server:
        runtime = server.runtime
        seam = GuardedFetcher(
            max_bytes=settings.fetch_max_bytes, timeout=settings.fetch_timeout_seconds,
            static_hosts={"images.test": ["127.0.0.1"]}, address_policy=_loopback_too,
        )
        server.call(runtime.fetcher.close())
        server.call(seam.start())
        runtime.fetcher = seam
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
    body: dict[str, Any] = upstream.requests[-1].json
    return body


# --- chat completions → generateContent -------------------------------------------------------


def test_chat_is_translated_to_generate_content_and_back(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    server, _ = gateway
    response = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "what is up"},
        ],
        temperature=0.5, max_completion_tokens=100,
    )
    completion = response.parse()
    assert completion.choices[0].message.content == ECHO + "what is up"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == "gemini-2.5-flash"
    sent = upstream.requests[-1]
    assert sent.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert sent.query == "" and sent.headers["x-goog-api-key"] == KEY
    assert "authorization" not in sent.headers
    assert sent.json["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent.json["generationConfig"] == {"temperature": 0.5, "maxOutputTokens": 100}
    assert completion.usage is not None
    row = record(server, response.headers["helicone-id"])
    assert row["provider"] == "google-ai-studio" and row["wire_format"] == "gemini"
    assert row["prompt_tokens"] == completion.usage.prompt_tokens > 0
    assert row["completion_tokens"] == completion.usage.completion_tokens
    assert row["tokens_estimated"] is False and row["cost"] > 0
    assert row["target_url"].endswith("/v1beta/models/gemini-2.5-flash:generateContent")


def test_the_gemini_alias_routes_to_google_ai_studio(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    """``model/gemini`` is ``model/google-ai-studio`` (issue 13): the same upstream call, and
    the log names the provider by its slug."""
    server, _ = gateway
    response = client.chat.completions.with_raw_response.create(
        model="gemini-2.5-flash/gemini", messages=[{"role": "user", "content": "alias"}]
    )
    assert response.parse().choices[0].message.content == ECHO + "alias"
    assert upstream.requests[-1].path == "/v1beta/models/gemini-2.5-flash:generateContent"
    row = record(server, response.headers["helicone-id"])
    assert row["provider"] == "google-ai-studio"
    sent = len(upstream.requests)
    with pytest.raises(openai.BadRequestError) as refused:  # excluded by its alias: no attempt
        client.chat.completions.create(
            model="gemini-2.5-flash/google-ai-studio,!gemini",
            messages=[{"role": "user", "content": "x"}],
        )
    assert "google-ai-studio is excluded" in refused.value.message
    assert len(upstream.requests) == sent


def test_a_streamed_chat_with_tools_through_the_sdks_stream_helper(
    client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    with client.chat.completions.stream(
        model=MODEL, messages=[{"role": "user", "content": "stream [[text+tool]] it"}],
        tools=TOOLS, tool_choice="auto",
    ) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert message.content == ECHO + "stream [[text+tool]] it"
    assert message.tool_calls and message.tool_calls[0].function.name == "lookup"
    assert message.tool_calls[0].function.parsed_arguments is None  # not a strict tool
    assert final.choices[0].finish_reason == "tool_calls"
    request = upstream.requests[-1]
    assert request.path.endswith(":streamGenerateContent") and request.query == "alt=sse"
    assert request.json["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}


def test_parallel_calls_then_both_results_in_one_follow_up(
    client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    chunks = list(
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "two [[parallel]]"}],
            tools=TOOLS, stream=True, stream_options={"include_usage": True},
        )
    )
    calls = [call for c in chunks for ch in c.choices for call in ch.delta.tool_calls or []]
    assert [call.index for call in calls] == [0, 1]
    assert [call.function.name for call in calls if call.function] == ["lookup", "convert"]
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    assert len({call.id for call in calls}) == 2
    follow = client.chat.completions.create(
        model=MODEL, tools=TOOLS,
        messages=[
            {"role": "user", "content": "two [[parallel]]"},
            {"role": "assistant", "tool_calls": [
                {"id": call.id or "", "type": "function",
                 "function": {"name": call.function.name or "",
                              "arguments": call.function.arguments or ""}}
                for call in calls if call.function
            ]},
            {"role": "tool", "tool_call_id": calls[0].id or "", "content": '{"temp": 21}'},
            {"role": "tool", "tool_call_id": calls[1].id or "", "content": "plain text"},
        ],
    )
    assert follow.choices[0].finish_reason == "stop"
    last = _sent(upstream)["contents"][-1]
    assert last == {"role": "user", "parts": [
        {"functionResponse": {"name": "lookup", "response": {"temp": 21}}},
        {"functionResponse": {"name": "convert", "response": {"result": "plain text"}}},
    ]}


def test_thinking_comes_back_as_reasoning_and_its_signature_returns_with_the_call(
    client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    # A Gemini 3 model refuses a function-call turn sent back without its thought signature.
    model = "gemini-3-pro-preview/google-ai-studio"
    first = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "find it"}], tools=TOOLS,
        reasoning_effort="high",
    )
    assert _sent(upstream)["generationConfig"]["thinkingConfig"] == {
        "thinkingBudget": 24576, "includeThoughts": True,
    }
    message = first.choices[0].message
    extra: Any = message.model_extra
    assert extra["reasoning_content"] == "The user said: find it"
    assert extra["thinking_blocks"][0]["signature"]
    assert first.usage is not None and first.usage.completion_tokens_details is not None
    assert first.usage.completion_tokens_details.reasoning_tokens == 5
    call = message.tool_calls
    assert call is not None
    follow = client.chat.completions.create(
        model=model, tools=TOOLS,
        messages=[
            {"role": "user", "content": "find it"},
            message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call[0].id, "content": "found"},
        ],
    )
    assert follow.choices[0].message.content == ECHO + "find it"
    model_turn = _sent(upstream)["contents"][1]
    assert model_turn["parts"][0]["thoughtSignature"] == extra["thinking_blocks"][0]["signature"]
    # Without the signature Gemini 3 refuses; the error keeps its status and message.
    with pytest.raises(openai.BadRequestError, match="thought_signature"):
        client.chat.completions.create(
            model=model, tools=TOOLS,
            messages=[
                {"role": "user", "content": "find it"},
                {"role": "assistant", "tool_calls": [call[0].model_dump()]},  # type: ignore[list-item]
                {"role": "tool", "tool_call_id": call[0].id, "content": "found"},
            ],
        )


def test_json_schema_output_and_safety_settings_pass_through(
    client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}},
              "required": ["answer"]}
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]
    completion = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "as json"}],
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": schema}},
        extra_body={"safety_settings": safety},
    )
    assert completion.choices[0].message.content == '{"answer": "as json"}'
    sent = _sent(upstream)
    assert sent["safetySettings"] == safety
    assert sent["generationConfig"] == {
        "responseMimeType": "application/json", "responseJsonSchema": schema,
    }


@pytest.mark.parametrize("stream", [False, True])
def test_a_safety_stop_and_a_blocked_prompt_are_content_filter(
    client: openai.OpenAI, stream: bool
) -> None:
    for text in ("tell me [[refuse]] now", "[[blocked]] please"):
        if stream:
            chunks = list(client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": text}], stream=True,
            ))
            reasons = [c.finish_reason for chunk in chunks for c in chunk.choices]
            assert reasons[-1] == "content_filter", text
        else:
            completion = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": text}]
            )
            assert completion.choices[0].finish_reason == "content_filter", text


def test_an_inexpressible_parameter_is_a_400_naming_it(
    client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], logprobs=True
        )
    body: Any = caught.value.body
    assert body["param"] == "logprobs" and "Gemini" in body["message"]
    assert upstream.requests == []


# --- images -----------------------------------------------------------------------------------


def test_images_by_data_url_and_by_http_url_through_the_guarded_fetcher(
    client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    url = f"http://images.test:{upstream.port}/images/pixel.png"
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "what are these"},
            {"type": "image_url", "image_url": {"url": url, "detail": "low"}},
            {"type": "image_url", "image_url": {"url": PIXEL_DATA_URL}},
        ]}],
    )
    assert completion.choices[0].message.content == ECHO + "what are these"
    assert [r.path for r in upstream.requests] == [
        "/images/pixel.png", "/v1beta/models/gemini-2.5-flash:generateContent",
    ]
    assert "x-goog-api-key" not in upstream.requests[0].headers  # the fetch carries no key
    inline = {"inlineData": {"mimeType": "image/png", "data": PIXEL_DATA_URL.split(",")[1]}}
    assert _sent(upstream)["contents"][0]["parts"][1:] == [inline, inline]
    assert completion.usage is not None and completion.usage.prompt_tokens == 3 + 2 * 258


def test_a_responses_image_url_is_fetched_too(
    client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    url = f"http://images.test:{upstream.port}/images/pixel.png"
    response = client.responses.create(
        model=MODEL,
        input=[{"role": "user", "content": [
            {"type": "input_text", "text": "look"},
            {"type": "input_image", "image_url": url, "detail": "auto"},
        ]}],
    )
    assert response.output_text == ECHO + "look"
    assert _sent(upstream)["contents"][0]["parts"][1]["inlineData"]["mimeType"] == "image/png"


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://10.0.0.1:{port}/images/pixel.png", "not a public address"),
        ("http://images.test:{port}/images/page.html", "text/html"),
    ],
)
def test_an_image_the_fetcher_refuses_is_a_400_naming_the_part(
    client: openai.OpenAI, upstream: OpenAIEmulator, url: str, reason: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": [
                {"type": "text", "text": "what is it"},
                {"type": "image_url", "image_url": {"url": url.format(port=upstream.port)}},
            ]}],
        )
    body: Any = caught.value.body
    assert body["param"] == "messages[0].content[1].image_url.url"
    assert reason in body["message"]
    assert all(not r.path.startswith("/v1beta") for r in upstream.requests)


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, openai.BadRequestError),
        (403, openai.PermissionDeniedError),
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
def test_provider_errors_keep_status_and_message_in_openai_shape(
    client: openai.OpenAI, upstream: OpenAIEmulator, status: int, error_class: type[Exception]
) -> None:
    upstream.inject(Fault(status=status, message=f"failure {status}"))
    with pytest.raises(error_class) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    error: Any = caught.value
    assert error.status_code == status
    assert error.body["message"] == f"failure {status}"


def test_a_wrong_key_and_a_context_too_long_error(
    client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    upstream.inject(Fault(status=400, message=too_many_tokens(2_000_000)))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
    body: Any = caught.value.body
    assert body["code"] == "context_length_exceeded" and body["param"] == "messages"


def test_an_error_event_mid_stream_raises_in_the_sdk(
    client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    upstream.inject(Fault(error_after_events=3, message="boom"))
    received: list[str] = []
    with pytest.raises(openai.APIError, match="boom"):
        for chunk in client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "a long answer please"}],
            stream=True,
        ):
            received.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(received) == "Hello from the"


# --- Responses --------------------------------------------------------------------------------


def test_responses_api_is_served_by_translation(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI
) -> None:
    server, _ = gateway
    response = client.responses.with_raw_response.create(
        model=MODEL, input="what is up [[cached]]", instructions="Be brief.",
        max_output_tokens=200,
    )
    parsed = response.parse()
    assert parsed.output_text == ECHO + "what is up [[cached]]"
    assert parsed.status == "completed" and parsed.usage is not None
    cached = parsed.usage.input_tokens_details.cached_tokens
    assert cached == parsed.usage.input_tokens // 2 > 0
    row = record(server, response.headers["helicone-id"])
    assert row["prompt_cache_read_tokens"] == cached


def test_responses_stream_with_a_tool_call(client: openai.OpenAI) -> None:
    with client.responses.stream(
        model=MODEL, input="call [[text+tool]] now",
        tools=[{"type": "function", "name": "lookup", "parameters": {"type": "object"},
                "strict": False}],
    ) as stream:
        events = [event.type for event in stream]
        final = stream.get_final_response()
    assert events[0] == "response.created" and events[-1] == "response.completed"
    assert final.output_text == ECHO + "call [[text+tool]] now"
    assert [item.type for item in final.output] == ["message", "function_call"]


# --- embeddings -------------------------------------------------------------------------------


def test_embeddings_one_and_many(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    server, _ = gateway
    model = "gemini-embedding-001/google-ai-studio"
    one = client.embeddings.create(model=model, input="hello", dimensions=8)  # base64 wire
    assert upstream.requests[-1].path == "/v1beta/models/gemini-embedding-001:embedContent"
    assert _sent(upstream) == {"content": {"parts": [{"text": "hello"}]},
                               "outputDimensionality": 8}
    assert one.data[0].embedding == pytest.approx(vector("gemini-embedding-001", "hello", 8))
    raw = client.embeddings.with_raw_response.create(
        model=model, input=["a", "b c"], encoding_format="float"
    )
    many = raw.parse()
    assert upstream.requests[-1].path.endswith(":batchEmbedContents")
    assert [r["model"] for r in _sent(upstream)["requests"]] == ["models/gemini-embedding-001"] * 2
    assert [d.index for d in many.data] == [0, 1] and len(many.data[1].embedding) == 768
    assert many.model == "gemini-embedding-001"
    row = record(server, raw.headers["helicone-id"])
    assert row["provider"] == "google-ai-studio" and row["tokens_estimated"] is True
    assert row["cost"] > 0  # priced from the registry (models.json)


def test_base64_embeddings_are_little_endian_float32() -> None:
    from providers.gemini import gemini_to_embeddings

    out = gemini_to_embeddings({"embedding": {"values": [0.5, -1.0]}},
                               {"model": "m", "encoding_format": "base64"})
    assert base64.b64decode(out["data"][0]["embedding"]) == struct.pack("<2f", 0.5, -1.0)


# --- native passthrough -----------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["/v1/gateway/google-ai-studio", "/v1/gateway/gemini"])
def test_the_google_genai_sdk_through_the_native_routes(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator, prefix: str
) -> None:
    server, key = gateway
    sdk = genai.Client(
        api_key=KEY,
        http_options=types.HttpOptions(
            base_url=server.url + prefix, headers={"helicone-auth": f"Bearer {key}"},
        ),
    )
    config = types.GenerateContentConfig(system_instruction="Be brief.")
    whole = sdk.models.generate_content(
        model="gemini-2.5-flash", contents="native please [[cached]]", config=config
    )
    pieces = list(sdk.models.generate_content_stream(
        model="gemini-2.5-flash", contents="native please [[cached]]", config=config
    ))
    assert whole.text == ECHO + "native please [[cached]]"
    assert "".join(piece.text or "" for piece in pieces) == whole.text
    assert upstream.requests[-1].query == "alt=sse"
    assert upstream.requests[-1].headers["x-goog-api-key"] == KEY
    whole_id = whole.sdk_http_response.headers["helicone-id"]  # type: ignore[union-attr]
    row = record(server, whole_id)
    assert row["provider"] == "google-ai-studio" and row["wire_format"] == "gemini"
    usage = whole.usage_metadata
    assert usage is not None
    assert row["prompt_tokens"] == usage.prompt_token_count
    assert row["prompt_cache_read_tokens"] == usage.cached_content_token_count > 0
    assert row["completion_tokens"] == usage.candidates_token_count
    assert row["model"] == "gemini-2.5-flash" and row["cost"] > 0
    assert row["tokens_estimated"] is False
    stream_id = pieces[0].sdk_http_response.headers["helicone-id"]  # type: ignore[union-attr]
    streamed = record(server, stream_id)
    assert streamed["is_stream"] is True and streamed["prompt_tokens"] == row["prompt_tokens"]
    assert streamed["completion_tokens"] == row["completion_tokens"]
    assert streamed["cost"] == row["cost"]


def test_target_url_passthrough_with_a_key_query_is_logged_without_the_key(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    response = httpx.post(
        server.url + f"/v1beta/models/gemini-2.5-flash:generateContent?key={KEY}",
        # Google's own host says "gemini" by itself; the emulator's needs the provider named.
        headers={"helicone-auth": f"Bearer {key}", "helicone-target-url": upstream.origin,
                 "helicone-target-provider": "google-ai-studio"},
        json={"contents": [{"role": "user", "parts": [{"text": "relayed"}]}]},
    )
    assert response.status_code == 200, response.text
    assert upstream.requests[-1].query == f"key={KEY}"
    row = record(server, response.headers["helicone-id"])
    assert row["wire_format"] == "gemini" and row["request_model"] == "gemini-2.5-flash"
    assert row["prompt_tokens"] == 1 and row["cost"] > 0
    assert KEY not in row["target_url"] and "key=REDACTED" in row["target_url"]
