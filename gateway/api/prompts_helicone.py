"""Helicone's prompt API, ``/v1/prompt-2025/…`` (prompts-and-peer-apis.md D.3, E.4), over the
one prompt store (:mod:`gateway.store._prompts`).

Every answer is Helicone's ``{"data", "error"}`` envelope. Statuses follow E.9 1: 404 for what
does not exist and 400 for a bad body (upstream answers 500 for most failures; clients only
look at ``response.ok``). Reads need ``prompt:read``, writes ``prompt:write``; a key without
it gets Helicone's 403 ``"Forbidden"``. Every write invalidates the organisation's resolved
versions (``on_change``) before it answers, so the next gateway request sees it.

A version's ``s3_url`` is a signed, expiring link to ``GET /v1/prompt-2025/body/{token}`` on
this gateway (no key needed: Helicone's SDK fetches it without one, D.2.5); the token is the
version and organisation sealed with the gateway's encryption key, so any process of the
deployment can open it.
"""

from __future__ import annotations

import base64
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.requests import ClientDisconnect

from gateway.api.envelope import fail, ok
from gateway.api.requests import _json_body, _TooLarge, store_unavailable
from gateway.errors import GatewayError
from gateway.scopes import PROMPT_READ, PROMPT_WRITE, allows
from gateway.store import (
    KeyIdentity,
    KeyRing,
    PromptNotFound,
    PromptRecord,
    PromptStore,
    PromptVersionNotFound,
    PromptVersionRecord,
    VersionDeployed,
    VersionLimit,
)
from logging_pipeline.clickhouse import LogStoreError
from logging_pipeline.query import FilterError, canonical_uuid

logger = logging.getLogger(__name__)

MAX_PROMPT_BYTES = 1_000_000
"""PostHog's payload limit, applied to Helicone bodies too (E.2)."""
MAX_BODY_BYTES = MAX_PROMPT_BYTES + 64 * 1024
MAX_PAGE_SIZE = 100
MAX_TAGS = 100
ENVIRONMENT = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_LINK_CONTEXT = b"prompt-body-link"

Authenticate = Callable[[dict[str, str]], Awaitable[KeyIdentity]]
InputsLookup = Callable[[str, str, str], Awaitable[dict[str, Any] | None]]


@dataclass(frozen=True, slots=True)
class HeliconePromptDeps:
    """``authenticate``: headers -> the caller (401 otherwise); ``on_change(org_id)``: after
    every write; ``inputs(org_id, request_id, version_id)``: the inputs a request was
    assembled from (the request log); ``keyring`` seals the body links."""

    authenticate: Authenticate
    store: PromptStore
    on_change: Callable[[str], Awaitable[None]]
    inputs: InputsLookup
    keyring: KeyRing | None
    link_ttl_seconds: int = 3600


class Invalid(Exception):
    """A bad body or parameter: a 400 with this message."""


class Missing(Exception):
    """Something that does not exist: a 404 with this message."""


class Conflict(Exception):
    """A 409 with this message."""


# -- shapes ----------------------------------------------------------------------------------


def iso(value: datetime) -> str:
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def prompt_json(prompt: PromptRecord) -> dict[str, Any]:
    return {
        "id": prompt.short_id,
        "name": prompt.display_name,
        "tags": list(prompt.tags),
        "created_at": iso(prompt.created_at),
    }


def version_json(
    version: PromptVersionRecord, environment: str | None = None, s3_url: str | None = None
) -> dict[str, Any]:
    """Helicone's version object: ``environments`` (every label) and ``environment`` (the one
    asked for, else production when deployed there, else the first label)."""
    envs = list(version.environments)
    shown = environment or ("production" if "production" in envs else envs[0] if envs else None)
    data: dict[str, Any] = {
        "id": version.id,
        "model": version.model or "",
        "prompt_id": version.short_id,
        "major_version": version.major,
        "minor_version": version.minor,
        "commit_message": version.commit_message,
        "environments": envs,
        "created_at": iso(version.created_at),
    }
    if shown is not None:
        data["environment"] = shown
    if s3_url is not None:
        data["s3_url"] = s3_url
    return data


# -- body parsing ----------------------------------------------------------------------------


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Invalid("request body must be a JSON object")
    return body


