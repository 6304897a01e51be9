"""Dashboard sign-in sessions: an opaque cookie mapped, in this process's memory, to a key.

Signing in with a gateway key creates a session: a random id (256 bits) goes to the browser
in an ``HttpOnly; SameSite=Strict`` cookie, and the server keeps, under the id's SHA-256
digest, the *digest* of the key (never the key), a CSRF token and an expiry. Every API call
that carries the cookie instead of an ``Authorization`` header is authenticated through the
key's digest again (:meth:`gateway.auth.Authenticator.authenticate_digest`), so a revoked key
ends its sessions within ``GATEWAY_KEY_CACHE_TTL_SECONDS``, and must carry the session's CSRF
token in ``X-Gateway-CSRF``: a page on another site can neither read the token nor, with
``SameSite=Strict``, send the cookie.

Sessions live in the memory of the process that created them: a restart signs everyone out,
and with ``--workers N`` a sign-in holds only on the worker that answered it (docs/dashboard.md
says so; a shared store is the next step). At most :data:`MAX_SESSIONS` are kept; the oldest
go first.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from gateway.errors import GatewayError

COOKIE_NAME = "gateway_dashboard"
CSRF_HEADER = "x-gateway-csrf"
MAX_SESSIONS = 10_000


@dataclass(frozen=True, slots=True)
class DashboardSession:
    """What the server remembers of one sign-in."""

    key_digest: str
    """SHA-256 of the gateway key (:func:`gateway.keys.hash_key`): re-checked on every call."""
    key_id: str
    org_id: str
    org_name: str
    csrf: str
    expires_at: float
    """On the sessions' clock (monotonic seconds)."""


class DashboardSessions:
    """The process's dashboard sessions (one per :class:`gateway.runtime.Runtime`)."""

    def __init__(
        self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        """Replaceable (tests move it forward to expire sessions)."""
        self._sessions: dict[str, DashboardSession] = {}

    def create(self, key_digest: str, key_id: str, org_id: str, org_name: str
               ) -> tuple[str, DashboardSession]:  # fmt: skip
        """A new session: ``(cookie value, session)``."""
        self._prune()
        session_id = secrets.token_urlsafe(32)
        session = DashboardSession(
            key_digest=key_digest,
            key_id=key_id,
            org_id=org_id,
            org_name=org_name,
            csrf=secrets.token_urlsafe(32),
            expires_at=self.clock() + self.ttl_seconds,
        )
        self._sessions[_digest(session_id)] = session
        return session_id, session

    def get(self, session_id: str) -> DashboardSession | None:
        """The live session of a cookie value, or None (unknown or expired: then forgotten)."""
        digest = _digest(session_id)
        session = self._sessions.get(digest)
        if session is None:
            return None
        if session.expires_at <= self.clock():
            del self._sessions[digest]
            return None
        return session

    def delete(self, session_id: str) -> None:
        self._sessions.pop(_digest(session_id), None)

    def from_headers(self, headers: dict[str, str]) -> DashboardSession | None:
        """The session an API call authenticates with (lower-cased ``headers``).

        None when the call carries no dashboard cookie (it then needs a key as usual); a 401
        for a cookie whose session is gone (expired, signed out, restarted process); a 403
        when the CSRF header is missing or wrong.
        """
        session_id = cookie_value(headers.get("cookie"), COOKIE_NAME)
        if session_id is None:
            return None
        session = self.get(session_id)
        if session is None:
            raise GatewayError(
                401, "The dashboard session has expired; sign in again.",
                code="session_expired",
            )  # fmt: skip
        check_csrf(session, headers)
        return session

    def _prune(self) -> None:
        now = self.clock()
        expired = [d for d, s in self._sessions.items() if s.expires_at <= now]
        for digest in expired:
            del self._sessions[digest]
        while len(self._sessions) >= MAX_SESSIONS:  # dicts keep insertion order: oldest first
            del self._sessions[next(iter(self._sessions))]


def check_csrf(session: DashboardSession, headers: dict[str, str]) -> None:
    """403 unless ``X-Gateway-CSRF`` carries the session's token."""
    sent = headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), session.csrf.encode()):
        raise GatewayError(
            403,
            "A call with the dashboard's session cookie must carry its CSRF token in the "
            "X-Gateway-CSRF header.",
            code="csrf_failed",
        )


def cookie_value(header: str | None, name: str) -> str | None:
    """The value of cookie ``name`` in a ``Cookie`` header, or None."""
    if not header:
        return None
    for part in header.split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name and value:
            return value
    return None


def _digest(session_id: str) -> str:
    """Sessions are kept under their id's digest: the table alone signs no one in."""
    return hashlib.sha256(session_id.encode()).hexdigest()
