"""Vertex AI credentials: an OAuth access token per request, minted from a service-account key
and cached, or the access token the key string already is.

A Vertex key travels through the gateway as one string like every other provider key
(``VERTEX_API_KEY`` or the file ``GOOGLE_APPLICATION_CREDENTIALS`` names, a BYOK key, a
client's own ``Authorization: Bearer``), in one of two forms:

* a service-account key, the JSON object Google Cloud issues (``"type": "service_account"``):
  the gateway mints access tokens from it with google-auth
  (:class:`google.oauth2.service_account.Credentials`, scope ``cloud-platform``: a JWT signed
  with the key, exchanged at the key's ``token_uri``; nothing of it is reimplemented here);
* anything else: an OAuth access token (``gcloud auth print-access-token``), sent as it is.

A minted token is kept per key and used until :data:`REFRESH_MARGIN_SECONDS` before it
expires, so a request never leaves with a token about to lapse in flight; a lookup of a
cached token is a dictionary read and a clock read. Minting is a blocking HTTP exchange, so
it runs in a worker thread, one at a time per key: requests that find the token stale while
it is being minted wait for that one exchange rather than starting their own. A token whose
whole lifetime is shorter than the margin is still used for the request that minted it.

A key that cannot be used is the client's 401 (its message says why: not a service-account
key, refused by Google's token endpoint); a token endpoint that cannot be reached or fails is
a 502. Neither is ever a 500, and neither message contains the key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.errors import GatewayError

if TYPE_CHECKING:
    from google.oauth2.service_account import Credentials

SCOPE = "https://www.googleapis.com/auth/cloud-platform"
"""The scope Vertex AI's API takes."""
REFRESH_MARGIN_SECONDS = 300.0
"""A cached token is replaced this long before it expires."""
TOKEN_TIMEOUT_SECONDS = 10.0
"""How long one exchange with the token endpoint may take."""
_MAX_KEYS = 1024
"""Distinct keys whose tokens a process keeps (then it starts over): BYOK keys are many."""
_MAX_REASON = 300


@dataclass(frozen=True, slots=True)
class VertexAuth:
    """What a Vertex request is sent with: the access token, and the project of the
    service account it was minted for (None for a plain access token)."""

    token: str
    project: str | None = None


@dataclass(slots=True)
class _Minted:
    """One service-account key, its google-auth credentials (made on the first mint, in the
    worker thread) and its current token."""

    info: dict[str, Any]
    project: str | None
    credentials: Credentials | None = None
    auth: VertexAuth | None = None
    fresh_until: float = 0.0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def parse_service_account(key: str) -> dict[str, Any] | None:
    """The service-account key ``key`` holds, or None when it is an access token. A JSON
    object that is not a usable service-account key is a 401 saying what is missing."""
    text = key.strip()
    if not text.startswith("{"):
        return None
    try:
        info = json.loads(text)
    except (ValueError, RecursionError):
        raise _refused("the key is neither valid JSON nor an access token") from None
    if not isinstance(info, dict) or info.get("type") != "service_account":
        kind = info.get("type") if isinstance(info, dict) else None
        raise _refused(
            f"a key of type {str(kind)[:40]!r} is not supported; use a service-account key "
            "(type service_account) or an OAuth access token"
        )
    missing = [name for name in ("client_email", "private_key", "token_uri") if not info.get(name)]
    if missing:
        raise _refused(f"the service-account key has no {', '.join(missing)}")
    return info


class VertexTokens:
    """Access tokens for Vertex keys, cached per key (one per process, on the runtime).

    ``clock`` is monotonic seconds (tests move it instead of waiting); ``margin`` is how long
    before expiry a token is replaced.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        margin: float = REFRESH_MARGIN_SECONDS,
        timeout: float = TOKEN_TIMEOUT_SECONDS,
    ) -> None:
        self._clock = clock
        self._margin = margin
        self._timeout = timeout
        self._minted: dict[str, _Minted] = {}
        self.mints = 0
        """Tokens minted so far (for tests and the bench)."""

    async def authorize(self, key: str) -> VertexAuth:
        """The token to send with ``key`` (a ``GatewayError`` when none can be had)."""
        entry = self._minted.get(key)
        if entry is not None and entry.auth is not None and entry.fresh_until > self._clock():
            return entry.auth
        if entry is None:
            info = parse_service_account(key)
            if info is None:
                return VertexAuth(key.strip())
            entry = self._entry(key, info)
        async with entry.lock:  # one exchange at a time per key; waiters reuse its token
            if entry.auth is not None and entry.fresh_until > self._clock():
                return entry.auth
            return await self._mint(entry)

    def _entry(self, key: str, info: dict[str, Any]) -> _Minted:
        if len(self._minted) >= _MAX_KEYS:
            self._minted.clear()
        project = info.get("project_id")
        entry = _Minted(info, project if isinstance(project, str) else None)
        self._minted[key] = entry
        return entry

    async def _mint(self, entry: _Minted) -> VertexAuth:
        started = self._clock()
        token, lifetime = await asyncio.to_thread(_refresh, entry, self._timeout)
        self.mints += 1
        entry.auth = VertexAuth(token, entry.project)
        entry.fresh_until = started + lifetime - self._margin
        return entry.auth


def _refresh(entry: _Minted, timeout: float) -> tuple[str, float]:
    """Mint a token (blocking: run in a worker thread, where google-auth is imported and the
    private key read too): the token and the seconds it is valid for. Each exchange gets its
    own HTTP session (one an hour per key: nothing worth pooling) and ``timeout``
    (google-auth's own default is two minutes). Failures are ``GatewayError``s."""
    import requests
    from google.auth import exceptions
    from google.auth.transport.requests import Request
    from google.oauth2 import service_account

    credentials = entry.credentials
    if credentials is None:
        try:
            credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
                entry.info, scopes=[SCOPE]
            )
        except (ValueError, TypeError) as exc:  # a private key that cannot be read
            raise _refused(f"the service-account key cannot be used ({_reason(exc)})") from None
        entry.credentials = credentials
    with requests.Session() as session:
        transport = Request(session)

        def timed(
            url: str, method: str = "GET", body: Any = None, headers: Any = None, **kwargs: Any
        ) -> Any:
            kwargs.pop("timeout", None)
            return transport(url, method, body, headers, timeout, **kwargs)

        try:
            credentials.refresh(timed)
        except exceptions.RefreshError as exc:  # the token endpoint answered with a refusal
            raise _refused(f"Google's token endpoint refused the key: {_reason(exc)}") from None
        except exceptions.TransportError as exc:
            raise GatewayError(
                502,
                f"Vertex AI: Google's token endpoint could not be reached ({_reason(exc)}).",
                code="upstream_unreachable",
            ) from None
    token = credentials.token
    if not isinstance(token, str) or not token:
        raise GatewayError(
            502, "Vertex AI: Google's token endpoint returned no access token.",
            code="upstream_bad_response",
        )
    expiry: dt.datetime | None = credentials.expiry
    if expiry is None:
        return token, 3600.0  # Google's tokens last an hour when the answer does not say
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)  # google-auth's naive UTC
    return token, max(0.0, (expiry - now).total_seconds())


def _refused(reason: str) -> GatewayError:
    return GatewayError(
        401, f"Vertex AI credentials could not be used: {reason}.",
        code="invalid_provider_credentials",
    )


def _reason(exc: BaseException) -> str:
    first = exc.args[0] if exc.args and isinstance(exc.args[0], str) else str(exc)
    text = " ".join(first.split()) or type(exc).__name__
    return text[:_MAX_REASON]
