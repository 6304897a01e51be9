"""PostHog's ``llm_prompts`` API (prompts-and-peer-apis.md part B, E.4) over the one prompt
store: ``/api/environments/{env}/llm_prompts/…`` and ``/api/projects/{env}/llm_prompts/…``.

Field mapping (E.4): ``name`` is the prompt's slug, ``id`` a version's id, ``version`` its
sequence number, ``prompt`` its body as stored (a bare string for a text prompt). A PostHog
prompt is a Helicone prompt too: created here it gets a short id, version 0.0 and the
``mustache`` template syntax (PostHog's ``{{name}}`` placeholders are filled at request time
as well); a publish bumps the minor version of the latest's major. Create and publish deploy
to ``production``, so a PostHog user's "publish" is live for the gateway's ``prompt_id``
(E.8). Prompts created through Helicone's API show here by slug.

Archive answers 204 (the server's behaviour) and frees the name; a re-created name starts at
version 1. ``created_by`` is ``null``: the gateway knows keys, not PostHog users. The
PostHog SDK's ``label`` (fetch by name) is an environment: the version deployed there.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response

from gateway.api.posthog import (
    Authenticate,
    PostHogError,
    authorize,
    error,
    invalid,
    json_object,
    json_response,
    method_not_allowed,
    page,
    page_bounds,
    plain,
    timestamp,
)
from gateway.scopes import PROMPT_READ, PROMPT_WRITE
from gateway.store import (
    MAX_PROMPT_VERSIONS,
    PRODUCTION,
    PromptSlugExists,
    PromptStore,
    PromptSummary,
    PromptVersionRecord,
    StaleVersion,
    VersionLimit,
)

logger = logging.getLogger("gateway.api.prompts_posthog")

NAME = re.compile(r"^[a-zA-Z0-9_-]+$")
MAX_NAME = 255
MAX_PROMPT_BYTES = 1_000_000
MAX_BODY_BYTES = MAX_PROMPT_BYTES + 64 * 1024
ORDERINGS = (
    "name",
    "created_at",
    "updated_at",
    "version",
    "latest_version",
    "version_count",
    "first_version_created_at",
)
RESOLVE_LIMIT, RESOLVE_MAX = 50, 100


@dataclass(frozen=True, slots=True)
class PostHogPromptDeps:
    authenticate: Authenticate
    store: PromptStore
    on_change: Callable[[str], Awaitable[None]]


def serialize(
    version: PromptVersionRecord, summary: PromptSummary, *, public: bool = False
) -> dict[str, Any]:
    """``LLMPromptSerializer`` (the public one, for fetch by name, has no ``created_by``)."""
    data: dict[str, Any] = {
        "id": version.id,
        "name": summary.prompt.slug,
        "prompt": version.body,
        "version": version.seq,
        "created_by": None,
        "created_at": timestamp(version.created_at),
        "updated_at": timestamp(version.superseded_at or version.created_at),
        "deleted": False,
        "is_latest": version.seq == summary.latest.seq,
        "latest_version": summary.latest.seq,
        "version_count": summary.version_count,
        "first_version_created_at": timestamp(summary.first_created_at),
    }
    if public:
        del data["created_by"]
    return data


def _not_found(name: str) -> PostHogError:
    return plain(404, f"Prompt with name '{name}' not found.")


def _payload(body: dict[str, Any]) -> Any:
    if "prompt" not in body:
        raise invalid("prompt", "This field is required.", code="required")
    prompt = body["prompt"]
    size = len(orjson.dumps(prompt))  # compact, non-ASCII as UTF-8: PostHog's measure
    if size > MAX_PROMPT_BYTES:
        raise invalid(
            "prompt", f"Prompt payload must be {MAX_PROMPT_BYTES} bytes or fewer.", "max_size"
        )
    return prompt


def _name(body: dict[str, Any]) -> str:
    if "name" not in body:
        raise invalid("name", "This field is required.", code="required")
    name = body["name"]
    if not isinstance(name, str):
        raise invalid("name", "Not a valid string.", code="invalid")
    if len(name) > MAX_NAME:
        raise invalid(
            "name", f"Ensure this field has no more than {MAX_NAME} characters.", "max_length"
        )
    if not NAME.match(name):
        raise invalid(
            "name",
            "Only letters, numbers, hyphens (-) and underscores (_) are allowed.",
            "invalid_name",
        )
    if name.lower() == "new":
        raise invalid("name", "'new' is a reserved name and cannot be used.", "invalid_name")
    return name


def _positive(raw: Any, attr: str) -> int | None:
    """An integer >= 1 from a query string or JSON (None when absent), else DRF's 400."""
    if raw is None:
        return None
    if isinstance(raw, str) and raw.strip().lstrip("+").isdigit():
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise invalid(attr, "A valid integer is required.", code="invalid")
    if raw < 1:
        raise invalid(attr, "Ensure this value is greater than or equal to 1.", "min_value")
    return raw


