"""Gateway keys over HTTP, for an organisation's own keys (the dashboard's Settings view), and
the organisation's own credit balance.

Until now keys were made and revoked only by ``gateway keys create|list|revoke`` on the
operator's machine. These routes let an organisation manage its keys itself, within limits
chosen so that no key can mint a key more powerful than itself:

* managing keys (listing, creating, revoking) needs a **full-access key** (one without
  scopes). A key with scopes may do only what its scopes name, and none names key
  management, so it cannot turn itself into a wider key;
* a created key has full access (``scopes`` absent or null) or the native scopes or PostHog
  aliases it lists; ``gateway:admin`` is refused (the operator's power over every
  organisation is given by the operator, on the command line, never by an organisation);
* everything is the caller's organisation only: another organisation's key is a 404.

The plaintext of a created key is in the creation answer only (``key``); lists show the
display prefix. Revoking takes effect on every worker within ``GATEWAY_KEY_CACHE_TTL_SECONDS``
(the authenticator's cache), and ends the revoked key's dashboard sessions.

Routes (errors are OpenAI-shaped: 401 without a key, 403 without full access, 404, 400)::

    GET    /v1/gateway-keys            {"data": [key]}  (oldest first, revoked ones included)
    POST   /v1/gateway-keys            {"name"?, "scopes"?: [..] | null} → 201 {"key", "data"}
    DELETE /v1/gateway-keys/{id}       revoke → {"data": key}
    GET    /v1/credits/balance         {"data": {"account": {...} | null, "budgets": [...]}}

``/v1/credits/balance`` needs any key of the organisation (it reads, and only its own org);
``account`` is null when the organisation is not metered (no credit account: it uses its
own provider keys or the gateway's without a balance).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from gateway.api.credits import account_json, budget_json
from gateway.errors import GatewayError, error_body
from gateway.scopes import ADMIN, UnknownScope, expand
from gateway.store import AmbiguousKey, ControlStore, KeyIdentity, KeyNotFound, KeyRecord

NAME_LIMIT = 200
"""Longest key name accepted (a label for people)."""


@dataclass(frozen=True, slots=True)
class GatewayKeyApiDeps:
    authenticate: Callable[[dict[str, str]], Awaitable[KeyIdentity]]
    store: ControlStore


def key_json(record: KeyRecord) -> dict[str, Any]:
    """A key as its organisation sees it: never the key itself, nor its hash."""
    return {
        "id": record.id,
        "name": record.name,
        "prefix": record.prefix,
        "scopes": None if record.scopes is None else sorted(record.scopes),
        "created_at": _time(record.created_at),
        "revoked_at": _time(record.revoked_at) if record.revoked_at else None,
        "active": record.active,
    }


def _time(value: Any) -> str:
    return str(value.isoformat().replace("+00:00", "Z"))


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )  # fmt: skip


def _refusal(status: int, message: str, code: str, param: str | None = None) -> GatewayError:
    return GatewayError(status, message, code=code, param=param)


def parse_new_key(body: Any) -> tuple[str | None, frozenset[str] | None]:
    """``(name, scopes)`` of a creation request; raises a 400 naming the field."""
    if not isinstance(body, dict):
        raise _refusal(400, "The body must be a JSON object.", "invalid_body")
    name = body.get("name")
    if name is not None:
        if not isinstance(name, str):
            raise _refusal(400, "'name' must be a string.", "invalid_name", "name")
        name = name.strip() or None
        if name is not None and len(name) > NAME_LIMIT:
            raise _refusal(
                400, f"'name' is longer than {NAME_LIMIT} characters.", "invalid_name", "name"
            )
    raw = body.get("scopes")
    if raw is None:
        return name, None
    if not isinstance(raw, list) or not all(isinstance(s, str) for s in raw):
        raise _refusal(
            400, "'scopes' must be a list of scope names, or null for full access.",
            "invalid_scopes", "scopes",
        )  # fmt: skip
    if not raw:
        raise _refusal(
            400, "'scopes' is empty: name at least one scope, or send null for full access.",
            "invalid_scopes", "scopes",
        )  # fmt: skip
    try:
        scopes = expand(raw)
    except UnknownScope as exc:
        raise _refusal(400, str(exc), "invalid_scopes", "scopes") from None
    if ADMIN in scopes:
        raise _refusal(
            400, f"'{ADMIN}' is given by the operator ('gateway keys create'), not over HTTP.",
            "invalid_scopes", "scopes",
        )  # fmt: skip
    return name, scopes


def gateway_keys_router(deps: GatewayKeyApiDeps) -> APIRouter:
    router = APIRouter(tags=["Gateway keys"])
    store = deps.store

    async def caller(request: Request, *, manage: bool) -> KeyIdentity:
        identity = await deps.authenticate(dict(request.headers))
        if manage and identity.scopes is not None:
            raise _refusal(
                403, "Managing gateway keys needs a full-access key (one created without "
                "scopes).", "missing_scope",
            )  # fmt: skip
        return identity

    async def answer(work: Callable[[], Awaitable[Response]]) -> Response:
        try:
            return await work()
        except GatewayError as exc:
            return Response(
                error_body(exc.status, exc.message, code=exc.code, param=exc.param),
                status_code=exc.status, media_type="application/json",
            )  # fmt: skip

    @router.get("/v1/gateway-keys")
    async def list_keys(request: Request) -> Response:
        async def work() -> Response:
            identity = await caller(request, manage=True)
            records = await store.list_keys(identity.org_name)
            return _json({"data": [key_json(r) for r in records if r.org_id == identity.org_id]})

        return await answer(work)

    @router.post("/v1/gateway-keys")
    async def create_key(request: Request) -> Response:
        async def work() -> Response:
            identity = await caller(request, manage=True)
            try:
                body = orjson.loads(await request.body() or b"{}")
            except orjson.JSONDecodeError:
                raise _refusal(400, "The body is not valid JSON.", "invalid_json") from None
            name, scopes = parse_new_key(body)
            plaintext, record = await store.create_key(identity.org_name, name, scopes)
            return _json({"key": plaintext, "data": key_json(record)}, 201)

        return await answer(work)

    @router.delete("/v1/gateway-keys/{key_id}")
    async def revoke_key(request: Request, key_id: str) -> Response:
        async def work() -> Response:
            identity = await caller(request, manage=True)
            try:
                found = await store.find_key(key_id)
            except (KeyNotFound, AmbiguousKey):
                found = None
            # By id only (not prefix: a prefix could be ambiguous across organisations), and
            # another organisation's key is answered as missing.
            if found is None or found.id != key_id or found.org_id != identity.org_id:
                raise _refusal(
                    404, f"No gateway key {key_id!r} in this organisation.", "key_not_found"
                )
            return _json({"data": key_json(await store.revoke_key(found.id))})

        return await answer(work)

    @router.get("/v1/credits/balance")
    async def balance(request: Request) -> Response:
        async def work() -> Response:
            identity = await caller(request, manage=False)
            account = await store.credits.account(identity.org_id)
            budgets = await store.credits.budgets(identity.org_id)
            return _json(
                {
                    "data": {
                        "account": None if account is None else account_json(account),
                        "budgets": [budget_json(b) for b in budgets],
                    }
                }
            )

        return await answer(work)

    return router


def include_gateway_keys_api(app: FastAPI, deps: GatewayKeyApiDeps) -> None:
    app.include_router(gateway_keys_router(deps))
