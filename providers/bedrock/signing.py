"""AWS credentials for Bedrock, and signing a request with them (SigV4, through botocore).

A Bedrock credential travels through the gateway as one string, like every other provider
key (``<PREFIX>_API_KEY``, a BYOK key, a client's own key), in one of three forms:

* ``ACCESS_KEY_ID:SECRET_ACCESS_KEY`` or ``ACCESS_KEY_ID:SECRET_ACCESS_KEY:SESSION_TOKEN``
  (AWS key ids, secrets and session tokens never contain ``:``);
* the JSON object ``{"accessKeyId": …, "secretAccessKey": …, "sessionToken": …}`` (the
  spelling of AWS's own SDKs and ``credential_process``);
* anything else: a Bedrock API key, sent as ``Authorization: Bearer`` with no signature.

Signing is botocore's :class:`~botocore.auth.SigV4Auth` over a
:class:`~botocore.awsrequest.AWSRequest` of the exact URL and body that are then sent: the
canonical request, the string to sign and the signature are botocore's. Only the headers that
must be (``host``, ``x-amz-date``, the session token) and the few the request depends on
(``content-type``, ``x-amzn-bedrock-*``) are signed, so that headers the HTTP client adds on
the way (``accept-encoding``, ``content-length``) cannot invalidate the signature.

A :class:`Signer` (one per gateway process, owned by the runtime) makes that cheap enough for
every request (budget: ``python -m bench.sigv4``, p50 ≤ 100 µs; a plain ``SigV4Auth`` costs
about twice that, in ~570 small Python calls). It keeps, in bounded caches:

* each credential string's parsed identity (and botocore's ``Credentials`` for it);
* the *signing key*: four of SigV4's five HMACs derive it from the secret, the date, the
  region and the service — the same all day for one identity — so only the last HMAC, over
  the string to sign, is computed per request (:class:`_CachedKeySigV4Auth`);
* each endpoint's ``host`` value, which botocore would otherwise derive from the URL (parsed
  twice, with an IPv6 check) on every signature, and each path's canonical form.

It also spares botocore's signer work that does not change the signature: the request's
headers are a plain dict with lower-case names instead of an ``email.message`` object
(:class:`_Headers`), the map of headers to sign is made once per signature instead of twice
(for the canonical request, then for the ``SignedHeaders`` of the ``Authorization`` header),
and the body is read without "preparing" the whole request (headers copied, length computed).
Tests check the signatures against botocore's plain signer and AWS's test suite.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from botocore.auth import SIGNED_HEADERS_BLACKLIST, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SERVICE = "bedrock"
"""The SigV4 service name of the Bedrock runtime API (its host says ``bedrock-runtime``)."""

_SIGNED = ("content-type",)
_SIGNED_PREFIX = "x-amzn-bedrock-"
_HEADER_MAP = "gateway.headers_to_sign"
"""Where :class:`_CachedKeySigV4Auth` keeps a request's header map in ``request.context``."""

CACHE_SIZE = 256
"""Entries per cache of a :class:`Signer`: identities, signing keys, hosts. A gateway signs
for a handful of identities and regions; the bound only matters against a flood of distinct
client credentials (passthrough), which then costs what it cost without the cache."""


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


class _Bounded(Generic[K, V]):
    """A dict of at most ``size`` entries; the oldest goes when a new one would overflow it."""

    __slots__ = ("_data", "_size")

    def __init__(self, size: int) -> None:
        self._data: dict[K, V] = {}
        self._size = size

    def get(self, key: K, default: V | None = None) -> V | None:
        return self._data.get(key, default)

    def put(self, key: K, value: V) -> V:
        data = self._data
        if len(data) >= self._size and key not in data:
            del data[next(iter(data))]
        data[key] = value
        return value

    def __len__(self) -> int:
        return len(self._data)


@dataclass(frozen=True, slots=True)
class _Identity:
    """What signing needs of one :class:`AwsCredentials`, made once."""

    credentials: Credentials
    secret_digest: bytes
    """SHA-256 of the secret: the signing-key cache's key names the secret without holding it."""


class _Headers(dict[str, str]):
    """A request's headers with case-insensitive names, kept lower-case: what botocore's
    signer does with ``request.headers`` (``in``, get, set, delete, ``items``) without the
    cost of the ``email.message`` object ``AWSRequest`` uses (its every lookup lower-cases and
    re-sanitises all headers)."""

    __slots__ = ()

    def __setitem__(self, name: str, value: str) -> None:
        super().__setitem__(name.lower(), value)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __delitem__(self, name: str) -> None:
        super().__delitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return super().__contains__(name.lower() if isinstance(name, str) else name)

    def get(self, name: str, default: Any = None) -> Any:
        return super().get(name.lower(), default)


class _HeaderMap(dict[str, str]):
    """The headers to sign, lower-case names to values (one value each: :class:`_Headers`
    holds no repeated name), with the one ``HTTPHeaders`` method botocore's canonical form
    reads them through."""

    __slots__ = ()

    def get_all(self, name: str, failobj: Any = None) -> Any:
        value = self.get(name)
        return failobj if value is None else [value]


