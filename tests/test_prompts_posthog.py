"""PostHog's ``llm_prompts`` API over the prompt store (part B, E.4, E.10), through a real
gateway: the invariants and errors verbatim, the PostHog SDK's ``Prompts.get()`` unchanged,
and one prompt seen through both facades and used by the gateway's ``prompt_id``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
import pytest
from posthog.ai.prompts import Prompts

from gateway.scopes import expand
from gateway.settings import Settings
from gateway.store import ControlStore
from tests.emulator import OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings

KEY = "sk-emulator"
BASE = "/api/environments/@current/llm_prompts"


def scoped_key(settings: Settings, org: str, scopes: set[str]) -> str:
    async def run() -> str:
        store = ControlStore.from_settings(settings)
        try:
            await store.migrate()
            key, _ = await store.create_key(org, None, expand(scopes))  # aliases too
            return key
        finally:
            await store.close()

    return asyncio.run(run())


@dataclass
class PostHog:
    server: GatewayServer
    upstream: OpenAIEmulator
    key: str

    def call(
        self, method: str, path: str, body: Any = None, key: str | None = None, **params: Any
    ) -> httpx.Response:
        return httpx.request(
            method,
            self.server.url + path,
            json=body,
            params=params or None,
            timeout=30,
            headers={"authorization": f"Bearer {key or self.key}"},
        )

    def ok(self, method: str, path: str, body: Any = None, status: int = 200, **params: Any) -> Any:
        response = self.call(method, path, body, **params)
        assert response.status_code == status, response.text
        return response.json() if response.content else None

    def create(self, name: str, prompt: Any) -> dict[str, Any]:
        created: dict[str, Any] = self.ok("POST", f"{BASE}/", {"name": name, "prompt": prompt}, 201)
        return created


@pytest.fixture(scope="module")
def posthog(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostHog]:
    directory = tmp_path_factory.mktemp("posthog-prompts")
    with OpenAIEmulator(api_key=KEY) as upstream:
        settings = make_settings(
            directory,
            provider_api_keys={"openai": KEY},
            provider_base_urls={"openai": upstream.base_url},
        )
        key = create_key(settings, org="acme")
        with GatewayServer(settings) as server:
            yield PostHog(server, upstream, key)


def test_create_rules_and_errors(posthog: PostHog) -> None:
    created = posthog.create("greeting", "Hello {{name}}")
    assert list(created) == [
        "id",
        "name",
        "prompt",
        "version",
        "created_by",
        "created_at",
        "updated_at",
        "deleted",
        "is_latest",
        "latest_version",
        "version_count",
        "first_version_created_at",
    ]
    assert created["version"] == 1 and created["is_latest"] and created["latest_version"] == 1
    assert created["version_count"] == 1 and created["deleted"] is False
    assert created["first_version_created_at"] == created["created_at"]
    assert created["created_at"].endswith("Z")
    cases: list[tuple[dict[str, Any], str, str, str]] = [
        (
            {"name": "bad name", "prompt": "x"},
            "name",
            "invalid_name",
            "Only letters, numbers, hyphens (-) and underscores (_) are allowed.",
        ),
        (
            {"name": "NEW", "prompt": "x"},
            "name",
            "invalid_name",
            "'new' is a reserved name and cannot be used.",
        ),
        (
            {"name": "greeting", "prompt": "x"},
            "name",
            "unique",
            "A prompt with this name already exists.",
        ),
        (
            {"name": "big", "prompt": "é" * 500_001},
            "prompt",
            "max_size",
            "Prompt payload must be 1000000 bytes or fewer.",
        ),
        ({"prompt": "x"}, "name", "required", "This field is required."),
        ({"name": "nobody"}, "prompt", "required", "This field is required."),
    ]
    for body, attr, code, detail in cases:
        response = posthog.call("POST", f"{BASE}/", body)
        assert response.status_code == 400, (body, response.text)
        assert response.json() == {
            "type": "validation_error",
            "code": code,
            "detail": detail,
            "attr": attr,
        }


def test_publish_fetch_and_stale_base(posthog: PostHog) -> None:
    posthog.create("story", "v1 text")
    published = posthog.ok("PATCH", f"{BASE}/name/story/", {"prompt": "v2 text", "base_version": 1})
    assert published["version"] == 2 and published["is_latest"] and "created_by" in published
    stale = posthog.call("PATCH", f"{BASE}/name/story/", {"prompt": "v3", "base_version": 1})
    assert stale.status_code == 409
    assert stale.json() == {
        "detail": "The prompt changed since you opened it. "
        "Reload the latest version and try again.",
        "current_version": 2,
    }
    latest = posthog.ok("GET", f"{BASE}/name/story/")
    assert latest["prompt"] == "v2 text" and "created_by" not in latest
    old = posthog.ok("GET", f"{BASE}/name/story/", version=1)
    assert old["prompt"] == "v1 text" and old["is_latest"] is False
    assert old["latest_version"] == 2 and old["version_count"] == 2
    assert old["updated_at"] == published["created_at"]  # superseded by version 2
    missing = posthog.call("GET", f"{BASE}/name/story/", version=9)
    assert missing.status_code == 404
    assert missing.json() == {"detail": "Prompt with name 'story' not found."}
    assert posthog.call("GET", f"{BASE}/name/nope/").status_code == 404
    for body, attr in (({"prompt": "x"}, "base_version"), ({"base_version": 2}, "prompt")):
        response = posthog.call("PATCH", f"{BASE}/name/story/", body)
        assert response.status_code == 400 and response.json()["attr"] == attr


def test_list_search_order_and_pages(posthog: PostHog) -> None:
    for name in ("list-a", "list-b", "list-c"):
        posthog.create(name, f"content of {name} LISTED")
    posthog.ok(
        "PATCH", f"{BASE}/name/list-a/", {"prompt": "content LISTED again", "base_version": 1}
    )
    page = posthog.ok("GET", f"{BASE}/", search="listed", limit=2, order_by="name")
    assert page["count"] == 3 and [r["name"] for r in page["results"]] == ["list-a", "list-b"]
    assert page["results"][0]["version"] == 2  # only the latest row of each name
    assert page["previous"] is None and "offset=2" in page["next"]
    rest = httpx.get(page["next"], headers={"authorization": f"Bearer {posthog.key}"}).json()
    assert [r["name"] for r in rest["results"]] == ["list-c"] and rest["next"] is None
    newest = posthog.ok("GET", f"{BASE}/", search="LIST-")
    assert [r["name"] for r in newest["results"]] == ["list-a", "list-c", "list-b"]


def test_resolve_pages_and_archive(posthog: PostHog) -> None:
    first = posthog.create("history", "v1")
    for version in range(1, 5):
        posthog.ok(
            "PATCH", f"{BASE}/name/history/", {"prompt": f"v{version + 1}", "base_version": version}
        )
    path = "/api/projects/@current/llm_prompts/resolve/name/history/"
    resolved = posthog.ok("GET", path, limit=2)
    assert resolved["prompt"]["version"] == 5 and "created_by" in resolved["prompt"]
    assert [v["version"] for v in resolved["versions"]] == [5, 4] and resolved["has_more"]
    assert resolved["versions"][0]["is_latest"] and not resolved["versions"][1]["is_latest"]
    assert [v["version"] for v in posthog.ok("GET", path, limit=2, offset=2)["versions"]] == [3, 2]
    tail = posthog.ok("GET", path, before_version=2)
    assert [v["version"] for v in tail["versions"]] == [1] and tail["has_more"] is False
    pinned = posthog.ok("GET", path, version_id=first["id"], version=1)
    assert pinned["prompt"]["version"] == 1 and pinned["versions"][0]["version"] == 5
    assert posthog.call("GET", path, version_id=first["id"], version=2).status_code == 404
    both = posthog.call("GET", path, offset=1, before_version=3)
    assert both.status_code == 400
    assert both.json()["detail"] == "Use either offset or before_version, not both."
    assert posthog.call("GET", path, limit=101).status_code == 400
    archived = posthog.call("POST", f"{BASE}/name/history/archive/")
    assert archived.status_code == 204 and archived.content == b""
    assert posthog.call("GET", f"{BASE}/name/history/").status_code == 404
    assert posthog.call("POST", f"{BASE}/name/history/archive/").status_code == 404
    again = posthog.create("history", "fresh")
    assert again["version"] == 1 and again["version_count"] == 1
    assert posthog.call("GET", path, version_id=first["id"]).status_code == 404


def test_environment_and_scopes(posthog: PostHog) -> None:
    settings = posthog.server.settings
    reader = scoped_key(settings, "acme", {"llm_prompt:read"})
    denied = posthog.call("POST", f"{BASE}/", {"name": "x", "prompt": "y"}, key=reader)
    assert denied.status_code == 403
    assert denied.json() == {
        "type": "authentication_error",
        "code": "permission_denied",
        "detail": "API key missing required scope 'llm_prompt:write'",
        "attr": None,
    }
    listed = posthog.call("GET", f"{BASE}/", key=reader)
    assert listed.status_code == 200, listed.text
    outsider = create_key(settings, org="other")
    assert posthog.call("GET", f"{BASE}/name/greeting/", key=outsider).status_code == 404
    elsewhere = posthog.call("GET", "/api/environments/not-mine/llm_prompts/")
    assert elsewhere.status_code == 403
    assert elsewhere.json()["detail"] == "You don't have access to the project."
    assert posthog.call("DELETE", f"{BASE}/name/greeting/").status_code == 405


def test_sdk_and_both_facades_and_the_gateway(posthog: PostHog) -> None:
    posthog.create("sdk-prompt", "You are {{persona}} for {{hc:company:string}}.")
    prompts = Prompts(
        personal_api_key=posthog.key, project_api_key="phc_project", host=posthog.server.url
    )
    result = prompts.get("sdk-prompt", with_metadata=True)
    assert result.prompt == "You are {{persona}} for {{hc:company:string}}."
    assert result.version == 1 and result.name == "sdk-prompt"
    assert prompts.compile(result.prompt, {"persona": "a pirate"}).startswith("You are a pirate")
    labelled = prompts.get(
        "sdk-prompt", with_metadata=True, label="production", cache_ttl_seconds=0
    )
    assert labelled.version == 1

    # The gateway uses it by name: a text prompt is a system message; PostHog-created
    # versions also fill {{name}} placeholders.
    use = {
        "model": "gpt-4o-mini",
        "prompt_id": "sdk-prompt",
        "inputs": {"persona": "a pirate", "company": "Acme"},
    }
    assert posthog.call("POST", "/v1/chat/completions", use).status_code == 200
    sent = orjson.loads(posthog.upstream.requests[-1].body)
    assert sent["messages"] == [{"role": "system", "content": "You are a pirate for Acme."}]
    # A publish here is live for the gateway at once (publish deploys to production).
    posthog.ok(
        "PATCH", f"{BASE}/name/sdk-prompt/", {"prompt": "Now {{persona}}.", "base_version": 1}
    )
    assert posthog.call("POST", "/v1/chat/completions", use).status_code == 200
    assert orjson.loads(posthog.upstream.requests[-1].body)["messages"][0]["content"] == (
        "Now a pirate."
    )
    # Helicone's API sees the same prompt: its versions are 0.0 and 0.1.
    helicone = posthog.call("POST", "/v1/prompt-2025/query", {"search": "sdk-prompt"}).json()
    (found,) = helicone["data"]
    versions = posthog.call(
        "POST", "/v1/prompt-2025/query/versions", {"promptId": found["id"]}
    ).json()["data"]
    assert [(v["major_version"], v["minor_version"]) for v in versions] == [(0, 1), (0, 0)]
    # And a prompt created through Helicone's API is read here by its slug.
    made = posthog.call(
        "POST",
        "/v1/prompt-2025",
        {
            "name": "From Helicone",
            "promptBody": {"messages": [{"role": "user", "content": "hi"}]},
        },
    ).json()["data"]
    seen = posthog.ok("GET", f"{BASE}/name/From-Helicone/")
    assert seen["id"] == made["versionId"] and seen["prompt"]["messages"][0]["content"] == "hi"
