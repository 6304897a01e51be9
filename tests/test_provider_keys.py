"""The provider-key store and its PostHog-compatible API, over HTTP against a real gateway on
SQLite and PostgreSQL, with keys checked live against the upstream emulator."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from gateway.byok import ProviderKeyCache
from gateway.runtime import Runtime
from gateway.settings import Settings
from gateway.store import (
    MISSING_KEY_MESSAGE,
    ControlStore,
    DecryptionError,
    Deployment,
    EncryptionKeyError,
    KeyRing,
    ProviderKeyRecord,
    SealedProviderKey,
    generate_key,
    load_keyring,
    mask_key,
)
from tests.emulator import Fault, OpenAIEmulator
from tests.harness import GatewayServer, make_settings
from tests.test_cli import GATEWAY, assert_clean_failure

UPSTREAM_KEY = "sk-ant-emulator-0123456789-wxyz"
"""The emulator's key: passes both OpenAI's (``sk-``) and Anthropic's (``sk-ant-``) format."""
MASKED = "sk-a...wxyz"
WRONG_KEY = "sk-ant-not-the-key-0000"
BASE = "/api/environments/@current/llm_analytics"
KEYS = f"{BASE}/provider_keys/"


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=UPSTREAM_KEY) as emulator:
        yield emulator


def _settings(data_dir: Path, upstream: OpenAIEmulator, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "provider_base_urls": {
            "openai": upstream.base_url,
            "groq": upstream.base_url,
            "anthropic": upstream.anthropic_base_url,
        },
        # An Azure endpoint must be https on an Azure domain, or allow-listed by the operator.
        "allowed_target_hosts": [upstream.origin],
    }
    values.update(overrides)
    return make_settings(data_dir, **values)


async def _wipe_postgres(url: str) -> None:
    store = ControlStore(url)
    try:
        async with store.engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
    finally:
        await store.close()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def server(
    request: pytest.FixtureRequest,
    upstream: OpenAIEmulator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[GatewayServer]:
    overrides: dict[str, Any] = {}
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_database_url")
        asyncio.run(_wipe_postgres(url))
        overrides = {"database_url": url, "encryption_key": generate_key()}
    settings = _settings(tmp_path_factory.mktemp("keystore"), upstream, **overrides)
    with GatewayServer(settings) as gateway:
        yield gateway


@dataclass
class Caller:
    server: GatewayServer
    org_name: str
    org_id: str
    client: httpx.Client

    def keys(self) -> list[ProviderKeyRecord]:
        """What the router sees (through the cache, decrypted)."""
        cache = self.server.runtime.provider_keys
        return self.server.call(cache.list_provider_keys(self.org_id))


def _caller(server: GatewayServer, scopes: frozenset[str] | None = None) -> Caller:
    name = f"org-{uuid.uuid4().hex[:8]}"
    key, record = server.call(server.runtime.store.create_key(name, scopes=scopes))
    client = httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=30
    )
    return Caller(server, name, record.org_id, client)


@pytest.fixture
def caller(server: GatewayServer, upstream: OpenAIEmulator) -> Iterator[Caller]:
    upstream.reset()
    who = _caller(server)
    with who.client:
        yield who


def _create(caller: Caller, **body: Any) -> httpx.Response:
    return caller.client.post(KEYS, json={"provider": "openai", "name": "main",
                                          "api_key": UPSTREAM_KEY, **body})


def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def _validation_error(response: httpx.Response, attr: str | None, detail: str,
                      code: str = "invalid_input") -> None:
    assert response.status_code == 400, response.text
    assert response.json() == {"type": "validation_error", "code": code, "detail": detail,
                               "attr": attr}


# --- CRUD ---------------------------------------------------------------------------------


