"""End to end: the official OpenAI SDK → gateway (real socket) → upstream emulator (real socket)."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import openai
import pytest
from openai.pagination import SyncPage
from openai.types import Model

from tests.emulator import Fault, OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings

OPENAI_KEY = "sk-emulator"
GROQ_KEY = "sk-groq-emulator"


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=OPENAI_KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def groq_upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=GROQ_KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    upstream: OpenAIEmulator,
    groq_upstream: OpenAIEmulator,
) -> Iterator[tuple[GatewayServer, str]]:
    settings = make_settings(
        tmp_path_factory.mktemp("gw"),
        provider_api_keys={"openai": OPENAI_KEY, "groq": GROQ_KEY},
        provider_base_urls={"openai": upstream.base_url, "groq": groq_upstream.base_url},
        key_cache_ttl_seconds=0.2,
        max_body_bytes=64 * 1024,
        upstream_read_timeout=1.5,
    )
    key = create_key(settings)
    with GatewayServer(settings) as server:
        yield server, key


@pytest.fixture(autouse=True)
def _reset(upstream: OpenAIEmulator, groq_upstream: OpenAIEmulator) -> None:
    upstream.reset()
    groq_upstream.reset()


@pytest.fixture
def client(gateway: tuple[GatewayServer, str]) -> Iterator[openai.OpenAI]:
    server, key = gateway
    with openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
async def aclient(gateway: tuple[GatewayServer, str]) -> AsyncIterator[openai.AsyncOpenAI]:
    # Closed on the test's own loop: an async client left to the garbage collector after its
    # loop is gone cannot close its pooled connections (ResourceWarning: unclosed socket).
    server, key = gateway
    async with openai.AsyncOpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0) as sdk:
        yield sdk


MESSAGES = [{"role": "user", "content": "what is up"}]
EXPECTED = "Hello from the emulator. You said: what is up"


# -- chat completions -----------------------------------------------------------------------


def test_chat_plain_with_headers(client: openai.OpenAI, upstream: OpenAIEmulator) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    completion = raw.parse()
    assert completion.choices[0].message.content == EXPECTED
    assert completion.model == "gpt-4o-mini"
    assert uuid.UUID(raw.headers["helicone-id"])
    assert float(raw.headers["x-gateway-overhead-ms"]) >= 0
    sent = upstream.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    assert not any(name.startswith("helicone-") for name in sent.headers)


def test_chat_without_v1_prefix(gateway: tuple[GatewayServer, str]) -> None:
    server, key = gateway
    sdk = openai.OpenAI(base_url=server.url, api_key=key, max_retries=0)
    completion = sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == EXPECTED


def test_chat_streaming_sync(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    assert text == EXPECTED


async def test_chat_stream_helper_async(aclient: openai.AsyncOpenAI) -> None:
    async with aclient.chat.completions.stream(model="gpt-4o-mini", messages=MESSAGES) as stream:
        final = await stream.get_final_completion()
    assert final.choices[0].message.content == EXPECTED


def test_chat_stream_usage_when_asked(client: openai.OpenAI) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens > 0


def test_chat_tools(client: openai.OpenAI) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"echo": {"type": "string"}}},
            },
        }
    ]
    completion = client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, tools=tools  # type: ignore[arg-type]
    )
    call = completion.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"echo": "what is up"}  # type: ignore[union-attr]

    stream = client.chat.completions.stream(
        model="gpt-4o-mini", messages=MESSAGES, tools=tools  # type: ignore[arg-type]
    )
    with stream as events:
        final = events.get_final_completion()
    assert final.choices[0].message.tool_calls[0].function.name == "get_weather"  # type: ignore[index]


# -- responses, embeddings, models ----------------------------------------------------------


def test_responses_plain(client: openai.OpenAI) -> None:
    response = client.responses.create(model="gpt-4o-mini", input="what is up")
    assert response.output_text == EXPECTED


def test_responses_stream_sync(client: openai.OpenAI) -> None:
    with client.responses.stream(model="gpt-4o-mini", input="what is up") as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert "".join(deltas) == EXPECTED
    assert final.output_text == EXPECTED


async def test_responses_stream_async(aclient: openai.AsyncOpenAI) -> None:
    async with aclient.responses.stream(model="gpt-4o-mini", input="what is up") as stream:
        final = await stream.get_final_response()
    assert final.output_text == EXPECTED
    assert final.usage is not None


def test_embeddings(client: openai.OpenAI, upstream: OpenAIEmulator) -> None:
    result = client.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(result.data) == 2
    assert len(result.data[0].embedding) > 0
    floats = client.embeddings.create(
        model="text-embedding-3-small", input=["a", "b"], encoding_format="float"
    )
    assert floats.data[0].embedding == pytest.approx(result.data[0].embedding)
    assert upstream.requests[-1].path == "/v1/embeddings"


def test_models_lists_the_registry_for_every_configured_provider(
    client: openai.OpenAI, upstream: OpenAIEmulator, groq_upstream: OpenAIEmulator
) -> None:
    # From the model registry: the default provider's models by their registry id, another
    # configured provider's as id/provider, only where that provider serves the model.
    models = list(client.models.list())
    ids = [model.id for model in models]
    assert "gpt-4o-mini" in ids
    assert "llama-3.3-70b/groq" in ids
    assert "gpt-4o-mini/groq" not in ids  # Groq does not serve it
    assert "claude-sonnet-4.5/anthropic" not in ids  # no Anthropic key configured
    assert "llama-3.3-70b/together" not in ids
    assert len(ids) == len(set(ids))
    mini = next(model for model in models if model.id == "gpt-4o-mini")
    assert (mini.owned_by, mini.created) == ("openai", 1721260800)  # 2024-07-18
    # Computed at startup: listing models asks no provider anything.
    assert upstream.requests == [] and groq_upstream.requests == []


def test_models_needs_no_key(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, _ = gateway
    for path in ("/models", "/v1/models", "/v1/models/multimodal", "/models/multimodal"):
        response = httpx.get(server.url + path)
        assert response.status_code == 200, path
        page = SyncPage[Model].model_validate(response.json())
        assert page.object == "list" and page.data, path
    assert upstream.requests == []
    refused = httpx.post(server.url + "/v1/models/multimodal")
    assert refused.status_code == 405


def test_multimodal_models_take_or_give_more_than_text(
    client: openai.OpenAI, gateway: tuple[GatewayServer, str]
) -> None:
    server, _ = gateway
    every = {model.id for model in client.models.list()}
    listed = httpx.get(server.url + "/v1/models/multimodal").json()["data"]
    ids = {item["id"] for item in listed}
    assert "gpt-4o-mini" in ids  # text + image in
    assert "gpt-4o-audio-preview" in ids  # text + audio, in and out
    assert "llama-4-scout/groq" in ids
    assert "llama-3.3-70b/groq" not in ids  # text only
    assert "text-embedding-3-small" not in ids
    assert ids < every


# -- routing -------------------------------------------------------------------------------


def test_provider_suffix_routes_and_is_stripped(
    client: openai.OpenAI, upstream: OpenAIEmulator, groq_upstream: OpenAIEmulator
) -> None:
    """An id the registry does not list at the provider goes as written, suffix stripped."""
    completion = client.chat.completions.create(model="my-llama-tune/groq", messages=MESSAGES)
    assert completion.model == "my-llama-tune"
    assert upstream.requests == []
    sent = groq_upstream.requests[-1]
    assert sent.json["model"] == "my-llama-tune"
    assert sent.headers["authorization"] == f"Bearer {GROQ_KEY}"


def test_a_registry_model_is_sent_as_the_providers_own_id(
    client: openai.OpenAI, groq_upstream: OpenAIEmulator
) -> None:
    """The registry's canonical id (``llama-3.3-70b``) reaches Groq as Groq names it."""
    client.chat.completions.create(model="llama-3.3-70b/groq", messages=MESSAGES)
    assert groq_upstream.requests[-1].json["model"] == "llama-3.3-70b-versatile"


