"""Unit tests of the small pure pieces: routing, target policy, SSE chunker, options, auth cache."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import pytest

from gateway.asgi import BodyTooLarge, ClientDisconnected, Receive, read_body, whole_body
from gateway.auth import Authenticator, Credentials, KeyCache
from gateway.context import parse_options, read_credentials
from gateway.errors import GatewayError
from gateway.keys import hash_key
from gateway.options import RequestIds, new_request_id
from gateway.passthrough import join_overlapping
from gateway.sse import EventChunker
from gateway.store import KeyIdentity
from gateway.targets import TargetPolicy
from providers.routing import ProviderDirectory, RoutingError, split_model


class TestSplitModel:
    def test_bare_model_goes_to_openai(self) -> None:
        assert split_model("gpt-4o-mini") == ("gpt-4o-mini", "openai")

    def test_provider_suffix_is_stripped(self) -> None:
        assert split_model("llama-3.3-70b/groq") == ("llama-3.3-70b", "groq")

    def test_model_ids_with_slashes_keep_them(self) -> None:
        assert split_model("meta-llama/Llama-3.3-70B/together") == (
            "meta-llama/Llama-3.3-70B",
            "together",
        )

    @pytest.mark.parametrize("model", ["gpt-4o/nope", "meta-llama/Llama-3.3-70B", "/groq"])
    def test_unknown_provider_is_named(self, model: str) -> None:
        with pytest.raises(RoutingError, match="Unknown provider"):
            split_model(model)

    def test_empty_model(self) -> None:
        with pytest.raises(RoutingError, match="empty"):
            split_model("  ")


class TestProviderDirectory:
    def test_managed_key_and_default_url(self) -> None:
        directory = ProviderDirectory({"groq": "gk"}, {})
        target = directory.resolve("m/groq")
        assert target.base_url == "https://api.groq.com/openai/v1"
        assert target.api_key == "gk"
        assert target.model == "m"

    def test_base_url_override(self) -> None:
        directory = ProviderDirectory({"openai": "k"}, {"openai": "http://127.0.0.1:9/v1/"})
        assert directory.resolve("gpt").base_url == "http://127.0.0.1:9/v1"

    def test_missing_key_names_the_variable(self) -> None:
        with pytest.raises(RoutingError, match="MISTRAL_API_KEY"):
            ProviderDirectory({}, {}).resolve("m/mistral")

    def test_configured_ollama_needs_no_key(self) -> None:
        directory = ProviderDirectory({}, {"ollama": "http://127.0.0.1:11434/v1"})
        assert directory.resolve("llama3/ollama").api_key is None


class TestTargetPolicy:
    policy = TargetPolicy(["models.internal", "*.corp.example", "http://127.0.0.1:9999"], [
        "http://10.1.2.3:8000/v1"
    ])

    @pytest.mark.parametrize(
        "url",
        [
            "https://api.openai.com",
            "https://myres.openai.azure.com/",
            "https://api.groq.com",
            "https://bedrock-runtime.us-east-1.amazonaws.com",
            "https://models.internal",
            "https://a.corp.example",
            "http://127.0.0.1:9999",
            "http://10.1.2.3:8000",
        ],
    )
    def test_allowed(self, url: str) -> None:
        assert self.policy.allows(url)

    @pytest.mark.parametrize(
        "url",
        [
            "https://evil.example",
            "https://api.openai.com.evil.example",
            "http://127.0.0.1:9998",
            "http://169.254.169.254/latest",
            "ftp://api.openai.com",
            "api.openai.com",
            "https://corp.example",
            "http://10.1.2.3:8001",
        ],
    )
    def test_refused(self, url: str) -> None:
        assert not self.policy.allows(url)

    def test_check_raises_400_naming_header(self) -> None:
        with pytest.raises(GatewayError) as info:
            self.policy.check("https://evil.example", "Helicone-Target-Url")
        assert info.value.status == 400
        assert "Helicone-Target-Url" in info.value.message


class TestJoinOverlapping:
    @pytest.mark.parametrize(
        ("base", "path", "expected"),
        [
            ("https://api.openai.com/v1", "/v1/chat/completions",
             "https://api.openai.com/v1/chat/completions"),
            ("https://api.groq.com/openai/v1", "/openai/v1/models",
             "https://api.groq.com/openai/v1/models"),
            ("https://api.groq.com/openai/v1", "/v1/models", "https://api.groq.com/openai/v1/models"),
            ("https://x.openai.azure.com", "/openai/deployments/d/chat/completions",
             "https://x.openai.azure.com/openai/deployments/d/chat/completions"),
            ("http://127.0.0.1:5/v1/", "/v1/files", "http://127.0.0.1:5/v1/files"),
        ],
    )
    def test_join(self, base: str, path: str, expected: str) -> None:
        assert join_overlapping(base, path) == expected


class TestEventChunker:
    def test_releases_only_whole_events(self) -> None:
        chunker = EventChunker()
        assert chunker.feed(b"data: {\"a\"") == b""
        assert chunker.feed(b": 1}\n\ndata: {\"b") == b"data: {\"a\": 1}\n\n"
        assert chunker.feed(b"\": 2}\n\n") == b"data: {\"b\": 2}\n\n"
        assert chunker.flush() == b""

    def test_crlf_boundaries_and_tail(self) -> None:
        chunker = EventChunker()
        assert chunker.feed(b"event: x\r\ndata: 1\r\n\r\ndata: 2") == b"event: x\r\ndata: 1\r\n\r\n"
        assert chunker.flush() == b"data: 2"


def _request_id(headers: dict[str, str]) -> str:
    return parse_options(headers).request_id


class TestOptions:
    def test_valid_request_id_is_kept(self) -> None:
        rid = "123e4567-e89b-12d3-a456-426614174000"
        assert _request_id({"helicone-request-id": rid.upper()}) == rid

    def test_invalid_request_id_is_replaced(self) -> None:
        rid = _request_id({"helicone-request-id": "ticket-42"})
        assert rid != "ticket-42"
        assert uuid.UUID(rid).version == 7

    def test_any_rfc_version_is_kept(self) -> None:
        v4 = str(uuid.uuid4())
        v7 = "019a9f3e-8c2b-7d4e-9f10-0123456789ab"
        assert _request_id({"helicone-request-id": v4}) == v4
        assert _request_id({"helicone-request-id": v7}) == v7
        # not a UUID version, or not the RFC variant
        for bad in ("019a9f3e-8c2b-0d4e-9f10-0123456789ab", "019a9f3e-8c2b-7d4e-cf10-0123456789ab"):
            assert _request_id({"helicone-request-id": bad}) != bad

    def test_new_ids_are_uuid7_in_time_order(self) -> None:
        before_ms = time.time_ns() // 1_000_000
        ids = [new_request_id() for _ in range(2000)]
        after_ms = time.time_ns() // 1_000_000
        parsed = [uuid.UUID(rid) for rid in ids]
        assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
        assert [str(u) for u in parsed] == ids  # canonical lower-case text
        stamps = [u.int >> 80 for u in parsed]
        assert before_ms <= stamps[0] and stamps[-1] <= after_ms
        assert stamps == sorted(stamps)  # ordered by creation time (to the millisecond)
        assert len(set(ids)) == len(ids)
        # the 74 random bits do vary
        assert len({u.int & ((1 << 62) - 1) for u in parsed}) == len(ids)

    def test_buffered_ids_are_the_same_uuid7s_and_never_repeat_bits(self) -> None:
        """The data plane's ids (random bits from a refilled buffer): valid, time-ordered,
        and no two share their random bits, across several refills."""
        ids = RequestIds()
        made = [ids() for _ in range(1300)]  # several refills of the batch
        parsed = [uuid.UUID(rid) for rid in made]
        assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in parsed)
        assert [str(u) for u in parsed] == made
        stamps = [u.int >> 80 for u in parsed]
        assert stamps == sorted(stamps)
        assert len({u.int & ((1 << 80) - 1) for u in parsed}) == len(made)

    def test_buffered_ids_take_each_milliseconds_time(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The time half is made once per millisecond: each id carries its own."""
        clock = iter(ms * 1_000_000 + 5 for ms in (1_700_000_000_000, 1_700_000_000_000,
                                                   1_700_000_000_001, 1_800_000_000_123))
        monkeypatch.setattr("gateway.options.time.time_ns", lambda: next(clock))
        ids = RequestIds()
        made = [ids() for _ in range(4)]
        stamps = [uuid.UUID(rid).int >> 80 for rid in made]
        assert stamps == [1_700_000_000_000, 1_700_000_000_000, 1_700_000_000_001,
                          1_800_000_000_123]
        assert all(uuid.UUID(rid).version == 7 for rid in made) and len(set(made)) == 4

    def test_a_forked_child_does_not_reuse_the_buffered_bits(self) -> None:
        ids = RequestIds()
        ids()  # the buffer is filled in the parent
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            os.write(write, ids().encode())
            os._exit(0)
        os.close(write)
        child = os.read(read, 100).decode()
        os.close(read)
        os.waitpid(pid, 0)
        parent = ids()
        assert uuid.UUID(child).int & ((1 << 62) - 1) != uuid.UUID(parent).int & ((1 << 62) - 1)

