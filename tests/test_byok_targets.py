"""A BYOK attempt on an OpenAI-format provider takes the remembered path too: the key cache
decrypts an entry's rows once, the router remembers the organisation's plan and each key's
native target with that cache entry (``ProviderKeyCache.cached``, ``Router.byok_target``).

What it sends must be exactly what ``Exchange.prepare`` works out per request, and nothing
worked out from a key may outlive it: a rotated key, a changed base URL or a revoked key is
used (or not) from the next request on once the entry is invalidated or its TTL is over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway.byok import ProviderKeyCache
from gateway.routing import Router, UpstreamCall
from gateway.runtime import Runtime
from gateway.store import Deployment, ProviderKeyRecord
from gateway.store._credits import UNMETERED
from providers.plan import Attempt
from providers.registry import Registry
from providers.spec import PROVIDERS
from tests.emulator import OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings
from tests.test_native_targets import attempt_call

ORG = "org-1"
NOW = datetime(2026, 12, 3, tzinfo=UTC)


def _record(provider: str, key: str, base_url: str | None, key_id: str = "k1") -> ProviderKeyRecord:
    return ProviderKeyRecord(
        id=key_id, org_id=ORG, provider=provider, name="own", deployment_id="own-endpoint",
        api_key=key, api_key_masked="sk-...", deployment=Deployment(base_url=base_url),
        state="ok", error_message=None, is_default=True, created_at=NOW, updated_at=NOW,
        last_used_at=None, last_validated_at=None,
    )  # fmt: skip


class Source:
    """A key store whose rows are the records themselves; counts decryptions."""

    def __init__(self, records: list[ProviderKeyRecord]) -> None:
        self.records = records
        self.unsealed = 0
        self.fail = False

    async def usable(self, org_id: str) -> list[Any]:
        return list(self.records)

    def unseal(self, sealed: Any) -> ProviderKeyRecord:
        if self.fail:
            raise ValueError("cannot decrypt")
        self.unsealed += 1
        record: ProviderKeyRecord = sealed
        return ProviderKeyRecord(**{f: getattr(record, f) for f in record.__slots__})


def test_cached_entry_is_decrypted_once_and_its_memo_goes_with_it() -> None:
    now = [0.0]
    source = Source([_record("openai", "sk-a", None)])
    cache = ProviderKeyCache(source, ttl_seconds=5, clock=lambda: now[0])
    assert cache.cached(ORG) is None
    asyncio.run(cache.list_provider_keys(ORG))
    source.unsealed = 0
    source.fail = True
    with pytest.raises(ValueError):  # a decryption error is raised, nothing kept
        cache.cached(ORG)
    source.fail = False
    entry = cache.cached(ORG)
    assert entry is not None and entry.unsealed is not None
    entry.memo["x"] = 1
    again = cache.cached(ORG)
    assert again is entry and again.unsealed is entry.unsealed and source.unsealed == 1
    assert cache.cached_keys(ORG) == list(entry.unsealed)
    cache.invalidate(ORG)
    assert cache.cached(ORG) is None
    asyncio.run(cache.list_provider_keys(ORG))
    fresh = cache.cached(ORG)
    assert fresh is not None and fresh is not entry and fresh.memo == {}
    now[0] = 5.0  # the TTL is over: no answer without a store query
    assert cache.cached(ORG) is None


def _runtime(tmp_path: Path, source: Source) -> Runtime:
    runtime = Runtime(
        make_settings(
            tmp_path, provider_api_keys={"openai": "sk-managed"},
            provider_base_urls={"openai": "http://127.0.0.1:9/managed"},
        )
    )  # fmt: skip
    runtime._router = Router(runtime, Registry.load())
    runtime.provider_keys = ProviderKeyCache(source, ttl_seconds=60)
    asyncio.run(runtime.provider_keys.list_provider_keys(ORG))
    return runtime


def _call(
    runtime: Runtime, record: ProviderKeyRecord, endpoint: str, *, per_request: bool
) -> UpstreamCall | str | None:
    headers = {"authorization": "Bearer sk-helicone-abc", "content-type": "application/json"}
    attempt = Attempt(
        record.provider, "other-model", "byok", record.id, record, 0, record.provider, "m"
    )
    return attempt_call(runtime, endpoint, headers, "m", attempt, None, per_request=per_request)


SIMPLE = [
    s.name for s in PROVIDERS if s.auth not in ("sigv4", "oauth") and s.name in PROVIDERS.routed()
]


@pytest.mark.parametrize("own_url", [None, "http://127.0.0.1:9/own/v1/"])
def test_byok_target_is_what_each_request_would_work_out(
    tmp_path: Path, own_url: str | None
) -> None:
    records = [_record(name, f"sk-{name}", own_url, key_id=name) for name in SIMPLE]
    runtime = _runtime(tmp_path, Source(records))
    entry = runtime.provider_keys.cached(ORG)
    assert entry is not None and entry.unsealed is not None
    native = 0
    for record in entry.unsealed:
        for endpoint in ("/chat/completions", "/responses", "/embeddings"):
            for _ in range(2):  # worked out, then remembered
                fast = _call(runtime, record, endpoint, per_request=False)
                slow = _call(runtime, record, endpoint, per_request=True)
                assert slow is not None
                if fast is None:  # left to prepare: refused, translated, or Azure
                    assert isinstance(slow, str) or slow.translation is not None or (
                        slow.spec.api_style == "azure"
                    )
                    continue
                assert isinstance(fast, UpstreamCall) and isinstance(slow, UpstreamCall)
                assert (fast.spec, str(fast.url), fast.recorded_url, fast.headers, fast.body,
                        fast.model) == (slow.spec, str(slow.url), slow.recorded_url,
                                        slow.headers, slow.body, slow.model)  # fmt: skip
                native += 1
    assert native >= 20
    openai_record = next(r for r in entry.unsealed if r.provider == "openai")
    call = _call(runtime, openai_record, "/chat/completions", per_request=False)
    assert isinstance(call, UpstreamCall)
    assert call.headers["authorization"] == "Bearer sk-openai"
    if own_url:
        assert str(call.url) == "http://127.0.0.1:9/own/v1/chat/completions"
        assert call.recorded_url == "{byok:own-endpoint}/chat/completions"
    else:
        assert str(call.url) == "http://127.0.0.1:9/managed/chat/completions"


def test_a_record_not_from_the_cached_entry_is_worked_out_per_request(tmp_path: Path) -> None:
    """A request planned before a rotation walks with the record it was planned with."""
    source = Source([_record("openai", "sk-new", "http://127.0.0.1:9/new")])
    runtime = _runtime(tmp_path, source)
    entry = runtime.provider_keys.cached(ORG)
    assert entry is not None and entry.unsealed is not None
    current = _call(runtime, entry.unsealed[0], "/chat/completions", per_request=False)
    assert isinstance(current, UpstreamCall) and current.headers["authorization"] == "Bearer sk-new"
    old = _record("openai", "sk-old", "http://127.0.0.1:9/old")  # the same key id, before
    call = _call(runtime, old, "/chat/completions", per_request=False)
    assert isinstance(call, UpstreamCall)
    assert (str(call.url), call.headers["authorization"]) == (
        "http://127.0.0.1:9/old/chat/completions", "Bearer sk-old",
    )  # fmt: skip
    runtime.provider_keys.invalidate(ORG)  # no fresh entry: prepare works it out
    assert _call(runtime, old, "/chat/completions", per_request=False) is None


def test_the_plan_is_remembered_with_the_entry(tmp_path: Path) -> None:
    source = Source([_record("openai", "sk-a", "http://127.0.0.1:9/a")])
    runtime = _runtime(tmp_path, source)
    router = runtime.router

    def plan() -> list[Attempt]:
        return asyncio.run(
            router.plan_request("gpt-4o-mini", "/chat/completions", None, ORG, UNMETERED)
        )

    first, second = plan(), plan()
    assert first == second and first[0].key_source == "byok"
    assert isinstance(first[0].deployment, ProviderKeyRecord)
    assert first[0].deployment.api_key == "sk-a"
    entry = runtime.provider_keys.cached(ORG)
    assert entry is not None and ("gpt-4o-mini", "/chat/completions", False) in entry.memo
    source.records = [_record("openai", "sk-b", "http://127.0.0.1:9/b", key_id="k2")]
    runtime.provider_keys.invalidate(ORG)
    rotated = plan()
    assert isinstance(rotated[0].deployment, ProviderKeyRecord)
    assert (rotated[0].key_id, rotated[0].deployment.api_key) == ("k2", "sk-b")
    source.records = []
    runtime.provider_keys.invalidate(ORG)
    assert [a.key_source for a in plan()] == ["credits"]


# --- through the gateway: rotation, a changed base URL, revocation ----------------------------

MANAGED, OWN, ROTATED = "sk-managed", "sk-org-own", "sk-org-rotated"


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[OpenAIEmulator, OpenAIEmulator, OpenAIEmulator]]:
    with OpenAIEmulator(api_key=MANAGED) as managed, OpenAIEmulator(api_key=OWN) as own, \
            OpenAIEmulator(api_key=ROTATED) as rotated:  # fmt: skip
        yield managed, own, rotated


def test_rotation_base_url_change_and_revocation_apply_from_the_next_request(
    tmp_path: Path, servers: tuple[OpenAIEmulator, OpenAIEmulator, OpenAIEmulator]
) -> None:
    managed, own, rotated = servers
    settings = make_settings(
        tmp_path, provider_api_keys={"openai": MANAGED},
        provider_base_urls={"openai": managed.base_url},
    )  # fmt: skip
    key = create_key(settings)
    with GatewayServer(settings) as server, openai.OpenAI(
        base_url=server.url + "/v1", api_key=key, max_retries=0
    ) as client:
        store = server.runtime.store
        org_id = server.call(store.ensure_org("default"))
        record = server.call(
            store.provider_keys.create(
                org_id, provider="openai", name="own", api_key=OWN,
                deployment=Deployment(base_url=own.base_url),
            )
        )  # fmt: skip
        server.runtime.provider_keys.invalidate(org_id)

        emulators = (managed, own, rotated)

        def served_by() -> tuple[int, int, int, str]:
            """Requests each upstream got so far, and the key the one just served got."""
            before = [len(e.requests) for e in emulators]
            raw = client.chat.completions.with_raw_response.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "whose key"}]
            )
            assert raw.headers.get("helicone-fallback-index") in (None, "0")
            counts = [len(e.requests) for e in emulators]
            (served,) = [e for e, b, c in zip(emulators, before, counts, strict=True) if c > b]
            sent = {k.lower(): v for k, v in served.requests[-1].headers.items()}
            return (*counts, sent["authorization"])  # type: ignore[return-value]

        assert served_by() == (0, 1, 0, f"Bearer {OWN}")
        assert served_by() == (0, 2, 0, f"Bearer {OWN}")  # remembered
        server.call(
            store.provider_keys.update(
                org_id, record.id, api_key=ROTATED, deployment=Deployment(base_url=rotated.base_url)
            )
        )  # fmt: skip
        server.runtime.provider_keys.invalidate(org_id)  # what the provider-keys API does
        assert served_by() == (0, 2, 1, f"Bearer {ROTATED}")
        assert served_by() == (0, 2, 2, f"Bearer {ROTATED}")
        server.call(store.provider_keys.delete(org_id, record.id))
        server.runtime.provider_keys.invalidate(org_id)
        assert served_by() == (1, 2, 2, f"Bearer {MANAGED}")
