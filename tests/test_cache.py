"""The response cache end to end: every header and boundary, in process and on Redis.

Each test runs twice: against a gateway whose cache lives in the process (the default), and
against one on the real Redis server at 127.0.0.1:6379 (``REDIS_URL``), under a key prefix of
its own that is deleted afterwards. The upstream emulator numbers its answers
(``chatcmpl-emu-<n>``), so a test can tell a replayed answer from a fresh one, and counts the
requests that reached it.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import orjson
import pytest
import redis as redis_sync

from tests.emulator import Fault, OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings

KEY = "sk-emulator"
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CHAT = "/v1/chat/completions"


def redis_or_skip() -> redis_sync.Redis:
    """A client of the test Redis server; skipped when it is down, failed under CI."""
    client = redis_sync.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis_sync.RedisError as exc:
        client.close()
        reason = f"Redis is not reachable at {REDIS_URL}: {exc}"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    return client


def drop_prefix(client: redis_sync.Redis, prefix: str) -> None:
    names = list(client.scan_iter(match=prefix + "*", count=1000))
    if names:
        client.delete(*names)


@dataclass
class Env:
    server: GatewayServer
    upstream: OpenAIEmulator
    key: str
    other_org_key: str
    backend: str

    def post(
        self,
        body: Any,
        headers: dict[str, str] | None = None,
        path: str = CHAT,
        key: str | None = None,
    ) -> httpx.Response:
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        sent = {
            "authorization": f"Bearer {key or self.key}",
            "content-type": "application/json",
            **(headers or {}),
        }
        return httpx.post(self.server.url + path, content=content, headers=sent, timeout=30)

    @property
    def upstream_calls(self) -> int:
        return len(self.upstream.requests)


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module", params=["memory", "redis"])
def env(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    upstream: OpenAIEmulator,
) -> Iterator[Env]:
    extra: dict[str, Any] = {}
    client = None
    prefix = f"test-cache-{uuid.uuid4().hex[:12]}:"
    if request.param == "redis":
        client = redis_or_skip()
        extra = {"redis_url": REDIS_URL, "redis_key_prefix": prefix}
    settings = make_settings(
        tmp_path_factory.mktemp("cache"),
        provider_api_keys={"openai": KEY},
        provider_base_urls={"openai": upstream.base_url},
        **extra,
    )
    key = create_key(settings)
    other = create_key(settings, org="another-org")
    try:
        with GatewayServer(settings) as server:
            yield Env(server, upstream, key, other, request.param)
    finally:
        if client is not None:
            drop_prefix(client, prefix)
            client.close()


@pytest.fixture(autouse=True)
def _reset(upstream: OpenAIEmulator) -> None:
    upstream.reset()


ON = {"helicone-cache-enabled": "true"}


def chat(text: str | None = None, **extra: Any) -> dict[str, Any]:
    """A chat request no other test sends (unique text)."""
    content = text or f"cache test {uuid.uuid4()}"
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}], **extra}


def answer_id(response: httpx.Response) -> str:
    assert response.status_code == 200, response.text
    value: str = response.json()["id"]
    return value


# -- the basics ------------------------------------------------------------------------------


def test_miss_then_hit(env: Env) -> None:
    body = chat()
    first = env.post(body, ON)
    second = env.post(body, ON)
    assert first.headers["helicone-cache"] == "MISS"
    assert second.headers["helicone-cache"] == "HIT"
    assert first.headers["helicone-cache-bucket-idx"] == "0"
    assert second.headers["helicone-cache-bucket-idx"] == "0"
    assert second.content == first.content
    assert second.headers["content-type"] == first.headers["content-type"]
    assert second.headers["helicone-id"] != first.headers["helicone-id"]  # a request of its own
    assert env.upstream_calls == 1


def test_cache_off_without_the_header(env: Env) -> None:
    body = chat()
    first, second = env.post(body), env.post(body)
    assert "helicone-cache" not in first.headers and "helicone-cache" not in second.headers
    assert answer_id(first) != answer_id(second)
    assert env.upstream_calls == 2


def test_key_order_and_spacing_do_not_matter(env: Env) -> None:
    text = f"order {uuid.uuid4()}"
    one = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"TEXT"}]}'
    two = '{ "messages": [ {"content": "TEXT", "role": "user"} ],\n "model": "gpt-4o-mini" }'
    one, two = (one.replace("TEXT", text).encode(), two.replace("TEXT", text).encode())
    assert env.post(one, ON).headers["helicone-cache"] == "MISS"
    assert env.post(two, ON).headers["helicone-cache"] == "HIT"


def test_any_parameter_change_is_another_entry(env: Env) -> None:
    body = chat()
    env.post(body, ON)
    changed = env.post({**body, "temperature": 0.5}, ON)
    assert changed.headers["helicone-cache"] == "MISS"
    assert env.upstream_calls == 2


def test_unified_endpoint_with_or_without_v1_is_one_entry(env: Env) -> None:
    body = chat()
    env.post(body, ON, path="/v1/chat/completions")
    assert env.post(body, ON, path="/chat/completions").headers["helicone-cache"] == "HIT"


# -- seeds, ignore-keys, tenants ---------------------------------------------------------------


def test_seed_isolation(env: Env) -> None:
    body = chat()
    a = env.post(body, {**ON, "helicone-cache-seed": "user-123"})
    b = env.post(body, {**ON, "helicone-cache-seed": "user-456"})
    none = env.post(body, ON)
    assert [r.headers["helicone-cache"] for r in (a, b, none)] == ["MISS"] * 3
    again_a = env.post(body, {**ON, "helicone-cache-seed": "user-123"})
    again_b = env.post(body, {**ON, "helicone-cache-seed": "user-456"})
    assert again_a.headers["helicone-cache"] == again_b.headers["helicone-cache"] == "HIT"
    assert answer_id(again_a) == answer_id(a) != answer_id(again_b) == answer_id(b)
    assert env.upstream_calls == 3


def test_ignore_keys(env: Env) -> None:
    text = f"ignore {uuid.uuid4()}"
    ignore = {**ON, "helicone-cache-ignore-keys": "user, metadata"}
    first = env.post(chat(text, user="u-1", metadata={"trace": "1"}), ignore)
    second = env.post(chat(text, user="u-2", metadata={"trace": "2"}), ignore)
    assert second.headers["helicone-cache"] == "HIT"
    assert answer_id(second) == answer_id(first)
    # Without the header the same two bodies are two entries.
    text = f"no ignore {uuid.uuid4()}"
    env.post(chat(text, user="u-1"), ON)
    assert env.post(chat(text, user="u-2"), ON).headers["helicone-cache"] == "MISS"
    # A key that is not top-level is not ignored.
    nested = env.post(chat(text, user="u-1", metadata={"user": "x"}), ignore)
    assert nested.headers["helicone-cache"] == "MISS"


def test_tenants_never_share_entries(env: Env) -> None:
    body = chat()
    mine = env.post(body, ON)
    theirs = env.post(body, ON, key=env.other_org_key)
    assert theirs.headers["helicone-cache"] == "MISS"
    assert answer_id(theirs) != answer_id(mine)
    assert env.post(body, ON, key=env.other_org_key).headers["helicone-cache"] == "HIT"


# -- buckets ---------------------------------------------------------------------------------


def test_bucket_fills_then_serves_random_slots(env: Env) -> None:
    body = chat()
    bucket = {**ON, "helicone-cache-bucket-max-size": "3"}
    misses = [env.post(body, bucket) for _ in range(3)]
    assert [r.headers["helicone-cache"] for r in misses] == ["MISS"] * 3
    assert [r.headers["helicone-cache-bucket-idx"] for r in misses] == ["0", "1", "2"]
    stored = {answer_id(r) for r in misses}
    assert len(stored) == 3
    hits = [env.post(body, bucket) for _ in range(20)]
    assert all(r.headers["helicone-cache"] == "HIT" for r in hits)
    by_slot = {r.headers["helicone-cache-bucket-idx"]: answer_id(r) for r in hits}
    assert set(by_slot.values()) <= stored
    assert len(by_slot) > 1  # random slots: 20 draws from 3 all alike has odds of 1e-9
    assert {answer_id(misses[int(slot)]) for slot in by_slot} == set(by_slot.values())
    assert env.upstream_calls == 3


def test_bucket_size_out_of_range_is_a_400(env: Env) -> None:
    for value in ("21", "0", "many"):
        response = env.post(chat(), {**ON, "helicone-cache-bucket-max-size": value})
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["param"] == "Helicone-Cache-Bucket-Max-Size"
        assert "1 to 20" in error["message"]
    assert env.upstream_calls == 0
    ok = env.post(chat(), {**ON, "helicone-cache-bucket-max-size": "20"})
    assert ok.status_code == 200 and ok.headers["helicone-cache-bucket-idx"] == "0"


# -- lifetime and size -----------------------------------------------------------------------


def test_ttl_expiry(env: Env) -> None:
    body = chat()
    short = {**ON, "cache-control": "max-age=1"}
    env.post(body, short)
    assert env.post(body, short).headers["helicone-cache"] == "HIT"
    time.sleep(1.3)
    assert env.post(body, short).headers["helicone-cache"] == "MISS"
    assert env.upstream_calls == 2


def test_max_age_zero_is_not_stored(env: Env) -> None:
    body = chat()
    env.post(body, {**ON, "cache-control": "max-age=0"})
    assert env.post(body, ON).headers["helicone-cache"] == "MISS"


def test_size_limit_serves_but_does_not_store(env: Env, tmp_path: Any) -> None:
    settings = env.server.settings.model_copy(
        update={"cache_max_entry_bytes": 1500, "data_dir": tmp_path}
    )
    small = create_key(settings)
    with GatewayServer(settings) as server:
        big = Env(server, env.upstream, small, small, env.backend)
        body = chat("x " * 1000)  # the answer echoes the prompt: well over 1500 bytes
        first, second = big.post(body, ON), big.post(body, ON)
        assert first.status_code == second.status_code == 200
        assert first.headers["helicone-cache"] == second.headers["helicone-cache"] == "MISS"
        assert len(first.content) > 1500
        stream = chat("y " * 1000, stream=True)
        assert big.post(stream, ON).headers["helicone-cache"] == "MISS"
        assert big.post(stream, ON).headers["helicone-cache"] == "MISS"
        health = httpx.get(server.url + "/healthz").json()["cache"]
        assert health["too_large"] == 4 and health["stores"] == 0
        tiny = chat("z")  # a small answer under the same limit is stored
        big.post(tiny, ON)
        assert big.post(tiny, ON).headers["helicone-cache"] == "HIT"


# -- what is stored --------------------------------------------------------------------------


def test_only_2xx_answers_are_stored(env: Env) -> None:
    body = chat()
    env.upstream.inject(Fault(status=500))
    failed = env.post(body, ON)
    assert failed.status_code == 500 and failed.headers["helicone-cache"] == "MISS"
    env.upstream.inject(Fault(status=429))
    assert env.post(body, ON).status_code == 429
    ok = env.post(body, ON)
    assert ok.status_code == 200 and ok.headers["helicone-cache"] == "MISS"
    assert env.post(body, ON).headers["helicone-cache"] == "HIT"
    assert env.upstream_calls == 3


def test_save_only_and_read_only(env: Env) -> None:
    body = chat()
    read_only = {"helicone-cache-read": "true"}
    save_only = {"helicone-cache-save": "true"}
    assert env.post(body, read_only).headers["helicone-cache"] == "MISS"
    assert env.post(body, read_only).headers["helicone-cache"] == "MISS"  # nothing was stored
    saved = env.post(body, save_only)
    again = env.post(body, save_only)  # write-only never reads: the provider answers again
    assert answer_id(again) != answer_id(saved)
    assert env.upstream_calls == 4
    hit = env.post(body, read_only)
    assert hit.headers["helicone-cache"] == "HIT"
    assert answer_id(hit) == answer_id(saved)  # the first save filled the slot; never replaced
    assert env.upstream_calls == 4


# -- streams ---------------------------------------------------------------------------------


def test_stream_replayed_byte_for_byte(env: Env) -> None:
    body = chat(stream=True)
    first = env.post(body, ON)
    second = env.post(body, ON)
    assert first.headers["content-type"].startswith("text/event-stream")
    assert second.headers["content-type"] == first.headers["content-type"]
    assert second.headers["helicone-cache"] == "HIT"
    assert second.content == first.content
    assert first.content.rstrip().endswith(b"data: [DONE]")
    assert env.upstream_calls == 1


def test_stream_with_usage_asked_by_the_client_keeps_it(env: Env) -> None:
    body = chat(stream=True, stream_options={"include_usage": True})
    first, second = env.post(body, ON), env.post(body, ON)
    assert second.headers["helicone-cache"] == "HIT"
    assert second.content == first.content and b'"usage":{' in second.content


def test_stream_and_whole_never_share_an_entry(env: Env) -> None:
    text = f"shape {uuid.uuid4()}"
    streamed = env.post(chat(text, stream=True), ON)
    whole = env.post(chat(text), ON)
    assert whole.headers["helicone-cache"] == "MISS"
    assert whole.headers["content-type"].startswith("application/json")
    assert env.post(chat(text, stream=True), ON).content == streamed.content
    assert env.post(chat(text), ON).json() == whole.json()


def test_a_cut_stream_is_not_stored(env: Env) -> None:
    body = chat(stream=True)
    env.upstream.inject(Fault(drop_after_events=2))
    env.post(body, ON)
    full = env.post(body, ON)
    assert full.headers["helicone-cache"] == "MISS"
    assert env.post(body, ON).content == full.content


def test_sdk_chat_stream_helper_on_a_hit(env: Env) -> None:
    messages: Any = chat()["messages"]
    finals = []
    with openai.OpenAI(
        base_url=env.server.url + "/v1", api_key=env.key, max_retries=0, default_headers=ON
    ) as client:
        for _ in range(2):
            with client.chat.completions.stream(model="gpt-4o-mini", messages=messages) as stream:
                deltas = [e.delta for e in stream if e.type == "content.delta"]
                final = stream.get_final_completion()
            assert "".join(deltas) == final.choices[0].message.content
            finals.append(final)
    assert env.upstream_calls == 1
    assert finals[1] == finals[0]
    assert finals[0].choices[0].message.content


def test_sdk_responses_stream_helper_on_a_hit(env: Env) -> None:
    text = f"responses {uuid.uuid4()}"
    finals = []
    with openai.OpenAI(
        base_url=env.server.url + "/v1", api_key=env.key, max_retries=0, default_headers=ON
    ) as client:
        for _ in range(2):
            with client.responses.stream(model="gpt-4o-mini", input=text) as stream:
                deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
                final = stream.get_final_response()
            assert "".join(deltas) == final.output_text
            finals.append(final)
    assert env.upstream_calls == 1
    assert finals[1] == finals[0] and text in finals[0].output_text


# -- passthrough ---------------------------------------------------------------------------


def test_passthrough_caching(env: Env) -> None:
    body = chat()
    headers = {**ON, "helicone-auth": f"Bearer {env.key}"}
    client_key = KEY  # the client's own provider key, in Authorization

    def send(path: str, payload: dict[str, Any]) -> httpx.Response:
        return httpx.post(
            env.server.url + path, json=payload,
            headers={**headers, "authorization": f"Bearer {client_key}"}, timeout=30,
        )

    first, second = send("/oai/v1/chat/completions", body), send("/oai/v1/chat/completions", body)
    assert (first.headers["helicone-cache"], second.headers["helicone-cache"]) == ("MISS", "HIT")
    assert second.content == first.content
    # The same upstream named by another prefix is the same entry (the key names the upstream
    # URL), the unified route is another one.
    assert send("/v1/gateway/oai/v1/chat/completions", body).headers["helicone-cache"] == "HIT"
    assert env.post(body, ON).headers["helicone-cache"] == "MISS"
    streamed = chat(stream=True)
    one = send("/oai/v1/chat/completions", streamed)
    two = send("/oai/v1/chat/completions", streamed)
    assert two.headers["helicone-cache"] == "HIT" and two.content == one.content
    assert env.upstream_calls == 3


# -- health and speed ------------------------------------------------------------------------


def test_health_counts(env: Env) -> None:
    before = httpx.get(env.server.url + "/healthz").json()["cache"]
    body = chat()
    env.post(body, ON)
    env.post(body, ON)
    after = httpx.get(env.server.url + "/healthz").json()
    assert after["cache"]["backend"] == env.backend
    assert after["cache"]["hits"] == before["hits"] + 1
    assert after["cache"]["misses"] == before["misses"] + 1
    assert after["cache"]["stores"] == before["stores"] + 1
    if env.backend == "redis":
        assert after["redis"]["state"] == "ok" and after["redis"]["faults"] == 0
    else:
        assert "redis" not in after


def test_a_hit_skips_the_upstream(env: Env) -> None:
    """A hit is answered without routing or an upstream round trip (its speed is measured in
    the bench, `python -m bench.cache`: timed assertions in unit tests are flaky here — both
    medians were ~44 ms on a loaded CI machine)."""
    hot = chat()
    with httpx.Client(base_url=env.server.url, timeout=30) as client:
        headers = {**ON, "authorization": f"Bearer {env.key}"}
        client.post(CHAT, json=hot, headers=headers)
        sent = len(env.upstream.requests)
        for _ in range(5):
            assert client.post(CHAT, json=hot, headers=headers).headers["helicone-cache"] == "HIT"
        assert len(env.upstream.requests) == sent
        miss = client.post(CHAT, json=chat(), headers=headers)
        assert miss.headers["helicone-cache"] == "MISS"
        assert len(env.upstream.requests) == sent + 1
