"""The request-time prompt stage over a real store (SQLite and PostgreSQL): lenient
resolution, the cache and its invalidation, body kinds, mustache, the scope check."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.errors import GatewayError
from gateway.prompts.runtime import PromptRuntime, ResolvedCache
from gateway.store import ControlStore, KeyIdentity
from tests import test_store

database_url = test_store.database_url
store = test_store.store

CHAT = {"model": "m", "messages": [{"role": "system", "content": "v1 {{hc:x:string}}"}]}


def identity(org: str, scopes: frozenset[str] | None = None) -> KeyIdentity:
    return KeyIdentity(key_id="k", org_id=org, org_name="acme", scopes=scopes)


async def expand(runtime: PromptRuntime, who: KeyIdentity, **fields: Any) -> dict[str, Any]:
    body, _ = await runtime.expand(who, "/chat/completions", fields)
    return body


async def test_lenient_resolution_marks_the_fallback(store: ControlStore) -> None:
    org = await store.ensure_org("acme")
    prompt, version = await store.prompts.create(org, display_name="p", body=CHAT)
    strict, lenient = PromptRuntime(store.prompts), PromptRuntime(store.prompts, fallback=True)
    with pytest.raises(GatewayError) as error:
        await expand(strict, identity(org), prompt_id=prompt.short_id, environment="qa")
    assert error.value.status == 400 and error.value.message == "Invalid prompt environment"
    assert error.value.payload == {
        "error": {
            "message": "Invalid prompt environment",
            "type": "invalid_prompt",
            "param": None,
            "code": 400,
        }
    }
    body, use = await lenient.expand(
        identity(org),
        "/chat/completions",
        {"prompt_id": prompt.short_id, "environment": "qa", "inputs": {"x": 1}},
    )
    assert use.fallback and use.version_id == version.id and use.environment == "qa"
    assert use.inputs == '{"x":1}' and use.prompt_id == prompt.short_id
    assert body["messages"][0]["content"] == "v1 1"


async def test_cache_serves_until_a_write_invalidates(store: ControlStore) -> None:
    org = await store.ensure_org("acme")
    prompt, _ = await store.prompts.create(org, display_name="p", body=CHAT)
    runtime = PromptRuntime(store.prompts)
    assert (await expand(runtime, identity(org), prompt_id=prompt.id))["messages"][0][
        "content"
    ] == "v1 {{hc:x:string}}"
    v2 = {"messages": [{"role": "system", "content": "v2"}]}
    await store.prompts.publish(org, prompt.id, body=v2, deploy_to=["production"])
    # Written behind the runtime's back: the cached version is still served...
    stale = await expand(runtime, identity(org), prompt_id=prompt.id)
    assert stale["messages"][0]["content"] == "v1 {{hc:x:string}}"
    # ...until the write is announced (every API write does so).
    await runtime.changed(org)
    body = await expand(runtime, identity(org), prompt_id=prompt.id, model="m2")
    assert body["messages"][0]["content"] == "v2" and body["model"] == "m2"


def cache_entry() -> Any:
    """A stand-in for a resolved version (the cache never looks inside)."""
    return object()


def test_resolved_cache_ttl_and_organisations(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr("gateway.prompts.runtime.time.monotonic", lambda: now[0])
    cache = ResolvedCache(ttl=10)
    marker = cache_entry()
    cache.put("a", ("p", None, None), marker)
    cache.put("b", ("p", None, None), marker)
    assert cache.get("a", ("p", None, None)) is marker
    cache.invalidate("a")
    assert cache.get("a", ("p", None, None)) is None
    assert cache.get("b", ("p", None, None)) is marker
    now[0] = 111.0
    assert cache.get("b", ("p", None, None)) is None
    off = ResolvedCache(ttl=0)
    off.put("a", ("p", None, None), cache_entry())
    assert off.get("a", ("p", None, None)) is None


async def test_body_kinds_mustache_scope_and_model(store: ControlStore) -> None:
    org = await store.ensure_org("acme")
    runtime = PromptRuntime(store.prompts)
    text, _ = await store.prompts.create(
        org,
        display_name="t",
        slug="text",
        body="Hi {{name}} / {{hc:n:number}} {{other}}",
        template_syntax="mustache",
    )
    body = await expand(
        runtime, identity(org), model="m", prompt_id="text", inputs={"name": "Ann", "n": 2}
    )
    assert body["messages"] == [{"role": "system", "content": "Hi Ann / 2 {{other}}"}]
    await store.prompts.create(org, display_name="j", slug="json", body={"a": 1})
    with pytest.raises(GatewayError, match="not a chat template"):
        await expand(runtime, identity(org), model="m", prompt_id="json")
    with pytest.raises(GatewayError, match="Missing required field 'model'"):
        await expand(runtime, identity(org), prompt_id="text")
    denied = identity(org, frozenset({"gateway:invoke"}))
    with pytest.raises(GatewayError) as error:
        await expand(runtime, denied, model="m", prompt_id=text.id)
    assert error.value.status == 403 and error.value.code == "missing_scope"
    with pytest.raises(GatewayError, match="not supported on /embeddings"):
        await runtime.expand(identity(org), "/embeddings", {"prompt_id": "text"})
    for fields, message in (
        ({"prompt_id": 5}, "'prompt_id' must be a non-empty string"),
        ({"prompt_id": "text", "environment": 1}, "'environment' must be a string"),
        ({"prompt_id": "text", "messages": "hi"}, "'messages' must be an array"),
        ({"prompt_id": "text", "tools": {}}, "'tools' must be an array"),
    ):
        with pytest.raises(GatewayError) as error:
            await expand(runtime, identity(org), model="m", **fields)
        assert error.value.message == message
