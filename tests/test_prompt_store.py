"""The prompt store on SQLite and PostgreSQL alike: numbering, deployments, archive, the
optimistic publish check and concurrent publishes."""

from __future__ import annotations

import asyncio

import pytest

from gateway.store import (
    ControlStore,
    PromptNotFound,
    PromptSlugExists,
    PromptVersionNotFound,
    StaleVersion,
    UnknownSelection,
    VersionDeployed,
    VersionLimit,
)
from tests import test_store

database_url = test_store.database_url
store = test_store.store

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "system", "content": "Hi {{hc:n:string}}"}]}


async def test_create_numbers_and_deploys_production(store: ControlStore) -> None:
    org = await store.ensure_org("acme")
    prompt, version = await store.prompts.create(
        org, display_name="Customer Support Bot", body=BODY, tags=["support"]
    )
    assert len(prompt.short_id) == 6 and prompt.short_id.isalnum()
    assert prompt.slug == "Customer-Support-Bot"
    assert (version.seq, version.major, version.minor) == (1, 0, 0)
    assert version.environments == ("production",) and version.model == "gpt-4o-mini"
    assert version.body_kind == "chat" and version.commit_message == "First version."
    assert prompt.production_version_id == version.id
    # Found by short id, uuid and slug; not from another organisation.
    for ref in (prompt.short_id, prompt.id, prompt.slug):
        found = await store.prompts.find(org, ref)
        assert found is not None and found.id == prompt.id
    other = await store.ensure_org("globex")
    assert await store.prompts.find(other, prompt.short_id) is None
    assert await store.prompts.version(other, version.id) is None
    # A second prompt of the same display name gets a distinct slug.
    second, _ = await store.prompts.create(org, display_name="Customer Support Bot", body=BODY)
    assert second.slug == f"Customer-Support-Bot-{second.short_id}"
    reserved, _ = await store.prompts.create(org, display_name="new", body="text body")
    assert reserved.slug == reserved.short_id
    assert await store.prompts.count(org) == 3 and await store.prompts.count(other) == 0


async def test_helicone_numbering(store: ControlStore) -> None:
    """0.0 -> 0.1 -> (major) 1.0 -> (minor from base 0.1) 0.2 (E.10)."""
    org = await store.ensure_org("acme")
    prompt, v00 = await store.prompts.create(org, display_name="p", body=BODY)
    publish = store.prompts.publish
    v01 = await publish(org, prompt.short_id, body=BODY, base_version_id=v00.id)
    v10 = await publish(org, prompt.short_id, body=BODY, bump="major", base_version_id=v01.id)
    v02 = await publish(org, prompt.short_id, body=BODY, base_version_id=v01.id)
    assert [(v.major, v.minor, v.seq) for v in (v01, v10, v02)] == [(0, 1, 2), (1, 0, 3), (0, 2, 4)]
    assert (await store.prompts.version_stats(org, prompt.id)) == (4, 1, 4)
    listed = await store.prompts.versions(org, prompt.id)
    assert [v.seq for v in listed] == [4, 3, 2, 1]
    assert [v.seq for v in await store.prompts.versions(org, prompt.id, major=0)] == [4, 2, 1]
    assert [v.seq for v in await store.prompts.versions(org, prompt.id, before_seq=3)] == [2, 1]
    with pytest.raises(PromptVersionNotFound):
        await publish(org, prompt.id, body=BODY, base_version_id="not-a-version")


async def test_environments_move_exclusively(store: ControlStore) -> None:
    org = await store.ensure_org("acme")
    prompt, v1 = await store.prompts.create(org, display_name="p", body=BODY)
    v2 = await store.prompts.publish(org, prompt.id, body=BODY, deploy_to=["staging"])
    await store.prompts.deploy(org, prompt.id, v1.id, "staging")
    staging = await store.prompts.deployed(org, prompt.id, "staging")
    assert staging is not None and staging.id == v1.id
    assert staging.environments == ("production", "staging")
    await store.prompts.deploy(org, prompt.id, v2.id, "production")
    found = await store.prompts.find(org, prompt.id)
    assert found is not None and found.production_version_id == v2.id
    assert await store.prompts.all_environments(org) == ["production", "staging"]
    with pytest.raises(VersionDeployed):
        await store.prompts.undeploy(org, prompt.id, v2.id, "production")
    with pytest.raises(VersionDeployed):
        await store.prompts.delete_version(org, prompt.id, v2.id)
    await store.prompts.delete_version(org, prompt.id, v2.id, force=True)
    found = await store.prompts.find(org, prompt.id)
    assert found is not None and found.production_version_id is None
    assert await store.prompts.version(org, v2.id) is None
    # seq is never reused after a delete.
    v3 = await store.prompts.publish(org, prompt.id, body=BODY)
    assert v3.seq == 3