def test_create_retrieve_list_update_delete(caller: Caller, upstream: OpenAIEmulator) -> None:
    created = _ok(_create(caller, name="Production"), 201)
    assert "api_key" not in created
    assert UPSTREAM_KEY not in str(created)
    assert created["api_key_masked"] == MASKED
    assert created["provider"] == "openai"
    assert created["state"] == "ok" and created["error_message"] is None
    assert created["azure_endpoint_display"] is None and created["api_version_display"] is None
    assert created["created_by"] is None and created["last_used_at"] is None
    assert created["created_at"].endswith("Z")
    assert created["deployment_id"] == "production"
    # The live check was one authenticated model list.
    checks = [r for r in upstream.requests if r.path == "/v1/models"]
    assert len(checks) == 1 and checks[0].headers["authorization"] == f"Bearer {UPSTREAM_KEY}"

    key_id = created["id"]
    assert _ok(caller.client.get(f"{KEYS}{key_id}/")) == created
    listing = _ok(caller.client.get(KEYS))
    assert listing == {"count": 1, "next": None, "previous": None, "results": [created]}

    renamed = _ok(caller.client.patch(f"{KEYS}{key_id}/", json={"name": "Renamed"}))
    assert renamed["name"] == "Renamed" and renamed["state"] == "ok"
    assert renamed["deployment_id"] == "production", "the deployment id is stable"

    # A new key is checked first; a refused one changes nothing.
    refused = caller.client.patch(f"{KEYS}{key_id}/", json={"api_key": WRONG_KEY})
    _validation_error(refused, "api_key", "Invalid API key")
    assert caller.keys()[0].api_key == UPSTREAM_KEY

    assert caller.client.delete(f"{KEYS}{key_id}/").status_code == 204
    missing = caller.client.get(f"{KEYS}{key_id}/")
    assert missing.status_code == 404
    assert missing.json() == {"type": "invalid_request", "code": "not_found",
                              "detail": "Not found.", "attr": None}
    assert _ok(caller.client.get(KEYS))["count"] == 0
    assert caller.keys() == []


def test_create_refusals(caller: Caller) -> None:
    _validation_error(_create(caller, api_key=WRONG_KEY), "api_key", "Invalid API key")
    _validation_error(
        _create(caller, api_key="not-a-key"), "api_key",
        "Invalid OpenAI API key format. Key should start with 'sk-' or 'sk-proj-'.",
    )
    _validation_error(
        _create(caller, provider="anthropic", api_key="sk-proj-123"), "api_key",
        "Invalid Anthropic API key format. Key should start with 'sk-ant-'.",
    )
    _validation_error(
        caller.client.post(KEYS, json={"name": "x", "api_key": UPSTREAM_KEY}),
        "provider", "This field is required.", code="required",
    )
    _validation_error(_create(caller, provider="minimax"), "provider",
                      '"minimax" is not a valid choice.', code="invalid_choice")
    _validation_error(
        caller.client.post(KEYS, json={"provider": "openai", "name": "x"}),
        "api_key", "API key is required when creating a new provider key.",
    )
    _validation_error(_create(caller, name="x" * 256), "name",
                      "Ensure this field has no more than 255 characters.", code="max_length")
    _validation_error(_create(caller, deployment_id="Has Space"), "deployment_id",
                      "Use 1-64 characters: lower-case letters, digits, '.', '_' and '-', "
                      "starting with a letter or digit.")
    parse = caller.client.post(KEYS, content=b"{not json", headers={"content-type":
                                                                     "application/json"})
    assert parse.status_code == 400 and parse.json()["code"] == "parse_error"
    not_object = caller.client.post(KEYS, json=[1])
    _validation_error(not_object, "non_field_errors",
                      "Invalid data. Expected a dictionary, but got list.", code="invalid")
    assert _ok(caller.client.get(KEYS))["count"] == 0, "nothing was stored"


