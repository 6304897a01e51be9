"""AWS credentials for Bedrock, and signing a request with them (SigV4, the gateway's own).

A Bedrock credential travels through the gateway as one string, like every other provider
key (``<PREFIX>_API_KEY``, a BYOK key, a client's own key), in one of three forms:

* ``ACCESS_KEY_ID:SECRET_ACCESS_KEY`` or ``ACCESS_KEY_ID:SECRET_ACCESS_KEY:SESSION_TOKEN``
  (AWS key ids, secrets and session tokens never contain ``:``);
* the JSON object ``{"accessKeyId": …, "secretAccessKey": …, "sessionToken": …}`` (the
  spelling of AWS's own SDKs and ``credential_process``);
* anything else: a Bedrock API key, sent as ``Authorization: Bearer`` with no signature.

Signing follows AWS Signature Version 4 as botocore's ``SigV4Auth`` applies it to a non-S3
service (``bedrock``), over the exact URL and body that are then sent:

* the canonical URI is the URL's path with dot segments and empty segments removed, then
  percent-encoded once more (everything but unreserved characters and ``/``): a path the
  gateway already encoded (a model id's ``:`` as ``%3A``) is signed as ``%253A``, which is
  what AWS expects of every service but S3;
* the canonical query string is the URL's ``name=value`` pairs sorted, as they are written;
* the signed headers are ``host`` (the URL's, lower-case, without a default port),
  ``x-amz-date``, ``x-amz-security-token`` for temporary credentials, and the few the request
  depends on (``content-type``, ``x-amzn-bedrock-*``), values trimmed and inner runs of
  whitespace folded; headers the HTTP client adds on the way (``accept-encoding``,
  ``content-length``) are left out so they cannot invalidate the signature;
* the payload hash is the body's SHA-256 (no ``x-amz-content-sha256`` header: botocore sends
  none for Bedrock).

botocore's signer, which the gateway used before, costs several times more per request (an
``AWSRequest`` with ``email.message`` headers, ~570 small Python calls, five HMACs), and was
most of what a translated Bedrock request cost over an OpenAI one (``python -m bench.sigv4``
times both). Tests compare this one's every signed header, byte for byte, with botocore's
``SigV4Auth`` over many random requests (model ids with ``:`` and ``/``, ARNs, queries,
session tokens, regions, ports, bodies) and with a real boto3 client's request, check it with
AWS's test suite (vanilla GET and POST), and the emulator verifies each signature with
botocore.

A :class:`Signer` (one per gateway process, owned by the runtime) keeps, in bounded caches:

* each credential string's parsed identity;
* the *signing key*: four of SigV4's five HMACs derive it from the secret, the date, the
  region and the service — the same all day for one identity — so only the last HMAC, over
  the string to sign, is computed per request, from copies of hash states already keyed with
  it (keying costs as much as the rest of that HMAC: OpenSSL 3 looks SHA-256 up each time;
  :class:`_SigningKey`), and with it the credential scope and the ``authorization`` header's
  start;
* each URL's ``host`` value, canonical path and canonical query (a gateway sends a handful);
* for each method, URL, header set and session token, the canonical request around its two
  varying parts (the date and the payload hash) and the headers to send: per request, the
  canonical request is four strings joined;
* the ``x-amz-date`` text of the current second.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from _hashlib import HASH

SERVICE = "bedrock"
"""The SigV4 service name of the Bedrock runtime API (its host says ``bedrock-runtime``)."""

ALGORITHM = "AWS4-HMAC-SHA256"
_SIGNED = "content-type"
_SIGNED_PREFIX = "x-amzn-bedrock-"
_DEFAULT_PORTS = {"http": 80, "https": 443}
_BLOCK = 64
"""SHA-256's block size: HMAC's key is padded to it."""

CACHE_SIZE = 256
"""Entries per cache of a :class:`Signer`: identities, signing keys, URLs. A gateway signs
for a handful of identities, regions and models; the bound only matters against a flood of
distinct client credentials or paths (passthrough), which then costs what it cost without
the cache."""


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    """One AWS identity (the secret and the token are left out of ``repr``)."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def parse(cls, key: str) -> AwsCredentials | None:
        """The credentials a key string holds; None when it is a Bedrock API key instead."""
        key = key.strip()
        if key.startswith("{"):
            try:
                data = json.loads(key)
            except ValueError:
                return None
            if not isinstance(data, dict):
                return None
            access, secret = data.get("accessKeyId"), data.get("secretAccessKey")
            token = data.get("sessionToken")
            if isinstance(access, str) and isinstance(secret, str) and access and secret:
                return cls(access, secret, token if isinstance(token, str) and token else None)
            return None
        parts = key.split(":")
        if len(parts) in (2, 3) and all(parts):
            return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)
        return None

    def encode(self) -> str:
        """The ``ACCESS:SECRET[:TOKEN]`` form (what :meth:`parse` reads back)."""
        token = f":{self.session_token}" if self.session_token else ""
        return f"{self.access_key_id}:{self.secret_access_key}{token}"