async def test_stale_base_and_archive(store: ControlStore) -> None:
    org = await store.ensure_org("acme")
    prompt, _ = await store.prompts.create(org, display_name="p", slug="greeting", body="Hi")
    await store.prompts.publish(org, "greeting", body="Hello", expected_latest_seq=1)
    with pytest.raises(StaleVersion) as stale:
        await store.prompts.publish(org, "greeting", body="Hey", expected_latest_seq=1)
    assert stale.value.current_seq == 2
    with pytest.raises(PromptSlugExists):
        await store.prompts.create(org, display_name="x", slug="greeting", body="dup")
    await store.prompts.archive(org, "greeting")
    assert await store.prompts.find(org, "greeting") is None
    with pytest.raises(PromptNotFound):
        await store.prompts.publish(org, prompt.id, body="late")
    again, version = await store.prompts.create(org, display_name="x", slug="greeting", body="v1")
    assert again.id != prompt.id and version.seq == 1


async def test_concurrent_publishes_exactly_one_wins(store: ControlStore) -> None:
    org = await store.ensure_org("acme")
    prompt, _ = await store.prompts.create(org, display_name="p", slug="race", body="v1")

    async def publish(text: str) -> str:
        try:
            await store.prompts.publish(org, "race", body=text, expected_latest_seq=1)
        except StaleVersion as exc:
            return f"stale:{exc.current_seq}"
        return "won"

    results = await asyncio.gather(*(publish(f"v2-{i}") for i in range(4)))
    assert sorted(results) == ["stale:2", "stale:2", "stale:2", "won"]
    assert [v.seq for v in await store.prompts.versions(org, prompt.id)] == [2, 1]


async def test_tags_rename_and_listing(store: ControlStore) -> None:
    org = await store.ensure_org("acme")
    a, _ = await store.prompts.create(org, display_name="Alpha bot", body=BODY, tags=["x", "y"])
    b, _ = await store.prompts.create(org, display_name="Beta", body=BODY, tags=["z"])
    assert [p.id for p in await store.prompts.list_prompts(org)] == [b.id, a.id]
    assert [p.id for p in await store.prompts.list_prompts(org, search="ALPHA")] == [a.id]
    assert [p.id for p in await store.prompts.list_prompts(org, tags=["z", "q"])] == [b.id]
    assert [p.id for p in await store.prompts.list_prompts(org, offset=1, limit=1)] == [a.id]
    renamed = await store.prompts.update_prompt(org, a.id, display_name="Gamma", tags=["w"])
    assert renamed.display_name == "Gamma" and renamed.tags == ("w",)
    assert renamed.slug == a.slug  # immutable
    assert await store.prompts.all_tags(org) == ["w", "z"]
    with pytest.raises(PromptNotFound):
        await store.prompts.update_prompt(org, "nope", display_name="x")


async def test_version_limit_and_summaries(
    store: ControlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("gateway.store._prompts.MAX_PROMPT_VERSIONS", 3)
    org = await store.ensure_org("acme")
    prompt, first = await store.prompts.create(org, display_name="p", slug="capped", body="1")
    await store.prompts.publish(org, "capped", body="2", expected_latest_seq=1)
    await store.prompts.publish(org, "capped", body="3", expected_latest_seq=2)
    with pytest.raises(VersionLimit):
        await store.prompts.publish(org, "capped", body="4", expected_latest_seq=3)
    (summary,) = await store.prompts.summaries(org)
    assert summary.prompt.id == prompt.id and summary.latest.seq == 3
    assert summary.version_count == 3 and summary.first_created_at == first.created_at
    assert summary.latest.body == "3" and summary.latest.body_kind == "text"
    found = await store.prompts.find_slug(org, "capped")
    assert found is not None and await store.prompts.find_slug(org, prompt.short_id) is None


async def test_request_time_resolution(store: ControlStore) -> None:
    org = await store.ensure_org("acme")
    prompt, v1 = await store.prompts.create(org, display_name="p", body=BODY)
    v2 = await store.prompts.publish(org, prompt.id, body=BODY, deploy_to=["staging"])
    resolve = store.prompts.resolve
    assert (await resolve(org, prompt.short_id, None, None))[1].id == v1.id
    # The environment wins over version_id; version_id over production.
    assert (await resolve(org, prompt.slug, "staging", v1.id))[1].id == v2.id
    assert (await resolve(org, prompt.id, None, v2.id))[1].id == v2.id
    for environment, version_id, message in (
        ("qa", None, "Invalid prompt environment"),
        (None, "not-a-uuid", "Invalid prompt version"),
    ):
        with pytest.raises(UnknownSelection, match=message):
            await resolve(org, prompt.id, environment, version_id)
        _, version, fallback = await resolve(org, prompt.id, environment, version_id, lenient=True)
        assert version.id == v1.id and fallback
    other, w1 = await store.prompts.create(org, display_name="q", body=BODY)
    with pytest.raises(UnknownSelection, match="Invalid prompt version"):
        await resolve(org, prompt.id, None, w1.id)  # another prompt's version
    await store.prompts.undeploy(org, prompt.id, v1.id, "production", force=True)
    with pytest.raises(UnknownSelection, match="no valid version"):
        await resolve(org, prompt.id, None, None)
    with pytest.raises(PromptNotFound):
        await resolve(org, "missing", None, None)
    assert other.id != prompt.id