def test_update_rules(caller: Caller) -> None:
    key_id = _ok(_create(caller), 201)["id"]
    _validation_error(caller.client.patch(f"{KEYS}{key_id}/", json={"provider": "anthropic"}),
                      "provider", "Provider cannot be changed.")
    _validation_error(caller.client.patch(f"{KEYS}{key_id}/", json={"deployment_id": "other"}),
                      "deployment_id", "Deployment id cannot be changed.")
    # PUT is accepted as an update too.
    assert _ok(caller.client.put(f"{KEYS}{key_id}/", json={"name": "put"}))["name"] == "put"
    not_allowed = caller.client.put(KEYS, json={})
    assert not_allowed.status_code == 405
    assert not_allowed.json() == {"type": "invalid_request", "code": "method_not_allowed",
                                  "detail": 'Method "PUT" not allowed.', "attr": None}


def test_mask_rule() -> None:
    assert mask_key("sk-proj-abcdefgh9xYz") == "sk-p...9xYz"
    assert mask_key("123456789") == "1234...6789"
    assert mask_key("12345678") == "****"
    assert mask_key("") == "****"


def test_pagination(caller: Caller) -> None:
    ids = [_ok(_create(caller, name=f"k{i}"), 201)["id"] for i in range(3)]
    first = _ok(caller.client.get(KEYS, params={"limit": 2}))
    assert first["count"] == 3
    assert [r["id"] for r in first["results"]] == ids[::-1][:2], "newest first"
    assert first["previous"] is None
    following = httpx.URL(first["next"])
    assert following.is_absolute_url and following.path == KEYS
    assert dict(following.params) == {"limit": "2", "offset": "2"}
    second = _ok(caller.client.get(first["next"]))
    assert [r["id"] for r in second["results"]] == [ids[0]]
    assert second["next"] is None
    assert dict(httpx.URL(second["previous"]).params) == {"limit": "2"}
    # DRF's leniency: a bad limit is the default, a huge one is capped.
    assert _ok(caller.client.get(KEYS, params={"limit": "x"}))["count"] == 3
    assert len(_ok(caller.client.get(KEYS, params={"limit": 10**6}))["results"]) == 3


def test_paths_environment_and_auth(caller: Caller, server: GatewayServer) -> None:
    # The org id, @current, /api/projects/ and no trailing slash all reach the same keys.
    by_id = f"/api/environments/{caller.org_id}/llm_analytics/provider_keys"
    created = _ok(caller.client.post(by_id, json={"provider": "openai", "name": "a",
                                                 "api_key": UPSTREAM_KEY}), 201)
    projects = f"/api/projects/@current/llm_analytics/provider_keys/{created['id']}"
    assert _ok(caller.client.get(projects))["id"] == created["id"]

    other = caller.client.get(f"/api/environments/{uuid.uuid4()}/llm_analytics/provider_keys/")
    assert other.status_code == 403
    assert other.json() == {"type": "authentication_error", "code": "permission_denied",
                            "detail": "You don't have access to the project.", "attr": None}

    anonymous = httpx.get(server.url + KEYS)
    assert anonymous.status_code == 401
    assert anonymous.json() == {"type": "authentication_error", "code": "not_authenticated",
                                "detail": "Authentication credentials were not provided.",
                                "attr": None}
    wrong = httpx.get(server.url + KEYS, headers={"Authorization": "Bearer sk-helicone-nope"})
    assert wrong.status_code == 401 and wrong.json()["code"] == "authentication_failed"

    # Another organisation's key sees nothing of this one.
    stranger = _caller(server)
    with stranger.client:
        assert _ok(stranger.client.get(KEYS))["count"] == 0
        assert stranger.client.get(f"{KEYS}{created['id']}/").status_code == 404
        assert stranger.client.delete(f"{KEYS}{created['id']}/").status_code == 404
    assert _ok(caller.client.get(KEYS))["count"] == 1


# --- validation ---------------------------------------------------------------------------


