"""End to end: managed prompts through a real gateway (issue 17).

Prompts are written through Helicone's REST API (``/v1/prompt-2025``) and used three ways:
the gateway's ``prompt_id`` + ``inputs`` through the OpenAI SDK (``extra_body``, streamed and
not; the OpenAI emulator records what was forwarded), Helicone's own SDK
(``helicone_helpers.HeliconePromptManager``, which fetches a version and its signed body link
and merges client-side), and the request log (prompt id, version and inputs on the record,
filterable, and served by ``…/{versionId}/inputs``). The last test runs two gateway processes
on one database and one Redis: a write through one is seen by the other's next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
from helicone_helpers import HeliconePromptManager

from gateway.api.prompts_helicone import open_link, seal_link
from gateway.settings import Settings
from gateway.store import ControlStore, KeyRing, generate_key
from tests.emulator import OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings, wait_for
from tests.redis_server import delete_prefix, new_prefix, shared_redis_url

KEY = "sk-emulator"
SAVED = {
    "model": "gpt-4o-mini",
    "temperature": 0.6,
    "max_tokens": 1000,
    "messages": [
        {
            "role": "system",
            "content": "You are a helpful customer support agent for {{hc:company:string}}.",
        },
        {"role": "user", "content": "Hello, I need help with my account."},
    ],
}


def scoped_key(settings: Settings, org: str, scopes: set[str]) -> str:
    async def run() -> str:
        store = ControlStore.from_settings(settings)
        try:
            await store.migrate()
            key, _ = await store.create_key(org, None, frozenset(scopes))
            return key
        finally:
            await store.close()

    return asyncio.run(run())


@dataclass
class Gateway:
    server: GatewayServer
    upstream: OpenAIEmulator
    key: str
    client: openai.OpenAI

    def call(
        self, method: str, path: str, body: Any = None, key: str | None = None, **params: str
    ) -> httpx.Response:
        return httpx.request(
            method,
            self.server.url + path,
            json=body,
            params=params or None,
            timeout=30,
            headers={"authorization": f"Bearer {key or self.key}"},
        )

    def data(self, method: str, path: str, body: Any = None, status: int = 200) -> Any:
        response = self.call(method, path, body)
        assert response.status_code == status, response.text
        envelope = response.json()
        assert envelope["error"] is None, envelope
        return envelope["data"]

    def create(self, body: dict[str, Any] = SAVED, name: str = "Support", **extra: Any) -> Any:
        return self.data(
            "POST", "/v1/prompt-2025", {"name": name, "promptBody": body, **extra}, 201
        )

    def forwarded(self) -> dict[str, Any]:
        """The body of the last request the emulator received."""
        body: dict[str, Any] = orjson.loads(self.upstream.requests[-1].body)
        return body


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    directory = tmp_path_factory.mktemp("prompts")
    with OpenAIEmulator(api_key=KEY) as upstream:
        settings = make_settings(
            directory,
            provider_api_keys={"openai": KEY},
            provider_base_urls={"openai": upstream.base_url},
            logging_enabled=True,
            log_flush_ms=20,
        )
        key = create_key(settings, org="acme")
        with GatewayServer(settings) as server:
            client = openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
            try:
                yield Gateway(server, upstream, key, client)
            finally:
                client.close()


def test_final_compiled_request_through_the_sdk(gateway: Gateway) -> None:
    created = gateway.create()
    assert len(created["id"]) == 6 and created["versionId"]
    completion = gateway.client.chat.completions.create(
        model="",  # the prompt's model is used when the request names none
        messages=[{"role": "user", "content": "Actually, I want to cancel my subscription."}],
        temperature=0.4,
        extra_body={"prompt_id": created["id"], "inputs": {"company": "Acme Corp"}},
    )
    assert completion.choices[0].message.content
    sent = gateway.forwarded()
    assert sent["model"] == "gpt-4o-mini" and sent["temperature"] == 0.4
    assert sent["max_tokens"] == 1000
    assert [m["content"] for m in sent["messages"]] == [
        "You are a helpful customer support agent for Acme Corp.",
        "Hello, I need help with my account.",
        "Actually, I want to cancel my subscription.",
    ]
    assert not {"prompt_id", "inputs", "environment", "version_id"} & sent.keys()


def test_streamed_with_environment_and_the_record(gateway: Gateway) -> None:
    created = gateway.create(name="Streamer")
    update = {
        "promptId": created["id"],
        "promptVersionId": created["versionId"],
        "newMajorVersion": False,
        "environment": "staging",
        "commitMessage": "staging copy",
        "promptBody": {
            **SAVED,
            "messages": [{"role": "system", "content": "Staging {{hc:n:number}}"}],
        },
    }
    staged = gateway.data("POST", "/v1/prompt-2025/update", update)["id"]
    stream = gateway.client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[],
        stream=True,
        extra_body={"prompt_id": created["id"], "environment": "staging", "inputs": {"n": "7"}},
        extra_headers={"Helicone-Property-Case": "streamed"},
    )
    raw = None
    for chunk in stream:
        raw = chunk.id
    assert raw is not None
    assert gateway.forwarded()["messages"] == [{"role": "system", "content": "Staging 7"}]

    def landed() -> list[dict[str, Any]] | None:
        response = gateway.call(
            "POST",
            "/v1/request/query",
            {
                "filter": {"request_response_rmt": {"prompt_version": {"equals": staged}}},
            },
        )
        rows = response.json()["data"]
        return rows or None

    (row,) = wait_for("the prompt's record", landed)
    assert row["prompt_id"] == created["id"] and row["prompt_version"] == staged
    request_id = row["request_id"]
    inputs = gateway.data(
        "GET", f"/v1/prompt-2025/id/{created['id']}/{staged}/inputs?requestId={request_id}"
    )
    assert inputs == {
        "request_id": request_id,
        "version_id": staged,
        "inputs": {"n": "7"},
        "environment": "staging",
    }
    missing = gateway.call(
        "GET",
        f"/v1/prompt-2025/id/{created['id']}/{created['versionId']}/inputs",
        requestId=request_id,
    )
    assert missing.status_code == 404
    assert missing.json() == {"data": None, "error": "Prompt inputs not found"}

    # Helicone's `values` filter: the inputs by name (a number input compares as its JSON).
    gateway.client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[],
        extra_body={"prompt_id": created["id"], "environment": "staging", "inputs": {"n": 8}},
    )
    version = {"request_response_rmt": {"prompt_version": {"equals": staged}}}

    def by_values(values: Any, sort: Any = None) -> list[str]:
        body: dict[str, Any] = {"filter": {"left": version, "operator": "and", "right": values}}
        if sort is not None:
            body["sort"] = sort
        response = gateway.call("POST", "/v1/request/query", body)
        assert response.status_code == 200, response.text
        return [r["request_id"] for r in response.json()["data"]]

    (second,) = wait_for(  # an empty list is "not yet": the record lands after the answer
        "the second record", lambda: by_values({"values": {"n": {"equals": "8"}}}) or None
    )
    assert by_values({"values": {"n": {"equals": "7"}}}) == [request_id]
    assert by_values({"values": {"n": {"contains": "7"}}}) == [request_id]
    assert by_values({"values": {"n": {"equals": "null"}}}) == []
    assert by_values({"values": {"N": {"equals": "7"}}}) == []  # names are case-sensitive
    assert by_values("all", {"values": {"n": "desc"}}) == [second, request_id]
    assert by_values("all", {"values": {"n": "asc"}}) == [request_id, second]


def test_legacy_header_fills_the_prompt_id(gateway: Gateway) -> None:
    raw = gateway.client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"Helicone-Prompt-Id": "legacy-story"},
    )
    request_id = raw.headers["helicone-id"]

    def landed() -> list[dict[str, Any]] | None:
        response = gateway.call(
            "POST",
            "/v1/request/query",
            {
                "filter": {"request_response_rmt": {"prompt_id": {"equals": "legacy-story"}}},
            },
        )
        return response.json()["data"] or None

    (row,) = wait_for("the legacy record", landed)
    assert row["request_id"] == request_id


def test_bad_inputs_and_unsupported_endpoints(gateway: Gateway) -> None:
    created = gateway.create(
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "{{hc:age:number}} {{hc:ok:boolean}}"}],
        },
        name="Typed",
    )
    count = len(gateway.upstream.requests)
    with pytest.raises(openai.BadRequestError) as error:
        gateway.client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[],
            extra_body={"prompt_id": created["id"], "inputs": {"age": "abc", "ok": "maybe"}},
        )
    assert error.value.body == {
        "message": "Variable 'age' is 'number' but got 'abc'\n"
        "Variable 'ok' is 'boolean' but got 'maybe'",
        "type": "invalid_prompt",
        "param": None,
        "code": 400,
    }
    gateway.client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[],
        extra_body={"prompt_id": created["id"], "inputs": {"age": "25", "ok": "yes"}},
    )
    assert gateway.forwarded()["messages"][0]["content"] == "25 yes"
    assert len(gateway.upstream.requests) == count + 1  # the bad one never left
    cases: list[tuple[str, dict[str, Any], str]] = [
        (
            "/v1/responses",
            {"model": "gpt-4o-mini", "input": "hi", "prompt_id": created["id"]},
            "Helicone Prompts is not supported for Responses API format on the AI Gateway",
        ),
        (
            "/v1/chat/completions",
            {"model": "gpt-4o-mini", "messages": [], "inputs": {}},
            "No prompt ID provided",
        ),
        (
            "/v1/chat/completions",
            {"prompt_id": "nope42"},
            "Invalid prompt ID - no prompt 'nope42' found",
        ),
        (
            "/v1/chat/completions",
            {"prompt_id": created["id"], "environment": "qa"},
            "Invalid prompt environment",
        ),
        (
            "/v1/chat/completions",
            {"prompt_id": created["id"], "version_id": created["id"]},
            "Invalid prompt version",
        ),
        (
            "/v1/chat/completions",
            {"prompt_id": created["id"], "inputs": [1]},
            "'inputs' must be an object of variable names to values",
        ),
    ]
    for path, body, message in cases:
        response = gateway.call("POST", path, body)
        assert response.status_code == 400, (path, body, response.text)
        assert response.json()["error"]["message"] == message
        assert response.json()["error"]["type"] == "invalid_prompt"


def test_writes_are_seen_by_the_next_request(gateway: Gateway) -> None:
    created = gateway.create({"messages": [{"role": "user", "content": "v0"}]}, name="Cache")
    body = {"model": "gpt-4o-mini", "prompt_id": created["id"]}
    assert gateway.call("POST", "/v1/chat/completions", body).status_code == 200
    assert gateway.forwarded()["messages"][0]["content"] == "v0"
    new = gateway.data(
        "POST",
        "/v1/prompt-2025/update",
        {
            "promptId": created["id"],
            "promptVersionId": created["versionId"],
            "commitMessage": "v1",
            "promptBody": {"messages": [{"role": "user", "content": "v1"}]},
        },
    )["id"]
    # Publishing without an environment does not move production (upstream's rule)...
    assert gateway.call("POST", "/v1/chat/completions", body).status_code == 200
    assert gateway.forwarded()["messages"][0]["content"] == "v0"
    gateway.data(
        "POST",
        "/v1/prompt-2025/update/environment",
        {"promptId": created["id"], "promptVersionId": new, "environment": "production"},
    )
    # ...deploying does, at once, although v0 was cached.
    assert gateway.call("POST", "/v1/chat/completions", body).status_code == 200
    assert gateway.forwarded()["messages"][0]["content"] == "v1"
    pinned = {**body, "version_id": created["versionId"]}
    assert gateway.call("POST", "/v1/chat/completions", pinned).status_code == 200
    assert gateway.forwarded()["messages"][0]["content"] == "v0"


def test_helicone_sdk_pulls_and_merges(gateway: Gateway) -> None:
    partial = gateway.create(
        {
            "messages": [
                {
                    "role": "system",
                    "content": "Hello {{hc:customer_name:string}}, "
                    "welcome to {{hc:company:string}}!",
                }
            ]
        },
        name="greeting",
    )
    main = gateway.create(
        {
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "user", "content": f"{{{{hcp:{partial['id']}:0}}}} How can you help me?"}
            ],
        },
        name="Main",
    )
    inputs = {"customer_name": "Alice", "company": "TechCorp"}
    # The gateway: partials first, then variables (the docs' order).
    assert (
        gateway.call(
            "POST", "/v1/chat/completions", {"prompt_id": main["id"], "inputs": inputs}
        ).status_code
        == 200
    )
    assert gateway.forwarded()["messages"][0]["content"] == (
        "Hello Alice, welcome to TechCorp! How can you help me?"
    )
    manager = HeliconePromptManager(api_key=gateway.key, base_url=gateway.server.url)
    result = manager.get_prompt_body({"prompt_id": partial["id"], "inputs": inputs})
    assert result["errors"] == []
    assert result["body"]["messages"][0]["content"] == "Hello Alice, welcome to TechCorp!"
    version = manager.pull_prompt_version({"prompt_id": partial["id"]})
    assert version.id == partial["versionId"] and version.s3_url
    # The body link works without a key, and only as issued.
    assert httpx.get(version.s3_url, timeout=10).json()["messages"][0]["role"] == "system"
    tampered = version.s3_url[:-3] + ("AAA" if not version.s3_url.endswith("AAA") else "BBB")
    assert httpx.get(tampered, timeout=10).status_code == 403


def test_rest_numbering_environments_and_shapes(gateway: Gateway) -> None:
    created = gateway.create(name="Numbers", tags=[" a ", "b", "a", ""])
    pid, v00 = created["id"], created["versionId"]

    def update(base: str, major: bool = False) -> str:
        return str(
            gateway.data(
                "POST",
                "/v1/prompt-2025/update",
                {
                    "promptId": pid,
                    "promptVersionId": base,
                    "newMajorVersion": major,
                    "commitMessage": "c",
                    "promptBody": SAVED,
                },
            )["id"]
        )

    v01 = update(v00)
    v10 = update(v01, major=True)
    v02 = update(v01)
    numbers = {
        v["id"]: (v["major_version"], v["minor_version"])
        for v in gateway.data("POST", "/v1/prompt-2025/query/versions", {"promptId": pid})
    }
    assert numbers == {v00: (0, 0), v01: (0, 1), v10: (1, 0), v02: (0, 2)}
    assert gateway.data("POST", "/v1/prompt-2025/query/total-versions", {"promptId": pid}) == {
        "totalVersions": 4,
        "majorVersions": 1,
    }
    prompt = gateway.data("GET", f"/v1/prompt-2025/id/{pid}")
    assert prompt["tags"] == ["a", "b"] and prompt["name"] == "Numbers"
    for version in (v01, v02):  # the move is exclusive
        gateway.data(
            "POST",
            "/v1/prompt-2025/update/environment",
            {"promptId": pid, "promptVersionId": version, "environment": "dev"},
        )
    env = gateway.data(
        "POST", "/v1/prompt-2025/query/environment-version", {"promptId": pid, "environment": "dev"}
    )
    assert env["id"] == v02 and env["environment"] == "dev" and env["environments"] == ["dev"]
    assert env["s3_url"] and env["prompt_id"] == pid and env["model"] == "gpt-4o-mini"
    old = gateway.data("POST", "/v1/prompt-2025/query/version", {"promptVersionId": v01})
    assert old["environments"] == [] and "environment" not in old
    prod = gateway.data("POST", "/v2/prompt-2025/query/production-version", {"promptId": pid})
    assert prod["id"] == v00 and prod["environment"] == "production"
    assert prod["prompt_body"] == SAVED
    assert "dev" in gateway.data("GET", "/v1/prompt-2025/environments")
    assert gateway.data("PATCH", f"/v1/prompt-2025/id/{pid}/tags", {"tags": ["x", " x", "y"]}) == [
        "x",
        "y",
    ]
    gateway.data("POST", f"/v1/prompt-2025/id/{pid}/rename", {"name": "Renamed"})
    found = gateway.data("POST", "/v1/prompt-2025/query", {"search": "renam", "tagsFilter": ["y"]})
    assert [p["id"] for p in found] == [pid]
    # Deleting a deployed version needs force; production cannot be removed without it.
    refused = gateway.call("DELETE", f"/v1/prompt-2025/{pid}/{v02}")
    assert refused.status_code == 409 and "dev" in refused.json()["error"]
    assert (
        gateway.call(
            "POST",
            "/v1/prompt-2025/remove/environment",
            {"promptId": pid, "promptVersionId": v00, "environment": "production"},
        ).status_code
        == 409
    )
    gateway.data("DELETE", f"/v1/prompt-2025/{pid}/{v02}?force=true")
    gateway.data("DELETE", f"/v1/prompt-2025/{pid}")
    gone = gateway.call("GET", f"/v1/prompt-2025/id/{pid}")
    assert gone.status_code == 404 and gone.json() == {"data": None, "error": "Prompt not found"}
    assert gateway.call("POST", "/v1/chat/completions", {"prompt_id": pid}).status_code == 400


def test_rest_errors_scopes_and_empty_org(gateway: Gateway) -> None:
    settings = gateway.server.settings
    reader = scoped_key(settings, "acme", {"prompt:read", "gateway:invoke"})
    invoker = scoped_key(settings, "acme", {"gateway:invoke"})
    other = create_key(settings, org="empty-org")
    assert gateway.call("GET", "/v1/prompt-2025/count", key=other).json() == {
        "data": 0,
        "error": None,
    }
    denied = gateway.call("POST", "/v1/prompt-2025", {"name": "x", "promptBody": SAVED}, key=reader)
    assert denied.status_code == 403 and denied.json() == {"data": None, "error": "Forbidden"}
    assert gateway.call("GET", "/v1/prompt-2025/tags", key=invoker).status_code == 403
    created = gateway.create(name="Scoped")
    assert gateway.call("GET", f"/v1/prompt-2025/id/{created['id']}", key=reader).status_code == 200
    use = {"model": "gpt-4o-mini", "prompt_id": created["id"]}
    assert gateway.call("POST", "/v1/chat/completions", use, key=reader).status_code == 200
    refused = gateway.call("POST", "/v1/chat/completions", use, key=invoker)
    assert refused.status_code == 403 and "prompt:read" in refused.json()["error"]["message"]
    # Another organisation does not see the prompt.
    assert gateway.call("GET", f"/v1/prompt-2025/id/{created['id']}", key=other).status_code == 404
    assert gateway.call("GET", "/v1/prompt-2025/count").status_code == 200
    assert httpx.get(gateway.server.url + "/v1/prompt-2025/count", timeout=10).status_code == 401
    # Helicone's three ways to send the key.
    for headers in ({"authorization": gateway.key}, {"helicone-auth": f"Bearer {gateway.key}"}):
        answer = httpx.get(gateway.server.url + "/v1/prompt-2025/count", headers=headers,
                           timeout=10)  # fmt: skip
        assert answer.status_code == 200, (headers.keys(), answer.text)
    big = {"messages": [{"role": "user", "content": "x" * 1_000_000}]}
    for body, message in (
        ({"name": "x", "promptBody": big}, "'promptBody' must be 1000000 bytes or fewer"),
        ({"name": "x"}, "missing or invalid field 'promptBody'"),
        ({"promptBody": SAVED}, "missing or invalid field 'name'"),
        ({"name": "x", "promptBody": SAVED, "tags": "a"}, "'tags' must be an array of strings"),
    ):
        response = gateway.call("POST", "/v1/prompt-2025", body)
        assert response.status_code == 400 and response.json()["error"].startswith(message)
    unknown = gateway.call(
        "POST",
        "/v1/prompt-2025/update",
        {
            "promptId": created["id"],
            "promptVersionId": "00000000-0000-4000-8000-000000000000",
            "promptBody": SAVED,
        },
    )
    assert unknown.status_code == 404 and unknown.json()["error"] == "Current version not found"


def test_body_links_expire() -> None:
    keyring = KeyRing.parse(generate_key())
    fresh = seal_link(keyring, "org", "version", 60)
    assert open_link(keyring, fresh) == ("org", "version")
    assert open_link(keyring, seal_link(keyring, "org", "version", -1)) is None
    assert open_link(KeyRing.parse(generate_key()), fresh) is None
    assert open_link(keyring, "not base64 !") is None


@contextlib.contextmanager
def two_gateways(tmp_path: Path, upstream: OpenAIEmulator) -> Iterator[list[GatewayServer]]:
    url, prefix = shared_redis_url(), new_prefix()
    shared = {
        "provider_api_keys": {"openai": KEY},
        "provider_base_urls": {"openai": upstream.base_url},
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}",
        "redis_url": url,
        "redis_key_prefix": prefix,
        "encryption_key": generate_key(),
    }
    first = make_settings(tmp_path / "a", **shared)
    second = make_settings(tmp_path / "b", **shared)
    try:
        with GatewayServer(first) as a, GatewayServer(second) as b:
            yield [a, b]
    finally:
        delete_prefix(url, prefix)


def test_invalidation_across_two_processes(tmp_path: Path) -> None:
    with OpenAIEmulator(api_key=KEY) as upstream, two_gateways(tmp_path, upstream) as servers:
        a, b = servers
        key = create_key(a.settings, org="acme")
        for server in servers:
            wait_for(
                "the subscription", lambda s=server: s.runtime.prompts.subscribed.is_set() or None
            )
        auth = {"authorization": f"Bearer {key}"}
        created = httpx.post(
            a.url + "/v1/prompt-2025",
            headers=auth,
            timeout=10,
            json={
                "name": "shared",
                "promptBody": {"messages": [{"role": "user", "content": "v0"}]},
            },
        ).json()["data"]
        use = {"model": "gpt-4o-mini", "prompt_id": created["id"]}

        def sent_through_b() -> str:
            response = httpx.post(
                b.url + "/v1/chat/completions", headers=auth, json=use, timeout=10
            )
            assert response.status_code == 200, response.text
            return str(orjson.loads(upstream.requests[-1].body)["messages"][0]["content"])

        assert sent_through_b() == "v0"  # b has v0 cached now (TTL 300 s)
        new = httpx.post(
            a.url + "/v1/prompt-2025/update",
            headers=auth,
            timeout=10,
            json={
                "promptId": created["id"],
                "promptVersionId": created["versionId"],
                "environment": "production",
                "promptBody": {"messages": [{"role": "user", "content": "v1"}]},
            },
        ).json()["data"]
        assert new["id"]
        deadline = time.monotonic() + 10
        while sent_through_b() != "v1":  # pub/sub is asynchronous: a bounded poll
            assert time.monotonic() < deadline, "b kept serving the old version"
            time.sleep(0.05)


def test_lenient_resolution_falls_back_with_the_header(tmp_path: Path) -> None:
    """GATEWAY_PROMPT_RESOLUTION_FALLBACK=true: an unknown environment or version gets
    production and the response says so (D.2.2); a known one gets no header."""
    with OpenAIEmulator(api_key=KEY) as upstream:
        settings = make_settings(
            tmp_path,
            provider_api_keys={"openai": KEY},
            provider_base_urls={"openai": upstream.base_url},
            prompt_resolution_fallback=True,
        )
        key = create_key(settings, org="acme")
        with GatewayServer(settings) as server:
            auth = {"authorization": f"Bearer {key}"}
            body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "prod"}]}
            created = httpx.post(
                server.url + "/v1/prompt-2025", headers=auth, timeout=10,
                json={"name": "lenient", "promptBody": body},
            ).json()["data"]  # fmt: skip
            for extra, header in (
                ({"environment": "qa"}, "fallback-production"),
                ({"version_id": "00000000-0000-4000-8000-000000000000"}, "fallback-production"),
                ({"environment": "production"}, None),
            ):
                response = httpx.post(
                    server.url + "/v1/chat/completions", headers=auth, timeout=10,
                    json={"prompt_id": created["id"], **extra},
                )  # fmt: skip
                assert response.status_code == 200, response.text
                assert response.headers.get("helicone-prompt-resolution") == header, extra
                sent = orjson.loads(upstream.requests[-1].body)
                assert sent["messages"][0]["content"] == "prod"
