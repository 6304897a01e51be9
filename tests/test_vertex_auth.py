"""Vertex AI access tokens (gateway/vertex_auth.py) against a real token endpoint.

The emulator's ``/oauth2/token`` is Google's token endpoint on a real socket: it checks the
JWT assertion google-auth signs with the service account's fresh RSA key against the public
key it registered, and issues tokens with the lifetime a test sets. The clock the cache reads
is a test's own, so expiry is reached by moving it, never by waiting.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator

import pytest

from gateway.errors import GatewayError
from gateway.vertex_auth import REFRESH_MARGIN_SECONDS, VertexTokens, parse_service_account
from tests.emulator import OpenAIEmulator


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def emulator() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator() as server:
        yield server


@pytest.fixture()
def key(emulator: OpenAIEmulator) -> str:
    emulator.vertex.token_lifetime = 3600
    return emulator.vertex.new_service_account(emulator.origin, project="tokens-project")


def test_a_token_is_minted_once_and_served_from_the_cache(
    emulator: OpenAIEmulator, key: str
) -> None:
    tokens = VertexTokens(clock=Clock())
    before = emulator.vertex.mints

    async def many() -> list[str]:
        return [(await tokens.authorize(key)).token for _ in range(50)]

    got = asyncio.run(many())
    assert len(set(got)) == 1 and got[0].startswith("ya29.emu-")
    assert emulator.vertex.mints - before == tokens.mints == 1
    assert emulator.vertex.accepts(got[0])
    auth = asyncio.run(tokens.authorize(key))
    assert auth.project == "tokens-project"


def test_concurrent_requests_share_one_mint(emulator: OpenAIEmulator, key: str) -> None:
    tokens = VertexTokens(clock=Clock())

    async def together() -> set[str]:
        found = await asyncio.gather(*(tokens.authorize(key) for _ in range(20)))
        return {auth.token for auth in found}

    assert len(asyncio.run(together())) == 1
    assert tokens.mints == 1


def test_a_token_is_refreshed_before_it_expires(emulator: OpenAIEmulator, key: str) -> None:
    clock = Clock()
    tokens = VertexTokens(clock=clock)

    async def run() -> None:
        first = (await tokens.authorize(key)).token
        # Still more than the margin left: the cached token.
        clock.now += 3600 - REFRESH_MARGIN_SECONDS - 30
        assert (await tokens.authorize(key)).token == first
        # Within the margin of its expiry (not yet expired): a new one.
        clock.now += 60
        second = (await tokens.authorize(key)).token
        assert second != first and tokens.mints == 2
        assert (await tokens.authorize(key)).token == second

    asyncio.run(run())


def test_a_token_shorter_than_the_margin_is_used_once_then_replaced(
    emulator: OpenAIEmulator, key: str
) -> None:
    emulator.vertex.token_lifetime = 60  # less than the five minutes of margin
    tokens = VertexTokens(clock=Clock())

    async def run() -> list[str]:
        return [(await tokens.authorize(key)).token for _ in range(3)]

    got = asyncio.run(run())
    assert len(set(got)) == 3 and tokens.mints == 3


def test_an_access_token_is_sent_as_it_is() -> None:
    tokens = VertexTokens()
    auth = asyncio.run(tokens.authorize("  ya29.client-token "))
    assert (auth.token, auth.project, tokens.mints) == ("ya29.client-token", None, 0)


def test_a_key_the_token_endpoint_refuses_is_a_401_naming_the_reason(
    emulator: OpenAIEmulator,
) -> None:
    # A well-formed service account whose key the endpoint does not know.
    stranger = OpenAIEmulator().vertex.new_service_account(emulator.origin)
    with pytest.raises(GatewayError) as caught:
        asyncio.run(VertexTokens().authorize(stranger))
    error = caught.value
    assert error.status == 401 and error.code == "invalid_provider_credentials"
    assert "Invalid JWT Signature" in error.message
    assert "PRIVATE KEY" not in error.message


def test_an_unreachable_token_endpoint_is_a_502(emulator: OpenAIEmulator, key: str) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    info = json.loads(key)
    info["token_uri"] = f"http://127.0.0.1:{port}/oauth2/token"
    with pytest.raises(GatewayError) as caught:
        asyncio.run(VertexTokens().authorize(json.dumps(info)))
    assert caught.value.status == 502 and caught.value.code == "upstream_unreachable"
    assert "token endpoint could not be reached" in caught.value.message


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ('{"type": "authorized_user"}', "type 'authorized_user' is not supported"),
        ("{not json", "neither valid JSON nor an access token"),
        ('{"type": "service_account", "client_email": "a@b"}', "has no private_key, token_uri"),
    ],
)
def test_keys_that_are_not_service_accounts_are_401s(key: str, reason: str) -> None:
    with pytest.raises(GatewayError) as caught:
        parse_service_account(key)
    assert caught.value.status == 401 and reason in caught.value.message


def test_an_unreadable_private_key_is_a_401(emulator: OpenAIEmulator, key: str) -> None:
    info = json.loads(key)
    info["private_key"] = "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n"
    with pytest.raises(GatewayError) as caught:
        asyncio.run(VertexTokens().authorize(json.dumps(info)))
    assert caught.value.status == 401
    assert "service-account key cannot be used" in caught.value.message


def test_the_token_lookup_bench_runs_on_one_mint() -> None:
    from bench.vertex_token import measure

    result = measure(200)  # asserts itself that the lookups minted nothing more
    for case in ("managed_key", "stored_key"):
        figures = result[case]
        assert isinstance(figures, dict) and 0 < figures["p50_us"] <= figures["p99_us"]
