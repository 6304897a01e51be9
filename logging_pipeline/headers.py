"""HTTP headers as the request log stores them: readable, bounded, credentials redacted.

The request path keeps headers by reference only (the server's ``scope["headers"]``, the
provider's ``raw_headers``: lists of ``(bytes, bytes)``), since copying or decoding them there
would cost every request. The writer turns them into the body document's
``request_headers`` / ``response_headers`` objects with :func:`stored_headers`: names
lower-cased, values decoded as latin-1 (what HTTP/1.1 header bytes are), repeated names joined
with ``", "`` (RFC 9110 §5.3), each value cut at :data:`MAX_VALUE_CHARS`, and a credential's
value replaced by :data:`REDACTED`.

Which headers are credentials is :func:`is_secret_header`'s one rule (unit-tested per
clause); the URL counterpart is :func:`gateway.redact.redact_url` (this package does not
import ``gateway``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

REDACTED = "REDACTED"
"""What a credential's value becomes (the same word ``gateway.redact`` writes into URLs)."""
MAX_VALUE_CHARS = 4096
"""A stored value's bound: a longer one is cut here and :data:`TRUNCATED` appended, so one
huge header cannot bloat the body store."""
TRUNCATED = "…[truncated]"

_EXACT = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "helicone-auth",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "x-amz-security-token",
        "aws-access-key",
        "aws-secret-key",
        "aws-session-token",
    }
)
_FRAGMENTS = ("api-key", "secret", "password", "credential")
_SUFFIXES = ("-key", "-token", "-auth", "-authorization")
_RATE_LIMIT = ("ratelimit", "rate-limit")
"""Rate-limit headers (``x-ratelimit-remaining-tokens``, ``anthropic-ratelimit-input-tokens-
reset``…) count tokens, they are not tokens: never redacted by a suffix."""
_PROPERTY = "helicone-property-"
"""A custom property: its value is stored readable in the ``properties`` column anyway."""


def is_secret_header(name: str) -> bool:
    """True when a header called ``name`` (any case) carries a credential.

    Exact names (``authorization``, ``cookie``, ``helicone-auth``, AWS's credential headers…),
    then any name containing ``api-key``, ``secret``, ``password`` or ``credential``, or
    ending in ``-key``, ``-token``, ``-auth`` or ``-authorization`` — except rate-limit
    headers and ``Helicone-Property-*``, which stay readable.
    """
    lower = name.strip().lower()
    if lower in _EXACT:
        return True
    if lower.startswith(_PROPERTY) or any(part in lower for part in _RATE_LIMIT):
        return False
    return any(part in lower for part in _FRAGMENTS) or lower.endswith(_SUFFIXES)


def _bounded(value: str) -> str:
    if len(value) <= MAX_VALUE_CHARS:
        return value
    return value[:MAX_VALUE_CHARS] + TRUNCATED


def stored_headers(raw: Sequence[tuple[bytes, bytes]]) -> dict[str, str] | None:
    """The object the body document keeps for ``raw`` headers; None when there are none
    (a logged call, an answer the gateway made itself, a capture from an older version).

    Runs twice per logged request in the writer, so the usual case is one pass: each raw
    name's lower-cased key and credential verdict come from :func:`_name_verdict` (names repeat
    from request to request), each value is decoded once. A name that occurs twice, or one
    that is not hashable bytes, takes :func:`_stored_headers_joined`, the general rule —
    the same object either way (``tests/test_record_headers.py`` compares them).
    """
    out: dict[str, str] = {}
    verdict = _name_verdict
    try:
        for name, value in raw:
            key, secret = verdict(name)
            if key in out:
                return _stored_headers_joined(raw)
            if secret:
                out[key] = REDACTED
            else:
                text = str(value, "latin-1")
                out[key] = text if len(text) <= MAX_VALUE_CHARS else _bounded(text)
    except TypeError:  # an unhashable name (a bytearray): not from a server or a journal
        return _stored_headers_joined(raw)
    return out or None


@functools.lru_cache(maxsize=4096)
def _name_verdict(name: bytes) -> tuple[str, bool]:
    """A raw header name's stored key and whether it is a credential, for
    :func:`stored_headers`: remembered (names repeat; a client inventing names only evicts
    the least recently used). An unhashable name raises ``TypeError``."""
    key = bytes(name).decode("latin-1").lower()
    return key, is_secret_header(key)


def _stored_headers_joined(raw: Sequence[tuple[bytes, bytes]]) -> dict[str, str] | None:
    """:func:`stored_headers` by the rule as written: repeated names joined with ``", "``."""
    values: dict[str, list[str]] = {}
    for name, value in raw:
        key = bytes(name).decode("latin-1").lower()
        values.setdefault(key, []).append(bytes(value).decode("latin-1"))
    if not values:
        return None
    return {
        name: REDACTED if is_secret_header(name) else _bounded(", ".join(parts))
        for name, parts in values.items()
    }


class HeaderScrubber:
    """Credentials out of a request's raw headers *before* they are journaled.

    The capture is written into the on-disk journal in the request path, and a client's
    ``Authorization`` or ``Helicone-Auth`` must never be written there (nor reach a spill
    file): :meth:`scrub` gives the headers with each credential's value replaced by
    :data:`REDACTED`, copying the list only when there is one. Header names repeat from
    request to request, so :func:`is_secret_header`'s answer is remembered per raw name (at
    most :data:`MAX_NAMES`; past that, names are judged each time): about a dictionary
    lookup per header. The writer still applies :func:`stored_headers`, the full rule, to
    everything it stores.
    """

    MAX_NAMES = 1024

    def __init__(self) -> None:
        self._secret: dict[bytes, bool] = {}

    def scrub(self, raw: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        out = raw
        known = self._secret
        for index, (name, _) in enumerate(raw):
            secret = known.get(name)
            if secret is None:
                secret = is_secret_header(bytes(name).decode("latin-1"))
                if len(known) < self.MAX_NAMES:
                    known[bytes(name)] = secret
            if secret:
                if out is raw:
                    out = list(raw)
                out[index] = (name, _REDACTED_BYTES)
        return out


_REDACTED_BYTES = REDACTED.encode("ascii")
