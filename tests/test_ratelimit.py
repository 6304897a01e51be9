"""Rate limits end to end: real SDK and raw HTTP → gateway → emulator, in process and on the
real Redis server (the same tests on both backends).

Every test gets its own organisation, so counters never leak between tests; on Redis the
module's key prefix is deleted afterwards.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import httpx
import openai
import orjson
import pytest
from openai.types import ErrorObject
from pydantic import TypeAdapter

from providers.usage import Usage
from tests.emulator import Fault, OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings
from tests.redis_server import delete_prefix, keys_under, new_prefix, shared_redis_url

KEY = "sk-emulator"
YEAR = 31_536_000
MESSAGES = [{"role": "user", "content": "count me"}]
_ERROR = TypeAdapter(ErrorObject)


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module", params=["memory", "redis"])
def gateway(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    upstream: OpenAIEmulator,
) -> Iterator[GatewayServer]:
    redis_url = shared_redis_url() if request.param == "redis" else None
    prefix = new_prefix()
    settings = make_settings(
        tmp_path_factory.mktemp("gw"),
        provider_api_keys={"openai": KEY},
        provider_base_urls={"openai": upstream.base_url},
        redis_url=redis_url,
        redis_key_prefix=prefix,
    )
    with GatewayServer(settings) as server:
        assert server.runtime.limiter.backend == request.param
        yield server
    if redis_url is not None:
        assert keys_under(redis_url, prefix), "the counters were not on Redis"
        delete_prefix(redis_url, prefix)


@pytest.fixture(autouse=True)
def _reset(upstream: OpenAIEmulator) -> Iterator[None]:
    yield
    upstream.reset()


@pytest.fixture
def key(gateway: GatewayServer) -> str:
    """A key of a fresh organisation (counters are per organisation)."""
    return create_key(gateway.settings, org=f"org-{uuid.uuid4().hex[:8]}")


def _post(
    gateway: GatewayServer, key: str, headers: dict[str, str], **body: Any
) -> httpx.Response:
    payload = {"model": "gpt-4o-mini", "messages": MESSAGES, **body}
    return httpx.post(
        gateway.url + "/v1/chat/completions",
        json=payload,
        headers={"authorization": f"Bearer {key}", **headers},
        timeout=30,
    )


def _limit_headers(response: httpx.Response) -> tuple[str | None, str | None, str | None]:
    h = response.headers
    return (
        h.get("helicone-ratelimit-limit"),
        h.get("helicone-ratelimit-remaining"),
        h.get("helicone-ratelimit-policy"),
    )


def test_headers_count_down_and_state_the_canonical_policy(
    gateway: GatewayServer, key: str
) -> None:
    policy = {"Helicone-RateLimit-Policy": f"0003;W={YEAR};U=Request"}
    seen = [_limit_headers(_post(gateway, key, policy)) for _ in range(3)]
    assert seen == [("3", str(left), f"3;w={YEAR}") for left in (2, 1, 0)]


def test_exceeding_is_an_openai_shaped_429(
    gateway: GatewayServer, key: str, upstream: OpenAIEmulator
) -> None:
    policy = {"Helicone-RateLimit-Policy": f"2;w={YEAR}"}
    with openai.OpenAI(
        base_url=gateway.url + "/v1", api_key=key, max_retries=0, default_headers=policy
    ) as client:
        for _ in range(2):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
        sent = len(upstream.requests)
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)  # type: ignore[arg-type]
    assert len(upstream.requests) == sent  # refused before anything was forwarded
    response = caught.value.response
    assert response.status_code == 429
    error = _ERROR.validate_python(response.json()["error"])
    assert error.type == "rate_limit_error" and error.code == "rate_limited"
    assert f"2;w={YEAR}" in error.message
    assert _limit_headers(response) == ("2", "0", f"2;w={YEAR}")
    retry_after = int(response.headers["retry-after"])
    assert YEAR / 2 - 60 <= retry_after <= YEAR / 2  # one request comes back per w/quota
    assert response.headers["helicone-id"]


def test_no_policy_no_headers(gateway: GatewayServer, key: str) -> None:
    response = _post(gateway, key, {})
    assert response.status_code == 200
    assert _limit_headers(response) == (None, None, None)
    assert "retry-after" not in response.headers


@pytest.mark.parametrize(
    ("value", "param"),
    [("100;w=30", "w"), ("lots;w=60", "quota"), ("5;w=60;u=tokens", "u"),
     ("5;w=60;s=a.b", "s"), ("5;w=60;x=1", "policy")],
)
def test_an_invalid_policy_is_a_400_naming_the_part(
    gateway: GatewayServer, key: str, upstream: OpenAIEmulator, value: str, param: str
) -> None:
    response = _post(gateway, key, {"Helicone-RateLimit-Policy": value})
    assert response.status_code == 400
    error = _ERROR.validate_python(response.json()["error"])
    assert error.param == param and error.code == "invalid_rate_limit_policy"
    assert "Helicone-RateLimit-Policy" in error.message
    assert upstream.requests == []


def test_per_user(gateway: GatewayServer, key: str, upstream: OpenAIEmulator) -> None:
    policy = {"Helicone-RateLimit-Policy": f"2;w={YEAR};s=user"}
    for missing in ({}, {"Helicone-User-Id": ""}):
        response = _post(gateway, key, {**policy, **missing})
        assert response.status_code == 400
        error = _ERROR.validate_python(response.json()["error"])
        assert "Helicone-User-Id" in error.message and error.code == "missing_user_id"
    assert upstream.requests == []
    alice = {**policy, "Helicone-User-Id": "alice@example.com"}
    bob = {**policy, "Helicone-User-Id": "bob@example.com"}
    assert [_post(gateway, key, alice).status_code for _ in range(3)] == [200, 200, 429]
    assert [_post(gateway, key, bob).status_code for _ in range(3)] == [200, 200, 429]
    # User ids are compared as sent: another spelling is another user.
    assert _post(gateway, key, {**policy, "Helicone-User-Id": "Alice@example.com"}).is_success


def test_per_property(gateway: GatewayServer, key: str) -> None:
    policy = {"Helicone-RateLimit-Policy": f"2;w={YEAR};s=Organization"}
    missing = _post(gateway, key, {**policy, "Helicone-Property-Other": "x"})
    assert missing.status_code == 400
    error = _ERROR.validate_python(missing.json()["error"])
    assert error.param == "Helicone-Property-organization" and error.code == "missing_property"
    # The segment names the property case-insensitively (header names are, too).
    acme = {**policy, "helicone-property-ORGANIZATION": "acme"}
    other = {**policy, "Helicone-Property-Organization": "globex"}
    results = [_post(gateway, key, acme) for _ in range(3)]
    assert [r.status_code for r in results] == [200, 200, 429]
    assert results[0].headers["helicone-ratelimit-policy"] == f"2;w={YEAR};s=organization"
    assert [_post(gateway, key, other).status_code for _ in range(3)] == [200, 200, 429]


def test_scopes_and_policies_are_separate_counters(gateway: GatewayServer, key: str) -> None:
    global_policy = {"Helicone-RateLimit-Policy": f"1;w={YEAR}"}
    assert [_post(gateway, key, global_policy).status_code for _ in range(2)] == [200, 429]
    # Another policy, another counter (a policy is the client's own declaration).
    assert _post(gateway, key, {"Helicone-RateLimit-Policy": f"1;w={YEAR - 1}"}).is_success
    # A per-user policy of the same numbers is not the global one.
    per_user = {"Helicone-RateLimit-Policy": f"1;w={YEAR};s=user", "Helicone-User-Id": "u"}
    assert _post(gateway, key, per_user).is_success
    # Another organisation's global counter is its own.
    other_org = create_key(gateway.settings, org=f"org-{uuid.uuid4().hex[:8]}")
    assert _post(gateway, other_org, global_policy).is_success


def test_the_integration_pages_spelling(gateway: GatewayServer, key: str) -> None:
    """``Helicone-Rate-Limit-Policy: basic-100`` (LangChain, LiteLLM, DSPy pages) is not a
    policy: ignored. The same spelling with a real policy is applied; the documented header
    wins when both are sent."""
    basic = _post(gateway, key, {"Helicone-Rate-Limit-Policy": "basic-100"})
    assert basic.status_code == 200 and _limit_headers(basic) == (None, None, None)
    alias = {"Helicone-Rate-Limit-Policy": f"1;w={YEAR};s=user", "Helicone-User-Id": "a"}
    assert [_post(gateway, key, alias).status_code for _ in range(2)] == [200, 429]
    both = _post(gateway, key, {**alias, "Helicone-RateLimit-Policy": f"5;w={YEAR}"})
    assert _limit_headers(both) == ("5", "4", f"5;w={YEAR}")


def test_passthrough_routes_are_limited(
    gateway: GatewayServer, key: str, upstream: OpenAIEmulator
) -> None:
    headers = {
        "helicone-auth": f"Bearer {key}",
        "authorization": f"Bearer {KEY}",
        "helicone-ratelimit-policy": f"1;w={YEAR}",
    }
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    first = httpx.post(gateway.url + "/oai/v1/chat/completions", json=body, headers=headers)
    assert first.status_code == 200 and _limit_headers(first) == ("1", "0", f"1;w={YEAR}")
    second = httpx.post(gateway.url + "/oai/v1/chat/completions", json=body, headers=headers)
    assert second.status_code == 429 and second.headers["retry-after"]
    assert len(upstream.requests) == 1


# --- cents ----------------------------------------------------------------------------------

CENT = 10_000_000  # nano-dollars


def _estimate(gateway: GatewayServer, body: bytes, max_tokens: int) -> int:
    """The reservation the README documents: body bytes / 4 + 1 prompt tokens, the request's
    max_tokens as completion tokens, at the model's price."""
    registry = gateway.runtime.registry
    assert registry is not None
    price = registry.lookup("openai", "gpt-4o")
    assert price is not None
    usage = Usage(prompt_tokens=len(body) // 4 + 1, completion_tokens=max_tokens)
    return price.cost(usage).nano_usd


def _real_cost(gateway: GatewayServer, answer: dict[str, Any]) -> int:
    registry = gateway.runtime.registry
    assert registry is not None
    usage = answer["usage"]
    return registry.cost(
        "openai", "gpt-4o", Usage(usage["prompt_tokens"], usage["completion_tokens"])
    ).nano_usd


async def _burst(url: str, key: str, headers: dict[str, str], body: bytes, count: int
                 ) -> list[tuple[int, dict[str, Any]]]:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one() -> tuple[int, dict[str, Any]]:
            async with session.post(
                url + "/v1/chat/completions", data=body,
                headers={"authorization": f"Bearer {key}", "content-type": "application/json",
                         **headers},
            ) as response:
                return response.status, orjson.loads(await response.read())

        return await asyncio.gather(*(one() for _ in range(count)))


def test_cents_reserve_before_and_settle_after_under_concurrency(
    gateway: GatewayServer, key: str, upstream: OpenAIEmulator
) -> None:
    """30 requests at once against 100 cents: the reservations alone decide (every admitted
    request is still upstream when the last one arrives), so exactly floor(100 / estimate)
    pass; once they are answered, their real cost replaces the reservation."""
    max_tokens = 10_000
    body = orjson.dumps({"model": "gpt-4o", "messages": MESSAGES, "max_tokens": max_tokens})
    estimate = _estimate(gateway, body, max_tokens)
    quota = 100
    admitted_expected = quota * CENT // estimate
    assert 2 <= admitted_expected < 30
    upstream.inject(Fault(delay=1.5, times=30))
    headers = {"Helicone-RateLimit-Policy": f"{quota};w={YEAR};u=cents"}
    results = asyncio.run(_burst(gateway.url, key, headers, body, 30))
    statuses = [status for status, _ in results]
    assert statuses.count(200) == admitted_expected, statuses
    assert statuses.count(429) == 30 - admitted_expected
    spent = sum(_real_cost(gateway, answer) for status, answer in results if status == 200)
    assert 0 < spent < estimate  # the emulator's answers are far below max_tokens
    upstream.reset()
    after = _post(gateway, key, headers, model="gpt-4o", max_tokens=max_tokens)
    assert after.status_code == 200
    # The burst's reservations were given back down to their real cost; this request's own
    # reservation is taken (a year's window drains ~30 nano-dollars a second meanwhile).
    level = spent + _estimate(gateway, after.request.content, max_tokens)
    remaining = int(after.headers["helicone-ratelimit-remaining"])
    assert remaining in {math.floor((quota * CENT - level) / CENT),
                         math.floor((quota * CENT - level + 3000) / CENT)}


@pytest.mark.parametrize("stream", [False, True])
def test_cents_settle_to_the_real_cost_without_logging(
    gateway: GatewayServer, key: str, stream: bool
) -> None:
    """A quota between one and two reservations: the second request passes only if the first
    one's reservation was settled to its (much smaller) real cost, streamed or not, with the
    request log off (the usage of a stream comes from the usage chunk the gateway asks for)."""
    assert gateway.runtime.writer is None  # logging is off in this module
    max_tokens = 10_000
    body = orjson.dumps({"model": "gpt-4o", "messages": MESSAGES, "max_tokens": max_tokens})
    estimate = _estimate(gateway, body, max_tokens)
    quota = math.ceil(estimate * 1.5 / CENT)
    assert quota * CENT < 2 * estimate
    headers = {"Helicone-RateLimit-Policy": f"{quota};w={YEAR};u=cents"}
    first = _post(gateway, key, headers, model="gpt-4o", max_tokens=max_tokens, stream=stream)
    assert first.status_code == 200
    if stream:
        assert b"data: [DONE]" in first.content and b'"usage":{' not in first.content
    second = _post(gateway, key, headers, model="gpt-4o", max_tokens=max_tokens)
    assert second.status_code == 200, second.text


def test_a_request_above_the_whole_cents_quota(gateway: GatewayServer, key: str) -> None:
    response = _post(
        gateway, key, {"Helicone-RateLimit-Policy": f"1;w={YEAR};u=cents"},
        model="gpt-4o", max_tokens=16_000,
    )
    assert response.status_code == 429
    assert "above the whole quota" in response.json()["error"]["message"]
    assert response.headers["retry-after"] == str(YEAR)


def test_unpriced_models_are_not_held_back_by_cents(gateway: GatewayServer, key: str) -> None:
    headers = {"Helicone-RateLimit-Policy": f"1;w={YEAR};u=cents"}
    for _ in range(3):
        response = _post(gateway, key, headers, model="no-such-model/openai")
        assert response.status_code == 200
        assert response.headers["helicone-ratelimit-remaining"] == "1"


def test_an_error_answer_gives_its_reservation_back(
    gateway: GatewayServer, key: str, upstream: OpenAIEmulator
) -> None:
    """A provider error costs nothing: with room for one reservation only, the request after
    a 500 still passes."""
    max_tokens = 10_000
    body = orjson.dumps({"model": "gpt-4o", "messages": MESSAGES, "max_tokens": max_tokens})
    quota = math.ceil(_estimate(gateway, body, max_tokens) * 1.5 / CENT)
    headers = {"Helicone-RateLimit-Policy": f"{quota};w={YEAR};u=cents"}
    upstream.inject(Fault(status=500))
    failed = _post(gateway, key, headers, model="gpt-4o", max_tokens=max_tokens)
    assert failed.status_code == 500
    # Had the 500 kept its reservation, this one would not fit (two reservations > quota).
    assert _post(gateway, key, headers, model="gpt-4o", max_tokens=max_tokens).status_code == 200
