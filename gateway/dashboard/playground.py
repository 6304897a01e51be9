"""``POST /dashboard/api/playground``: the Prompts view's playground runs a prompt version
through the gateway for the signed-in key, without the key ever reaching the page.

The data plane (``/v1/chat/completions``) does not accept the dashboard's cookie, and the
session keeps only the key's digest (never the key), so the page cannot call it and the
server cannot replay the key. Instead this endpoint, under the session (cookie plus
``X-Gateway-CSRF``), builds the chat request (``prompt_id``, ``version_id`` or
``environment``, ``inputs``, optionally ``model`` and extra ``messages``) and runs it through
the gateway's own data plane **in process**: the key's digest rides in the ASGI scope's
extensions (:data:`~gateway.dashboard.sessions.PLAYGROUND_IDENTITY`), which no client can set,
and the data plane authenticates that digest like a key (revoked keys fail, scopes apply:
``gateway:invoke`` to send, ``prompt:read`` for the prompt). So a playground run is an
ordinary gateway request: routed, metered, rate limited, cached and logged (with the
property ``source: dashboard-playground``) as the signed-in key's.

Answer: ``{"data": {"status", "body"}}`` (the data plane's status and JSON answer, errors
included, so the page shows the gateway's own words), or 400/401/403 in the envelope for a
bad body, no session, or a key without the scopes. Streaming is not offered (one JSON answer).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from gateway.api.envelope import fail, ok
from gateway.asgi import ASGIApp, Message, Scope
from gateway.dashboard.sessions import PLAYGROUND_IDENTITY, DashboardSessions
from gateway.errors import GatewayError
from gateway.scopes import INVOKE, PROMPT_READ, allows
from gateway.store import KeyIdentity

MAX_BODY_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class PlaygroundDeps:
    """``data_plane``: the gateway's outermost ASGI app (read on each call: it is built after
    the routes); ``authenticate_digest``: a key's digest -> its identity (401 if revoked)."""

    sessions: DashboardSessions
    authenticate_digest: Callable[[str], Awaitable[KeyIdentity]]
    data_plane: Callable[[], ASGIApp]


def chat_request(body: Any) -> dict[str, Any]:
    """The ``/v1/chat/completions`` body for a playground run; raises ValueError naming the
    field that is wrong."""
    if not isinstance(body, dict):
        raise ValueError("The body must be a JSON object.")
    prompt_id = body.get("prompt_id")
    if not isinstance(prompt_id, str) or not prompt_id.strip():
        raise ValueError("'prompt_id' must be a non-empty string.")
    request: dict[str, Any] = {"prompt_id": prompt_id.strip(), "stream": False}
    for field in ("version_id", "environment", "model"):
        value = body.get(field)
        if value is None or value == "":
            continue
        if not isinstance(value, str):
            raise ValueError(f"'{field}' must be a string.")
        request[field] = value
    inputs = body.get("inputs", {})
    if not isinstance(inputs, dict):
        raise ValueError("'inputs' must be an object of variable names to values.")
    request["inputs"] = inputs
    messages = body.get("messages")
    if messages is not None:
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise ValueError("'messages' must be a list of message objects.")
        request["messages"] = messages
    return request


async def run_in_process(app: ASGIApp, digest: str, body: bytes, client: Any) -> tuple[int, bytes]:
    """``POST /v1/chat/completions`` through ``app`` as the key with ``digest``."""
    scope: Scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
        "method": "POST", "scheme": "http", "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions", "root_path": "", "query_string": b"",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"helicone-property-source", b"dashboard-playground"),
        ],
        "client": client, "server": ("127.0.0.1", 0),
        "extensions": {PLAYGROUND_IDENTITY: digest},
    }  # fmt: skip
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    status = 500
    chunks: list[bytes] = []

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            chunks.append(bytes(message.get("body", b"")))

    await app(scope, receive, send)
    return status, b"".join(chunks)


def playground_router(deps: PlaygroundDeps) -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.post("/dashboard/api/playground")
    async def playground(request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            session = await deps.sessions.from_headers(headers)
            if session is None:
                return fail(401, "Sign in to the dashboard to use the playground.")
            identity = await deps.authenticate_digest(session.key_digest)
        except GatewayError as exc:
            return fail(exc.status, exc.message)
        missing = [s for s in (INVOKE, PROMPT_READ) if not allows(identity.scopes, s)]
        if missing:
            return fail(403, f"The signed-in key lacks the scope(s) {', '.join(missing)}.")
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            return fail(413, f"The body is larger than {MAX_BODY_BYTES} bytes.")
        raw = await request.body()
        if len(raw) > MAX_BODY_BYTES:
            return fail(413, f"The body is larger than {MAX_BODY_BYTES} bytes.")
        try:
            chat = chat_request(orjson.loads(raw or b"{}"))
        except orjson.JSONDecodeError:
            return fail(400, "The body is not valid JSON.")
        except ValueError as exc:
            return fail(400, str(exc))
        status, answer = await run_in_process(
            deps.data_plane(), session.key_digest, orjson.dumps(chat),
            request.scope.get("client"),
        )  # fmt: skip
        try:
            parsed: Any = orjson.loads(answer) if answer else None
        except orjson.JSONDecodeError:
            parsed = answer.decode("utf-8", "replace")
        return ok({"status": status, "body": parsed})

    return router


def include_playground(app: FastAPI, deps: PlaygroundDeps) -> None:
    app.include_router(playground_router(deps))