class _BytesRequest(AWSRequest):  # type: ignore[misc]  # botocore is untyped
    """An :class:`AWSRequest` with :class:`_Headers`, whose body is always the bytes it was
    made with.

    ``AWSRequest.body`` runs the whole request preparation (a copy of the headers, the
    content length) to return the body, which for ``bytes`` data is that data unchanged; the
    signer reads it once per signature for the payload hash."""

    def __init__(self, method: str, url: str, data: bytes, headers: _Headers) -> None:
        super().__init__(method=method, url=url, data=data)
        self.headers = headers

    @property
    def body(self) -> bytes:
        data: bytes = self.data
        return data


class _CachedKeySigV4Auth(SigV4Auth):  # type: ignore[misc]  # botocore is untyped
    """botocore's SigV4 signer with the derived signing key cached, and the header map to
    sign built once per request instead of twice.

    Everything that depends on the request — the canonical request, the string to sign, the
    final HMAC — is botocore's own code, run per request; only the derivation of the signing
    key from (secret, date, region, service), which depends on none of it, is reused."""

    def __init__(
        self,
        identity: _Identity,
        service_name: str,
        region_name: str,
        keys: _Bounded[tuple[bytes, str, str, str], bytes],
        paths: _Bounded[str, str],
    ) -> None:
        super().__init__(identity.credentials, service_name, region_name)
        self._digest = identity.secret_digest
        self._keys = keys
        self._paths = paths

    def _normalize_url_path(self, path: str) -> str:
        """botocore's canonical form of a URL path (dot segments resolved, percent-encoded),
        remembered: it depends on the path alone, and a gateway sends a handful of paths."""
        canonical = self._paths.get(path)
        if canonical is None:
            canonical = self._paths.put(path, super()._normalize_url_path(path))
        return canonical

    def headers_to_sign(self, request: Any) -> Any:
        """botocore's selection (every header but its unsigned list, and ``host``), made once
        per request as a :class:`_HeaderMap`. The names are lower-case already
        (:class:`_Headers`); without a ``host`` header (an endpoint not seen before),
        botocore's own method derives it from the URL."""
        context = request.context
        headers: _HeaderMap | None = context.get(_HEADER_MAP)
        if headers is None:
            if "host" in request.headers:
                headers = _HeaderMap(
                    (name, value)
                    for name, value in request.headers.items()
                    if name not in SIGNED_HEADERS_BLACKLIST
                )
            else:
                headers = _HeaderMap(
                    (name, value) for name, value in super().headers_to_sign(request).items()
                )
            context[_HEADER_MAP] = headers
        return headers

    def signature(self, string_to_sign: str, request: Any) -> str:
        date = request.context["timestamp"][0:8]
        cache_key = (self._digest, date, self._region_name, self._service_name)
        k_signing = self._keys.get(cache_key)
        if k_signing is None:
            # SigV4's key derivation: HMAC chain over the date, region, service, terminator.
            secret = self.credentials.secret_key
            k_date = self._sign(f"AWS4{secret}".encode(), date)
            k_region = self._sign(k_date, self._region_name)
            k_service = self._sign(k_region, self._service_name)
            k_signing = self._keys.put(cache_key, self._sign(k_service, "aws4_request"))
        signature: str = self._sign(k_signing, string_to_sign, hex=True)
        return signature


class Signer:
    """Signs Bedrock requests (SigV4 through botocore), with the caches described in the
    module doc. One per process (``Runtime.signer``): nothing in it is per request."""

    __slots__ = ("_hosts", "_identities", "_keys", "_parsed", "_paths")

    def __init__(self, size: int = CACHE_SIZE) -> None:
        self._paths: _Bounded[str, str] = _Bounded(size)
        self._parsed: _Bounded[str, AwsCredentials | None] = _Bounded(size)
        self._identities: _Bounded[AwsCredentials, _Identity] = _Bounded(size)
        self._keys: _Bounded[tuple[bytes, str, str, str], bytes] = _Bounded(size)
        self._hosts: _Bounded[str, str] = _Bounded(size)

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

    def _identity(self, credentials: AwsCredentials) -> _Identity:
        identity = self._identities.get(credentials)
        if identity is None:
            secret = credentials.secret_access_key
            identity = self._identities.put(
                credentials,
                _Identity(
                    Credentials(credentials.access_key_id, secret, credentials.session_token),
                    hashlib.sha256(secret.encode()).digest(),
                ),
            )
        return identity

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
        out: dict[str, str] = {}
        to_sign = _Headers()
        for name, value in headers.items():
            lower = name.lower()
            if lower == "authorization" or lower.startswith("x-amz-"):
                continue
            out[lower] = value
            if lower in _SIGNED or lower.startswith(_SIGNED_PREFIX):
                to_sign[lower] = value
        origin = _origin(url)
        host = self._hosts.get(origin)
        if host is not None:
            to_sign["host"] = host  # else botocore derives it from the URL (kept below)
        request = _BytesRequest(method, url, body, to_sign)
        signer = _CachedKeySigV4Auth(
            self._identity(credentials), service, region, self._keys, self._paths
        )
        signer.add_auth(request)
        if host is None:
            self._hosts.put(origin, request.context[_HEADER_MAP]["host"])
        for name, value in to_sign.items():
            if name != "host":  # the HTTP client sends the URL's own
                out[name] = value
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


def _origin(url: str) -> str:
    """``scheme://authority`` of an absolute URL: what its ``host`` header depends on."""
    start = url.find("//") + 2
    end = len(url)
    for mark in "/?#":
        found = url.find(mark, start)
        if 0 <= found < end:
            end = found
    return url[:end]


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