def _string(body: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        raise Invalid(f"missing or invalid field '{name}': a non-empty string")
    return value


def _environment(body: dict[str, Any], *, required: bool = True) -> str | None:
    value = _string(body, "environment", required=required)
    if value is not None and not ENVIRONMENT.match(value):
        raise Invalid("'environment' must be 1-64 letters, digits, '-' or '_'")
    return value


def sanitize_tags(value: Any) -> list[str]:
    """Trimmed, empties dropped, duplicates dropped (first seen kept) (D.3.9)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise Invalid("'tags' must be an array of strings")
    tags = list(dict.fromkeys(t.strip()[:255] for t in value if t.strip()))
    if len(tags) > MAX_TAGS:
        raise Invalid(f"at most {MAX_TAGS} tags")
    return tags


def prompt_body(body: dict[str, Any]) -> dict[str, Any]:
    value = body.get("promptBody")
    if not isinstance(value, dict) or not isinstance(value.get("messages", []), list):
        raise Invalid("missing or invalid field 'promptBody': an OpenAI chat request object")
    size = len(orjson.dumps(value))
    if size > MAX_PROMPT_BYTES:
        raise Invalid(f"'promptBody' must be {MAX_PROMPT_BYTES} bytes or fewer")
    return value


def _int(body: dict[str, Any], name: str, default: int, lo: int, hi: int) -> int:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise Invalid(f"'{name}' must be an integer from {lo} to {hi}")
    return value


def _force(request: Request) -> bool:
    return request.query_params.get("force", "").lower() == "true"


# -- body links --------------------------------------------------------------------------------


def seal_link(keyring: KeyRing, org_id: str, version_id: str, ttl: int) -> str:
    payload = orjson.dumps({"o": org_id, "v": version_id, "e": int(time.time()) + ttl})
    sealed = keyring.encrypt(payload, _LINK_CONTEXT)
    return base64.urlsafe_b64encode(sealed).decode().rstrip("=")


def open_link(keyring: KeyRing, token: str) -> tuple[str, str] | None:
    """(org id, version id) of a valid, unexpired token; None otherwise."""
    try:
        sealed = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = orjson.loads(keyring.decrypt(sealed, _LINK_CONTEXT))
    except Exception:  # not base64, not ours, tampered with, or sealed with a retired key
        return None
    if not isinstance(data, dict) or not isinstance(data.get("e"), int):
        return None
    if data["e"] < time.time():
        return None
    return str(data.get("o")), str(data.get("v"))


# -- routes ------------------------------------------------------------------------------------


def helicone_prompt_router(deps: HeliconePromptDeps) -> APIRouter:
    """The ``/v1/prompt-2025`` routes bound to ``deps`` (static paths before ``{promptId}``)."""
    router = APIRouter(tags=["Prompts (Helicone)"])
    store = deps.store

    Work = Callable[[str, str | None], Awaitable[tuple[int, Any]]]

    async def respond(request: Request, scope: str, work: Work) -> Response:
        try:
            headers = {k.lower(): v for k, v in request.headers.items()}
            identity = await deps.authenticate(headers)
            if not allows(identity.scopes, scope):
                return fail(403, "Forbidden")
            status, data = await work(identity.org_id, identity.key_id)
            response = ok(data)
            response.status_code = status
            return response
        except GatewayError as exc:
            return fail(exc.status, exc.message)
        except (Invalid, FilterError) as exc:
            return fail(400, str(exc) if isinstance(exc, Invalid) else exc.message)
        except (Missing, PromptNotFound) as exc:
            return fail(404, str(exc) if isinstance(exc, Missing) else "Prompt not found")
        except PromptVersionNotFound:
            return fail(404, "Prompt version not found")
        except VersionDeployed as exc:
            return fail(409, f"Version is deployed to environment(s): {exc}; use ?force=true")
        except VersionLimit:
            return fail(400, "Prompt has reached the maximum number of versions")
        except Conflict as exc:
            return fail(409, str(exc))
        except _TooLarge:
            return fail(413, f"Request body is larger than the limit of {MAX_BODY_BYTES} bytes.")
        except ClientDisconnect:
            return fail(499, "client disconnected")
        except (LogStoreError, OSError, TimeoutError) as exc:
            logger.warning("prompt inputs not read (%s): %r", request.url.path, exc)
            return store_unavailable()
        except Exception:
            logger.exception("prompt API failed: %s %s", request.method, request.url.path)
            return fail(500, "Internal error in the prompt API")

    async def body_of(request: Request) -> dict[str, Any]:
        return _object(await _json_body(request, MAX_BODY_BYTES))

    async def changed(org_id: str) -> None:
        await deps.on_change(org_id)

    def link(request: Request, org_id: str, version: PromptVersionRecord) -> str | None:
        if deps.keyring is None:
            return None
        token = seal_link(deps.keyring, org_id, version.id, deps.link_ttl_seconds)
        return f"{str(request.base_url).rstrip('/')}/v1/prompt-2025/body/{token}"

    async def version_of(org_id: str, version_id: str) -> PromptVersionRecord:
        version = await store.version(org_id, version_id)
        if version is None:
            raise PromptVersionNotFound(version_id)
        return version

    async def owned_version(org_id: str, prompt_id: str, version_id: str) -> PromptVersionRecord:
        prompt = await store.find(org_id, prompt_id)
        if prompt is None:
            raise PromptNotFound(prompt_id)
        version = await store.version(org_id, version_id, prompt.id)
        if version is None:
            raise Missing("Prompt version not found or does not belong to the specified prompt")
        return version

    @router.post("/v1/prompt-2025", summary="Create a prompt")
    async def create(request: Request) -> Response:
        async def work(org_id: str, key_id: str | None) -> tuple[int, Any]:
            body = await body_of(request)
            name = _string(body, "name")
            assert name is not None
            saved = prompt_body(body)
            tags = sanitize_tags(body.get("tags"))
            prompt, version = await store.create(
                org_id, display_name=name, body=saved, tags=tags, author=key_id
            )
            await changed(org_id)
            return 201, {"id": prompt.short_id, "versionId": version.id}

        return await respond(request, PROMPT_WRITE, work)

    @router.post("/v1/prompt-2025/update", summary="Publish a new version")
    async def update_prompt(request: Request) -> Response:
        async def work(org_id: str, key_id: str | None) -> tuple[int, Any]:
            body = await body_of(request)
            prompt_id = _string(body, "promptId")
            base_id = _string(body, "promptVersionId")
            assert prompt_id is not None and base_id is not None
            major = body.get("newMajorVersion", False)
            if not isinstance(major, bool):
                raise Invalid("'newMajorVersion' must be a boolean")
            message = body.get("commitMessage", "")
            if not isinstance(message, str):
                raise Invalid("'commitMessage' must be a string")
            environment = _environment(body, required=False)
            saved = prompt_body(body)
            prompt = await store.find(org_id, prompt_id)
            if prompt is None:
                raise PromptNotFound(prompt_id)
            base = await store.version(org_id, base_id)
            if base is None:
                raise Missing("Current version not found")
            if base.prompt_id != prompt.id:
                raise Invalid("The base version does not belong to the specified prompt")
            version = await store.publish(
                org_id, prompt.id, body=saved, bump="major" if major else "minor",
                base_version_id=base.id, commit_message=message, author=key_id,
                deploy_to=[environment] if environment else [],
            )  # fmt: skip
            await changed(org_id)
            return 200, {"id": version.id}

        return await respond(request, PROMPT_WRITE, work)

    @router.post("/v1/prompt-2025/update/environment", summary="Deploy a version")
    async def set_environment(request: Request) -> Response:
        async def work(org_id: str, key_id: str | None) -> tuple[int, Any]:
            body = await body_of(request)
            prompt_id, version_id = _string(body, "promptId"), _string(body, "promptVersionId")
            environment = _environment(body)
            assert prompt_id and version_id and environment
            version = await owned_version(org_id, prompt_id, version_id)
            await store.deploy(org_id, version.prompt_id, version.id, environment, key_id)
            await changed(org_id)
            return 200, None

        return await respond(request, PROMPT_WRITE, work)

    @router.post("/v1/prompt-2025/remove/environment", summary="Undeploy a version")
    async def remove_environment(request: Request) -> Response:
        async def work(org_id: str, key_id: str | None) -> tuple[int, Any]:
            body = await body_of(request)
            prompt_id, version_id = _string(body, "promptId"), _string(body, "promptVersionId")
            environment = _environment(body)
            assert prompt_id and version_id and environment
            version = await owned_version(org_id, prompt_id, version_id)
            if environment not in version.environments:
                raise Missing(f"The version is not deployed to '{environment}'")
            await store.undeploy(
                org_id, version.prompt_id, version.id, environment, force=_force(request)
            )
            await changed(org_id)
            return 200, None

        return await respond(request, PROMPT_WRITE, work)

    @router.post("/v1/prompt-2025/query", summary="Search prompts")
    async def query(request: Request) -> Response:
        async def work(org_id: str, key_id: str | None) -> tuple[int, Any]:
            body = _object(await _json_body(request, MAX_BODY_BYTES, required=False))
            search = body.get("search") or ""
            if not isinstance(search, str):
                raise Invalid("'search' must be a string")
            tags = sanitize_tags(body.get("tagsFilter"))
            page = _int(body, "page", 0, 0, 1_000_000)
            size = _int(body, "pageSize", 10, 1, MAX_PAGE_SIZE)
            found = await store.list_prompts(
                org_id, search=search, tags=tags, offset=page * size, limit=size
            )
            return 200, [prompt_json(p) for p in found]

        return await respond(request, PROMPT_READ, work)

    @router.get("/v1/prompt-2025/tags", summary="Every tag")
    async def tags(request: Request) -> Response:
        async def work(org_id: str, key_id: str | None) -> tuple[int, Any]:
            return 200, await store.all_tags(org_id)

        return await respond(request, PROMPT_READ, work)

    @router.get("/v1/prompt-2025/environments", summary="Every environment")
    async def environments(request: Request) -> Response:
        async def work(org_id: str, key_id: str | None) -> tuple[int, Any]:
            return 200, await store.all_environments(org_id)

        return await respond(request, PROMPT_READ, work)

    @router.get("/v1/prompt-2025/count", summary="Number of prompts")
    async def count(request: Request) -> Response:
        async def work(org_id: str, key_id: str | None) -> tuple[int, Any]:
            return 200, await store.count(org_id)

        return await respond(request, PROMPT_READ, work)

    @router.get("/v1/prompt-2025/body/{token}", summary="A version's body (signed link)")
    async def signed_body(token: str) -> Response:
        """The raw body JSON, for a link from ``s3_url`` (no key: the link is the grant)."""
        opened = open_link(deps.keyring, token) if deps.keyring is not None else None
        if opened is None:
            return fail(403, "The link is invalid or has expired")
        version = await store.version(*opened)
        if version is None:
            return fail(404, "Prompt version not found")
        return Response(orjson.dumps(version.body), media_type="application/json")

    @router.get("/v1/prompt-2025/id/{promptId}", summary="Get a prompt")
    async def get_prompt(request: Request, promptId: str) -> Response:
        async def work(org_id: str, key_id: str | None) -> tuple[int, Any]:
            prompt = await store.find(org_id, promptId)
            if prompt is None:
                raise PromptNotFound(promptId)
            return 200, prompt_json(prompt)

        return await respond(request, PROMPT_READ, work)

    @router.get("/v1/prompt-2025/id/{promptId}/{versionId}/inputs", summary="A request's inputs")
    async def inputs(request: Request, promptId: str, versionId: str) -> Response:
        async def work(org_id: str, key_id: str | None) -> tuple[int, Any]:
            request_id = canonical_uuid(request.query_params.get("requestId", ""))
            if request_id is None:
                raise Invalid("missing or invalid query parameter 'requestId': a UUID")
            version = await owned_version(org_id, promptId, versionId)
            found = await deps.inputs(org_id, request_id, version.id)
            if found is None:
                raise Missing("Prompt inputs not found")
            return 200, found

        return await respond(request, PROMPT_READ, work)

    @router.post("/v1/prompt-2025/id/{promptId}/rename", summary="Rename a prompt")
    async def rename(request: Request, promptId: str) -> Response:
        async def work(org_id: str, key_id: str | None) -> tuple[int, Any]:
            name = _string(await body_of(request), "name")
            await store.update_prompt(org_id, promptId, display_name=name)
            await changed(org_id)
            return 200, None

        return await respond(request, PROMPT_WRITE, work)

    @router.patch("/v1/prompt-2025/id/{promptId}/tags", summary="Replace a prompt's tags")
    async def set_tags(request: Request, promptId: str) -> Response:
        async def work(org_id: str, key_id: str | None) -> tuple[int, Any]:
            tags = sanitize_tags((await body_of(request)).get("tags"))
            prompt = await store.update_prompt(org_id, promptId, tags=tags)
            await changed(org_id)
            return 200, list(prompt.tags)

        return await respond(request, PROMPT_WRITE, work)

    for prefix, with_body in (("/v1", False), ("/v2", True)):
        _query_routes(router, store, prefix, with_body, respond, body_of, link, version_of)

    @router.post("/v1/prompt-2025/query/versions", summary="A prompt's versions")
    async def versions(request: Request) -> Response:
        async def work(org_id: str, key_id: str | None) -> tuple[int, Any]:
            body = await body_of(request)
            prompt_id = _string(body, "promptId")
            assert prompt_id is not None
            major = body.get("majorVersion")
            if major is not None and (isinstance(major, bool) or not isinstance(major, int)):
                raise Invalid("'majorVersion' must be an integer")
            found = await store.versions(org_id, prompt_id, major=major, limit=50)
            return 200, [version_json(v) for v in found]

        return await respond(request, PROMPT_READ, work)

    @router.post("/v1/prompt-2025/query/total-versions", summary="Version counts")
    async def total_versions(request: Request) -> Response:
        async def work(org_id: str, key_id: str | None) -> tuple[int, Any]:
            prompt_id = _string(await body_of(request), "promptId")
            assert prompt_id is not None
            total, major, _ = await store.version_stats(org_id, prompt_id)
            # majorVersions is the highest major (upstream's MAX), not a count (D.3.17).
            return 200, {"totalVersions": total, "majorVersions": major}

        return await respond(request, PROMPT_READ, work)

    @router.delete("/v1/prompt-2025/{promptId}", summary="Delete a prompt")
    async def delete_prompt(request: Request, promptId: str) -> Response:
        async def work(org_id: str, key_id: str | None) -> tuple[int, Any]:
            await store.archive(org_id, promptId)
            await changed(org_id)
            return 200, None

        return await respond(request, PROMPT_WRITE, work)

    @router.delete("/v1/prompt-2025/{promptId}/{versionId}", summary="Delete a version")
    async def delete_version(request: Request, promptId: str, versionId: str) -> Response:
        async def work(org_id: str, key_id: str | None) -> tuple[int, Any]:
            version = await owned_version(org_id, promptId, versionId)
            await store.delete_version(
                org_id, version.prompt_id, version.id, force=_force(request)
            )
            await changed(org_id)
            return 200, None

        return await respond(request, PROMPT_WRITE, work)

    return router


def _query_routes(
    router: APIRouter,
    store: PromptStore,
    prefix: str,
    with_body: bool,
    respond: Any,
    body_of: Callable[[Request], Awaitable[dict[str, Any]]],
    link: Callable[[Request, str, PromptVersionRecord], str | None],
    version_of: Callable[[str, str], Awaitable[PromptVersionRecord]],
) -> None:
    """``query/version``, ``query/production-version`` and ``query/environment-version``;
    under ``/v2`` the version also carries its ``prompt_body`` (D.3.20)."""

    def shaped(
        request: Request, org_id: str, version: PromptVersionRecord, env: str | None = None
    ) -> dict[str, Any]:
        data = version_json(version, env, link(request, org_id, version))
        if with_body:
            data["prompt_body"] = version.body
        return data

    @router.post(f"{prefix}/prompt-2025/query/version", summary="Get a version")
    async def one(request: Request) -> Response:
        async def work(org_id: str, key_id: str | None) -> tuple[int, Any]:
            version_id = _string(await body_of(request), "promptVersionId")
            assert version_id is not None
            return 200, shaped(request, org_id, await version_of(org_id, version_id))

        result: Response = await respond(request, PROMPT_READ, work)
        return result

    @router.post(f"{prefix}/prompt-2025/query/production-version", summary="Production version")
    async def production(request: Request) -> Response:
        return await _deployed(request, "production", None)

    @router.post(f"{prefix}/prompt-2025/query/environment-version", summary="Deployed version")
    async def environment(request: Request) -> Response:
        return await _deployed(request, None, "environment")

    async def _deployed(request: Request, fixed: str | None, field: str | None) -> Response:
        async def work(org_id: str, key_id: str | None) -> tuple[int, Any]:
            body = await body_of(request)
            prompt_id = _string(body, "promptId")
            assert prompt_id is not None
            env = fixed or _environment(body)
            assert env is not None
            store_version = await store.deployed(org_id, prompt_id, env)
            if store_version is None:
                raise Missing(
                    "Prompt production version not found"
                    if fixed
                    else "Prompt version not found"
                )
            return 200, shaped(request, org_id, store_version, env if field else None)

        result: Response = await respond(request, PROMPT_READ, work)
        return result


def include_helicone_prompt_api(app: FastAPI, deps: HeliconePromptDeps) -> None:
    """Mount ``/v1/prompt-2025`` (and ``/v2/prompt-2025/query/*``) on ``app``."""
    app.include_router(helicone_prompt_router(deps))
