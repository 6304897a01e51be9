"""``/dashboard``: the web dashboard's page, its built assets and its sign-in session API.

- ``GET /`` redirects to ``/dashboard/``; ``GET /dashboard`` and ``/dashboard/`` answer the
  single page (``index.html``), ``GET /dashboard/assets/<file>`` the files Vite built
  (``make dashboard`` writes them to ``gateway/dashboard/static/``; they ship in the wheel).
- ``POST /dashboard/api/session`` signs in with a gateway key (JSON ``{"key": ...}`` or an
  HTML form field ``key``) and sets the session cookie (gateway/dashboard/sessions.py);
  ``GET`` answers who is signed in (with the CSRF token the page sends back on API calls;
  ``null`` when nobody is);
  ``DELETE`` signs out. Answers use the query API's ``{data, error}`` envelope. (The page
  itself signs in with JSON; the form variant is for scripts and pages of one's own.)

Every answer under ``/dashboard`` carries a Content-Security-Policy that allows this origin
only (no CDN, no external fonts, images or connections), and is not to be framed.
"""

from __future__ import annotations

import gzip
import mimetypes
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from gateway.api.envelope import fail, ok
from gateway.dashboard.sessions import (
    COOKIE_NAME,
    DashboardSession,
    DashboardSessions,
    check_csrf,
    cookie_value,
)
from gateway.errors import GatewayError
from gateway.keys import hash_key
from gateway.scopes import TRACE_READ, allows
from gateway.store import KeyIdentity

STATIC_DIR = Path(__file__).parent / "static"
"""Where ``make dashboard`` puts the built page (committed, and packaged in the wheel)."""
MAX_SIGN_IN_BYTES = 4096

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


@dataclass(frozen=True, slots=True)
class DashboardDeps:
    """``authenticate``: lower-cased headers -> identity (the REST API's key check);
    ``authenticate_digest``: a session's key digest -> identity (401 once revoked)."""

    authenticate: Callable[[dict[str, str]], Awaitable[KeyIdentity]]
    authenticate_digest: Callable[[str], Awaitable[KeyIdentity]]
    sessions: DashboardSessions
    static_dir: Path = STATIC_DIR


@dataclass(slots=True)
class _Asset:
    body: bytes
    gzipped: bytes
    media_type: str


@dataclass(slots=True)
class _Assets:
    """The built files, read (and gzipped) once on first use; only files that exist there."""

    root: Path
    files: dict[str, _Asset] | None = field(default=None)

    def get(self, name: str) -> _Asset | None:
        if self.files is None:
            self.files = {}
            if self.root.is_dir():
                for path in self.root.rglob("*"):
                    if path.is_file():
                        self.files[path.relative_to(self.root).as_posix()] = _load(path)
        return self.files.get(name)


def _load(path: Path) -> _Asset:
    body = path.read_bytes()
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if media_type.startswith("text/") or media_type.endswith(("javascript", "json", "svg+xml")):
        media_type += "; charset=utf-8"
    return _Asset(body, gzip.compress(body, 9, mtime=0), media_type)


def dashboard_router(deps: DashboardDeps) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    assets = _Assets(deps.static_dir)

    def serve(request: Request, name: str, cache: str) -> Response:
        asset = assets.get(name)
        if asset is None:
            if name == "index.html":
                return _plain(503, "The dashboard is not built: run `make dashboard`.")
            return _plain(404, f"No dashboard file {name}")
        headers = {"cache-control": cache, "vary": "accept-encoding", **SECURITY_HEADERS}
        body = asset.body
        if "gzip" in request.headers.get("accept-encoding", ""):
            body = asset.gzipped
            headers["content-encoding"] = "gzip"
        return Response(body, media_type=asset.media_type, headers=headers)

    @router.get("/")
    async def root() -> Response:
        return RedirectResponse("/dashboard/", status_code=307)

    @router.get("/dashboard")
    @router.get("/dashboard/")
    async def page(request: Request) -> Response:
        """The single page; always revalidated, so a new build shows at once."""
        return serve(request, "index.html", "no-cache")

    @router.get("/dashboard/assets/{name:path}")
    async def asset(request: Request, name: str) -> Response:
        """Built files: their names carry a content hash, so they are cached for a year."""
        return serve(request, f"assets/{name}", "public, max-age=31536000, immutable")

    @router.get("/dashboard/api/session")
    async def whoami(request: Request) -> Response:
        """Who is signed in (and the CSRF token), or ``data: null`` when nobody is (no
        cookie, an expired session, a revoked key): the page's first question, answered
        without an error status, so that opening the page logs no failed request."""
        session_id = None
        try:
            session_id, session = await _session(request, deps.sessions)
            await deps.authenticate_digest(session.key_digest)
        except GatewayError as exc:
            if exc.status != 401:
                return fail(exc.status, exc.message)  # 503: the key or session store is down
            if session_id is not None:
                await deps.sessions.delete(session_id)  # its key was revoked: forget it now
            return _clear(ok(None), request)
        return ok(_describe(session, deps.sessions))

    @router.post("/dashboard/api/session")
    async def sign_in(request: Request) -> Response:
        """Sign in with a gateway key that can read the request log; sets the cookie."""
        try:
            _same_origin(request)
            key, form = await _sign_in_key(request)
            identity = await deps.authenticate({"authorization": f"Bearer {key}"})
            if not allows(identity.scopes, TRACE_READ):
                raise GatewayError(
                    403, f"This key cannot read the request log (it lacks the {TRACE_READ} "
                    "scope); the dashboard needs a key that can.", code="missing_scope",
                )  # fmt: skip
        except GatewayError as exc:
            return fail(exc.status, exc.message)
        previous = cookie_value(request.headers.get("cookie"), COOKIE_NAME)
        if previous is not None:  # signing in again (perhaps as another key) ends the old one
            await deps.sessions.delete(previous)
        session_id, session = await deps.sessions.create(
            hash_key(key), identity.key_id, identity.org_id, identity.org_name
        )
        response: Response
        if form:  # a plain HTML form (no script): back to the page, now signed in
            response = RedirectResponse("/dashboard/", status_code=303)
        else:
            response = ok(_describe(session, deps.sessions))
        response.set_cookie(
            COOKIE_NAME, session_id, max_age=int(deps.sessions.ttl_seconds), path="/",
            secure=_https(request), httponly=True, samesite="strict",
        )  # fmt: skip
        response.headers["cache-control"] = "no-store"
        return response

    @router.delete("/dashboard/api/session")
    async def sign_out(request: Request) -> Response:
        """Sign out (with the CSRF token): the session is forgotten and the cookie cleared."""
        try:
            session_id, session = await _session(request, deps.sessions)
            check_csrf(session, _lower(request))
        except GatewayError as exc:
            if exc.status == 403:
                return fail(exc.status, exc.message)
            return _clear(ok(None), request)  # nothing to sign out of: signed out anyway
        await deps.sessions.delete(session_id)
        return _clear(ok(None), request)

    return router