def test_anthropic_keys_are_checked_with_its_model_list(
    caller: Caller, upstream: OpenAIEmulator
) -> None:
    created = _ok(_create(caller, provider="anthropic"), 201)
    assert created["state"] == "ok"
    check = next(r for r in upstream.requests if r.path == "/v1/models")
    assert check.headers["x-api-key"] == UPSTREAM_KEY
    assert check.headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in check.headers
    _validation_error(_create(caller, provider="anthropic", api_key="sk-ant-wrong-000000"),
                      "api_key", "Invalid API key")


def test_validate_action_persists_the_state(caller: Caller, upstream: OpenAIEmulator) -> None:
    key_id = _ok(_create(caller), 201)["id"]
    path = f"{KEYS}{key_id}/validate/"
    for fault, state, message in [
        (Fault(status=401, path="/v1/models"), "invalid", "Invalid API key"),
        (Fault(status=429, path="/v1/models"), "error", "Rate limited, please try again later"),
        (Fault(status=500, path="/v1/models"), "error", "Validation failed, please try again"),
        # aiohttp retries a GET once on a dropped keep-alive connection: drop both.
        (Fault(close="before_answer", path="/v1/models", times=2), "error",
         "Could not connect to OpenAI"),
        (None, "ok", None),
    ]:
        if fault is not None:
            upstream.inject(fault)
        answer = _ok(caller.client.post(path))
        assert (answer["state"], answer["error_message"]) == (state, message)
        assert _ok(caller.client.get(f"{KEYS}{key_id}/"))["state"] == state
        assert answer["last_validated_at"] is not None
    upstream.inject(Fault(status=403, path="/v1/models"))
    _ok(caller.client.post(path))
    assert caller.keys() == [], "an invalid key is never offered to the router"


def test_validations_without_storing(caller: Caller, upstream: OpenAIEmulator) -> None:
    path = f"{BASE}/provider_key_validations/"
    assert _ok(caller.client.post(path, json={"api_key": UPSTREAM_KEY})) == {
        "state": "ok", "error_message": None, "error_field": None}
    assert _ok(caller.client.post(path, json={"api_key": WRONG_KEY,
                                              "provider": "anthropic"})) == {
        "state": "invalid", "error_message": "Invalid API key", "error_field": None}
    assert _ok(caller.client.post(path, json={"api_key": "nope"})) == {
        "state": "invalid",
        "error_message": "Invalid key format (should start with 'sk-' or 'sk-proj-')",
        "error_field": None}
    azure = _ok(caller.client.post(path, json={"api_key": "k" * 20, "provider": "azure_openai",
                                               "azure_endpoint": "https://x.example.com"}))
    assert azure["state"] == "invalid" and azure["error_field"] == "azure_endpoint"
    missing = caller.client.post(path, json={"provider": "openai"})
    assert missing.status_code == 400 and missing.json() == {"detail": "API key is required."}
    bad = caller.client.post(path, json={"api_key": "x", "provider": "nope"})
    assert bad.status_code == 400
    assert bad.json()["detail"].startswith("Invalid provider. Must be one of: openai, ")
    assert "azure_openai" in bad.json()["detail"]
    assert _ok(caller.client.get(KEYS))["count"] == 0, "nothing persisted"


