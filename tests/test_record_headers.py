"""HTTP headers in the request log: the redaction rule, the stored form, the body document,
and the journal / spill round trips of the capture fields that carry them.

The end-to-end side (a real gateway, the API, a cache hit) is tests/test_request_headers_e2e.py.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from logging_pipeline.bodies import LocalBodyStore, decode_bodies
from logging_pipeline.capture import Capture
from logging_pipeline.clickhouse import ChdbTransport
from logging_pipeline.estimate import TokenEstimator
from logging_pipeline.headers import (
    MAX_VALUE_CHARS,
    REDACTED,
    TRUNCATED,
    HeaderScrubber,
    is_secret_header,
    stored_headers,
)
from logging_pipeline.journal import JournalAppender, JournalReader
from logging_pipeline.query import BODY_REPLACED, bodies_of, helicone_request
from logging_pipeline.record import build_record
from logging_pipeline.writer import LogWriter
from providers.registry import Registry

ORG = "5d9f3c1e-7a2b-4c8d-9e0f-112233445566"

REQUEST_HEADERS = [
    (b"host", b"127.0.0.1:8080"),
    (b"authorization", b"Bearer sk-provider-secret"),
    (b"helicone-auth", b"Bearer sk-helicone-gateway-key"),
    (b"helicone-property-app", b"web"),
    (b"x-trace-note", b"caf\xe9"),  # latin-1: not UTF-8
    (b"accept", b"application/json"),
    (b"accept", b"text/plain"),
]
RESPONSE_HEADERS = (
    (b"Content-Type", b"application/json"),
    (b"x-request-id", b"req_123"),
    (b"Set-Cookie", b"session=abc; Path=/"),
    (b"x-ratelimit-remaining-tokens", b"149984"),
)


# --- the rule: one case per clause -----------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        # exact names
        "authorization", "Authorization", "proxy-authorization", "cookie", "set-cookie",
        "helicone-auth", "Helicone-Auth", "x-api-key", "api-key", "x-goog-api-key",
        "x-amz-security-token", "aws-access-key", "aws-secret-key", "aws-session-token",
        # containing api-key, secret, password, credential
        "x-portkey-api-key", "cf-access-client-secret", "x-db-password", "x-credentials-id",
        # ending in -key, -token, -auth, -authorization
        "ocp-apim-subscription-key", "x-auth-token", "x-csrf-token", "x-custom-auth",
        "x-upstream-authorization",
    ],
)  # fmt: skip
def test_credentials_are_secret(name: str) -> None:
    assert is_secret_header(name)


@pytest.mark.parametrize(
    "name",
    [
        # rate-limit headers count tokens, they are not tokens
        "x-ratelimit-remaining-tokens", "x-ratelimit-limit-tokens",
        "anthropic-ratelimit-input-tokens-remaining", "anthropic-ratelimit-tokens-reset",
        "x-ratelimit-reset-token", "x-rate-limit-key",
        # Helicone's own readable headers
        "helicone-property-app", "helicone-property-api-key", "helicone-session-id",
        "helicone-session-path", "helicone-user-id", "helicone-cache-enabled",
        # ordinary headers, including names that only contain "key"/"token"/"auth"
        "content-type", "x-request-id", "openai-organization", "x-keyword", "x-tokens-used",
        "author", "x-authority", "monkey",
    ],
)  # fmt: skip
def test_other_headers_stay_readable(name: str) -> None:
    assert not is_secret_header(name)


def test_stored_form() -> None:
    """Names lower-cased, values latin-1, repeats joined, secrets redacted, values bounded."""
    huge = b"x" * (MAX_VALUE_CHARS + 10)
    stored = stored_headers([*REQUEST_HEADERS, (b"X-Huge", huge)])
    assert stored == {
        "host": "127.0.0.1:8080",
        "authorization": REDACTED,
        "helicone-auth": REDACTED,
        "helicone-property-app": "web",
        "x-trace-note": "café",
        "accept": "application/json, text/plain",
        "x-huge": "x" * MAX_VALUE_CHARS + TRUNCATED,
    }
    assert list(stored) == [
        "host", "authorization", "helicone-auth", "helicone-property-app", "x-trace-note",
        "accept", "x-huge",
    ]  # fmt: skip
    assert stored_headers(RESPONSE_HEADERS) == {
        "content-type": "application/json",
        "x-request-id": "req_123",
        "set-cookie": REDACTED,
        "x-ratelimit-remaining-tokens": "149984",
    }
    # A repeated credential is one REDACTED, not one per copy; a long secret is not cut.
    assert stored_headers([(b"Cookie", b"a=1"), (b"cookie", b"b" * 9000)]) == {"cookie": REDACTED}
    assert stored_headers([]) is None and stored_headers(()) is None


# --- the body document -----------------------------------------------------------------------


def chat_capture(**changes: Any) -> Capture:
    capture = Capture(
        request_id=str(uuid.uuid4()),
        organization_id=ORG,
        api_key_id="k",
        path="/v1/chat/completions",
        provider="openai",
        request_model="gpt-4o-mini",
        request_body=b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}',
        status=200,
        response_body=(
            b'{"id":"c","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,'
            b'"message":{"role":"assistant","content":"hello"},"finish_reason":"stop"}],'
            b'"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4}}'
        ),
        request_headers=list(REQUEST_HEADERS),
        response_headers=RESPONSE_HEADERS,
    )
    for name, value in changes.items():
        setattr(capture, name, value)
    capture.finish()
    return capture


def document(capture: Capture, tmp_path: Path) -> dict[str, Any] | None:
    built = build_record(capture, Registry.load(), TokenEstimator(tmp_path))
    if built.document is None:
        return None
    parsed: dict[str, Any] = orjson.loads(built.document)
    return parsed


def test_one_pass_form_equals_the_rule_as_written() -> None:
    """The writer's one-pass :func:`stored_headers` (names remembered, values decoded once)
    gives exactly the object of the general rule (every value joined, then judged and bounded)
    for every small header list: repeats (of a credential too, in any case), long values at
    the bound, non-ASCII bytes, names seen before and fresh ones, bytearray names."""
    from itertools import product

    from logging_pipeline.headers import _stored_headers_joined

    pieces = [
        (b"Host", b"a"), (b"host", b"b"), (b"Authorization", b"Bearer k"),
        (b"X-Api-Key", b"k"), (b"x-note", b"caf\xe9"),
        (b"x-long", b"y" * MAX_VALUE_CHARS), (b"X-Long", b"z" * (MAX_VALUE_CHARS + 1)),
        (b"x-ratelimit-remaining-tokens", b"9"), (b"Empty", b""),
        (f"x-fresh-{uuid.uuid4().hex}".encode(), b"v"),
    ]  # fmt: skip
    cases: list[list[tuple[Any, bytes]]] = [[]]
    for size in (1, 2, 3):
        cases.extend(list(combo) for combo in product(pieces, repeat=size))
    cases.append([(bytearray(b"X-Mutable"), b"v"), (b"host", b"h")])
    for raw in cases:
        for _ in range(2):  # the name memo empty for fresh names, then filled
            fast = stored_headers(raw)
            assert fast == _stored_headers_joined(raw), raw
            assert fast is None or list(fast) == list(_stored_headers_joined(raw) or ())


def test_document_keeps_both_header_sets(tmp_path: Path) -> None:
    built = build_record(chat_capture(), Registry.load(), TokenEstimator(tmp_path))
    assert built.document is not None
    assert b"sk-provider-secret" not in built.document
    assert b"sk-helicone-gateway-key" not in built.document
    doc = orjson.loads(built.document)
    assert doc["request"]["messages"][0]["content"] == "hi"
    assert doc["request_headers"]["helicone-auth"] == REDACTED
    assert doc["request_headers"]["authorization"] == REDACTED
    assert doc["request_headers"]["helicone-property-app"] == "web"
    assert doc["response_headers"]["x-request-id"] == "req_123"
    assert doc["response_headers"]["set-cookie"] == REDACTED


def test_omit_flags_omit_the_headers_with_their_body(tmp_path: Path) -> None:
    doc = document(chat_capture(omit_request=True), tmp_path)
    assert doc is not None
    assert doc["request"] is None and doc["request_headers"] is None
    assert doc["response"]["id"] == "c" and doc["response_headers"]["x-request-id"] == "req_123"
    doc = document(chat_capture(omit_response=True), tmp_path)
    assert doc is not None
    assert doc["response"] is None and doc["response_headers"] is None
    assert doc["request_headers"]["helicone-property-app"] == "web"
    assert document(chat_capture(omit_request=True, omit_response=True), tmp_path) is None


def test_no_captured_headers_are_null(tmp_path: Path) -> None:
    """A logged call, or an error the gateway answered itself: nothing kept, said as null."""
    doc = document(chat_capture(request_headers=(), response_headers=()), tmp_path)
    assert doc is not None
    assert doc["request_headers"] is None and doc["response_headers"] is None


def test_api_shape_of_the_headers() -> None:
    row = {"request_id": str(uuid.uuid4()), "body_token": 7}
    stored = {
        "token": 7, "request": {"a": 1}, "response": None,
        "request_headers": {"x-a": "1"}, "response_headers": None,
    }  # fmt: skip
    out = helicone_request(row, bodies_of(row, stored))
    assert out["request_headers"] == {"x-a": "1"} and out["response_headers"] is None
    # A document from before headers were kept, none at all, or another request's (a reused
    # request id): no headers.
    older = bodies_of(row, {"token": 7, "request": {"a": 1}, "response": None})
    assert older["request_headers"] is None and older["response_headers"] is None
    assert bodies_of(row, None)["request_headers"] is None
    replaced = bodies_of(row, {**stored, "token": 8})
    assert replaced["request"] == dict(BODY_REPLACED) and replaced["request_headers"] is None
    # Without includeBody the row carries no header fields at all (nor any bodies).
    assert "request_headers" not in helicone_request(row)


# --- round trips: journal (pickle), spill (JSON), and the writer ----------------------------


def test_journal_round_trip_keeps_the_headers(tmp_path: Path) -> None:
    original = chat_capture()
    journal = JournalAppender(tmp_path / "journal")
    journal.append(original)
    reader = JournalReader.attach(journal.directory)
    assert reader is not None
    read, _ = reader.read(10)
    reader.close()
    journal.close()
    assert read == [original]
    assert read[0].request_headers == REQUEST_HEADERS
    assert read[0].response_headers == RESPONSE_HEADERS


def test_spill_json_round_trip_keeps_the_headers() -> None:
    original = chat_capture(response_headers=list(RESPONSE_HEADERS))
    data = orjson.loads(orjson.dumps(original.to_json()))
    assert data["request_headers"][4] == ["x-trace-note", "café"]  # latin-1 text
    assert Capture.from_json(data) == original
    # A record spilled before headers were kept reads with none.
    older = {k: v for k, v in data.items() if not k.endswith("_headers")}
    rebuilt = Capture.from_json(older)
    assert rebuilt.request_headers == [] and rebuilt.response_headers == []
    for bad in ("x", [["a"]], [["a", 1]], [["a", "\u20ac"]]):
        with pytest.raises(ValueError, match=r"request_headers|latin-1"):
            Capture.from_json({**data, "request_headers": bad})


async def test_writer_stores_redacted_headers(tmp_path: Path) -> None:
    """Journal -> writer -> body store, as the gateway runs them: the stored document has the
    headers, redacted; the provider key never reaches the store."""
    transport = ChdbTransport(tmp_path / "clickhouse")
    bodies = LocalBodyStore(tmp_path / "bodies")
    journal = JournalAppender(tmp_path / "journal")
    writer = LogWriter(
        transport, bodies, Registry.load(), tmp_path / "journal",
        own=journal.directory, flush_rows=1, flush_ms=20, max_backoff=0.3,
    )  # fmt: skip
    try:
        await writer.start()
        captured = chat_capture()
        journal.append(captured)
        for _ in range(500):
            if writer.counters.written:
                break
            await asyncio.sleep(0.02)
        await writer.close()
        blob = await bodies.get(ORG, captured.request_id)
        assert blob is not None
        stored = decode_bodies(blob)
        assert stored["request_headers"]["authorization"] == REDACTED
        assert stored["request_headers"]["x-trace-note"] == "café"
        assert stored["response_headers"]["set-cookie"] == REDACTED
        assert stored["response_headers"]["content-type"] == "application/json"
    finally:
        journal.close()
        await transport.close()


def test_scrubber_redacts_credentials_before_the_journal(tmp_path: Path) -> None:
    raw = [
        (b"host", b"gw"),
        (b"authorization", b"Bearer sk-provider-CRED1"),
        (b"helicone-auth", b"Bearer sk-gateway-CRED2"),
        (b"aws-secret-key", b"aws-CRED3"),
        (b"helicone-property-team", b"search"),
        (b"x-ratelimit-remaining-tokens", b"42"),
    ]
    scrubber = HeaderScrubber()
    for _ in range(2):  # the second time from the remembered names
        scrubbed = scrubber.scrub(raw)
        assert scrubbed == [
            (b"host", b"gw"),
            (b"authorization", REDACTED.encode()),
            (b"helicone-auth", REDACTED.encode()),
            (b"aws-secret-key", REDACTED.encode()),
            (b"helicone-property-team", b"search"),
            (b"x-ratelimit-remaining-tokens", b"42"),
        ]
    assert raw[1] == (b"authorization", b"Bearer sk-provider-CRED1")  # the server's, untouched
    clean = [(b"host", b"gw"), (b"accept", b"*/*")]
    assert scrubber.scrub(clean) is clean  # nothing to hide: no copy

    capture = chat_capture()
    capture.request_headers = scrubber.scrub(raw)
    journal = JournalAppender(tmp_path / "journal")
    journal.append(capture)
    journal.close()
    on_disk = b"".join(p.read_bytes() for p in (tmp_path / "journal").rglob("*") if p.is_file())
    assert b"search" in on_disk  # the headers are there...
    assert b"CRED" not in on_disk  # ...but no credential


def test_scrubber_remembers_a_bounded_number_of_names() -> None:
    scrubber = HeaderScrubber()
    for n in range(HeaderScrubber.MAX_NAMES + 50):
        scrubber.scrub([(f"x-custom-{n}".encode(), b"v"), (f"x-{n}-api-key".encode(), b"k")])
    assert len(scrubber._secret) == HeaderScrubber.MAX_NAMES
    assert scrubber.scrub([(b"x-9999-api-key", b"k")]) == [(b"x-9999-api-key", b"REDACTED")]