class TestCredentials:
    def test_unified_style(self) -> None:
        assert read_credentials({"authorization": "Bearer sk-helicone-a"}) == Credentials(
            "sk-helicone-a", None
        )

    def test_helicone_auth_makes_authorization_the_providers(self) -> None:
        creds = read_credentials(
            {"authorization": "Bearer sk-openai", "helicone-auth": "Bearer sk-helicone-a"}
        )
        assert creds == Credentials("sk-helicone-a", "Bearer sk-openai")


class _FakeStore:
    def __init__(self) -> None:
        self.known: dict[str, KeyIdentity] = {}
        self.calls = 0

    async def find_active_key(self, key_hash: str) -> KeyIdentity | None:
        self.calls += 1
        await asyncio.sleep(0.01)
        return self.known.get(key_hash)


class TestKeyCache:
    async def test_hits_are_cached_until_ttl(self) -> None:
        now = [0.0]
        store = _FakeStore()
        ident = KeyIdentity("k1", "o1", "default")
        store.known[hash_key("sk-a")] = ident
        cache = KeyCache(store, ttl_seconds=5, clock=lambda: now[0])
        assert await cache.resolve("sk-a") == ident
        assert await cache.resolve("sk-a") == ident
        assert store.calls == 1
        del store.known[hash_key("sk-a")]  # revoked
        now[0] = 4.9
        assert await cache.resolve("sk-a") == ident
        now[0] = 5.1
        assert await cache.resolve("sk-a") is None
        assert store.calls == 2

    async def test_the_synchronous_path_answers_fresh_hits_only(self) -> None:
        """``Authenticator.cached`` (no await) gives what ``authenticate`` would for a cached,
        fresh identity, and None whenever ``authenticate`` must decide: nothing cached, an
        expired entry, a key cached as unknown (its 401), no key at all."""
        now = [0.0]
        store = _FakeStore()
        ident = KeyIdentity("k1", "o1", "default")
        store.known[hash_key("sk-a")] = ident
        cache = KeyCache(store, ttl_seconds=5, clock=lambda: now[0])
        auth = Authenticator(cache, None)
        known, unknown = Credentials("sk-a", None), Credentials("sk-nope", None)
        assert auth.cached(known) is None and store.calls == 0
        assert await auth.authenticate(known) == ident
        assert auth.cached(known) == ident and store.calls == 1
        with pytest.raises(GatewayError) as info:
            await auth.authenticate(unknown)
        assert info.value.status == 401
        assert auth.cached(unknown) is None  # cached as unknown: still the 401 path
        assert auth.cached(Credentials(None, None)) is None
        now[0] = 5.1
        assert auth.cached(known) is None  # expired: the store is asked again
        assert Authenticator(cache, ident).cached(Credentials(None, None)) == ident

    async def test_concurrent_misses_share_one_query(self) -> None:
        store = _FakeStore()
        store.known[hash_key("sk-b")] = KeyIdentity("k", "o", "default")
        cache = KeyCache(store, ttl_seconds=5)
        results = await asyncio.gather(*(cache.resolve("sk-b") for _ in range(20)))
        assert all(r is not None for r in results)
        assert store.calls == 1

    async def test_store_failure_is_503_not_401(self) -> None:
        class Broken:
            async def find_active_key(self, key_hash: str) -> KeyIdentity | None:
                raise ConnectionError("db down")

        auth = Authenticator(KeyCache(Broken(), 5), None)
        with pytest.raises(GatewayError) as info:
            await auth.authenticate(Credentials("sk-x", None))
        assert info.value.status == 503

    async def test_anonymous_skips_keys(self) -> None:
        ident = KeyIdentity("anonymous", "o", "default")
        auth = Authenticator(KeyCache(_FakeStore(), 5), ident)
        assert await auth.authenticate(Credentials(None, None)) == ident