def test_azure_deployment(caller: Caller, upstream: OpenAIEmulator) -> None:
    endpoint = upstream.origin
    _validation_error(_create(caller, provider="azure_openai", api_key="azure-key-123456"),
                      "azure_endpoint", "Azure endpoint is required for Azure OpenAI.")
    _validation_error(
        _create(caller, provider="azure_openai", azure_endpoint="https://evil.example.com"),
        "azure_endpoint",
        "Azure endpoint must be an https:// URL on an Azure domain (e.g. *.openai.azure.com).",
    )
    # A key the emulator's Azure side refuses: a 401, blamed on the key.
    _validation_error(_create(caller, provider="azure_openai", azure_endpoint=endpoint,
                              api_key="azure-key-wrong-123456"),
                      "api_key", "Invalid API key")
    upstream.inject(Fault(status=404, path="/openai/deployments"))
    _validation_error(_create(caller, provider="azure_openai", azure_endpoint=endpoint),
                      "azure_endpoint", "Azure endpoint not found — check the URL")

    upstream.reset()
    upstream.inject(Fault(status=200, body=b'{"data": []}', path="/openai/deployments"))
    created = _ok(_create(caller, provider="azure_openai", name="EU West",
                          azure_endpoint=endpoint, azure_deployment="gpt4o-eu"), 201)
    assert created["provider"] == "azure_openai"
    assert created["state"] == "ok"
    assert created["azure_endpoint_display"] == endpoint
    assert created["api_version_display"] == "2024-10-21", "the default version is persisted"
    assert created["azure_deployment"] == "gpt4o-eu"
    check = upstream.requests[-1]
    assert check.path == "/openai/deployments"
    assert check.query == "api-version=2023-03-15-preview"
    assert check.headers["api-key"] == UPSTREAM_KEY

    # A new endpoint without a new key resets the state: it has to be validated again.
    moved = _ok(caller.client.patch(f"{KEYS}{created['id']}/",
                                    json={"azure_endpoint": endpoint + "/", "api_version": "v2"}))
    assert moved["state"] == "unknown" and moved["api_version_display"] == "v2"
    (record,) = caller.keys()
    assert record.provider == "azure" and record.deployment_id == "eu-west"
    assert record.deployment == Deployment(azure_endpoint=endpoint + "/", api_version="v2",
                                           azure_deployment="gpt4o-eu")


def test_deployment_fields_and_ids(caller: Caller, upstream: OpenAIEmulator) -> None:
    created = _ok(_create(caller, provider="groq", name="Groq via proxy",
                          base_url=upstream.base_url, deployment_id="eu-proxy"), 201)
    assert created["deployment_id"] == "eu-proxy" and created["base_url"] == upstream.base_url
    _validation_error(_create(caller, provider="groq", deployment_id="eu-proxy"),
                      "deployment_id", "A groq key with deployment id 'eu-proxy' already exists.",
                      code="unique")
    # The same id under another provider is another model string: allowed.
    assert _ok(_create(caller, deployment_id="eu-proxy"), 201)["deployment_id"] == "eu-proxy"
    refused = _create(caller, provider="groq", base_url="http://10.1.2.3:8000/v1")
    assert refused.status_code == 400 and refused.json()["attr"] == "base_url"

    bedrock = _ok(_create(caller, provider="bedrock", name="b", api_key="AKIA-secret-pair",
                          aws_region="eu-west-1"), 201)
    assert bedrock["state"] == "unknown", "no live check for SigV4 credentials"
    assert bedrock["aws_region"] == "eu-west-1"
    _validation_error(_create(caller, provider="bedrock", api_key="AKIA-secret-pair"),
                      "aws_region", "AWS region is required for Bedrock.")
    # Vertex: the multi-regions `us` and `eu` are locations like `global` and the regions.
    for location in ("eu", "us", "global", "us-east5"):
        vertex = _ok(_create(caller, provider="vertex", name=f"v-{location}", api_key="ya29.t",
                             vertex_project="my-project", vertex_location=location), 201)
        assert vertex["vertex_location"] == location
    _validation_error(
        _create(caller, provider="vertex", api_key="ya29.t", vertex_project="my-project",
                vertex_location="asia"),
        "vertex_location",
        "Vertex location must be 'global', a multi-region ('us', 'eu') or a region such as "
        "us-east5.",
    )

    groq = [k for k in caller.keys() if k.provider == "groq"]
    assert [k.deployment for k in groq] == [Deployment(base_url=upstream.base_url)]


