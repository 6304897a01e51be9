"""Azure OpenAI: the OpenAI format on per-resource endpoints, addressed by deployment.

The operator's endpoint (``AZURE_OPENAI_ENDPOINT`` + ``AZURE_OPENAI_API_KEY``) with and without
``AZURE_OPENAI_API_VERSION`` (classic deployments API vs the v1 API), an organisation's own
deployment from the key store, the passthrough routes, and the legacy
``Helicone-OpenAI-Api-Base`` form with ``Helicone-Model-Override`` pricing.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gateway.store import Deployment
from providers.azure import azure_url, check_deployment
from tests.emulator import OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings
from tests.test_logging import record

KEY, OWN = "azure-managed-key", "azure-org-key"
MESSAGES = [{"role": "user", "content": "hello azure"}]


def test_urls() -> None:
    base = "https://res.openai.azure.com"
    assert azure_url(base, "gpt4o", "/chat/completions", None) == (
        f"{base}/openai/v1/chat/completions"
    )
    assert azure_url(base + "/openai/", "gpt4o", "/chat/completions", "2024-10-21") == (
        f"{base}/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21"
    )
    assert azure_url(base, "gpt4o", "/responses", "2025-03-01-preview") == (
        f"{base}/openai/responses?api-version=2025-03-01-preview"
    )
    for bad in ("../admin", "a/b", "", ".hidden", "x" * 65, "a..b"):
        with pytest.raises(ValueError, match="deployment name"):
            check_deployment(bad)


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def org_upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=OWN) as emulator:
        yield emulator


def _serve(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator, **extra: Any
) -> Iterator[tuple[GatewayServer, str]]:
    settings = make_settings(
        tmp_path_factory.mktemp("gw"),
        provider_api_keys={"azure": KEY},
        provider_base_urls={"azure": upstream.origin},
        logging_enabled=True,
        log_flush_ms=20,
        **extra,
    )
    key = create_key(settings)
    with GatewayServer(settings) as server:
        yield server, key


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator
) -> Iterator[tuple[GatewayServer, str]]:
    yield from _serve(tmp_path_factory, upstream, azure_openai_api_version="2024-10-21")


@pytest.fixture(autouse=True)
def _clean(upstream: OpenAIEmulator, org_upstream: OpenAIEmulator) -> Iterator[None]:
    yield
    upstream.reset()
    org_upstream.reset()


def _client(server: GatewayServer, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


def test_chat_reaches_the_deployment_with_the_api_version_and_api_key(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    with _client(server, key) as client:
        raw = client.chat.completions.with_raw_response.create(
            model="my-gpt4o-mini/azure", messages=MESSAGES
        )
    assert raw.parse().choices[0].message.content
    sent = upstream.requests[-1]
    assert sent.path == "/openai/deployments/my-gpt4o-mini/chat/completions"
    assert sent.query == "api-version=2024-10-21"
    assert sent.headers["api-key"] == KEY and "authorization" not in sent.headers
    row = record(server, raw.headers["helicone-id"])
    assert row["provider"] == "azure"
    assert row["target_url"] == (
        "{AZURE_OPENAI_ENDPOINT}/openai/deployments/my-gpt4o-mini/chat/completions"
        "?api-version=2024-10-21"
    )


def test_streams_embeddings_and_responses(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    with _client(server, key) as client:
        chunks = list(
            client.chat.completions.create(
                model="my-gpt4o-mini/azure", messages=MESSAGES, stream=True
            )
        )
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        embedded = client.embeddings.create(model="my-embedder/azure", input=["a", "b"])
        assert len(embedded.data) == 2
        assert upstream.requests[-1].path == "/openai/deployments/my-embedder/embeddings"
        response = client.responses.create(model="my-gpt4o-mini/azure", input="hi")
        assert response.output_text
        assert upstream.requests[-1].path == "/openai/responses"
        assert upstream.requests[-1].json["model"] == "my-gpt4o-mini"


def test_an_invalid_deployment_name_is_a_400(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    with _client(server, key) as client, pytest.raises(openai.BadRequestError, match="deploy"):
        client.chat.completions.create(model="../../admin/azure", messages=MESSAGES)
    assert upstream.requests == []


def test_the_v1_api_without_a_version(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator
) -> None:
    for server, key in _serve(tmp_path_factory, upstream):
        with _client(server, key) as client:
            client.chat.completions.create(model="my-gpt4o-mini/azure", messages=MESSAGES)
        sent = upstream.requests[-1]
        assert sent.path == "/openai/v1/chat/completions" and sent.query == ""
        assert sent.json["model"] == "my-gpt4o-mini"


def test_an_organisations_own_deployment(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator, org_upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    store = server.runtime.store
    org_id = server.call(store.ensure_org("default"))
    server.call(
        store.provider_keys.create(
            org_id, provider="azure", name="Sweden", api_key=OWN, deployment_id="sweden",
            deployment=Deployment(
                azure_endpoint=org_upstream.origin, azure_deployment="gpt-4o-se",
                api_version="2025-01-01-preview",
            ),
        )
    )
    server.runtime.provider_keys.invalidate(org_id)
    with _client(server, key) as client:
        client.chat.completions.create(model="gpt-4o/azure/sweden", messages=MESSAGES)
    sent = org_upstream.requests[-1]
    assert sent.path == "/openai/deployments/gpt-4o-se/chat/completions"
    assert sent.query == "api-version=2025-01-01-preview"
    assert sent.headers["api-key"] == OWN
    assert upstream.requests == []


def test_passthrough_and_the_legacy_api_base_header(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    path = "/openai/deployments/dep1/chat/completions?api-version=2024-10-21"
    headers = {"helicone-auth": f"Bearer {key}", "api-key": KEY}
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    routed = httpx.post(f"{server.url}/v1/gateway/azure{path}", headers=headers, json=body)
    assert routed.status_code == 200, routed.text
    assert upstream.requests[-1].path == "/openai/deployments/dep1/chat/completions"
    legacy = httpx.post(
        f"{server.url}/oai{path}", json=body,
        headers={**headers, "helicone-openai-api-base": upstream.origin,
                 "helicone-model-override": "gpt-4o-mini"},
    )
    assert legacy.status_code == 200, legacy.text
    row = record(server, legacy.headers["helicone-id"])
    assert row["model"] == "gpt-4o-mini" and row["cost"] > 0  # priced as the override


def test_no_endpoint_configured_is_a_400_naming_the_variable(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    settings = make_settings(
        tmp_path_factory.mktemp("gw"), provider_api_keys={"azure": KEY}
    )
    key = create_key(settings)
    with GatewayServer(settings) as server, _client(server, key) as client:
        with pytest.raises(openai.BadRequestError, match="AZURE_OPENAI_ENDPOINT"):
            client.chat.completions.create(model="dep/azure", messages=MESSAGES)


def test_passthrough_without_an_endpoint_is_a_400(tmp_path_factory: pytest.TempPathFactory) -> None:
    settings = make_settings(tmp_path_factory.mktemp("gw"))
    key = create_key(settings)
    with GatewayServer(settings) as server:
        response = httpx.post(
            f"{server.url}/v1/gateway/azure/openai/v1/chat/completions",
            headers={"helicone-auth": f"Bearer {key}", "api-key": KEY}, json={},
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "provider_not_configured"
    assert "AZURE_OPENAI_ENDPOINT" in response.json()["error"]["message"]
