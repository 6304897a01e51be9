"""AWS credentials for Bedrock, and signing a request with them (SigV4, through botocore).

A Bedrock credential travels through the gateway as one string, like every other provider
key (``<PREFIX>_API_KEY``, a BYOK key, a client's own key), in one of three forms:

* ``ACCESS_KEY_ID:SECRET_ACCESS_KEY`` or ``ACCESS_KEY_ID:SECRET_ACCESS_KEY:SESSION_TOKEN``
  (AWS key ids, secrets and session tokens never contain ``:``);
* the JSON object ``{"accessKeyId": …, "secretAccessKey": …, "sessionToken": …}`` (the
  spelling of AWS's own SDKs and ``credential_process``);
* anything else: a Bedrock API key, sent as ``Authorization: Bearer`` with no signature.

Signing is botocore's :class:`~botocore.auth.SigV4Auth` over a
:class:`~botocore.awsrequest.AWSRequest` of the exact URL and body that are then sent; nothing
of SigV4 is reimplemented here. Only the headers that must be (``host``, ``x-amz-date``, the
session token) and the few the request depends on (``content-type``, ``x-amzn-bedrock-*``) are
signed, so that headers the HTTP client adds on the way (``accept-encoding``,
``content-length``) cannot invalidate the signature.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

SERVICE = "bedrock"
"""The SigV4 service name of the Bedrock runtime API (its host says ``bedrock-runtime``)."""

_SIGNED = ("content-type",)
_SIGNED_PREFIX = "x-amzn-bedrock-"


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


def signed_headers(
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
    to_sign: dict[str, str] = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower == "authorization" or lower.startswith("x-amz-"):
            continue
        out[lower] = value
        if lower in _SIGNED or lower.startswith(_SIGNED_PREFIX):
            to_sign[lower] = value
    request = AWSRequest(method=method, url=url, data=body, headers=to_sign)
    identity = Credentials(
        credentials.access_key_id, credentials.secret_access_key, credentials.session_token
    )
    SigV4Auth(identity, service, region).add_auth(request)
    for name, value in request.headers.items():
        out[name.lower()] = value
    return out


def auth_headers(
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    key: str,
    region: str,
) -> dict[str, str]:
    """``headers`` with the credential of ``key`` (any of the forms in the module doc):
    signed for AWS credentials, ``Authorization: Bearer`` for a Bedrock API key."""
    credentials = AwsCredentials.parse(key)
    if credentials is not None:
        return signed_headers(method, url, headers, body, credentials, region)
    out = {
        name.lower(): value
        for name, value in headers.items()
        if name.lower() != "authorization" and not name.lower().startswith("x-amz-")
    }
    out["authorization"] = f"Bearer {key.strip()}"
    return out