def test_actions(caller: Caller) -> None:
    first = _ok(_create(caller, name="a"), 201)["id"]
    second = _ok(_create(caller, name="b"), 201)["id"]
    anthropic = _ok(_create(caller, provider="anthropic", name="c"), 201)["id"]

    dependents = _ok(caller.client.get(f"{KEYS}{first}/dependent_configs/"))
    assert dependents == {"evaluations": [],
                          "alternative_keys": [{"id": second, "name": "b",
                                                "provider": "openai"}]}

    assign = f"{KEYS}{first}/assign/"
    empty = caller.client.post(assign, json={"evaluation_ids": []})
    assert empty.status_code == 400 and empty.json() == {"detail": "evaluation_ids is required"}
    assert _ok(caller.client.post(assign, json={"evaluation_ids": [str(uuid.uuid4())],
                                                "enable": True})) == {
        "configs_updated": 0, "evals_enabled": 0}

    trial = f"{KEYS}trial_evaluations/"
    assert caller.client.get(trial).json() == {"detail": "provider query parameter is required"}
    assert caller.client.get(trial, params={"provider": "x"}).json() == {
        "detail": "Unsupported provider: x"}
    assert _ok(caller.client.get(trial, params={"provider": "openai"})) == {"evaluations": []}
    assert _ok(caller.client.get(f"{KEYS}{first}/trial_evaluations/")) == {"evaluations": []}

    delete = f"{KEYS}{first}/"
    missing = caller.client.delete(delete, params={"replacement_key_id": str(uuid.uuid4())})
    assert missing.status_code == 400 and missing.json() == {"detail": "Replacement key not found"}
    other = caller.client.delete(delete, params={"replacement_key_id": anthropic})
    assert other.json() == {"detail": "Replacement key must be from the same provider"}
    assert caller.client.delete(delete, params={"replacement_key_id": second}).status_code == 204


# --- the router's view --------------------------------------------------------------------


def test_router_view_order_and_defaults(caller: Caller) -> None:
    older = _ok(_create(caller, name="older"), 201)["id"]
    active = _ok(_create(caller, name="active", set_as_active=True), 201)
    assert active["is_default"] is True
    newest = _ok(_create(caller, name="newest"), 201)["id"]
    claude = _ok(_create(caller, provider="anthropic", name="claude"), 201)["id"]

    openai = caller.server.call(
        caller.server.runtime.provider_keys.list_provider_keys(caller.org_id, "openai")
    )
    assert [k.id for k in openai] == [active["id"], newest, older]
    assert all(k.api_key == UPSTREAM_KEY for k in openai)
    assert UPSTREAM_KEY not in repr(openai[0]), "the secret stays out of repr"
    assert [k.id for k in caller.keys() if k.provider == "anthropic"] == [claude]
    # the router's synchronous path gives the same keys, decrypted, in the same order
    cache = caller.server.runtime.provider_keys
    every = caller.server.call(cache.list_provider_keys(caller.org_id))
    assert cache.cached_keys(caller.org_id) == every
    assert [k.id for k in every if k.provider == "openai"] == [k.id for k in openai]

    caller.server.call(caller.server.runtime.store.provider_keys.mark_used([claude]))
    assert _ok(caller.client.get(f"{KEYS}{claude}/"))["last_used_at"] is not None
    assert _ok(caller.client.get(f"{KEYS}{older}/"))["last_used_at"] is None

    # Making another key the default moves the flag (one default per provider).
    _ok(caller.client.patch(f"{KEYS}{older}/", json={"is_default": True}))
    flags = {k.id: k.is_default for k in caller.keys() if k.provider == "openai"}
    assert flags == {older: True, active["id"]: False, newest: False}


