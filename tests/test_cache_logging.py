"""A cache hit in the request log: its own record, with the cache flag, no cost, a reference
to the request the provider answered, and what it saved (that request's cost and latency)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from logging_pipeline.schema import REQUEST_TABLE
from tests.emulator import OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings

KEY = "sk-emulator"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayServer, str]]:
    with OpenAIEmulator(api_key=KEY) as upstream:
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


def record(server: GatewayServer, request_id: str, timeout: float = 15.0) -> dict[str, Any]:
    writer = server.runtime.writer
    assert writer is not None
    deadline = time.monotonic() + timeout
    while True:
        found = server.call(
            writer.transport.query(
                f"SELECT * FROM {REQUEST_TABLE} FINAL WHERE request_id = {{id:UUID}}",
                {"id": request_id},
            )
        )
        if found:
            row: dict[str, Any] = found[0]
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"no record for {request_id}")
        time.sleep(0.05)


@pytest.mark.parametrize("stream", [False, True])
def test_a_hit_is_logged_with_what_it_saved(
    gateway: tuple[GatewayServer, str], stream: bool
) -> None:
    server, key = gateway
    body: dict[str, Any] = {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": f"log the hit {uuid.uuid4()}"}],
    }
    if stream:
        body["stream"] = True  # the gateway asks for usage upstream and strips it again
    headers = {
        "authorization": f"Bearer {key}",
        "content-type": "application/json",
        "helicone-cache-enabled": "true",
    }
    with httpx.Client(base_url=server.url, timeout=30) as client:
        miss = client.post("/v1/chat/completions", content=orjson.dumps(body), headers=headers)
        hit = client.post("/v1/chat/completions", content=orjson.dumps(body), headers=headers)
    assert (miss.headers["helicone-cache"], hit.headers["helicone-cache"]) == ("MISS", "HIT")
    assert hit.content == miss.content
    if stream:
        assert b'"usage":{' not in hit.content  # stripped on replay as the first time
    original = record(server, miss.headers["helicone-id"])
    replayed = record(server, hit.headers["helicone-id"])

    assert original["cache_enabled"] is True and original["cache_reference_id"] is None
    assert original["cost"] > 0 and original["cache_saved_cost"] == 0
    assert replayed["cache_enabled"] is True
    assert replayed["cache_reference_id"] == miss.headers["helicone-id"]
    assert replayed["cost"] == 0
    assert replayed["cache_saved_cost"] == original["cost"]  # exact usage, not an estimate
    assert replayed["tokens_estimated"] is False
    assert replayed["prompt_tokens"] == original["prompt_tokens"]
    assert replayed["completion_tokens"] == original["completion_tokens"]
    # What the provider's answer took, measured when it was stored (right after its last
    # byte; the record's own clock stops just before it): a few milliseconds apart at most.
    assert replayed["cache_saved_latency"] > 0
    assert abs(original["latency"] - replayed["cache_saved_latency"]) <= 50
    assert replayed["provider"] == "openai" and replayed["model"] == original["model"]
    assert replayed["is_stream"] is stream and replayed["status"] == 200
