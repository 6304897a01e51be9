"""A client's own provider key (``Authorization`` next to ``Helicone-Auth``) with no managed key
configured: the gateway routes with the client's key, in each provider's auth style."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.emulator import OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings

CLIENT_KEY = "sk-client-own"


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=CLIENT_KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator
) -> Iterator[tuple[GatewayServer, str]]:
    settings = make_settings(
        tmp_path_factory.mktemp("gw"),
        provider_api_keys={},  # no managed key at all
        provider_base_urls={
            "openai": upstream.base_url, "anthropic": upstream.anthropic_base_url
        },
    )
    key = create_key(settings)
    with GatewayServer(settings) as server:
        yield server, key


@pytest.mark.parametrize("model", ["gpt-4o-mini", "claude-sonnet-4-5/anthropic"])
def test_the_clients_own_key_routes_without_a_managed_key(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator, model: str
) -> None:
    server, key = gateway
    with openai.OpenAI(
        base_url=server.url + "/v1", api_key=CLIENT_KEY, max_retries=0,
        default_headers={"helicone-auth": f"Bearer {key}"},
    ) as client:
        completion = client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "mine"}]
        )
    assert completion.choices[0].message.content
    sent = {name.lower(): value for name, value in upstream.requests[-1].headers.items()}
    if model.endswith("/anthropic"):
        assert sent["x-api-key"] == CLIENT_KEY and "authorization" not in sent
    else:
        assert sent["authorization"] == f"Bearer {CLIENT_KEY}"
    assert key not in str(sent)


def test_without_any_key_the_error_names_the_variable(gateway: tuple[GatewayServer, str]) -> None:
    server, key = gateway
    with openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0) as client:
        with pytest.raises(openai.BadRequestError, match="ANTHROPIC_API_KEY"):
            client.chat.completions.create(
                model="claude-sonnet-4-5/anthropic", messages=[{"role": "user", "content": "x"}]
            )