async def test_cache_ttl_single_flight_and_invalidation() -> None:
    now = [0.0]

    class Source:
        calls = 0

        async def usable(self, org_id: str) -> list[SealedProviderKey]:
            Source.calls += 1
            await asyncio.sleep(0.01)
            return []

        def unseal(self, sealed: SealedProviderKey) -> ProviderKeyRecord:
            raise AssertionError("nothing to unseal")

    cache = ProviderKeyCache(Source(), ttl_seconds=5, clock=lambda: now[0])
    await asyncio.gather(*(cache.list_provider_keys("org") for _ in range(10)))
    assert Source.calls == 1, "concurrent misses share one query"
    now[0] = 4.9
    await cache.list_provider_keys("org", "openai")
    assert Source.calls == 1
    now[0] = 5.1
    await cache.list_provider_keys("org")
    assert Source.calls == 2
    cache.invalidate("org")
    await cache.list_provider_keys("org")
    assert Source.calls == 3
    # the synchronous path (the router's usual request): only a fresh entry answers
    assert cache.cached_keys("org") == [] and cache.cached_keys("other") is None
    now[0] = 10.2
    assert cache.cached_keys("org") is None
    await cache.list_provider_keys("org")
    cache.invalidate("org")
    assert cache.cached_keys("org") is None
    assert Source.calls == 4


# --- encryption at rest -------------------------------------------------------------------


def test_plaintext_is_not_in_the_database_file(tmp_path: Path, upstream: OpenAIEmulator) -> None:
    settings = _settings(tmp_path / "data", upstream)
    with GatewayServer(settings) as gateway:
        who = _caller(gateway)
        with who.client:
            _ok(_create(who, name="secret"), 201)
            _ok(_create(who, provider="anthropic", name="secret-2"), 201)
        gateway.call(gateway.runtime.store.engine.dispose())
    key_file = tmp_path / "data" / "encryption.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600, "generated owner-only"
    stored = b"".join(p.read_bytes() for p in (tmp_path / "data").glob("gateway.db*"))
    assert b"sk-a...wxyz" in stored, "the mask is stored in clear (lists need no decryption)"
    assert UPSTREAM_KEY.encode() not in stored
    assert b"emulator-0123456789" not in stored


