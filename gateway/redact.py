"""Remove credentials from a URL before it is stored (the request log's ``target_url``).

Providers and signed URLs carry secrets in the query string (Gemini's ``key=``, ``api-key``,
``access_token``, SAS ``sig``, AWS ``X-Amz-Signature``/``-Credential``/``-Security-Token``)
and sometimes in the userinfo (``user:pw@``). The stored URL keeps every other parameter, in
order and byte for byte, so it still says what was called; a credential's value becomes
``REDACTED`` and userinfo is dropped.

A parameter is a credential when its name, percent-decoded, lower-cased and with ``-``
read as ``_``, is one of :data:`_EXACT` or contains one of :data:`_FRAGMENTS`. Cost: one
substring test for a URL with neither ``?`` nor ``@``; otherwise a split of the query.

Headers kept in the log are redacted by the log writer with the rule of
:func:`logging_pipeline.headers.is_secret_header` (there because ``logging_pipeline`` does
not import ``gateway``; the same ``REDACTED`` word).
"""

from __future__ import annotations

from urllib.parse import unquote

REDACTED = "REDACTED"

_EXACT = frozenset({"sig", "code", "pwd", "pass"})
_FRAGMENTS = (
    "key",
    "token",
    "secret",
    "signature",
    "password",
    "passwd",
    "credential",
    "auth",
    "session",
)


def is_secret_parameter(name: str) -> bool:
    """True when a query parameter called ``name`` carries a credential."""
    normal = unquote(name).strip().lower().replace("-", "_")
    return normal in _EXACT or any(fragment in normal for fragment in _FRAGMENTS)


def redact_url(url: str) -> str:
    """``url`` (absolute, or a path with a query) with userinfo and query credentials removed."""
    if "?" not in url and "@" not in url:
        return url
    head, sep, query = url.partition("?")
    query, hash_sep, fragment = query.partition("#")
    scheme, scheme_sep, rest = head.partition("://")
    if scheme_sep:
        authority, slash, path = rest.partition("/")
        head = f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
    if not sep:
        return head
    parts = []
    for part in query.split("&"):
        name, equals, _ = part.partition("=")
        parts.append(f"{name}={REDACTED}" if equals and is_secret_parameter(name) else part)
    redacted = f"{head}?{'&'.join(parts)}"
    return f"{redacted}#{fragment}" if hash_sep else redacted
