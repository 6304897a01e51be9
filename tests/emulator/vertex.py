"""Vertex AI: Google's token endpoint, and the models of two publishers on Vertex's paths.

* ``POST /oauth2/token`` — Google's OAuth token endpoint as a service account meets it
  (``grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer``): the ``assertion`` is a JWT
  whose RS256 signature is checked with the public key of a service account registered with
  the emulator (:meth:`VertexState.new_service_account` makes one, with a fresh RSA key), its
  ``iss``, ``aud`` (Google's token endpoint, as Google checks it), ``scope`` (cloud-platform)
  and times too. The answer is an
  access token valid for :attr:`VertexState.token_lifetime` seconds, or Google's
  ``{"error": "invalid_grant", "error_description": …}`` 400.
* ``POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:
  {generateContent,streamGenerateContent}`` — the Gemini API's emulation (:mod:`.gemini`),
  bodies validated with google-genai's types.
* ``POST /v1/projects/{project}/locations/{location}/publishers/google/models/{model}:predict``
  — the text embeddings API (:mod:`.vertex_predict`).
* ``POST /v1/projects/{project}/locations/{location}/publishers/anthropic/models/{model}:
  {rawPredict,streamRawPredict}`` — Claude: the Messages body with ``anthropic_version:
  "vertex-2023-10-16"`` (Anthropic's documented value; the newer ``anthropic-version`` dates
  the anthropic SDK's ``AnthropicVertex`` sends are taken too) and no ``model`` (``stream:
  true`` for ``streamRawPredict``), checked with the Messages validator (the anthropic SDK's
  types) and answered by :mod:`.messages`.

Every model call needs ``Authorization: Bearer`` with a token this endpoint issued (or one of
:attr:`VertexState.access_tokens`): else Google's 401 ``UNAUTHENTICATED``. Faults answer in
the shape of whoever refuses (:func:`fault_answer`): Google's for Google's models and for what
Vertex refuses for Claude (401, 403, 404, 429), Anthropic's for the rest of Claude's.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import parse_qs

import orjson
from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from . import gemini, messages, vertex_predict
from .anthropic_errors import VERSIONS, AnthropicError
from .anthropic_errors import error_response as anthropic_error
from .exchange import Exchange
from .gemini_errors import error_response as google_error

TOKEN_PATH = "/oauth2/token"
VERTEX_ANTHROPIC_VERSION = "vertex-2023-10-16"
SCOPE = "https://www.googleapis.com/auth/cloud-platform"
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
"""The ``aud`` google-auth puts in every assertion, wherever ``token_uri`` points."""
_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_PATH = re.compile(
    r"/v1/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/publishers/"
    r"(?P<publisher>[^/]+)/models/(?P<model>[^/:]+):(?P<method>[A-Za-z]+)"
)
VERTEX_STATUSES = frozenset({401, 403, 404, 429})
"""The statuses Vertex answers for Claude itself, before the model sees the request."""
CLAUDE_QUOTA = (
    "Quota exceeded for aiplatform.googleapis.com/online_prediction_requests_per_base_model "
    "with base model: anthropic-claude-sonnet-4. Please submit a quota increase request. "
    "https://cloud.google.com/vertex-ai/docs/generative-ai/quotas-genai."
)
_NO_TOKEN = (
    "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
    "cookie or other valid authentication credential."
)


@dataclass
class VertexState:
    """Registered service accounts, issued tokens, and the token endpoint's settings."""

    token_lifetime: int = 3600
    """``expires_in`` of every token issued."""
    access_tokens: set[str] = field(default_factory=set)
    """Tokens accepted without having been issued (a client's own)."""
    mints: int = 0
    """Tokens issued so far."""
    _keys: dict[str, rsa.RSAPublicKey] = field(default_factory=dict)
    _issued: set[str] = field(default_factory=set)
    _serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def new_service_account(self, origin: str, project: str = "emu-project") -> str:
        """A service-account key (its JSON) whose tokens this emulator issues: a fresh RSA
        key, registered here, with ``token_uri`` pointing at this emulator."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        serial = next(self._serial)
        email = f"gateway-{serial}@{project}.iam.gserviceaccount.com"
        with self._lock:
            self._keys[email] = key.public_key()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        return json.dumps({
            "type": "service_account",
            "project_id": project,
            "private_key_id": f"emu{serial:037d}",
            "private_key": pem,
            "client_email": email,
            "client_id": f"1{serial:020d}",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": origin + TOKEN_PATH,
        })

    def revoke(self) -> None:
        """Forget every issued token (the next model call with one is a 401)."""
        with self._lock:
            self._issued.clear()

    def accepts(self, token: str) -> bool:
        with self._lock:
            return token in self._issued or token in self.access_tokens

    def issue(self) -> str:
        with self._lock:
            self.mints += 1
            token = f"ya29.emu-{self.mints}"
            self._issued.add(token)
        return token

    def public_key(self, email: str) -> rsa.RSAPublicKey | None:
        with self._lock:
            return self._keys.get(email)


def is_vertex(path: str) -> bool:
    return path == TOKEN_PATH or _PATH.fullmatch(path) is not None


def _b64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _grant_error(description: str, error: str = "invalid_grant") -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=400)


def token(request: web.Request, body: bytes, state: VertexState) -> web.Response:
    """The token endpoint: a signed JWT assertion in, an access token out."""
    form = {k: v[0] for k, v in parse_qs(body.decode("latin-1")).items()}
    if form.get("grant_type") != _GRANT:
        return _grant_error("Invalid grant_type.", "unsupported_grant_type")
    try:
        head, payload, signature = form.get("assertion", "").split(".")
        header, claims = json.loads(_b64(head)), json.loads(_b64(payload))
    except ValueError:
        return _grant_error("Invalid JWT: Token must be a short-lived token and in a "
                            "reasonable timeframe.")
    key = state.public_key(str(claims.get("iss")))
    if header.get("alg") != "RS256" or key is None:
        return _grant_error("Invalid JWT Signature.")
    try:
        key.verify(_b64(signature), f"{head}.{payload}".encode(), padding.PKCS1v15(),
                   hashes.SHA256())
    except InvalidSignature:
        return _grant_error("Invalid JWT Signature.")
    now = time.time()
    audiences = (GOOGLE_TOKEN_AUDIENCE, f"{request.scheme}://{request.host}{TOKEN_PATH}")
    if claims.get("aud") not in audiences or SCOPE not in str(claims.get("scope", "")).split():
        return _grant_error("Invalid JWT: the audience or scope is wrong.")
    if not claims.get("iat", now + 600) <= now + 60 < claims.get("exp", 0) + 60:
        return _grant_error("Invalid JWT: Token must be a short-lived token and in a "
                            "reasonable timeframe.")
    return web.json_response(
        {"access_token": state.issue(), "expires_in": state.token_lifetime,
         "token_type": "Bearer"}
    )


def split(path: str) -> tuple[str, str, str] | None:
    """``(publisher, model, method)`` of a Vertex model path, or None."""
    match = _PATH.fullmatch(path)
    return None if match is None else (match["publisher"], match["model"], match["method"])


def refused(request: web.Request, state: VertexState) -> web.Response | None:
    """Google's 401 for a model call without an access token this emulator accepts."""
    scheme, _, sent = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not state.accepts(sent.strip()):
        return google_error(401, _NO_TOKEN)
    return None


