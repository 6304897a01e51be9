"""Passthrough paths that are not plain proxy paths: the manual-logger endpoints (logged,
never forwarded) and the key-in-path forms (authenticate with the key, strip it, never forward or
record it). One gateway with logging on (the writer child owns the embedded store)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gateway.errors import GatewayError
from gateway.passthrough import is_log_endpoint, take_path_key
from tests.emulator import OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings

PROVIDER_KEY = "sk-client-own"
WRONG_KEY = "sk-helicone-aaaaaaa-bbbbbbb-ccccccc-ddddddd"
MESSAGES = [{"role": "user", "content": "hi there"}]
LOG_BODY = {
    "providerRequest": {"url": "custom-model-nopath", "json": {"prompt": "secret prompt"},
                        "meta": {}},
    "providerResponse": {"headers": {}, "status": 200, "json": {"answer": "secret answer"}},
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=PROVIDER_KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator
) -> Iterator[tuple[GatewayServer, str]]:
    settings = make_settings(
        tmp_path_factory.mktemp("gw-paths"),
        provider_base_urls={"openai": upstream.base_url, "groq": upstream.base_url},
        allowed_target_hosts=[upstream.origin],
        logging_enabled=True,
        log_flush_ms=20,
    )
    key = create_key(settings)
    with GatewayServer(settings) as server:
        yield server, key


@pytest.fixture(autouse=True)
def _reset(upstream: OpenAIEmulator) -> None:
    upstream.reset()


def _record(server: GatewayServer, key: str, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        response = httpx.get(
            f"{server.url}/v1/request/{request_id}", headers={"authorization": f"Bearer {key}"}
        )
        if response.status_code == 200:
            data: dict[str, Any] = response.json()["data"]
            return data
        assert time.monotonic() < deadline, response.text
        time.sleep(0.05)


# --- the manual-logger endpoints --------------------------------------------------------------

LOG_PATHS = [
    "/oai/v1/log",
    "/anthropic/v1/log",
    "/custom/v1/log",
    "/googleapis/v1/log",
    "/v1/gateway/oai/v1/log",
    "/v1/gateway/groq/v1/log",
    "/v1/trace/custom/v1/log",
    "/oai/v1/log/",
]


@pytest.mark.parametrize("path", LOG_PATHS)
def test_log_endpoints_log_and_never_reach_the_provider(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator, path: str
) -> None:
    server, key = gateway
    response = httpx.post(
        server.url + path, json=LOG_BODY, headers={"authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200, response.text
    request_id = response.json()["data"]["request_id"]
    assert response.headers["helicone-id"] == request_id
    assert _record(server, key, request_id)["request_path"] == path.rstrip("/")
    assert upstream.requests == []


@pytest.mark.parametrize("path", LOG_PATHS)
def test_log_endpoints_need_a_gateway_key(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator, path: str
) -> None:
    server, _ = gateway
    response = httpx.post(server.url + path, json=LOG_BODY)
    assert response.status_code == 401
    assert response.json()["data"] is None and "gateway key" in response.json()["error"]
    assert response.headers["helicone-id"]
    assert upstream.requests == []


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_log_endpoints_refuse_every_other_method(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator, method: str
) -> None:
    server, key = gateway
    response = httpx.request(
        method, server.url + "/oai/v1/log",
        headers={"helicone-auth": f"Bearer {key}", "authorization": f"Bearer {PROVIDER_KEY}"},
    )  # fmt: skip
    assert response.status_code == 405
    assert upstream.requests == []


def test_log_endpoint_with_a_target_url_is_not_forwarded(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    """A logger that copies its Helicone-* headers (LiteLLM does) onto the log call."""
    server, key = gateway
    response = httpx.post(
        server.url + "/custom/v1/log",
        json=LOG_BODY,
        headers={"helicone-auth": f"Bearer {key}", "helicone-target-url": upstream.origin},
    )
    assert response.status_code == 200
    assert upstream.requests == []


def test_log_endpoint_with_the_key_in_the_path(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    response = httpx.post(f"{server.url}/oai/{key}/v1/log", json=LOG_BODY)
    assert response.status_code == 200, response.text
    record = _record(server, key, response.json()["data"]["request_id"])
    assert record["request_path"] == "/oai/v1/log"  # the key is never recorded
    assert record["provider"] == "openai"
    assert upstream.requests == []


def test_paths_that_only_end_like_log_are_still_forwarded(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    response = httpx.get(
        server.url + "/oai/v1/logs/v1/log-files",
        headers={"helicone-auth": f"Bearer {key}", "authorization": f"Bearer {PROVIDER_KEY}"},
    )
    assert response.status_code == 404  # the emulator's answer
    assert [r.path for r in upstream.requests] == ["/v1/logs/v1/log-files"]


# --- the key in the path ----------------------------------------------------------------------

def _key_prefixes(key: str) -> list[str]:
    return [
        f"/oai/{key}/v1",
        f"/v1/gateway/oai/{key}/v1",
        f"/v1/gateway/groq/{key}/v1",
        f"/v1/gateway/groq/v1/{key}",  # hyperbolic style: the key after the version
    ]


@pytest.mark.parametrize("form", range(4))
def test_key_in_path_with_sdk(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator, form: int
) -> None:
    server, key = gateway
    sdk = openai.OpenAI(
        base_url=server.url + _key_prefixes(key)[form], api_key=PROVIDER_KEY, max_retries=0
    )
    raw = sdk.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.parse().choices[0].message.content.endswith("hi there")  # type: ignore[union-attr]
    text = "".join(
        c.choices[0].delta.content or ""
        for c in sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        if c.choices
    )
    assert text.endswith("hi there")
    assert len(upstream.requests) == 2
    for sent in upstream.requests:
        assert sent.path == "/v1/chat/completions"
        assert sent.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
        seen = sent.path + sent.query + json.dumps(sent.headers) + sent.body.decode()
        assert key not in seen

    row = _record(server, key, raw.headers["helicone-id"])
    assert row["response_status"] == 200
    assert key not in json.dumps(row)
    assert row["request_path"] == (_key_prefixes("")[form] + "/chat/completions").replace("//", "/")
    base = "{OPENAI_BASE_URL}" if "/oai/" in _key_prefixes(key)[form] else "{GROQ_BASE_URL}"
    assert row["target_url"] == base + "/chat/completions"


def test_key_in_path_with_a_target_url(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    response = httpx.post(
        f"{server.url}/{key}/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES},
        headers={"authorization": f"Bearer {PROVIDER_KEY}", "helicone-target-url": upstream.origin},
    )
    assert response.status_code == 200, response.text
    assert [r.path for r in upstream.requests] == ["/v1/chat/completions"]
    row = _record(server, key, response.headers["helicone-id"])
    assert row["request_path"] == "/v1/chat/completions"
    assert row["target_url"] == upstream.origin + "/v1/chat/completions"


@pytest.mark.parametrize("with_header", [False, True])
def test_wrong_key_in_path_is_401(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator, with_header: bool
) -> None:
    """The key in the path authenticates, even next to a valid Helicone-Auth."""
    server, key = gateway
    headers = {"authorization": f"Bearer {PROVIDER_KEY}"}
    if with_header:
        headers["helicone-auth"] = f"Bearer {key}"
    response = httpx.get(f"{server.url}/oai/{WRONG_KEY}/v1/models", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"
    assert upstream.requests == []


def test_key_elsewhere_in_the_path_is_refused(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    response = httpx.get(
        f"{server.url}/oai/v1/models/{key}",
        headers={"helicone-auth": f"Bearer {key}", "authorization": f"Bearer {PROVIDER_KEY}"},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_path"
    assert key not in response.text
    assert upstream.requests == []


# --- the matching rules, unit level -----------------------------------------------------------

def test_matching_rules() -> None:
    assert take_path_key("/v1/chat/completions") == (None, "/v1/chat/completions")
    assert take_path_key(f"/{WRONG_KEY}/v1/models") == (WRONG_KEY, "/v1/models")
    assert take_path_key(f"/v1/{WRONG_KEY}/models") == (WRONG_KEY, "/v1/models")
    for bad in (f"/v1/models/{WRONG_KEY}", f"/{WRONG_KEY}/{WRONG_KEY}/v1", f"/v1/x{WRONG_KEY}"):
        with pytest.raises(GatewayError) as caught:
            take_path_key(bad)
        assert caught.value.status == 400 and WRONG_KEY not in caught.value.message
    assert is_log_endpoint(f"/oai/{WRONG_KEY}/v1/log")
    assert is_log_endpoint("/v1/gateway/anthropic/v1/log/")
    assert not is_log_endpoint("/v1/log")
    assert not is_log_endpoint("/oai/v1/logs")
    assert not is_log_endpoint("/other/v1/log")
    assert not is_log_endpoint("/v1/gateway/oai/extra/v1/log")


def test_a_crash_never_writes_the_path_key_to_the_server_log(
    gateway: tuple[GatewayServer, str], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An unexpected error is logged with its path — with the key in the path masked."""
    server, key = gateway

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(server.runtime.upstream, "relay", broken)
    with caplog.at_level("ERROR", logger="gateway.dataplane"):
        response = httpx.post(
            f"{server.url}/oai/{key}/v1/chat/completions",
            json={"model": "gpt-4o-mini", "messages": MESSAGES},
            headers={"authorization": f"Bearer {PROVIDER_KEY}"},
        )
    assert response.status_code == 500
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/oai/" in logged and "/v1/chat/completions" in logged
    assert key not in logged
