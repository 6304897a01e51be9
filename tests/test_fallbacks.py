"""``Helicone-Fallbacks``: the legacy ordered list of targets, tried until one answers with a
status outside its ``onCodes``; ``Helicone-Fallback-Index`` says which one served."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.errors import GatewayError
from gateway.fallbacks import parse_fallbacks
from tests.emulator import Fault, OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings
from tests.test_logging import record

PRIMARY_KEY, SECOND_KEY = "sk-primary", "sk-second"
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "fall back"}]}


@pytest.fixture(scope="module")
def primary() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=PRIMARY_KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def second() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=SECOND_KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, primary: OpenAIEmulator, second: OpenAIEmulator
) -> Iterator[tuple[GatewayServer, str]]:
    settings = make_settings(
        tmp_path_factory.mktemp("gw"),
        allowed_target_hosts=[primary.origin, second.origin],
        logging_enabled=True,
        log_flush_ms=20,
    )
    key = create_key(settings)
    with GatewayServer(settings) as server:
        yield server, key


@pytest.fixture(autouse=True)
def _clean(primary: OpenAIEmulator, second: OpenAIEmulator) -> Iterator[None]:
    yield
    primary.reset()
    second.reset()


def _entries(primary: OpenAIEmulator, second: OpenAIEmulator, **second_extra: Any) -> str:
    return json.dumps([
        {"target-url": primary.origin, "headers": {"Authorization": f"Bearer {PRIMARY_KEY}"},
         "onCodes": [429, {"from": 500, "to": 599}]},
        {"target-url": second.origin, "headers": {"Authorization": f"Bearer {SECOND_KEY}"},
         "onCodes": [429], **second_extra},
    ])


def _post(server: GatewayServer, key: str, fallbacks: str, **extra: str) -> httpx.Response:
    return httpx.post(
        server.url + "/v1/chat/completions", json=BODY,
        headers={"helicone-auth": f"Bearer {key}", "helicone-fallbacks": fallbacks, **extra},
    )


def test_the_first_target_serves_when_it_can(
    gateway: tuple[GatewayServer, str], primary: OpenAIEmulator, second: OpenAIEmulator
) -> None:
    server, key = gateway
    response = _post(server, key, _entries(primary, second))
    assert response.status_code == 200
    assert response.headers["helicone-fallback-index"] == "0"
    assert len(primary.requests) == 1 and second.requests == []


@pytest.mark.parametrize("status", [429, 503])
def test_a_status_in_on_codes_moves_on_with_the_next_entrys_headers_and_body(
    gateway: tuple[GatewayServer, str], primary: OpenAIEmulator, second: OpenAIEmulator,
    status: int,
) -> None:
    server, key = gateway
    primary.inject(Fault(status=status))
    response = _post(
        server, key, _entries(primary, second, bodyKeyOverride={"model": "gpt-4o"})
    )
    assert response.status_code == 200, response.text
    assert response.headers["helicone-fallback-index"] == "1"
    sent = second.requests[-1]
    assert sent.json["model"] == "gpt-4o" and sent.json["messages"] == BODY["messages"]
    sent_headers = {k.lower(): v for k, v in sent.headers.items()}
    assert sent_headers["authorization"] == f"Bearer {SECOND_KEY}"
    assert key not in json.dumps(dict(sent.headers))
    row = record(server, response.headers["helicone-id"])
    assert row["target_url"].startswith(second.origin) and row["status"] == 200


def test_a_status_outside_on_codes_is_the_answer(
    gateway: tuple[GatewayServer, str], primary: OpenAIEmulator, second: OpenAIEmulator
) -> None:
    server, key = gateway
    primary.inject(Fault(status=400))
    response = _post(server, key, _entries(primary, second))
    assert response.status_code == 400
    assert response.headers["helicone-fallback-index"] == "0"
    assert second.requests == []


def test_the_last_entrys_answer_is_returned_whatever_it_is(
    gateway: tuple[GatewayServer, str], primary: OpenAIEmulator, second: OpenAIEmulator
) -> None:
    server, key = gateway
    primary.inject(Fault(status=500))
    second.inject(Fault(status=429))
    response = _post(server, key, _entries(primary, second))
    assert response.status_code == 429
    assert response.headers["helicone-fallback-index"] == "1"


def test_an_unreachable_target_moves_on_when_502_is_listed(
    gateway: tuple[GatewayServer, str], primary: OpenAIEmulator, second: OpenAIEmulator
) -> None:
    server, key = gateway
    primary.inject(Fault(close="before_answer"))
    response = _post(server, key, _entries(primary, second))
    assert response.status_code == 200
    assert response.headers["helicone-fallback-index"] == "1"


def test_a_target_off_the_allow_list_is_refused_before_anything_is_sent(
    gateway: tuple[GatewayServer, str], primary: OpenAIEmulator
) -> None:
    server, key = gateway
    entries = json.dumps([
        {"target-url": primary.origin, "headers": {}, "onCodes": [429]},
        {"target-url": "http://169.254.169.254", "headers": {}, "onCodes": [429]},
    ])
    response = _post(server, key, entries)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "target_not_allowed"
    assert primary.requests == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("not json", "not JSON"),
        ("{}", "non-empty JSON array"),
        ("[]", "non-empty JSON array"),
        ('[{"headers": {}, "onCodes": []}]', "[0].target-url is required"),
        ('[{"target-url": "https://api.openai.com", "onCodes": []}]', "[0].headers is required"),
        ('[{"target-url": "https://api.openai.com", "headers": {}}]', "[0].onCodes is required"),
        ('[{"target-url": "https://api.openai.com", "headers": {}, "onCodes": [99]}]',
         "onCodes[0] must be an HTTP status"),
        ('[{"target-url": "https://api.openai.com", "headers": {}, '
         '"onCodes": [{"from": 500, "to": 400}]}]', "'from' is above 'to'"),
        ('[{"target-url": "https://api.openai.com", "headers": {"a": 1}, "onCodes": []}]',
         "string values"),
    ],
)
def test_a_malformed_header_is_a_400_saying_what_is_wrong(value: str, message: str) -> None:
    with pytest.raises(GatewayError) as caught:
        parse_fallbacks(value)
    assert caught.value.status == 400 and message in caught.value.message


def test_a_malformed_header_through_the_gateway(gateway: tuple[GatewayServer, str]) -> None:
    server, key = gateway
    response = _post(server, key, "[1]")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_fallbacks"
