"""Gateway-key scopes: the catalogue, storage (old keys keep full access), the check on every
route with each facade's own 403, and ``gateway keys create --scope``."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from alembic import command
from sqlalchemy import text

from gateway.keys import generate_key, hash_key, key_prefix
from gateway.scopes import allows, expand
from gateway.settings import Settings
from gateway.store import ControlStore, KeyRing
from gateway.store import generate_key as generate_encryption_key
from gateway.store._migrate import alembic_config
from tests.emulator import OpenAIEmulator
from tests.harness import GatewayServer, make_settings
from tests.test_cli import GATEWAY, assert_clean_failure

UPSTREAM_KEY = "sk-emulator-scopes-0000"
KEYS = "/api/environments/@current/llm_analytics/provider_keys/"


# --- the catalogue ------------------------------------------------------------------------


def test_aliases_expand_to_native_scopes() -> None:
    assert expand(["llm_provider_key:read"]) == {"provider_key:read"}
    assert expand(["llm_analytics:read"]) == {"trace:read", "review:read", "evaluation:read"}
    assert expand(["gateway:invoke", "provider_key:write"]) == {
        "gateway:invoke", "provider_key:write"}
    with pytest.raises(ValueError, match=r"unknown scope 'admin'.*gateway:invoke"):
        expand(["admin"])


@pytest.mark.parametrize(
    ("scopes", "required", "allowed"),
    [
        (None, "provider_key:write", True),  # no scopes: full access
        (frozenset(), "gateway:invoke", False),
        (frozenset({"provider_key:write"}), "provider_key:read", True),  # write implies read
        (frozenset({"provider_key:read"}), "provider_key:write", False),
        (frozenset({"trace:read"}), "gateway:invoke", False),
    ],
)
def test_allows(scopes: frozenset[str] | None, required: str, allowed: bool) -> None:
    assert allows(scopes, required) is allowed


# --- storage ------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    url: str = request.getfixturevalue("postgres_database_url")

    async def wipe() -> None:
        store = ControlStore(url)
        try:
            async with store.engine.begin() as connection:
                await connection.execute(text("DROP SCHEMA public CASCADE"))
                await connection.execute(text("CREATE SCHEMA public"))
        finally:
            await store.close()

    asyncio.run(wipe())
    return url


async def test_keys_made_before_scopes_keep_full_access(database_url: str) -> None:
    store = ControlStore(database_url, KeyRing.parse(generate_encryption_key()))
    try:
        async with store.engine.begin() as connection:
            await connection.run_sync(lambda c: command.upgrade(alembic_config(c), "0001"))
            plaintext = generate_key()
            await connection.execute(
                text("INSERT INTO organizations (id, name, created_at) "
                     "VALUES ('o1', 'old', CURRENT_TIMESTAMP)"))
            await connection.execute(
                text("INSERT INTO api_keys (id, org_id, name, key_hash, key_prefix, created_at) "
                     "VALUES ('k1', 'o1', NULL, :hash, :prefix, CURRENT_TIMESTAMP)"),
                {"hash": hash_key(plaintext), "prefix": key_prefix(plaintext)},
            )
        await store.migrate()
        assert await store.schema_revision() == "0005"
        old = await store.find_active_key(hash_key(plaintext))
        assert old is not None and old.scopes is None

        scoped, record = await store.create_key("old", scopes=expand(["llm_provider_key:read"]))
        assert record.scopes == {"provider_key:read"}
        identity = await store.find_active_key(hash_key(scoped))
        assert identity is not None and identity.scopes == {"provider_key:read"}
        empty, _ = await store.create_key("old", scopes=frozenset())
        identity = await store.find_active_key(hash_key(empty))
        assert identity is not None and identity.scopes == frozenset(), "no scope is not 'all'"
        listed = {r.id: r.scopes for r in await store.list_keys("old")}
        assert listed["k1"] is None and listed[record.id] == {"provider_key:read"}
    finally:
        await store.close()


# --- every route checks its scope ---------------------------------------------------------


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=UPSTREAM_KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def server(
    upstream: OpenAIEmulator, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("scopes"),
        provider_api_keys={"openai": UPSTREAM_KEY},
        provider_base_urls={"openai": upstream.base_url},
    )
    with GatewayServer(settings) as gateway:
        yield gateway


def _key(server: GatewayServer, *scopes: str, bare: bool = False) -> dict[str, str]:
    granted = None if bare else expand(scopes)
    key, _ = server.call(server.runtime.store.create_key("scoped", scopes=granted))
    return {"Authorization": f"Bearer {key}"}


def _chat(server: GatewayServer, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/chat/completions", headers=headers,
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    )


def _query(server: GatewayServer, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/request/query", headers=headers, json={"filter": "all"})


def _list_keys(server: GatewayServer, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(server.url + KEYS, headers=headers)


def _create_key(server: GatewayServer, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(server.url + KEYS, headers=headers,
                      json={"provider": "openai", "name": "n", "api_key": UPSTREAM_KEY})


def _posthog_403(response: httpx.Response, scope: str) -> None:
    assert response.status_code == 403, response.text
    assert response.json() == {
        "type": "authentication_error",
        "code": "permission_denied",
        "detail": f"API key missing required scope '{scope}'",
        "attr": None,
    }


def _helicone_403(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    assert response.json() == {"data": None, "error": "Forbidden"}


def _openai_403(response: httpx.Response) -> None:
    assert response.status_code == 403, response.text
    error: dict[str, Any] = response.json()["error"]
    assert error["type"] == "permission_error" and error["code"] == "missing_scope"
    assert "gateway:invoke" in error["message"]


def test_full_access_key_reaches_everything(server: GatewayServer) -> None:
    headers = _key(server, bare=True)
    assert _chat(server, headers).status_code == 200
    assert _list_keys(server, headers).status_code == 200
    assert _create_key(server, headers).status_code == 201
    logging_off = _query(server, headers)  # past the scope check: logging is off here
    assert logging_off.status_code == 503 and "logging is disabled" in logging_off.text


def test_provider_key_read_only(server: GatewayServer) -> None:
    headers = _key(server, "llm_provider_key:read")
    assert _list_keys(server, headers).status_code == 200
    _posthog_403(_create_key(server, headers), "llm_provider_key:write")
    _posthog_403(httpx.post(server.url + KEYS.replace("provider_keys/",
                                                      "provider_key_validations/"),
                            headers=headers, json={"api_key": UPSTREAM_KEY}),
                 "llm_provider_key:write")
    _openai_403(_chat(server, headers))
    _helicone_403(_query(server, headers))


def test_provider_key_write_implies_read_and_assign_needs_evaluations(
    server: GatewayServer,
) -> None:
    headers = _key(server, "provider_key:write")
    assert _list_keys(server, headers).status_code == 200
    created = _create_key(server, headers)
    assert created.status_code == 201, created.text
    assign = f"{server.url}{KEYS}{created.json()['id']}/assign/"
    _posthog_403(httpx.post(assign, headers=headers, json={"evaluation_ids": ["x"]}),
                 "llm_analytics:write")
    both = _key(server, "provider_key:write", "llm_analytics:write")  # same organisation
    assigned = httpx.post(assign, headers=both, json={"evaluation_ids": ["x"]})
    assert assigned.status_code == 200, assigned.text
    assert assigned.json() == {"configs_updated": 0, "evals_enabled": 0}


def test_invoke_only_key(server: GatewayServer, upstream: OpenAIEmulator) -> None:
    headers = _key(server, "gateway:invoke")
    assert _chat(server, headers).status_code == 200
    client = openai.OpenAI(base_url=f"{server.url}/v1", api_key=headers["Authorization"][7:])
    with client:
        assert client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        ).choices
    _posthog_403(_list_keys(server, headers), "llm_provider_key:read")
    _helicone_403(_query(server, headers))


def test_data_plane_routes_all_need_invoke(server: GatewayServer) -> None:
    headers = _key(server, "trace:read")
    _openai_403(_chat(server, headers))
    passthrough = httpx.post(
        f"{server.url}/v1/gateway/openai/v1/chat/completions",
        headers={"Helicone-Auth": headers["Authorization"],
                 "Authorization": f"Bearer {UPSTREAM_KEY}"},
        json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
    )
    _openai_403(passthrough)
    # trace:read is what the request-log API needs.
    query = _query(server, headers)
    assert query.status_code == 503 and "logging is disabled" in query.text
    _posthog_403(_list_keys(server, headers), "llm_provider_key:read")


# --- the CLI ------------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GATEWAY_") and name != "DATABASE_URL"
    }
    clean["GATEWAY_DATA_DIR"] = str(tmp_path / "data")
    return clean


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([GATEWAY, *args], env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_cli_create_with_scopes(env: dict[str, str]) -> None:
    created = _run(env, "keys", "create", "--org", "acme", "--scope", "llm_provider_key:read",
                   "--scope", "gateway:invoke")
    assert created.returncode == 0, created.stderr
    *info, key = created.stdout.splitlines()
    assert "Scopes: gateway:invoke, provider_key:read." in info

    bare = _run(env, "keys", "create")
    assert "Scopes: all (full access)." in bare.stdout

    listing = _run(env, "keys", "list").stdout.splitlines()
    assert listing[0].split()[4] == "SCOPES"
    rows = {row.split()[1]: row.split()[4] for row in listing[1:]}
    assert rows[key[:16]] == "gateway:invoke,provider_key:read"
    assert rows[bare.stdout.splitlines()[-1][:16]] == "all"

    async def identity() -> frozenset[str] | None:
        store = ControlStore.from_settings(Settings(data_dir=Path(env["GATEWAY_DATA_DIR"])))
        try:
            found = await store.find_active_key(hash_key(key))
            assert found is not None
            return found.scopes
        finally:
            await store.close()

    assert asyncio.run(identity()) == {"gateway:invoke", "provider_key:read"}

    unknown = _run(env, "keys", "create", "--scope", "everything")
    assert_clean_failure(unknown)
    assert "unknown scope 'everything'" in unknown.stderr
