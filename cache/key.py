"""The cache key of a request: what makes two requests "the same".

One SHA-256 over, in order and each length-prefixed (so no two different inputs can run
together into the same bytes):

1. the organisation id — tenants never share an entry, whatever else they send alike;
2. the seed (``Helicone-Cache-Seed``; empty when absent);
3. the endpoint — for unified routes ``unified <endpoint>`` (``/chat/completions`` with or
   without ``/v1``: the same endpoint), for passthrough routes the method and the upstream
   URL as recorded (the base URL, path and query, with any key in the query replaced by a
   placeholder: see :func:`gateway.redact.redact_url`);
4. the body in canonical form: a JSON body re-encoded with sorted keys (at every level) and
   without the top-level keys of ``Helicone-Cache-Ignore-Keys``, so key order and spacing
   never split entries; any other body (not JSON, or too deep to re-encode) by its bytes.

The bucket index is then appended to the digest (``<digest>:<index>``), one key per slot.
Never part of the key: the raw body as such (a digest stands for it), any provider or gateway
key (``Authorization`` is not hashed: the organisation is the tenant, and a provider key in
a cache key would sit in Redis in clear), other headers. The ``stream`` flag is part of the
body, so a streamed and a whole request never share an entry.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

_VERSION = b"gateway-cache-v1"
UNPARSED: Any = object()
"""Marks "the caller did not parse the body" (a parsed body may be None: JSON null)."""


def canonical_body(body: bytes, ignore: frozenset[str], parsed: Any = UNPARSED) -> bytes:
    """``body`` in the form the key hashes (see the module docstring). ``parsed``: the body
    already parsed as JSON by the caller (spares a second parse)."""
    if parsed is UNPARSED:
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError:
            return b"raw:" + body
    if ignore and isinstance(parsed, dict):
        parsed = {name: value for name, value in parsed.items() if name not in ignore}
    try:
        return b"json:" + orjson.dumps(parsed, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # deeper than orjson writes: the bytes stand for it
        return b"raw:" + body


def request_digest(org_id: str, seed: str, endpoint: str, canonical: bytes) -> str:
    """The hex SHA-256 of one request's identity (slot keys append ``:<index>``)."""
    digest = hashlib.sha256()
    for part in (_VERSION, org_id.encode(), seed.encode(), endpoint.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def slot_keys(digest: str, bucket_size: int) -> tuple[str, ...]:
    """One key per bucket slot, slot 0 first."""
    return tuple(f"{digest}:{index}" for index in range(bucket_size))
