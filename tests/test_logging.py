"""End to end: requests through the gateway become records in embedded ClickHouse + bodies."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from logging_pipeline.bodies import decode_bodies
from logging_pipeline.schema import REQUEST_TABLE
from tests.emulator import Fault, OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings

KEY = "sk-emulator"
MESSAGES = [{"role": "user", "content": "log me please"}]


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
        provider_api_keys={"openai": KEY},
        provider_base_urls={"openai": upstream.base_url},
        logging_enabled=True,
        log_flush_ms=20,
    )
    key = create_key(settings)
    with GatewayServer(settings) as server:
        yield server, key


@pytest.fixture
def client(gateway: tuple[GatewayServer, str]) -> openai.OpenAI:
    server, key = gateway
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def record(server: GatewayServer, request_id: str, timeout: float = 10.0) -> dict[str, Any]:
    """The ClickHouse row of ``request_id`` once the writer has flushed it."""
    writer = server.runtime.writer
    assert writer is not None
    deadline = time.monotonic() + timeout
    while True:
        found = server.call(
            writer.transport.query(
                f"SELECT *, total_tokens, session_id, session_path, session_name "
                f"FROM {REQUEST_TABLE} FINAL WHERE request_id = {{id:UUID}}",
                {"id": request_id},
            )
        )
        if found:
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"no record for {request_id}; counters {writer.counters}")
        time.sleep(0.05)


def bodies(server: GatewayServer, org: str, request_id: str) -> dict[str, Any] | None:
    writer = server.runtime.writer
    assert writer is not None
    blob = server.call(writer.bodies.get(org, request_id))
    return None if blob is None else decode_bodies(blob)


def test_plain_chat_record(gateway: tuple[GatewayServer, str], client: openai.OpenAI) -> None:
    server, _ = gateway
    session = str(uuid.uuid4())
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        extra_headers={
            "Helicone-User-Id": "alice@example.com",
            "Helicone-Property-Environment": "prod",
            "Helicone-Session-Id": session,
            "Helicone-Session-Path": "/plan/step-1",
            "Helicone-Session-Name": "Trip plan",
        },
    )
    completion = raw.parse()
    row = record(server, raw.headers["helicone-id"])
    assert row["status"] == 200
    assert row["provider"] == "openai"
    assert row["model"] == row["request_model"] == row["response_model"] == "gpt-4o-mini"
    assert row["request_path"] == "/v1/chat/completions"
    assert row["user_id"] == "alice@example.com"
    assert row["properties"]["environment"] == "prod"
    assert (row["session_id"], row["session_path"], row["session_name"]) == (
        session, "/plan/step-1", "Trip plan"
    )
    assert completion.usage is not None
    assert row["prompt_tokens"] == completion.usage.prompt_tokens
    assert row["completion_tokens"] == completion.usage.completion_tokens
    assert row["total_tokens"] == completion.usage.total_tokens
    assert row["tokens_estimated"] is False
    assert row["cost"] > 0 and row["cost_known"] is True
    assert row["latency"] is not None and row["latency"] >= 0
    assert row["is_stream"] is False
    assert row["storage_location"] == "local"
    stored = bodies(server, row["organization_id"], row["request_id"])
    assert stored is not None
    assert stored["request"]["messages"] == MESSAGES
    assert stored["response"]["choices"][0]["message"]["content"] == (
        completion.choices[0].message.content
    )


def test_stream_record_with_usage_injected_and_stripped(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    server, _ = gateway
    upstream.inject(Fault(chunk_delay=0.05, path="/chat/completions"))
    with client.chat.completions.with_streaming_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True
    ) as response:
        request_id = response.headers["helicone-id"]
        chunks = list(response.parse())
    # The client did not ask for usage: it gets no usage chunk…
    assert all(chunk.choices for chunk in chunks)
    assert all(chunk.usage is None for chunk in chunks)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
    # …but the gateway asked upstream for it, and logged it.
    assert upstream.requests[-1].json["stream_options"] == {"include_usage": True}
    row = record(server, request_id)
    assert row["is_stream"] is True
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0
    assert row["tokens_estimated"] is False
    assert row["cost"] > 0
    assert row["time_to_first_token"] is not None
    assert row["latency"] >= row["time_to_first_token"]
    assert row["latency"] >= 100  # the emulator paced its events 50 ms apart
    stored = bodies(server, row["organization_id"], request_id)
    assert stored is not None
    assert "data: [DONE]" in stored["response"]["stream"]
    assert stored["response"]["reconstructed"]["choices"][0]["message"]["content"] == text


def test_stream_usage_kept_when_client_asked(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI
) -> None:
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].choices == []


def test_responses_stream_record(gateway: tuple[GatewayServer, str], client: openai.OpenAI) -> None:
    server, _ = gateway
    with client.responses.with_streaming_response.create(
        model="gpt-4o-mini", input="log me please", stream=True
    ) as response:
        request_id = response.headers["helicone-id"]
        events = list(response.parse())
    final = events[-1].response  # type: ignore[union-attr]
    row = record(server, request_id)
    assert row["prompt_tokens"] == final.usage.input_tokens
    assert row["completion_tokens"] == final.usage.output_tokens
    assert row["request_path"] == "/v1/responses"


def test_omit_headers_keep_bodies_out_but_metrics_in(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI
) -> None:
    server, _ = gateway
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES,
        extra_headers={"Helicone-Omit-Request": "true"},
    )
    row = record(server, raw.headers["helicone-id"])
    stored = bodies(server, row["organization_id"], row["request_id"])
    assert stored is not None and stored["request"] is None and stored["response"] is not None
    assert row["prompt_tokens"] > 0 and row["cost"] > 0
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES,
        extra_headers={"Helicone-Omit-Request": "true", "Helicone-Omit-Response": "true"},
    )
    row = record(server, raw.headers["helicone-id"])
    assert bodies(server, row["organization_id"], row["request_id"]) is None
    assert row["storage_location"] == "omitted"
    assert row["completion_tokens"] > 0


def test_model_override_is_used_for_cost(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI
) -> None:
    server, _ = gateway
    raw = client.chat.completions.with_raw_response.create(
        model="my-finetune", messages=MESSAGES,
        extra_headers={"Helicone-Model-Override": "gpt-4o"},
    )
    row = record(server, raw.headers["helicone-id"])
    assert row["model"] == "gpt-4o" and row["model_override"] == "gpt-4o"
    assert row["cost_known"] is True and row["cost"] > 0
    raw = client.chat.completions.with_raw_response.create(model="my-finetune", messages=MESSAGES)
    row = record(server, raw.headers["helicone-id"])
    assert row["cost_known"] is False and row["cost"] == 0


def test_failures_are_logged(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    upstream.inject(Fault(status=429, path="/chat/completions"))
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    row = record(server, info.value.response.headers["helicone-id"])
    assert row["status"] == 429
    assert row["prompt_tokens"] is None  # no usage on errors, and no estimate either
    response = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "x/nowhere", "messages": MESSAGES},
        headers={"authorization": f"Bearer {key}"},
    )
    row = record(server, response.headers["helicone-id"])
    assert row["status"] == 400


def test_request_id_is_preassigned(
    gateway: tuple[GatewayServer, str], client: openai.OpenAI
) -> None:
    server, _ = gateway
    request_id = str(uuid.uuid4())
    client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"Helicone-Request-Id": request_id}
    )
    assert record(server, request_id)["request_id"] == request_id


def test_passthrough_is_logged(gateway: tuple[GatewayServer, str]) -> None:
    server, key = gateway
    sdk = openai.OpenAI(
        base_url=server.url + "/oai/v1", api_key=KEY,
        default_headers={"Helicone-Auth": f"Bearer {key}"}, max_retries=0,
    )
    raw = sdk.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    row = record(server, raw.headers["helicone-id"])
    assert row["request_path"] == "/oai/v1/chat/completions"
    assert row["request_model"] == "gpt-4o-mini"
    assert row["prompt_tokens"] > 0


def test_no_usage_means_estimated_tokens(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    """A passthrough stream without include_usage carries no usage: tiktoken estimates it."""
    server, key = gateway
    with httpx.stream(
        "POST", server.url + "/oai/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True},
        headers={"authorization": f"Bearer {KEY}", "helicone-auth": f"Bearer {key}"},
    ) as response:
        request_id = response.headers["helicone-id"]
        response.read()
    row = record(server, request_id)
    assert row["tokens_estimated"] is True
    assert row["prompt_tokens"] == 3  # "log me please" in o200k_base
    assert row["completion_tokens"] > 0


def test_counters_account_for_every_request(gateway: tuple[GatewayServer, str]) -> None:
    server, _ = gateway
    writer = server.runtime.writer
    assert writer is not None
    deadline = time.monotonic() + 10
    while writer.counters.written < writer.counters.enqueued and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer.counters.written == writer.counters.enqueued
    assert writer.counters.spilled == 0 and writer.counters.lost == 0
