"""Passthrough mode: /oai/v1, /v1/gateway/{provider}, Helicone-Target-Url; the client's key."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.emulator import OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings

PROVIDER_KEY = "sk-client-own"


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=PROVIDER_KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def other() -> Iterator[OpenAIEmulator]:
    """A second upstream, only reachable when the operator allows its host:port."""
    with OpenAIEmulator(api_key=PROVIDER_KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator, other: OpenAIEmulator
) -> Iterator[tuple[GatewayServer, str]]:
    settings = make_settings(
        tmp_path_factory.mktemp("gw"),
        provider_base_urls={"openai": upstream.base_url, "groq": upstream.base_url},
        allowed_target_hosts=[other.origin],  # http://127.0.0.1:<port>: plain http, this port
    )
    key = create_key(settings)
    with GatewayServer(settings) as server:
        yield server, key


@pytest.fixture(autouse=True)
def _reset(upstream: OpenAIEmulator, other: OpenAIEmulator) -> None:
    upstream.reset()
    other.reset()


MESSAGES = [{"role": "user", "content": "hi there"}]


@pytest.mark.parametrize("prefix", ["/oai/v1", "/v1/gateway/oai/v1", "/v1/gateway/groq/v1"])
def test_provider_passthrough_with_sdk(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator, prefix: str
) -> None:
    server, key = gateway
    sdk = openai.OpenAI(
        base_url=server.url + prefix,
        api_key=PROVIDER_KEY,
        default_headers={"Helicone-Auth": f"Bearer {key}", "Helicone-Property-App": "x"},
        max_retries=0,
    )
    completion = sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content.endswith("hi there")  # type: ignore[union-attr]
    text = "".join(
        c.choices[0].delta.content or ""
        for c in sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
        if c.choices
    )
    assert text.endswith("hi there")
    sent = upstream.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {PROVIDER_KEY}"
    assert not any(name.startswith("helicone-") for name in sent.headers)


def test_passthrough_forwards_any_path_method_and_query(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    response = httpx.get(
        server.url + "/oai/v1/models?limit=2",
        headers={
            "authorization": f"Bearer {PROVIDER_KEY}",
            "helicone-auth": f"Bearer {key}",
            "connection": "keep-alive, x-hop",
            "x-hop": "1",
            "x-custom": "kept",
        },
    )
    assert response.status_code == 200
    assert response.headers["helicone-id"]
    sent = upstream.requests[-1]
    assert (sent.method, sent.path, sent.query) == ("GET", "/v1/models", "limit=2")
    assert sent.headers["x-custom"] == "kept"
    assert "x-hop" not in sent.headers or sent.headers.get("connection") is None


def test_passthrough_requires_gateway_key(gateway: tuple[GatewayServer, str]) -> None:
    server, _ = gateway
    response = httpx.get(
        server.url + "/oai/v1/models", headers={"authorization": f"Bearer {PROVIDER_KEY}"}
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_upstream_status_passes_through(gateway: tuple[GatewayServer, str]) -> None:
    server, key = gateway
    response = httpx.get(
        server.url + "/oai/v1/models",
        headers={"authorization": "Bearer wrong", "helicone-auth": f"Bearer {key}"},
    )
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


def test_unknown_passthrough_provider_is_404(gateway: tuple[GatewayServer, str]) -> None:
    server, key = gateway
    response = httpx.get(
        server.url + "/v1/gateway/nowhere/v1/models", headers={"helicone-auth": f"Bearer {key}"}
    )
    assert response.status_code == 404
    assert "nowhere" in response.json()["error"]["message"]


def test_generic_target_url(
    gateway: tuple[GatewayServer, str], other: OpenAIEmulator, upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    sdk = openai.OpenAI(
        base_url=server.url + "/v1",
        api_key=PROVIDER_KEY,
        default_headers={"Helicone-Auth": f"Bearer {key}", "Helicone-Target-Url": other.origin},
        max_retries=0,
    )
    completion = sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content.endswith("hi there")  # type: ignore[union-attr]
    assert len(other.requests) == 1 and upstream.requests == []
    assert "helicone-target-url" not in other.requests[0].headers


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("helicone-target-url", "http://169.254.169.254"),
        ("helicone-target-url", "https://evil.example"),
        ("helicone-openai-api-base", "https://evil.example"),
    ],
)
def test_disallowed_targets_are_refused(
    gateway: tuple[GatewayServer, str], header: str, value: str
) -> None:
    server, key = gateway
    response = httpx.post(
        server.url + "/oai/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES},
        headers={"helicone-auth": f"Bearer {key}", header: value},
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "target_not_allowed"


def test_openai_api_base_override(
    gateway: tuple[GatewayServer, str], other: OpenAIEmulator
) -> None:
    server, key = gateway
    response = httpx.post(
        server.url + "/oai/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES},
        headers={
            "authorization": f"Bearer {PROVIDER_KEY}",
            "helicone-auth": f"Bearer {key}",
            "helicone-openai-api-base": other.origin,
        },
    )
    assert response.status_code == 200
    assert other.requests[-1].path == "/v1/chat/completions"