_UNPARSED = AwsCredentials("", "")
"""What :meth:`Signer.parse` finds for a key string it has not seen (no real key parses so)."""

K = TypeVar("K")
V = TypeVar("V")


class _Bounded(dict[K, V]):
    """A dict of at most ``size`` entries: :meth:`put` drops the oldest when a new one would
    overflow it. A dict itself, so that a lookup (three a signature) is the dict's own ``get``,
    not a Python method around it."""

    __slots__ = ("_size",)

    def __init__(self, size: int) -> None:
        super().__init__()
        self._size = size

    def put(self, key: K, value: V) -> V:
        if len(self) >= self._size and key not in self:
            del self[next(iter(self))]
        self[key] = value
        return value


@dataclass(frozen=True, slots=True)
class _Target:
    """What a signature takes from a URL, derived once per URL."""

    host: str
    """The ``host`` header's value: lower-case, ``[…]`` around IPv6, a non-default port."""
    path: str
    """The canonical URI."""
    query: str
    """The canonical query string."""

    @classmethod
    def of(cls, url: str) -> _Target:
        """The URL's parts as botocore's signer derives them (``urlsplit``, then SigV4's
        canonical forms)."""
        parts = urlsplit(url)
        host = parts.hostname or ""  # lower-case, without brackets or user info
        if ":" in host:  # only an IPv6 literal (bracketed in the URL) has colons
            host = f"[{host}]"
        port = parts.port
        if port is not None and port != _DEFAULT_PORTS.get(parts.scheme):
            host = f"{host}:{port}"
        path = quote(_remove_dot_segments(parts.path) if parts.path else "/", safe="/~")
        pairs = sorted(pair.partition("=")[::2] for pair in parts.query.split("&"))
        query = "&".join(f"{name}={value}" for name, value in pairs) if parts.query else ""
        return cls(host, path, query)


@dataclass(frozen=True, slots=True)
class _Canonical:
    """The parts of a signature fixed by the method, URL, headers and session token: all of
    the canonical request but the date and the payload hash, the signed-header list, and the
    headers sent (lower-case, a client's own ``authorization`` and ``x-amz-*`` left out)."""

    head: str
    """The canonical request up to the ``x-amz-date`` header's value."""
    tail: str
    """From the end of that value up to the payload hash."""
    signed: str
    """``SignedHeaders``: the signed names, sorted, ``;``-separated."""
    headers: dict[str, str]
    """What is sent before the SigV4 headers (copied per request, never changed)."""

    @classmethod
    def of(
        cls, method: str, target: _Target, headers: Mapping[str, str], token: str | None
    ) -> _Canonical:
        sent: dict[str, str] = {}
        to_sign = {"host": target.host}
        for name, value in headers.items():
            lower = name.lower()
            if lower == "authorization" or lower.startswith("x-amz-"):
                continue
            sent[lower] = value
            if lower == _SIGNED or lower.startswith(_SIGNED_PREFIX):
                to_sign[lower] = value
        to_sign["x-amz-date"] = ""
        if token:
            to_sign["x-amz-security-token"] = token
        names = sorted(to_sign)
        lines = [f"{name}:{' '.join(to_sign[name].split())}\n" for name in names]
        at = names.index("x-amz-date")
        signed = ";".join(names)
        head = f"{method.upper()}\n{target.path}\n{target.query}\n" + "".join(lines[:at])
        tail = "".join(lines[at + 1 :])
        return cls(head + "x-amz-date:", f"\n{tail}\n{signed}\n", signed, sent)


