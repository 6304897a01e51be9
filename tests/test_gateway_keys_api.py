"""The gateway-keys HTTP API and the org's own credit balance (gateway/api/gateway_keys.py),
over real HTTP against a real gateway and store, with an OpenAI emulator upstream:

* a full-access key lists, creates (the key shown once) and revokes its org's keys; the new
  key works on the data plane with its scopes, and stops working once revoked;
* a scoped key cannot manage keys (403), ``gateway:admin`` cannot be granted over HTTP, bad
  input is a 400 naming the field, another org's key is a 404;
* ``/v1/credits/balance`` shows the caller's own account (null when unmetered).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.emulator import OpenAIEmulator
from tests.harness import GatewayServer, make_settings

UPSTREAM = "sk-upstream"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


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


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_full_access_key_creates_lists_and_revokes_keys(server: GatewayServer) -> None:
    admin = server.new_key("keys-org")
    with httpx.Client(base_url=server.url, headers=_auth(admin)) as client:
        created = client.post(
            "/v1/gateway-keys", json={"name": "ci", "scopes": ["gateway:invoke", "trace:read"]}
        )
        assert created.status_code == 201, created.text
        body = created.json()
        new_key, record = body["key"], body["data"]
        assert record["name"] == "ci" and record["active"] is True
        assert record["scopes"] == ["gateway:invoke", "trace:read"]

        listed = client.get("/v1/gateway-keys").json()["data"]
        assert [k["id"] for k in listed][-1] == record["id"]
        assert all("key" not in k and "hash" not in k for k in listed)
        assert new_key not in client.get("/v1/gateway-keys").text

        # The new key works on the data plane (answered by the emulator)…
        answer = httpx.post(f"{server.url}/v1/chat/completions", json=CHAT, headers=_auth(new_key))
        assert answer.status_code == 200, answer.text
        assert answer.json()["choices"][0]["message"]["content"]
        # …within its scopes: it may not manage keys.
        refused = httpx.get(f"{server.url}/v1/gateway-keys", headers=_auth(new_key))
        assert refused.status_code == 403
        assert "full-access" in refused.json()["error"]["message"]

        revoked = client.delete(f"/v1/gateway-keys/{record['id']}")
        assert revoked.status_code == 200, revoked.text
        assert revoked.json()["data"]["active"] is False
        assert revoked.json()["data"]["revoked_at"]
        after = httpx.post(f"{server.url}/v1/chat/completions", json=CHAT, headers=_auth(new_key))
        assert after.status_code == 401


def test_a_key_created_without_scopes_has_full_access(server: GatewayServer) -> None:
    admin = server.new_key("keys-org-2")
    created = httpx.post(f"{server.url}/v1/gateway-keys", json={}, headers=_auth(admin))
    assert created.status_code == 201
    assert created.json()["data"]["scopes"] is None
    again = httpx.get(f"{server.url}/v1/gateway-keys", headers=_auth(created.json()["key"]))
    assert again.status_code == 200 and len(again.json()["data"]) == 2


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"scopes": ["gateway:admin"]}, "scopes", "operator"),
        ({"scopes": ["nope:read"]}, "scopes", "unknown scope"),
        ({"scopes": []}, "scopes", "empty"),
        ({"scopes": "trace:read"}, "scopes", "list"),
        ({"name": 3}, "name", "string"),
        ({"name": "x" * 201}, "name", "longer"),
    ],
)
def test_bad_creation_requests_are_400s_naming_the_field(
    server: GatewayServer, body: dict[str, object], param: str, words: str
) -> None:
    admin = server.new_key("keys-org-bad")
    answer = httpx.post(f"{server.url}/v1/gateway-keys", json=body, headers=_auth(admin))
    assert answer.status_code == 400, answer.text
    error = answer.json()["error"]
    assert error["param"] == param and words in error["message"]
    not_json = httpx.post(f"{server.url}/v1/gateway-keys", content=b"{", headers=_auth(admin))
    assert not_json.status_code == 400


def test_keys_are_per_organisation(server: GatewayServer) -> None:
    mine, theirs = server.new_key("org-a"), server.new_key("org-b")
    their_id = httpx.get(f"{server.url}/v1/gateway-keys", headers=_auth(theirs)).json()["data"][0]
    listed = httpx.get(f"{server.url}/v1/gateway-keys", headers=_auth(mine)).json()["data"]
    assert their_id["id"] not in {k["id"] for k in listed}
    answer = httpx.delete(f"{server.url}/v1/gateway-keys/{their_id['id']}", headers=_auth(mine))
    assert answer.status_code == 404
    prefix = httpx.delete(f"{server.url}/v1/gateway-keys/{their_id['prefix']}", headers=_auth(mine))
    assert prefix.status_code == 404
    still = httpx.post(f"{server.url}/v1/chat/completions", json=CHAT, headers=_auth(theirs))
    assert still.status_code == 200
    assert httpx.get(f"{server.url}/v1/gateway-keys").status_code == 401


def test_the_balance_is_the_callers_own(server: GatewayServer) -> None:
    scoped = server.new_key("org-credits", frozenset({"trace:read"}))
    unmetered = httpx.get(f"{server.url}/v1/credits/balance", headers=_auth(scoped))
    assert unmetered.status_code == 200
    assert unmetered.json()["data"] == {"account": None, "budgets": []}
    org_id = server.call(server.runtime.store.list_keys("org-credits"))[0].org_id
    server.call(server.runtime.store.credits.add(org_id, 12_500_000_000))
    metered = httpx.get(f"{server.url}/v1/credits/balance", headers=_auth(scoped)).json()["data"]
    assert metered["account"]["balance_usd"] == "12.50"
    assert metered["account"]["org_name"] == "org-credits"