def test_unknown_provider_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="gpt-4o/nowhere", messages=MESSAGES)
    assert "nowhere" in str(info.value)


def test_provider_without_key_is_400(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="mistral-large/mistral", messages=MESSAGES)
    assert "MISTRAL_API_KEY" in str(info.value)


# -- auth ----------------------------------------------------------------------------------


def test_missing_and_invalid_keys_are_401(gateway: tuple[GatewayServer, str]) -> None:
    server, _ = gateway
    response = httpx.post(server.url + "/v1/chat/completions", json={"model": "x"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"
    assert response.headers["helicone-id"]
    sdk = openai.OpenAI(base_url=server.url + "/v1", api_key="sk-helicone-nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def test_revoked_key_stops_working_within_ttl(gateway: tuple[GatewayServer, str]) -> None:
    server, _ = gateway
    key = create_key(server.settings, name="short-lived")
    sdk = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
    sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    async def revoke() -> None:
        from gateway.store import ControlStore

        store = ControlStore.from_settings(server.settings)
        try:
            await store.revoke_key(_key_id(await store.list_keys(), key))
        finally:
            await store.close()

    asyncio.run(revoke())
    time.sleep(server.settings.key_cache_ttl_seconds + 0.1)
    with pytest.raises(openai.AuthenticationError):
        sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


def _key_id(records: list, key: str) -> str:  # type: ignore[type-arg]
    from gateway.keys import key_prefix

    matches = [r.id for r in records if r.prefix == key_prefix(key)]
    assert len(matches) == 1
    return matches[0]


def test_helicone_auth_forwards_client_provider_key(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    sdk = openai.OpenAI(
        base_url=server.url + "/v1",
        api_key=OPENAI_KEY,
        default_headers={"Helicone-Auth": f"Bearer {key}"},
        max_retries=0,
    )
    sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {OPENAI_KEY}"
    bad = openai.OpenAI(
        base_url=server.url + "/v1",
        api_key="sk-client-own-wrong",
        default_headers={"Helicone-Auth": f"Bearer {key}"},
        max_retries=0,
    )
    with pytest.raises(openai.AuthenticationError):  # the upstream's 401, passed through
        bad.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "content_type", "status", "needle"),
    [
        (b"{not json", "application/json", 400, "not valid JSON"),
        (b"[1, 2]", "application/json", 400, "JSON object"),
        (b"{}", "application/json", 400, "'model'"),
        (b'{"model": 5}', "application/json", 400, "must be a string"),
        (b"", "application/json", 400, "empty"),
        (b" \r\n\t ", "application/json", 400, "empty"),
        (b"model=gpt", "application/x-www-form-urlencoded", 415, "Content-Type"),
        (b'{"model": "' + b"x" * 70000 + b'"}', "application/json", 413, "limit"),
    ],
)
def test_bad_input_is_an_openai_shaped_4xx(
    gateway: tuple[GatewayServer, str], body: bytes, content_type: str, status: int, needle: str
) -> None:
    server, key = gateway
    response = httpx.post(
        server.url + "/v1/chat/completions",
        content=body,
        headers={"authorization": f"Bearer {key}", "content-type": content_type},
    )
    assert response.status_code == status
    error = response.json()["error"]
    assert needle in error["message"]
    assert set(error) == {"message", "type", "param", "code"}
    assert response.headers["helicone-id"]


def _deep_body(model: str, depth: int, stream: bool = False) -> bytes:
    """A chat body whose deepest value is ``depth`` containers down (the body itself is 1).

    The depth is in a tool's JSON-schema ``parameters`` (body, tools, tool, function,
    parameters: 5 levels), then nested arrays.
    """
    arrays = depth - 5
    return (
        b'{"model": "' + model.encode() + b'", "stream": ' + (b"true" if stream else b"false")
        + b', "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", '
        b'"function": {"name": "f", "parameters": {"type": "object", "x": '
        + b"[" * arrays + b"]" * arrays + b"}}}]}"
    )


@pytest.mark.parametrize(
    ("model", "stream", "depth"),
    [
        ("llama-3.3-70b/groq", False, 255),  # re-encoded to strip the suffix: orjson's limit
        ("gpt-4o-mini", True, 255),  # streamed: re-encoded when logging adds include_usage
        ("gpt-4o-mini", False, 129),  # forwarded as is: refused all the same
        ("gpt-4o-mini", False, 1024),  # the most orjson reads
    ],
)
def test_too_deeply_nested_body_is_400_naming_the_limit(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator, model: str, stream: bool,
    depth: int,
) -> None:
    server, key = gateway
    response = httpx.post(
        server.url + "/v1/chat/completions",
        content=_deep_body(model, depth, stream),
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "nested deeper than 128 levels" in error["message"]
    assert error["code"] == "json_too_deep" and error["type"] == "invalid_request_error"
    assert upstream.requests == []


def test_nesting_at_the_limit_is_forwarded(
    gateway: tuple[GatewayServer, str], groq_upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    response = httpx.post(
        server.url + "/v1/chat/completions",
        content=_deep_body("my-llama-tune/groq", 128),
        headers={"authorization": f"Bearer {key}", "content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert groq_upstream.requests[-1].json["model"] == "my-llama-tune"


def test_wrong_method_and_unknown_path(gateway: tuple[GatewayServer, str]) -> None:
    server, key = gateway
    auth = {"authorization": f"Bearer {key}"}
    response = httpx.get(server.url + "/v1/chat/completions", headers=auth)
    assert response.status_code == 405
    assert "POST" in response.json()["error"]["message"]
    response = httpx.get(server.url + "/v1/nothing-here")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
    assert response.headers["helicone-id"]


def test_request_id_header(gateway: tuple[GatewayServer, str]) -> None:
    server, key = gateway
    rid = str(uuid.uuid4())
    response = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES},
        headers={"authorization": f"Bearer {key}", "helicone-request-id": rid},
    )
    assert response.headers["helicone-id"] == rid
    response = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES},
        headers={"authorization": f"Bearer {key}", "helicone-request-id": "not-a-uuid"},
    )
    assert uuid.UUID(response.headers["helicone-id"])


# -- upstream errors and streaming behaviour ------------------------------------------------


def test_upstream_errors_pass_through(client: openai.OpenAI, upstream: OpenAIEmulator) -> None:
    body = b'{"error": {"message": "slow down", "type": "requests", "code": "rate_limit_exceeded"}}'
    upstream.inject(Fault(status=429, body=body, path="/chat/completions"))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.response.content == body
    with pytest.raises(openai.BadRequestError):  # upstream validation of an unknown parameter
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_body={"bogus_param": 1}
        )


def test_stream_error_before_first_byte_keeps_status(
    client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    upstream.inject(Fault(status=503, path="/chat/completions"))
    with pytest.raises(openai.InternalServerError) as info:
        list(client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True))
    assert info.value.status_code == 503


def _stream_request(key: str) -> dict[str, object]:
    return {
        "json": {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True},
        "headers": {"authorization": f"Bearer {key}"},
    }


def test_stream_events_arrive_as_they_are_produced(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    upstream.inject(Fault(chunk_delay=0.25, path="/chat/completions"))
    arrivals: list[float] = []
    start = time.perf_counter()
    with httpx.stream("POST", server.url + "/v1/chat/completions", **_stream_request(key)) as r:  # type: ignore[arg-type]
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                arrivals.append(time.perf_counter() - start)
    assert len(arrivals) >= 5
    assert arrivals[0] < 0.2  # the first event is not held back until the stream ends
    assert arrivals[-1] - arrivals[0] > 0.25 * (len(arrivals) - 3)


def test_mid_stream_upstream_drop_ends_stream_cleanly(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    upstream.inject(Fault(drop_after_events=3, path="/chat/completions"))
    with httpx.stream("POST", server.url + "/v1/chat/completions", **_stream_request(key)) as r:  # type: ignore[arg-type]
        assert r.status_code == 200
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert len(events) == 3
    assert "[DONE]" not in events[-1]


def test_client_disconnect_cancels_upstream(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    upstream.inject(Fault(chunk_delay=0.3, path="/chat/completions"))
    with httpx.stream("POST", server.url + "/v1/chat/completions", **_stream_request(key)) as r:  # type: ignore[arg-type]
        for line in r.iter_lines():
            if line.startswith("data: "):
                break
    deadline = time.monotonic() + 3
    while upstream.disconnects < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert upstream.disconnects == 1


def test_upstream_timeout_is_504(client: openai.OpenAI, upstream: OpenAIEmulator) -> None:
    upstream.inject(Fault(delay=3.0, path="/chat/completions"))
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert info.value.status_code == 504


def test_unreachable_upstream_is_502(tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path,
        provider_api_keys={"openai": "k"},
        provider_base_urls={"openai": "http://127.0.0.1:9/v1"},
        allow_anonymous=True,
    )
    with GatewayServer(settings) as server:
        response = httpx.post(
            server.url + "/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": MESSAGES}
        )
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unreachable"


def test_anonymous_mode_needs_no_key(tmp_path: Path, upstream: OpenAIEmulator) -> None:
    settings = make_settings(
        tmp_path,
        provider_api_keys={"openai": OPENAI_KEY},
        provider_base_urls={"openai": upstream.base_url},
        allow_anonymous=True,
    )
    with GatewayServer(settings) as server:
        sdk = openai.OpenAI(base_url=server.url + "/v1", api_key="anything", max_retries=0)
        completion = sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == EXPECTED


@pytest.mark.parametrize("force", [False, True])
def test_stream_force_format(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator, force: bool
) -> None:
    """Without the header, bytes go out as they came (split events included); with it, every
    chunk the client receives ends on an event boundary and the events are the same."""
    server, key = gateway
    upstream.inject(Fault(split_events=True, path="/chat/completions"))
    request = _stream_request(key)
    if force:
        request["headers"] = {**request["headers"], "helicone-stream-force-format": "true"}  # type: ignore[dict-item]
    chunks: list[bytes] = []
    with httpx.stream("POST", server.url + "/v1/chat/completions", **request) as r:  # type: ignore[arg-type]
        chunks.extend(r.iter_raw())
    body = b"".join(chunks)
    assert body.endswith(b"data: [DONE]\n\n")
    whole = [chunk.endswith(b"\n\n") for chunk in chunks]
    if force:
        assert all(whole)
    else:
        assert not all(whole)
