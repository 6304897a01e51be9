"""``Helicone-Retry-*``: an answer worth retrying is sent again before the client sees a byte.

Unit tests of the policy (parsing, backoff bounds, ``Retry-After``), then end to end with the
emulator failing on demand: retried until it succeeds, exhausted (the last answer is the
client's), never for a 400, honouring ``Retry-After``, and on a stream before its first byte.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from email.utils import formatdate

import openai
import pytest

from gateway.retry import RetryPolicy, retryable
from tests.emulator import Fault, OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings

KEY = "sk-emulator"
FAST = {
    "helicone-retry-enabled": "true",
    "helicone-retry-min-timeout": "10",
    "helicone-retry-max-timeout": "40",
}
MESSAGES = [{"role": "user", "content": "retry me"}]


# --- the policy -------------------------------------------------------------------------------


def test_defaults_are_the_references() -> None:
    policy = RetryPolicy.from_headers(None, None, None, None)
    assert policy == RetryPolicy(retries=5, factor=2, min_timeout_ms=1000, max_timeout_ms=10000)


@pytest.mark.parametrize("bad", ["x", "-1", "nan", "1e9", ""])
def test_invalid_values_fall_back_to_the_default(bad: str) -> None:
    policy = RetryPolicy.from_headers(bad, bad, bad, bad)
    assert policy == RetryPolicy()


def test_backoff_grows_by_the_factor_within_jitter_and_is_capped() -> None:
    policy = RetryPolicy(retries=5, factor=3, min_timeout_ms=100, max_timeout_ms=1000)
    for attempt, full in enumerate([0.1, 0.3, 0.9, 1.0, 1.0]):
        delays = [policy.delay(attempt) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays)
        assert max(delays) - min(delays) > full / 10  # jittered, not constant


def test_retry_after_is_a_floor_capped_by_the_maximum() -> None:
    policy = RetryPolicy(retries=1, factor=2, min_timeout_ms=10, max_timeout_ms=5000)
    assert policy.delay(0, "2") == 2.0
    # An HTTP date has whole seconds: 3 s ahead is between 2 and 3 s away.
    assert 1.9 <= policy.delay(0, formatdate(time.time() + 3, usegmt=True)) <= 3.0
    assert policy.delay(0, "60") == 5.0  # never past the client's own bound
    assert policy.delay(0, "soon") <= 0.01  # unreadable: ignored


def test_what_is_retried() -> None:
    assert [s for s in (200, 400, 401, 404, 408, 429, 500, 502, 503, 529) if retryable(s)] == [
        429, 500, 502, 503, 529
    ]


def test_swapped_bounds_are_ordered() -> None:
    policy = RetryPolicy.from_headers("2", "2", "500", "100")
    assert (policy.min_timeout_ms, policy.max_timeout_ms) == (100, 500)


# --- end to end -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator
) -> Iterator[openai.OpenAI]:
    settings = make_settings(
        tmp_path_factory.mktemp("gw"),
        provider_api_keys={"openai": KEY},
        provider_base_urls={"openai": upstream.base_url},
    )
    key = create_key(settings)
    with GatewayServer(settings) as server, openai.OpenAI(
        base_url=server.url + "/v1", api_key=key, max_retries=0
    ) as sdk:
        yield sdk


@pytest.fixture(autouse=True)
def _clean(upstream: OpenAIEmulator) -> Iterator[None]:
    yield
    upstream.reset()


def _chat(client: openai.OpenAI, headers: dict[str, str], **extra: object) -> object:
    return client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers=headers, **extra  # type: ignore[call-overload]
    )


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retried_until_the_provider_answers(
    client: openai.OpenAI, upstream: OpenAIEmulator, status: int
) -> None:
    upstream.inject(Fault(status=status, path="/chat/completions", times=2))
    completion = _chat(client, FAST)
    assert completion.choices[0].message.content  # type: ignore[attr-defined]
    assert len(upstream.requests) == 3


def test_without_the_header_the_first_error_is_the_answer(
    client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    upstream.inject(Fault(status=429, path="/chat/completions"))
    with pytest.raises(openai.RateLimitError):
        _chat(client, {})
    assert len(upstream.requests) == 1


def test_exhausted_retries_forward_the_last_answer(
    client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    upstream.inject(Fault(status=503, path="/chat/completions", times=10))
    with pytest.raises(openai.InternalServerError) as caught:
        _chat(client, {**FAST, "helicone-retry-num": "2"})
    assert caught.value.status_code == 503
    assert len(upstream.requests) == 3  # the try and two retries


def test_a_bad_request_is_never_retried(client: openai.OpenAI, upstream: OpenAIEmulator) -> None:
    upstream.inject(Fault(status=400, path="/chat/completions", times=3))
    with pytest.raises(openai.BadRequestError):
        _chat(client, FAST)
    assert len(upstream.requests) == 1


def test_retry_after_is_honoured(client: openai.OpenAI, upstream: OpenAIEmulator) -> None:
    upstream.inject(
        Fault(status=429, path="/chat/completions", headers={"retry-after": "1"})
    )
    started = time.perf_counter()
    _chat(client, {**FAST, "helicone-retry-max-timeout": "3000"})
    assert 1.0 <= time.perf_counter() - started < 2.5
    assert len(upstream.requests) == 2


def test_a_stream_is_retried_before_its_first_byte(
    client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    upstream.inject(Fault(status=500, path="/chat/completions"))
    chunks = list(_chat(client, FAST, stream=True))  # type: ignore[call-overload]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(upstream.requests) == 2


def test_an_unreachable_provider_is_retried(
    client: openai.OpenAI, upstream: OpenAIEmulator
) -> None:
    upstream.inject(Fault(close="before_answer", path="/chat/completions"))
    assert _chat(client, FAST)
    assert len(upstream.requests) == 2