async def test_wrong_key_is_a_clear_error_and_rotation_works(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    old, new = generate_key(), generate_key()
    first = ControlStore(url, KeyRing.parse(old))
    await first.migrate()
    org = await first.ensure_org("acme")
    created = await first.provider_keys.create(org, provider="openai", name="k",
                                               api_key="sk-secret-value-123")
    await first.close()

    wrong = ControlStore(url, KeyRing.parse(new))
    try:
        with pytest.raises(DecryptionError, match="GATEWAY_ENCRYPTION_KEY") as caught:
            await wrong.provider_keys.get(org, created.id)
        assert KeyRing.parse(old).current_id in str(caught.value), "names the key it needs"
    finally:
        await wrong.close()

    rotated = ControlStore(url, KeyRing.parse(f"{new},{old}"))
    try:
        assert (await rotated.provider_keys.get(org, created.id)).api_key == "sk-secret-value-123"
        assert await rotated.provider_keys.reencrypt() == 1
        assert await rotated.provider_keys.reencrypt() == 0
    finally:
        await rotated.close()
    only_new = ControlStore(url, KeyRing.parse(new))
    try:
        assert (await only_new.provider_keys.get(org, created.id)).api_key == "sk-secret-value-123"
        # A ciphertext moved to another row does not open there.
        other = await only_new.provider_keys.create(org, provider="groq", name="g",
                                                    api_key="gsk-other")
        async with only_new.engine.begin() as connection:
            await connection.execute(
                text("UPDATE provider_keys SET config_ciphertext = "
                     "(SELECT config_ciphertext FROM provider_keys WHERE id = :a) WHERE id = :b"),
                {"a": created.id, "b": other.id},
            )
        with pytest.raises(DecryptionError, match="failed authentication"):
            await only_new.provider_keys.get(org, other.id)
    finally:
        await only_new.close()


def test_api_reports_a_wrong_encryption_key(tmp_path: Path, upstream: OpenAIEmulator) -> None:
    settings = _settings(tmp_path / "data", upstream)
    with GatewayServer(settings) as gateway:
        who = _caller(gateway)
        with who.client:
            _ok(_create(who), 201)
    (tmp_path / "data" / "encryption.key").write_text(generate_key())
    with GatewayServer(settings) as gateway:
        key, _ = gateway.call(gateway.runtime.store.create_key(who.org_name))
        answer = httpx.get(gateway.url + KEYS, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 500
        assert answer.json()["code"] == "encryption_key_mismatch"
        assert "GATEWAY_ENCRYPTION_KEY" in answer.json()["detail"]
        assert UPSTREAM_KEY not in answer.text
        with pytest.raises(DecryptionError):
            gateway.call(gateway.runtime.provider_keys.list_provider_keys(who.org_id))


async def test_server_database_without_a_key_refuses_to_start(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url="postgresql://nobody@127.0.0.1:1/none")
    assert load_keyring(settings) is None
    runtime = Runtime(settings)
    try:
        with pytest.raises(EncryptionKeyError) as caught:
            await runtime.start()
        assert str(caught.value) == MISSING_KEY_MESSAGE
        assert "GATEWAY_ENCRYPTION_KEY" in MISSING_KEY_MESSAGE
    finally:
        await runtime.store.close()
    with pytest.raises(EncryptionKeyError, match="key #2 is not 32 bytes"):
        load_keyring(make_settings(tmp_path, encryption_key=f"{generate_key()},short"))


def test_embedded_default_generates_one_key_and_keeps_it(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    first = load_keyring(settings)
    assert first is not None
    path = tmp_path / "data" / "encryption.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_keyring(settings)
    assert again is not None and again.current_id == first.current_id
    configured = make_settings(tmp_path / "data", encryption_key=generate_key())
    chosen = load_keyring(configured)
    assert chosen is not None and chosen.current_id != first.current_id, "the setting wins"
    assert not [p for p in os.listdir(tmp_path / "data") if p.startswith(".encryption")]


def _cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GATEWAY_") and name != "DATABASE_URL"
    }
    clean.update(GATEWAY_DATA_DIR=str(tmp_path / "data"), **env)
    return subprocess.run(
        [GATEWAY, *args], env=clean, capture_output=True, text=True, timeout=60, check=False
    )


def test_cli_refuses_to_serve_a_server_database_without_a_key(tmp_path: Path) -> None:
    result = _cli(tmp_path, "serve", DATABASE_URL="postgresql://nobody@127.0.0.1:1/none")
    assert_clean_failure(result)
    assert result.stderr.strip() == f"error: {MISSING_KEY_MESSAGE}"

    printed = _cli(tmp_path, "encryption-key")
    assert printed.returncode == 0, printed.stderr
    assert KeyRing.parse(printed.stdout.strip()).current_id
    assert _cli(tmp_path, "encryption-key").stdout != printed.stdout

    malformed = _cli(tmp_path, "provider-keys", "reencrypt", GATEWAY_ENCRYPTION_KEY="short")
    assert_clean_failure(malformed)
    assert "GATEWAY_ENCRYPTION_KEY: key #1 is not 32 bytes" in malformed.stderr
    done = _cli(tmp_path, "provider-keys", "reencrypt")
    assert done.returncode == 0, done.stderr
    assert "Re-encrypted 0 provider key(s)" in done.stdout


def test_openapi_documents_the_routes_once(server: GatewayServer) -> None:
    schema = _ok(httpx.get(server.url + "/openapi.json"))
    documented = {p: sorted(v) for p, v in schema["paths"].items() if "provider_key" in p}
    assert documented[f"{BASE.replace('@current', '{env}')}/provider_keys/{{key_id}}/"] == [
        "delete", "get", "patch", "put"]
    assert len(documented) == 8, "the /api/projects/ twins and slash-less forms are hidden"