class TestReadBody:
    """The request path's body read: whole in the first message without a coroutine
    (``whole_body``), else ``read_body`` from that message on, with the same limits."""

    @staticmethod
    def _receiver(messages: list[dict[str, object]]) -> Receive:
        pending = list(messages)

        async def receive() -> dict[str, object]:
            return pending.pop(0)

        return receive

    def test_a_body_in_one_message_is_taken_as_it_is(self) -> None:
        message = {"type": "http.request", "body": b'{"a": 1}', "more_body": False}
        assert whole_body(message, 100) == b'{"a": 1}'
        assert whole_body({"type": "http.request"}, 100) == b""

    def test_anything_else_is_left_to_read_body(self) -> None:
        assert whole_body({"type": "http.request", "body": b"ab", "more_body": True}, 100) is None
        assert whole_body({"type": "http.disconnect"}, 100) is None
        assert whole_body({"type": "http.request", "body": b"x" * 101}, 100) is None

    def test_read_body_goes_on_from_the_first_message(self) -> None:
        first = {"type": "http.request", "body": b"ab", "more_body": True}
        rest = self._receiver([{"type": "http.request", "body": b"cd", "more_body": False}])
        assert asyncio.run(read_body(rest, 100, None, first)) == b"abcd"

    def test_read_body_refuses_a_first_message_over_the_limit(self) -> None:
        first = {"type": "http.request", "body": b"x" * 101, "more_body": False}
        with pytest.raises(BodyTooLarge):
            asyncio.run(read_body(self._receiver([]), 100, None, first))
        pieces = self._receiver([{"type": "http.request", "body": b"x" * 60, "more_body": False}])
        half = {**first, "body": b"x" * 50, "more_body": True}
        with pytest.raises(BodyTooLarge):
            asyncio.run(read_body(pieces, 100, None, half))

    def test_read_body_reports_a_client_that_left(self) -> None:
        with pytest.raises(ClientDisconnected):
            asyncio.run(read_body(self._receiver([]), 100, None, {"type": "http.disconnect"}))
