"""``POST /dashboard/api/playground`` (gateway/dashboard/playground.py) over real HTTP, against
a real gateway with the OpenAI emulator upstream: a prompt version runs through the data plane
as the session's key (never a key from the page), under the session's CSRF token, within the
key's scopes; bad bodies are 400s in words; a revoked key's session cannot run anything.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing

import httpx
import pytest

from tests.emulator import OpenAIEmulator
from tests.harness import GatewayServer, make_settings

UPSTREAM = "sk-upstream-playground"
BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Tell me about {{hc:city:string}}"}],
}


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=UPSTREAM) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator
) -> Iterator[GatewayServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("gw"),
        provider_api_keys={"openai": UPSTREAM},
        provider_base_urls={"openai": upstream.base_url},
        key_cache_ttl_seconds=0,
    )
    with GatewayServer(settings) as gateway:
        yield gateway


def _signed_in(server: GatewayServer, key: str) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=server.url, timeout=30)
    answer = client.post("/dashboard/api/session", json={"key": key})
    assert answer.status_code == 200, answer.text
    return client, answer.json()["data"]["csrf_token"]


def _prompt(server: GatewayServer, key: str) -> tuple[str, str]:
    made = httpx.post(
        f"{server.url}/v1/prompt-2025", json={"name": "city", "promptBody": BODY},
        headers={"authorization": f"Bearer {key}"},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    data = made.json()["data"]
    return data["id"], data["versionId"]


def test_a_version_runs_as_the_sessions_key(
    server: GatewayServer, upstream: OpenAIEmulator
) -> None:
    key = server.new_key("play")
    prompt_id, version_id = _prompt(server, key)
    client, csrf = _signed_in(server, key)
    with closing(client):
        run = {"prompt_id": prompt_id, "version_id": version_id, "inputs": {"city": "Lyon"}}
        answer = client.post(
            "/dashboard/api/playground", json=run, headers={"x-gateway-csrf": csrf}
        )
        assert answer.status_code == 200, answer.text
        data = answer.json()["data"]
        assert data["status"] == 200
        assert "Tell me about Lyon" in data["body"]["choices"][0]["message"]["content"]
        sent = upstream.requests[-1]
        assert sent.headers["authorization"] == f"Bearer {UPSTREAM}"  # the gateway's upstream key

        # Without the CSRF token: refused before anything runs.
        count = len(upstream.requests)
        refused = client.post("/dashboard/api/playground", json=run)
        assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
        # A prompt error comes back as the gateway's answer, in its words.
        missing = client.post(
            "/dashboard/api/playground", json={"prompt_id": "nope", "inputs": {}},
            headers={"x-gateway-csrf": csrf},
        )  # fmt: skip
        assert missing.status_code == 200
        failed = missing.json()["data"]
        assert failed["status"] == 400 and "nope" in failed["body"]["error"]["message"]
        assert len(upstream.requests) == count


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "prompt_id"),
        ({"prompt_id": "x", "inputs": []}, "inputs"),
        ({"prompt_id": "x", "version_id": 3}, "version_id"),
        ({"prompt_id": "x", "messages": "hi"}, "messages"),
    ],
)
def test_bad_bodies_are_400s(server: GatewayServer, body: dict[str, object], words: str) -> None:
    client, csrf = _signed_in(server, server.new_key("play-bad"))
    with closing(client):
        answer = client.post("/dashboard/api/playground", json=body,
                             headers={"x-gateway-csrf": csrf})  # fmt: skip
        assert answer.status_code == 400 and words in answer.json()["error"]


def test_a_body_over_the_limit_is_a_413(server: GatewayServer) -> None:
    client, csrf = _signed_in(server, server.new_key("play-big"))
    with closing(client):
        big = {"prompt_id": "x", "inputs": {"text": "a" * 300_000}}
        answer = client.post("/dashboard/api/playground", json=big,
                             headers={"x-gateway-csrf": csrf})  # fmt: skip
        assert answer.status_code == 413 and "larger" in answer.json()["error"]


def test_no_session_no_scope_no_run(server: GatewayServer) -> None:
    assert httpx.post(f"{server.url}/dashboard/api/playground", json={}).status_code == 401
    # A key in the headers is not a session: the playground is the page's, not an API.
    key = server.new_key("play-scoped")
    with_key = httpx.post(f"{server.url}/dashboard/api/playground", json={},
                          headers={"authorization": f"Bearer {key}"})  # fmt: skip
    assert with_key.status_code == 401
    reader = server.new_key("play-scoped", frozenset({"trace:read", "prompt:read"}))
    client, csrf = _signed_in(server, reader)
    with closing(client):
        answer = client.post("/dashboard/api/playground", json={"prompt_id": "x"},
                             headers={"x-gateway-csrf": csrf})  # fmt: skip
        assert answer.status_code == 403 and "gateway:invoke" in answer.json()["error"]


def test_a_revoked_keys_session_cannot_run(server: GatewayServer) -> None:
    key = server.new_key("play-revoked")
    prompt_id, version_id = _prompt(server, key)
    client, csrf = _signed_in(server, key)
    server.call(server.runtime.store.revoke_key(key))
    with closing(client):
        answer = client.post(
            "/dashboard/api/playground", json={"prompt_id": prompt_id, "version_id": version_id},
            headers={"x-gateway-csrf": csrf},
        )  # fmt: skip
        assert answer.status_code == 401