@dataclass(frozen=True, slots=True)
class _SigningKey:
    """One identity's signing key for a day, region and service, with the scope and the
    start of the ``authorization`` header that they fix.

    The key is kept as HMAC-SHA256's two keyed hash states (RFC 2104: SHA-256 over the key,
    zero-padded to the 64-byte block, XOR ``0x36`` — inner — or ``0x5c`` — outer), so the
    signature is ``outer(inner(string to sign))`` from copies of them: four C calls on
    hashlib objects, where ``hmac.HMAC.copy``, ``update`` and ``hexdigest`` add a Python
    frame each around OpenSSL's heavier MAC context (measured in the bench's loop, where the
    signature runs cold: ~3 µs less a request). Every signature is still compared with
    botocore's (tests/test_bedrock_signing.py)."""

    inner: HASH
    """SHA-256 after the key XOR ``ipad`` block: copied per signature, never updated."""
    outer: HASH
    """SHA-256 after the key XOR ``opad`` block: copied per signature, never updated."""
    scope: str
    """The credential scope (``date/region/service/aws4_request``)."""
    credential: str
    """The ``authorization`` header up to ``SignedHeaders=``."""


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 §5.2.4 dot-segment removal, with empty segments (``//``) dropped as well, as
    AWS's canonical URI wants (a trailing ``/`` is kept when anything is left)."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and segments else ""
    return first + "/".join(segments) + last


def _hmac(key: bytes, message: str) -> bytes:
    """One HMAC-SHA256 of the signing-key derivation (once per identity, day and region)."""
    return hmac.digest(key, message.encode(), "sha256")


class Signer:
    """Signs Bedrock requests (SigV4), with the caches described in the module doc. One per
    process (``Runtime.signer``): nothing in it is per request.

    ``clock`` gives the time in seconds since the epoch (tests pass a fixed one)."""

    __slots__ = ("_canonicals", "_clock", "_keys", "_parsed", "_sha256", "_stamp", "_targets")

    def __init__(self, size: int = CACHE_SIZE, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._parsed: _Bounded[str, AwsCredentials | None] = _Bounded(size)
        self._keys: _Bounded[tuple[str, str, str, str, str], _SigningKey] = _Bounded(size)
        self._targets: _Bounded[str, _Target] = _Bounded(size)
        self._canonicals: _Bounded[
            tuple[str, str, tuple[tuple[str, str], ...], str | None], _Canonical
        ] = _Bounded(size)
        self._sha256 = hashlib.sha256()
        """An empty SHA-256 state, copied for each hash (OpenSSL 3 looks the algorithm up
        for every ``hashlib.sha256()``; a copy does not)."""
        self._stamp: tuple[int, str] = (-1, "")
        """The last second signed in, and its ``x-amz-date`` text (one tuple: replaced
        whole, never read half-updated)."""

    @property
    def cached_signing_keys(self) -> int:
        """How many derived signing keys are cached (one per identity, day, region, service)."""
        return len(self._keys)

    def parse(self, key: str) -> AwsCredentials | None:
        """:meth:`AwsCredentials.parse`, remembered per key string."""
        parsed = self._parsed.get(key, _UNPARSED)
        if parsed is _UNPARSED:
            parsed = self._parsed.put(key, AwsCredentials.parse(key))
        return parsed

    def _new_stamp(self, second: int) -> str:
        """``second`` as ``YYYYMMDDTHHMMSSZ`` (UTC), remembered as the current second's
        ``x-amz-date`` (:meth:`signed_headers` formats a date once per second)."""
        self._stamp = (second, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second)))
        return self._stamp[1]

    def _signing_key(
        self, credentials: AwsCredentials, date: str, region: str, service: str
    ) -> _SigningKey:
        """SigV4's derived key for ``credentials`` on ``date`` in ``region`` (the HMAC chain
        over the date, region, service and terminator, ready keyed), with its scope."""
        cache_key = (credentials.access_key_id, credentials.secret_access_key, date, region,
                     service)  # fmt: skip
        found = self._keys.get(cache_key)
        if found is None:
            key = _hmac(f"AWS4{credentials.secret_access_key}".encode(), date)
            for part in (region, service, "aws4_request"):
                key = _hmac(key, part)
            scope = f"{date}/{region}/{service}/aws4_request"
            credential = f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
            block = key.ljust(_BLOCK, b"\0")  # the key is a SHA-256 digest: never longer
            inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
            outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in block))
            found = self._keys.put(cache_key, _SigningKey(inner, outer, scope, credential))
        return found

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            target = self._targets.put(url, _Target.of(url))
        return target

    def signed_headers(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        credentials: AwsCredentials,
        region: str,
        service: str = SERVICE,
    ) -> dict[str, str]:
        """``headers`` plus the SigV4 ones (``authorization``, ``x-amz-date``, and
        ``x-amz-security-token`` with a session token), all names lower-case.

        ``url`` must be the URL exactly as it will be sent (its path encoding included): the
        signature covers it. Any ``authorization`` or ``x-amz-*`` header in ``headers`` (a
        client's own signature) is replaced.
        """
        token = credentials.session_token
        request = (method, url, tuple(headers.items()), token)
        fixed = self._canonicals.get(request)
        if fixed is None:
            fixed = self._canonicals.put(
                request, _Canonical.of(method, self._target(url), headers, token)
            )
        out = fixed.headers.copy()
        second = int(self._clock())
        stamp = self._stamp
        amz_date = stamp[1] if stamp[0] == second else self._new_stamp(second)
        out["x-amz-date"] = amz_date
        if token:
            out["x-amz-security-token"] = token
        sha256 = self._sha256.copy()  # a copy, not hashlib.sha256(): no digest lookup
        sha256.update(body)
        canonical = fixed.head + amz_date + fixed.tail + sha256.hexdigest()
        sha256 = self._sha256.copy()
        sha256.update(canonical.encode())
        digest = sha256.hexdigest()
        date = amz_date[:8]
        signing = self._keys.get(
            (credentials.access_key_id, credentials.secret_access_key, date, region, service)
        ) or self._signing_key(credentials, date, region, service)
        inner = signing.inner.copy()
        inner.update(f"{ALGORITHM}\n{amz_date}\n{signing.scope}\n{digest}".encode())
        outer = signing.outer.copy()
        outer.update(inner.digest())
        out["authorization"] = (
            f"{signing.credential}SignedHeaders={fixed.signed}, Signature={outer.hexdigest()}"
        )
        return out

    def auth_headers(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str],
        body: bytes,
        key: str,
        region: str,
    ) -> dict[str, str]:
        """``headers`` with the credential of ``key`` (any of the forms in the module doc):
        signed for AWS credentials, ``Authorization: Bearer`` for a Bedrock API key."""
        credentials = self._parsed.get(key, _UNPARSED)  # self.parse(key), inline
        if credentials is _UNPARSED:
            credentials = self.parse(key)
        if credentials is not None:
            return self.signed_headers(method, url, headers, body, credentials, region)
        out = {
            name.lower(): value
            for name, value in headers.items()
            if name.lower() != "authorization" and not name.lower().startswith("x-amz-")
        }
        out["authorization"] = f"Bearer {key.strip()}"
        return out


def signed_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: AwsCredentials,
    region: str,
    service: str = SERVICE,
) -> dict[str, str]:
    """:meth:`Signer.signed_headers` with nothing cached (a one-off signature)."""
    return Signer().signed_headers(method, url, headers, body, credentials, region, service)


def auth_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    key: str,
    region: str,
) -> dict[str, str]:
    """:meth:`Signer.auth_headers` with nothing cached (a one-off request)."""
    return Signer().auth_headers(method, url, headers, body, key, region)