async def handle(exchange: Exchange, publisher: str, model: str, method: str) -> web.StreamResponse:
    if publisher == "google" and method == "predict":
        return vertex_predict.answer(exchange.body, model)
    if publisher == "google":
        return await gemini.answer(exchange, model, method)
    if publisher != "anthropic":
        return google_error(404, f"Publisher Model `{publisher}/{model}` was not found.")
    if method not in ("rawPredict", "streamRawPredict"):
        return google_error(400, f"Method {method} is not supported for {model}.")
    try:
        body = orjson.loads(exchange.body)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        raise AnthropicError("There was an error parsing the body of your request.")
    if body.get("anthropic_version") not in (VERTEX_ANTHROPIC_VERSION, *VERSIONS):
        raise AnthropicError(f"anthropic_version: must be {VERTEX_ANTHROPIC_VERSION}")
    if "model" in body:
        raise AnthropicError("model: Extra inputs are not permitted")
    if (body.get("stream") is True) != (method == "streamRawPredict"):
        raise AnthropicError(f"stream: {method} needs stream {method == 'streamRawPredict'}")
    checked = {k: v for k, v in body.items() if k != "anthropic_version"}
    checked = exchange.anthropic.validator.validate(
        orjson.dumps({"model": model, **checked}),
        beta="anthropic-beta" in exchange.request.headers,
    )
    return await messages.answer(exchange, checked, model.replace("@", "-"))


def fault_answer(publisher: str, status: int, message: str | None, error_type: str | None,
                 serial: int) -> web.Response:
    """A fault's ``status`` in the shape of whoever answers it: Vertex itself (Google's
    shape) for authentication, permission, an unknown publisher model and quota (Claude's 429s
    on Vertex are Google's ``RESOURCE_EXHAUSTED`` "Quota exceeded for
    aiplatform.googleapis.com/…"), and for every status of Google's own models; Claude (the
    Messages API's shape) for the rest: invalid requests, overloaded, internal errors."""
    if publisher == "anthropic" and status not in VERTEX_STATUSES:
        return anthropic_error(status, serial, error_type, message)
    if publisher == "anthropic" and status == 429 and message is None:
        message = CLAUDE_QUOTA
    return google_error(status, message)

