"""The upstream keep-alive pool: connections the provider closed are not reused, and a request
the provider may have received is never sent twice."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from gateway.upstream import UpstreamClient
from tests.emulator import Fault, OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings

KEY = "sk-emulator"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _reset(upstream: OpenAIEmulator) -> None:
    upstream.reset()


@pytest.fixture
async def client() -> AsyncIterator[UpstreamClient]:
    upstream_client = UpstreamClient(connect_timeout=5, read_timeout=5, max_connections=10)
    await upstream_client.start()
    try:
        yield upstream_client
    finally:
        await upstream_client.close()


async def _post(client: UpstreamClient, upstream: OpenAIEmulator) -> int:
    async with client.session.post(
        upstream.base_url + "/chat/completions",
        json=CHAT,
        headers={"authorization": f"Bearer {KEY}"},
    ) as response:
        await response.read()
        return response.status


async def test_a_pooled_connection_the_provider_closed_is_not_reused(
    client: UpstreamClient, upstream: OpenAIEmulator
) -> None:
    # The provider answers a 500 on a keep-alive connection and closes it 50 ms later without
    # saying so. The event loop is kept busy meanwhile (as a loaded gateway's is), so the FIN
    # is in the kernel but the transport still looks open when the next request takes it.
    upstream.inject(Fault(status=500, close="after_answer", close_delay=0.05))
    assert await _post(client, upstream) == 500
    time.sleep(0.3)  # noqa: ASYNC251 - blocking the loop on purpose (see above)
    assert await _post(client, upstream) == 200
    first, second = upstream.requests
    assert first.client_port != second.client_port  # the dead connection was not written to


async def test_a_live_pooled_connection_is_still_reused(
    client: UpstreamClient, upstream: OpenAIEmulator
) -> None:
    assert await _post(client, upstream) == 200
    time.sleep(0.05)  # noqa: ASYNC251 - same timing as above, with nothing closed
    assert await _post(client, upstream) == 200
    first, second = upstream.requests
    assert first.client_port == second.client_port


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator
) -> Iterator[tuple[GatewayServer, str]]:
    settings = make_settings(
        tmp_path_factory.mktemp("pool"),
        provider_api_keys={"openai": KEY},
        provider_base_urls={"openai": upstream.base_url},
    )
    key = create_key(settings)
    with GatewayServer(settings) as server:
        yield server, key


def test_a_request_the_provider_read_is_never_retried(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    headers = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as http:
        assert http.post("/v1/chat/completions", json=CHAT).status_code == 200  # pools one
        upstream.inject(Fault(close="before_answer"))
        dropped = http.post("/v1/chat/completions", json=CHAT)
    assert dropped.status_code == 502
    assert dropped.json()["error"]["code"] == "upstream_unreachable"
    warm, received = upstream.requests  # exactly once: the dropped request was not resent
    assert warm.client_port == received.client_port  # it went over the pooled connection
