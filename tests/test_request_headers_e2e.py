"""End to end: the HTTP headers the request log keeps, read back through the request API.

A real gateway (logging on, embedded chdb, local bodies) in front of the OpenAI emulator. The
official OpenAI SDK sends the provider key in ``Authorization`` and the gateway key in
``Helicone-Auth`` (Helicone's two-key style) with a property and custom headers;
``GET /v1/request/{id}?includeBody=true`` must then show the headers the gateway received
(credentials ``REDACTED``, everything else readable) and those the emulator answered with,
for a whole answer, a stream and a cache hit, and none where the omit flags say so.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from tests.emulator import OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings

KEY = "sk-emulator"
MESSAGES: list[Any] = [{"role": "user", "content": "what do the headers say?"}]
SECRET_CUSTOM = "tok-do-not-store"


@dataclass
class Gateway:
    server: GatewayServer
    key: str
    client: openai.OpenAI

    def stored(self, request_id: str, timeout: float = 15.0) -> dict[str, Any]:
        """The request with its bodies and headers, once the writer has written it."""
        deadline = time.monotonic() + timeout
        while True:
            response = httpx.get(
                f"{self.server.url}/v1/request/{request_id}?includeBody=true",
                headers={"authorization": f"Bearer {self.key}"},
            )
            if response.status_code == 200:
                data: dict[str, Any] = response.json()["data"]
                return data
            assert response.status_code == 404, response.text
            assert time.monotonic() < deadline, f"request {request_id} was never logged"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with OpenAIEmulator(api_key=KEY) as upstream:
        settings = make_settings(
            tmp_path_factory.mktemp("headers"),
            provider_api_keys={"openai": KEY},
            provider_base_urls={"openai": upstream.base_url},
            logging_enabled=True,
            log_flush_ms=20,
        )
        key = create_key(settings)
        with GatewayServer(settings) as server, contextlib.ExitStack() as stack:
            client = openai.OpenAI(
                base_url=server.url + "/v1",
                api_key=KEY,  # the provider's key, in Authorization, forwarded upstream
                default_headers={"Helicone-Auth": f"Bearer {key}"},
                max_retries=0,
            )
            stack.callback(client.close)
            yield Gateway(server, key, client)


def headers(**extra: str) -> dict[str, str]:
    return {
        "Helicone-Property-Team": "search",
        "X-Trace-Note": "headers test",
        "X-Custom-Token": SECRET_CUSTOM,
        **extra,
    }


def assert_request_headers(stored: dict[str, Any], gateway: Gateway) -> None:
    sent = stored["request_headers"]
    assert sent["authorization"] == "REDACTED"
    assert sent["helicone-auth"] == "REDACTED"
    assert sent["x-custom-token"] == "REDACTED"
    assert sent["helicone-property-team"] == "search"
    assert sent["x-trace-note"] == "headers test"
    assert sent["content-type"] == "application/json"
    assert sent["user-agent"].startswith("OpenAI/Python")
    # No credential survives anywhere in what the API shows.
    text = str(stored)
    assert gateway.key not in text and KEY not in text and SECRET_CUSTOM not in text


def test_whole_answer_keeps_both_header_sets(gateway: Gateway) -> None:
    raw = gateway.client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers()
    )
    stored = gateway.stored(raw.headers["helicone-id"])
    assert_request_headers(stored, gateway)
    answered = stored["response_headers"]
    assert answered["x-request-id"] == raw.headers["x-request-id"]
    assert answered["x-request-id"].startswith("req_emu_")
    assert answered["content-type"].startswith("application/json")
    # The bodies are still there, beside the headers.
    assert stored["request_body"]["messages"] == MESSAGES
    assert stored["response_body"]["id"] == raw.parse().id


def test_stream_keeps_both_header_sets(gateway: Gateway) -> None:
    raw = gateway.client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers=headers()
    )
    chunks = list(raw.parse())
    assert chunks
    stored = gateway.stored(raw.headers["helicone-id"])
    assert_request_headers(stored, gateway)
    answered = stored["response_headers"]
    assert answered["content-type"].startswith("text/event-stream")
    assert answered["x-request-id"] == raw.headers["x-request-id"]


def test_omit_flags_omit_the_headers(gateway: Gateway) -> None:
    raw = gateway.client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES,
        extra_headers=headers(**{"Helicone-Omit-Request": "true"}),
    )  # fmt: skip
    stored = gateway.stored(raw.headers["helicone-id"])
    assert stored["request_body"] is None and stored["request_headers"] is None
    assert stored["response_headers"]["x-request-id"] == raw.headers["x-request-id"]

    raw = gateway.client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=MESSAGES,
        extra_headers=headers(**{"Helicone-Omit-Response": "true"}),
    )  # fmt: skip
    stored = gateway.stored(raw.headers["helicone-id"])
    assert stored["response_body"] is None and stored["response_headers"] is None
    assert_request_headers(stored, gateway)


def test_cache_hit_keeps_the_stored_answers_headers(gateway: Gateway) -> None:
    cached = headers(**{"Helicone-Cache-Enabled": "true", "X-Trace-Note": "cache"})
    question: list[Any] = [{"role": "user", "content": "cache the headers, please"}]
    miss = gateway.client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=question, extra_headers=cached
    )
    hit = gateway.client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=question, extra_headers=cached
    )
    assert (miss.headers["helicone-cache"], hit.headers["helicone-cache"]) == ("MISS", "HIT")
    original = gateway.stored(miss.headers["helicone-id"])
    replayed = gateway.stored(hit.headers["helicone-id"])
    assert replayed["cache_reference_id"] == miss.headers["helicone-id"]
    # The hit answered with what the provider answered the first time…
    assert (
        replayed["response_headers"]["x-request-id"]
        == (original["response_headers"]["x-request-id"])
    )
    # …and its request headers are its own, redacted the same way.
    assert replayed["request_headers"]["x-trace-note"] == "cache"
    assert replayed["request_headers"]["helicone-auth"] == "REDACTED"
