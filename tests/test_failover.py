"""Failover end to end: a model chain walked attempt by attempt until one answers.

Real openai SDK → gateway → emulators failing on demand. Each failover trigger moves on
before the client sees a byte; an error that is not a trigger is the answer; when every
attempt fails the client gets the most actionable error with every attempt in ``details``;
the record keeps every attempt and is priced as the one that served.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.emulator import Fault, OpenAIEmulator
from tests.emulator.errors import context_length_exceeded
from tests.harness import GatewayServer, create_key, make_settings
from tests.test_logging import record

OPENAI_KEY, GROQ_KEY, ANTHROPIC_KEY = "sk-openai", "sk-groq", "sk-ant"
CHAIN = "my-model/openai,my-model/groq"
MESSAGES = [{"role": "user", "content": "fail over"}]


@pytest.fixture(scope="module")
def first() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=OPENAI_KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def second() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=GROQ_KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def claude() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=ANTHROPIC_KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory,
    first: OpenAIEmulator,
    second: OpenAIEmulator,
    claude: OpenAIEmulator,
) -> Iterator[tuple[GatewayServer, str]]:
    settings = make_settings(
        tmp_path_factory.mktemp("gw"),
        provider_api_keys={"openai": OPENAI_KEY, "groq": GROQ_KEY, "anthropic": ANTHROPIC_KEY},
        provider_base_urls={
            "openai": first.base_url,
            "groq": second.base_url,
            "anthropic": claude.anthropic_base_url,
        },
        logging_enabled=True,
        log_flush_ms=20,
    )
    key = create_key(settings)
    with GatewayServer(settings) as server:
        yield server, key


@pytest.fixture
def client(gateway: tuple[GatewayServer, str]) -> Iterator[openai.OpenAI]:
    server, key = gateway
    with openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0) as sdk:
        yield sdk


@pytest.fixture(autouse=True)
def _clean(
    gateway: tuple[GatewayServer, str],
    first: OpenAIEmulator,
    second: OpenAIEmulator,
    claude: OpenAIEmulator,
) -> Iterator[None]:
    yield
    for emulator in (first, second, claude):
        emulator.reset()
    server, _ = gateway
    server.runtime.router.health.reset()


def _chat(client: openai.OpenAI, model: str = CHAIN, **extra: Any) -> Any:
    return client.chat.completions.with_raw_response.create(
        model=model, messages=MESSAGES, **extra
    )


@pytest.mark.parametrize(
    "fault",
    [
        Fault(status=429, headers={"retry-after": "30"}),
        Fault(status=401),
        Fault(status=403),
        Fault(status=408),
        Fault(status=500),
        Fault(status=503),
        Fault(status=400, body=context_length_exceeded(200_000)),
        Fault(close="before_answer"),
    ],
    ids=["429", "401", "403", "408", "500", "503", "context-length", "unreachable"],
)
def test_each_trigger_moves_on_to_the_next_attempt(
    gateway: tuple[GatewayServer, str],
    client: openai.OpenAI,
    first: OpenAIEmulator,
    second: OpenAIEmulator,
    fault: Fault,
) -> None:
    server, _ = gateway
    first.inject(fault)
    raw = _chat(client)
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert raw.headers["helicone-fallback-index"] == "1"
    assert len(first.requests) == 1 and len(second.requests) == 1
    assert second.requests[-1].json["model"] == "my-model"
    row = record(server, raw.headers["helicone-id"])
    assert row["provider"] == "groq" and row["status"] == 200
    attempts = json.loads(row["attempts"])
    assert [a["source"] for a in attempts] == [
        "my-model/openai/credits", "my-model/groq/credits"
    ]
    assert attempts[1]["status"] == 200 and attempts[0]["status"] >= 400


def test_a_bad_request_is_the_answer_not_a_trigger(
    client: openai.OpenAI, first: OpenAIEmulator, second: OpenAIEmulator
) -> None:
    first.inject(Fault(status=400, message="temperature is out of range"))
    with pytest.raises(openai.BadRequestError, match="temperature is out of range") as caught:
        _chat(client)
    assert caught.value.response.headers["helicone-fallback-index"] == "0"
    assert second.requests == []


def test_when_every_attempt_fails_the_most_actionable_error_wins(
    gateway: tuple[GatewayServer, str],
    client: openai.OpenAI,
    first: OpenAIEmulator,
    second: OpenAIEmulator,
) -> None:
    server, _ = gateway
    first.inject(Fault(status=429))
    second.inject(Fault(status=401, message="Invalid API key for groq"))
    with pytest.raises(openai.AuthenticationError) as caught:
        _chat(client)
    body: Any = caught.value.body
    assert body["message"] == "Invalid API key for groq"
    details = body["details"]
    assert [(d["source"], d["statusCode"]) for d in details] == [
        ("my-model/openai/credits", 429), ("my-model/groq/credits", 401)
    ]
    assert "helicone-fallback-index" not in caught.value.response.headers  # none served
    row = record(server, caught.value.response.headers["helicone-id"])
    assert row["status"] == 401 and len(json.loads(row["attempts"])) == 2


def test_a_single_attempts_error_is_forwarded_as_it_is(
    client: openai.OpenAI, first: OpenAIEmulator
) -> None:
    first.inject(Fault(status=429, message="slow down", headers={"retry-after": "7"}))
    with pytest.raises(openai.RateLimitError) as caught:
        _chat(client, "gpt-4o-mini/openai")
    assert caught.value.response.headers["retry-after"] == "7"
    body: Any = caught.value.body
    assert body["message"] == "slow down" and "details" not in body
    assert "helicone-fallback-index" not in caught.value.response.headers


def test_a_stream_failing_before_its_first_byte_fails_over(
    client: openai.OpenAI, first: OpenAIEmulator, second: OpenAIEmulator
) -> None:
    first.inject(Fault(status=500))
    chunks = list(
        client.chat.completions.create(model=CHAIN, messages=MESSAGES, stream=True)
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(second.requests) == 1


def test_a_stream_failing_after_its_first_byte_ends_cleanly(
    client: openai.OpenAI, first: OpenAIEmulator, second: OpenAIEmulator
) -> None:
    first.inject(Fault(drop_after_events=2))
    chunks = list(
        client.chat.completions.create(model=CHAIN, messages=MESSAGES, stream=True)
    )
    assert len(chunks) == 2  # what was sent before the cut, and no second provider
    assert second.requests == []


def test_a_chain_across_wire_formats(
    client: openai.OpenAI, first: OpenAIEmulator, claude: OpenAIEmulator
) -> None:
    first.inject(Fault(status=503))
    raw = _chat(client, "gpt-4o-mini/openai,claude-sonnet-4-5/anthropic")
    assert raw.parse().choices[0].message.content
    assert raw.headers["helicone-fallback-index"] == "1"
    assert claude.requests[-1].path == "/v1/messages"


def test_exclusions_remove_a_provider_from_every_item(
    client: openai.OpenAI, first: OpenAIEmulator, second: OpenAIEmulator
) -> None:
    raw = _chat(client, "!openai," + CHAIN)
    assert raw.parse().choices[0].message.content
    assert first.requests == [] and len(second.requests) == 1


def test_a_provider_that_keeps_failing_is_cooled_down(
    client: openai.OpenAI, first: OpenAIEmulator, second: OpenAIEmulator
) -> None:
    first.inject(Fault(status=503, times=3))
    for _ in range(3):
        _chat(client)
    assert len(first.requests) == 3
    raw = _chat(client)  # openai is cooled down: groq goes first
    assert raw.headers["helicone-fallback-index"] == "0"
    assert len(first.requests) == 3 and len(second.requests) == 4


def test_grammar_errors_are_a_400_naming_the_item(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match=r"Invalid global ignore syntax"):
        _chat(client, "!,gpt-4o-mini")
    with pytest.raises(openai.BadRequestError, match=r"nowhere"):
        _chat(client, "gpt-4o-mini/nowhere")


def test_every_attempt_failing_lists_each_attempt_once(
    gateway: tuple[GatewayServer, str],
    client: openai.OpenAI,
    first: OpenAIEmulator,
    second: OpenAIEmulator,
) -> None:
    """The chosen error (the unreachable first attempt's 502) is not taken for a new failure
    of the last attempt."""
    server, _ = gateway
    first.inject(Fault(close="before_answer"))
    second.inject(Fault(status=503))
    with pytest.raises(openai.APIStatusError) as caught:
        _chat(client)
    assert caught.value.status_code == 502
    body: Any = caught.value.body
    assert [d["source"] for d in body["details"]] == [
        "my-model/openai/credits", "my-model/groq/credits"
    ]
    row = record(server, caught.value.response.headers["helicone-id"])
    assert len(json.loads(row["attempts"])) == 2