def include_dashboard(app: FastAPI, deps: DashboardDeps) -> None:
    """Mount ``/``, ``/dashboard`` and its session API on ``app``."""
    app.include_router(dashboard_router(deps))


def _lower(request: Request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


async def _session(request: Request, sessions: DashboardSessions
                   ) -> tuple[str, DashboardSession]:  # fmt: skip
    session_id = cookie_value(request.headers.get("cookie"), COOKIE_NAME)
    session = None if session_id is None else await sessions.get(session_id)
    if session_id is None or session is None:
        raise GatewayError(401, "Not signed in (or the session has expired).",
                           code="session_expired")  # fmt: skip
    return session_id, session


def _describe(session: DashboardSession, sessions: DashboardSessions) -> dict[str, Any]:
    return {
        "org_id": session.org_id,
        "org_name": session.org_name,
        "key_id": session.key_id,
        "csrf_token": session.csrf,
        "expires_in_seconds": max(0, round(session.expires_at - sessions.clock())),
    }


def _same_origin(request: Request) -> None:
    """Refuse a sign-in posted from another site (login CSRF): browsers send ``Origin`` on
    every POST, and it must name this host."""
    origin = request.headers.get("origin")
    if origin is None:
        return  # not a browser (curl, tests): nothing a third-party page could forge
    host = request.headers.get("host", "")
    if origin == "null" or urlsplit(origin).netloc.lower() != host.lower():
        raise GatewayError(403, "Sign-in must come from the dashboard's own page.",
                           code="cross_origin")  # fmt: skip


async def _sign_in_key(request: Request) -> tuple[str, bool]:
    """``(key, posted as a form)`` from a JSON or form body; 400 when it has no key."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_SIGN_IN_BYTES:
            raise GatewayError(413, "The sign-in body is too large.")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    form = content_type == "application/x-www-form-urlencoded"
    key: Any = None
    if form:
        values = parse_qs(raw.decode("utf-8", "replace")).get("key")
        key = values[0] if values else None
    else:
        try:
            body = orjson.loads(raw) if raw.strip() else None
        except orjson.JSONDecodeError:
            raise GatewayError(400, "The sign-in body is not valid JSON.") from None
        if isinstance(body, dict):
            key = body.get("key")
    if not isinstance(key, str) or not key.strip():
        raise GatewayError(400, 'Send the gateway key as {"key": "<gateway key>"}.',
                           code="missing_api_key")  # fmt: skip
    return key.strip(), form


def _clear(response: Response, request: Request) -> Response:
    response.delete_cookie(COOKIE_NAME, path="/", secure=_https(request), httponly=True,
                           samesite="strict")  # fmt: skip
    return response


def _https(request: Request) -> bool:
    """Whether the browser reached us over HTTPS (then the cookie is ``Secure``): the scheme,
    or a TLS-terminating proxy's ``X-Forwarded-Proto``. Trusting that header here is safe
    whoever sent it: it can only make the cookie stricter."""
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded.split(",")[0].strip().lower() == "https"


def _plain(status: int, text: str) -> Response:
    return Response(text, status_code=status, media_type="text/plain; charset=utf-8",
                    headers=SECURITY_HEADERS)  # fmt: skip
