"""BYOK routing: an organisation's own provider keys (the key store) come before the
operator's managed keys, fail over to them, and can be named as a deployment."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from gateway.store import Deployment
from tests.emulator import Fault, OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings

MANAGED, OWN = "sk-managed", "sk-org-own"


@pytest.fixture(scope="module")
def managed() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=MANAGED) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def own() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=OWN) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, managed: OpenAIEmulator, own: OpenAIEmulator
) -> Iterator[tuple[GatewayServer, str, str]]:
    settings = make_settings(
        tmp_path_factory.mktemp("gw"),
        provider_api_keys={"openai": MANAGED},
        provider_base_urls={"openai": managed.base_url},
    )
    key = create_key(settings)
    with GatewayServer(settings) as server:
        store = server.runtime.store
        org_id = server.call(store.ensure_org("default"))
        record = server.call(
            store.provider_keys.create(
                org_id, provider="openai", name="EU endpoint", api_key=OWN,
                deployment=Deployment(base_url=own.base_url), deployment_id="eu-endpoint",
            )
        )
        server.runtime.provider_keys.invalidate(org_id)
        assert record.deployment_id == "eu-endpoint"
        yield server, key, org_id


@pytest.fixture
def client(gateway: tuple[GatewayServer, str, str]) -> Iterator[openai.OpenAI]:
    server, key, _ = gateway
    with openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0) as sdk:
        yield sdk


@pytest.fixture(autouse=True)
def _clean(
    gateway: tuple[GatewayServer, str, str], managed: OpenAIEmulator, own: OpenAIEmulator
) -> Iterator[None]:
    yield
    managed.reset()
    own.reset()
    gateway[0].runtime.router.health.reset()


MESSAGES = [{"role": "user", "content": "whose key"}]


def test_the_orgs_own_key_goes_first(
    client: openai.OpenAI, managed: OpenAIEmulator, own: OpenAIEmulator
) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.parse().choices[0].message.content
    sent = {k.lower(): v for k, v in own.requests[-1].headers.items()}
    assert sent["authorization"] == f"Bearer {OWN}"
    assert managed.requests == []
    assert raw.headers["helicone-fallback-index"] == "0"


def test_a_failing_own_key_falls_back_to_the_managed_one(
    client: openai.OpenAI, managed: OpenAIEmulator, own: OpenAIEmulator
) -> None:
    own.inject(Fault(status=401))
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert raw.parse().choices[0].message.content
    assert raw.headers["helicone-fallback-index"] == "1"
    sent = {k.lower(): v for k, v in managed.requests[-1].headers.items()}
    assert sent["authorization"] == f"Bearer {MANAGED}"


def test_when_both_fail_the_own_keys_error_is_the_answer(
    client: openai.OpenAI, managed: OpenAIEmulator, own: OpenAIEmulator
) -> None:
    """The error-handling page's scenario: BYOK's 401 is more actionable than a 429."""
    own.inject(Fault(status=401, message="Invalid API key (yours)"))
    managed.inject(Fault(status=429))
    with pytest.raises(openai.AuthenticationError, match=r"Invalid API key \(yours\)") as caught:
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    body = caught.value.body
    assert isinstance(body, dict)
    assert [d["source"] for d in body["details"]] == [
        "gpt-4o-mini/openai/byok", "gpt-4o-mini/openai/credits"
    ]


def test_a_named_deployment_is_the_only_attempt(
    client: openai.OpenAI, managed: OpenAIEmulator, own: OpenAIEmulator
) -> None:
    own.inject(Fault(status=500))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o-mini/openai/eu-endpoint", messages=MESSAGES)
    assert len(own.requests) == 1 and managed.requests == []


def test_a_clients_own_key_beats_both(
    gateway: tuple[GatewayServer, str, str], managed: OpenAIEmulator, own: OpenAIEmulator
) -> None:
    server, key, _ = gateway
    with openai.OpenAI(
        base_url=server.url + "/v1", api_key=MANAGED, max_retries=0,
        default_headers={"helicone-auth": f"Bearer {key}"},
    ) as sdk:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert own.requests == [] and len(managed.requests) == 1