def _ordering(raw: str | None) -> tuple[str, bool]:
    if raw:
        descending = raw.startswith("-")
        field = raw.lstrip("-")
        if field in ORDERINGS:
            return field, descending
    return "created_at", True


def _sort_key(summary: PromptSummary, field: str) -> Any:
    latest = summary.latest
    return {
        "name": summary.prompt.slug,
        "created_at": latest.created_at,
        "updated_at": latest.superseded_at or latest.created_at,
        "version": latest.seq,
        "latest_version": latest.seq,
        "version_count": summary.version_count,
        "first_version_created_at": summary.first_created_at,
    }[field]


def posthog_prompt_router(deps: PostHogPromptDeps) -> APIRouter:
    router = APIRouter(tags=["LLM prompts (PostHog)"])
    store = deps.store

    async def answer(work: Callable[[], Awaitable[Response]]) -> Response:
        try:
            return await work()
        except PostHogError as exc:
            return exc.response()
        except Exception:
            logger.exception("llm_prompts API failed")
            return error(500, "server_error", "error", "A server error occurred.").response()

    async def summary_of(org_id: str, name: str) -> PromptSummary:
        prompt = await store.find_slug(org_id, name) if NAME.match(name) else None
        found = await store.summaries(org_id, prompt.id) if prompt is not None else []
        if not found:
            raise _not_found(name)
        return found[0]

    async def collection(request: Request, env: str) -> Response:
        async def work() -> Response:
            if request.method == "GET":
                identity = await authorize(deps.authenticate, request, env, PROMPT_READ)
                limit, offset = page_bounds(request)
                rows = await store.summaries(identity.org_id)
                search = request.query_params.get("search", "").lower()
                if search:
                    rows = [
                        r
                        for r in rows
                        if search in r.prompt.slug.lower()
                        or search in orjson.dumps(r.latest.body).decode().lower()
                    ]
                field, descending = _ordering(request.query_params.get("order_by"))
                rows.sort(key=lambda r: r.latest.id, reverse=True)  # the tie-break: -id
                rows.sort(key=lambda r: _sort_key(r, field), reverse=descending)
                results = [serialize(r.latest, r) for r in rows[offset : offset + limit]]
                return page(request, results, len(rows), limit, offset)
            if request.method == "POST":
                identity = await authorize(deps.authenticate, request, env, PROMPT_WRITE)
                body = await json_object(request, MAX_BODY_BYTES)
                name, prompt = _name(body), _payload(body)
                try:
                    created, _ = await store.create(
                        identity.org_id,
                        display_name=name,
                        slug=name,
                        body=prompt,
                        template_syntax="mustache",
                        commit_message="",
                        author=identity.key_id,
                        deploy_to=[PRODUCTION],
                    )
                except PromptSlugExists:
                    raise invalid(
                        "name", "A prompt with this name already exists.", "unique"
                    ) from None
                await deps.on_change(identity.org_id)
                summary = (await store.summaries(identity.org_id, created.id))[0]
                return json_response(serialize(summary.latest, summary), 201)
            raise method_not_allowed(request.method)

        return await answer(work)

    async def by_name(request: Request, env: str, name: str) -> Response:
        async def work() -> Response:
            if request.method == "GET":
                identity = await authorize(deps.authenticate, request, env, PROMPT_READ)
                summary = await summary_of(identity.org_id, name)
                wanted = _positive(request.query_params.get("version"), "version")
                label = request.query_params.get("label")
                version = summary.latest
                if label is not None:
                    # The PostHog SDK's label is the version an environment points at.
                    if wanted is not None:
                        raise invalid(None, "Pass either version or label, not both.")
                    labelled = await store.deployed(identity.org_id, summary.prompt.id, label)
                    if labelled is None:
                        raise _not_found(name)
                    version = labelled
                elif wanted is not None and wanted != version.seq:
                    found = await store.version_by_seq(identity.org_id, summary.prompt.id, wanted)
                    if found is None:
                        raise _not_found(name)
                    version = found
                return json_response(serialize(version, summary, public=True))
            if request.method == "PATCH":
                identity = await authorize(deps.authenticate, request, env, PROMPT_WRITE)
                body = await json_object(request, MAX_BODY_BYTES)
                prompt = _payload(body)
                if "base_version" not in body:
                    raise invalid("base_version", "This field is required.", code="required")
                base = _positive(body["base_version"], "base_version")
                summary = await summary_of(identity.org_id, name)
                try:
                    version = await store.publish(
                        identity.org_id,
                        summary.prompt.id,
                        body=prompt,
                        expected_latest_seq=base,
                        author=identity.key_id,
                        deploy_to=[PRODUCTION],
                    )
                except StaleVersion as exc:
                    raise PostHogError(
                        409,
                        {
                            "detail": "The prompt changed since you opened it. Reload the latest "
                            "version and try again.",
                            "current_version": exc.current_seq,
                        },
                    ) from None
                except VersionLimit:
                    raise plain(
                        400,
                        f"Prompt has reached the maximum of {MAX_PROMPT_VERSIONS} versions. "
                        "Archive and recreate the prompt to continue publishing.",
                    ) from None
                await deps.on_change(identity.org_id)
                updated = await summary_of(identity.org_id, name)
                return json_response(serialize(version, updated))
            raise method_not_allowed(request.method)

        return await answer(work)

    async def archive(request: Request, env: str, name: str) -> Response:
        async def work() -> Response:
            if request.method != "POST":
                raise method_not_allowed(request.method)
            identity = await authorize(deps.authenticate, request, env, PROMPT_WRITE)
            summary = await summary_of(identity.org_id, name)
            await store.archive(identity.org_id, summary.prompt.id)
            await deps.on_change(identity.org_id)
            return Response(status_code=204)

        return await answer(work)

    async def resolve(request: Request, env: str, name: str) -> Response:
        async def work() -> Response:
            if request.method != "GET":
                raise method_not_allowed(request.method)
            identity = await authorize(deps.authenticate, request, env, PROMPT_READ)
            params = request.query_params
            wanted = _positive(params.get("version"), "version")
            version_id = params.get("version_id")
            limit = _positive(params.get("limit"), "limit") or RESOLVE_LIMIT
            if limit > RESOLVE_MAX:
                raise invalid(
                    "limit",
                    f"Ensure this value is less than or equal to {RESOLVE_MAX}.",
                    "max_value",
                )
            raw_offset = params.get("offset")
            offset = 0
            if raw_offset is not None:
                if not raw_offset.strip().isdigit():
                    raise invalid("offset", "A valid integer is required.", code="invalid")
                offset = int(raw_offset)
            before = _positive(params.get("before_version"), "before_version")
            if raw_offset is not None and before is not None:
                raise invalid(None, "Use either offset or before_version, not both.")
            summary = await summary_of(identity.org_id, name)
            org, prompt_id = identity.org_id, summary.prompt.id
            selected: PromptVersionRecord | None = summary.latest
            if version_id is not None:
                selected = await store.version(org, version_id, prompt_id)
                if selected is not None and wanted is not None and selected.seq != wanted:
                    selected = None
            elif wanted is not None:
                selected = await store.version_by_seq(org, prompt_id, wanted)
            if selected is None:
                raise _not_found(name)
            history = await store.versions(
                org, prompt_id, limit=limit + 1, offset=offset, before_seq=before
            )
            versions = [
                {
                    "id": v.id,
                    "version": v.seq,
                    "created_by": None,
                    "created_at": timestamp(v.created_at),
                    "is_latest": v.seq == summary.latest.seq,
                }
                for v in history[:limit]
            ]
            return json_response(
                {
                    "prompt": serialize(selected, summary),
                    "versions": versions,
                    "has_more": len(history) > limit,
                }
            )

        return await answer(work)

    every = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    for prefix in ("/api/environments/{env}/llm_prompts", "/api/projects/{env}/llm_prompts"):
        routes: list[tuple[str, Callable[..., Awaitable[Response]], tuple[str, ...]]] = [
            (prefix, collection, ("GET", "POST")),
            (f"{prefix}/name/{{name}}", by_name, ("GET", "PATCH")),
            (f"{prefix}/name/{{name}}/archive", archive, ("POST",)),
            (f"{prefix}/resolve/name/{{name}}", resolve, ("GET",)),
        ]
        documented = prefix.startswith("/api/environments/")
        for path, endpoint, allowed in routes:
            for variant in (path + "/", path):  # no redirect: a body would be lost
                for method in allowed:
                    router.add_api_route(
                        variant,
                        endpoint,
                        methods=[method],
                        include_in_schema=documented and variant.endswith("/"),
                        operation_id=f"llm_prompts_{endpoint.__name__}_{method.lower()}",
                    )
                router.add_api_route(
                    variant,
                    endpoint,
                    methods=[m for m in every if m not in allowed],
                    include_in_schema=False,
                )
    return router


def include_posthog_prompt_api(app: FastAPI, deps: PostHogPromptDeps) -> None:
    app.include_router(posthog_prompt_router(deps))
