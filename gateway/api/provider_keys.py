"""PostHog's provider-keys API over the gateway's BYOK key store (prompts-and-peer-apis.md A.2,
A.3): ``/api/environments/{env}/llm_analytics/provider_keys/`` and its actions, and
``provider_key_validations/``, also under ``/api/projects/{env}/``, with or without the
trailing slash.

One store serves this API and BYOK routing. ``api_key`` is write-only; ``api_key_masked``
is PostHog's mask; a created key has passed a live check (``state`` is ``ok``), except for
providers without one (Bedrock, Vertex: ``unknown``). Extensions to PostHog's object, all
optional: ``deployment_id`` (the key's name in ``model/provider/<deployment_id>``; derived
from ``name`` when not given, then immutable), ``is_default`` (the router's first choice for
the provider; ``set_as_active`` on create sets it), ``base_url``, ``azure_deployment``,
``aws_region``, ``vertex_project``, ``vertex_location``, ``updated_at``,
``last_validated_at``. Evaluations do not exist in the gateway, so ``assign``,
``dependent_configs`` and ``trial_evaluations`` answer with PostHog's shapes and no
evaluations (``alternative_keys`` is real).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

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
    not_found,
    page,
    page_bounds,
    plain,
    timestamp,
)
from gateway.keycheck import (
    AZURE_DEFAULT_API_VERSION,
    AZURE_DISALLOWED,
    KeyValidator,
    azure_endpoint_allowed,
    base_url_allowed,
    format_error,
)
from gateway.scopes import EVALUATION_WRITE, PROVIDER_KEY_READ, PROVIDER_KEY_WRITE
from gateway.store import (
    DEPLOYMENT_ID_PATTERN,
    DecryptionError,
    Deployment,
    EncryptionKeyError,
    ProviderKeyConflict,
    ProviderKeyNotFound,
    ProviderKeyRecord,
    ProviderKeyStore,
)
from gateway.targets import TargetPolicy
from providers.spec import PROVIDERS
from providers.vertex import is_location, is_project

logger = logging.getLogger("gateway.api.provider_keys")

POSTHOG_ALIASES = {
    "azure_openai": "azure", "gemini": "google-ai-studio", "together_ai": "together"
}
"""PostHog's provider names for the gateway's slugs; accepted on input, used on output."""
_OUTPUT_NAMES = {slug: alias for alias, slug in POSTHOG_ALIASES.items()}
PROVIDER_CHOICES: tuple[str, ...] = (
    *PROVIDERS.routed(),
    *(name for name in ("azure", "bedrock", "vertex") if PROVIDERS.get(name)),
)
"""Providers a key may be stored for: every routed one, and the deployment-style ones."""

_DEPLOYMENT_INPUTS = {
    "azure_endpoint": "azure_endpoint",
    "api_version": "api_version",
    "azure_deployment": "azure_deployment",
    "base_url": "base_url",
    "aws_region": "region",
    "vertex_project": "project",
    "vertex_location": "location",
}
"""Request field -> :class:`Deployment` field."""
_FIELD_LIMITS = {"name": 255, "api_version": 20, "azure_deployment": 255, "aws_region": 32,
                 "vertex_project": 255, "vertex_location": 64, "base_url": 2048,
                 "azure_endpoint": 2048, "api_key": 4096}

Changed = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ProviderKeyApiDeps:
    """``authenticate``: lower-cased headers -> identity (raises ``GatewayError`` 401/503).
    ``on_change``: called with the org id after every write (the router's cache)."""

    authenticate: Authenticate
    store: ProviderKeyStore
    validator: KeyValidator
    targets: TargetPolicy
    on_change: Changed


def _provider_name(slug: str) -> str:
    return _OUTPUT_NAMES.get(slug, slug)


def serialize(record: ProviderKeyRecord) -> dict[str, Any]:
    """The ``LLMProviderKey`` object (never the key itself) plus the gateway's extensions."""
    deployment = record.deployment
    azure = record.provider == "azure"
    return {
        "id": record.id,
        "provider": _provider_name(record.provider),
        "name": record.name,
        "state": record.state,
        "error_message": record.error_message,
        "api_key_masked": record.api_key_masked,
        "azure_endpoint_display": deployment.azure_endpoint if azure else None,
        "api_version_display": deployment.api_version if azure else None,
        "created_at": timestamp(record.created_at),
        "created_by": None,
        "last_used_at": timestamp(record.last_used_at),
        "deployment_id": record.deployment_id,
        "is_default": record.is_default,
        "base_url": deployment.base_url,
        "azure_deployment": deployment.azure_deployment,
        "aws_region": deployment.region,
        "vertex_project": deployment.project,
        "vertex_location": deployment.location,
        "updated_at": timestamp(record.updated_at),
        "last_validated_at": timestamp(record.last_validated_at),
    }


# --- input checks ---------------------------------------------------------------------------


def _choice(value: Any) -> str:
    if not isinstance(value, str) or POSTHOG_ALIASES.get(value, value) not in PROVIDER_CHOICES:
        raise invalid("provider", f'"{value}" is not a valid choice.', code="invalid_choice")
    return POSTHOG_ALIASES.get(value, value)


def _string(body: dict[str, Any], field: str, *, blank: bool = False) -> str | None:
    """A string field (``None`` when absent or null); DRF's messages for the rest."""
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise invalid(field, "Not a valid string.", code="invalid")
    value = value.strip()
    if not value and not blank:
        raise invalid(field, "This field may not be blank.", code="blank")
    limit = _FIELD_LIMITS.get(field)
    if limit is not None and len(value) > limit:
        raise invalid(
            field, f"Ensure this field has no more than {limit} characters.", code="max_length"
        )
    return value


def _boolean(body: dict[str, Any], field: str) -> bool:
    value = body.get(field, False)
    if not isinstance(value, bool):
        raise invalid(field, "Must be a valid boolean.", code="invalid")
    return value


def _deployment(
    body: dict[str, Any], provider: str, targets: TargetPolicy, base: Deployment | None
) -> Deployment:
    """``base`` (the stored deployment) overlaid with the body's fields, checked."""
    values = base.as_dict() if base is not None else {}
    for field, target in _DEPLOYMENT_INPUTS.items():
        if field in body:
            given = _string(body, field, blank=True)
            if given:
                values[target] = given
            else:
                values.pop(target, None)
    deployment = Deployment(**values)
    if provider == "azure":
        if not deployment.azure_endpoint:
            raise invalid("azure_endpoint", "Azure endpoint is required for Azure OpenAI.")
        if not azure_endpoint_allowed(deployment.azure_endpoint, targets):
            raise invalid("azure_endpoint", AZURE_DISALLOWED)
        if not deployment.api_version:
            values["api_version"] = AZURE_DEFAULT_API_VERSION  # persisted, as PostHog does
            deployment = Deployment(**values)
    if provider == "bedrock" and not deployment.region:
        raise invalid("aws_region", "AWS region is required for Bedrock.")
    if provider == "vertex" and not (deployment.project and deployment.location):
        attr = "vertex_project" if not deployment.project else "vertex_location"
        raise invalid(attr, "Vertex project and location are required for Vertex AI.")
    if provider == "vertex" and not is_project(deployment.project or ""):
        raise invalid("vertex_project", "Vertex project must be a Google Cloud project id.")
    if provider == "vertex" and not is_location(deployment.location or ""):
        raise invalid(
            "vertex_location",
            "Vertex location must be 'global', a multi-region ('us', 'eu') or a region such as "
            "us-east5.",
        )
    if deployment.base_url and not base_url_allowed(deployment.base_url, targets):
        raise invalid(
            "base_url",
            "Base URL must be an http(s) URL on the gateway's allow-list "
            "(a provider host, a configured <PROVIDER>_BASE_URL, or GATEWAY_ALLOWED_TARGET_HOSTS).",
        )
    return deployment


def _api_key(body: dict[str, Any], provider: str) -> str | None:
    key = _string(body, "api_key", blank=True)
    if not key:
        return None
    problem = format_error(provider, key)
    if problem is not None:
        raise invalid("api_key", problem)
    return key


# --- the router -----------------------------------------------------------------------------


def provider_keys_router(deps: ProviderKeyApiDeps) -> APIRouter:
    router = APIRouter(tags=["LLM analytics: provider keys"])
    store = deps.store

    async def answer(work: Callable[[], Awaitable[Response]]) -> Response:
        try:
            return await work()
        except PostHogError as exc:
            return exc.response()
        except (DecryptionError, EncryptionKeyError) as exc:
            logger.error("provider key store: %s", exc)
            return error(
                500, "server_error", "encryption_key_mismatch",
                f"Cannot decrypt the stored provider key: {exc}. Check GATEWAY_ENCRYPTION_KEY.",
            ).response()
        except Exception:
            logger.exception("provider keys API failed")
            return error(500, "server_error", "error", "A server error occurred.").response()

    async def record(org_id: str, key_id: str) -> ProviderKeyRecord:
        try:
            return await store.get(org_id, key_id)
        except ProviderKeyNotFound:
            raise not_found() from None

    async def validate_or_refuse(
        provider: str, api_key: str, deployment: Deployment
    ) -> tuple[str, str | None]:
        outcome = await deps.validator.validate(provider, api_key, deployment)
        if outcome.state in ("ok", "unknown"):
            return outcome.state, outcome.error_message
        raise invalid(outcome.error_field or "api_key", outcome.error_message or "Invalid API key")

    # -- collection -------------------------------------------------------------------

    async def collection(request: Request, env: str) -> Response:
        async def work() -> Response:
            if request.method == "GET":
                identity = await authorize(deps.authenticate, request, env, PROVIDER_KEY_READ)
                limit, offset = page_bounds(request)
                count = await store.count(identity.org_id)
                rows = await store.list_keys(identity.org_id, limit=limit, offset=offset)
                return page(request, [serialize(r) for r in rows], count, limit, offset)
            if request.method == "POST":
                identity = await authorize(deps.authenticate, request, env, PROVIDER_KEY_WRITE)
                created = await create(identity.org_id, identity.key_id, await json_object(request))
                return json_response(serialize(created), 201)
            raise method_not_allowed(request.method)

        return await answer(work)

    async def create(org_id: str, key_id: str, body: dict[str, Any]) -> ProviderKeyRecord:
        if "provider" not in body:
            raise invalid("provider", "This field is required.", code="required")
        provider = _choice(body["provider"])
        if "name" not in body:
            raise invalid("name", "This field is required.", code="required")
        name = _string(body, "name")
        if name is None:
            raise invalid("name", "This field may not be null.", code="null")
        api_key = _api_key(body, provider)
        if api_key is None:
            raise invalid("api_key", "API key is required when creating a new provider key.")
        deployment = _deployment(body, provider, deps.targets, None)
        deployment_id = _string(body, "deployment_id")
        if deployment_id is not None and not DEPLOYMENT_ID_PATTERN.fullmatch(deployment_id):
            raise invalid(
                "deployment_id",
                "Use 1-64 characters: lower-case letters, digits, '.', '_' and '-', "
                "starting with a letter or digit.",
            )
        set_as_active = _boolean(body, "set_as_active")
        state, message = await validate_or_refuse(provider, api_key, deployment)
        try:
            created = await store.create(
                org_id,
                provider=provider,
                name=name,
                api_key=api_key,
                deployment=deployment,
                deployment_id=deployment_id,
                state=state,
                error_message=message,
                validated=True,
                make_default=set_as_active and state == "ok",
                created_by_key_id=key_id,
            )
        except ProviderKeyConflict:
            raise invalid(
                "deployment_id",
                f"A {provider} key with deployment id {deployment_id!r} already exists.",
                code="unique",
            ) from None
        deps.on_change(org_id)
        return created

    # -- one key ----------------------------------------------------------------------

    async def item(request: Request, env: str, key_id: str) -> Response:
        async def work() -> Response:
            method = request.method
            if method == "GET":
                identity = await authorize(deps.authenticate, request, env, PROVIDER_KEY_READ)
                return json_response(serialize(await record(identity.org_id, key_id)))
            if method in ("PATCH", "PUT"):
                identity = await authorize(deps.authenticate, request, env, PROVIDER_KEY_WRITE)
                current = await record(identity.org_id, key_id)
                changed = await modify(current, await json_object(request))
                return json_response(serialize(changed))
            if method == "DELETE":
                identity = await authorize(deps.authenticate, request, env, PROVIDER_KEY_WRITE)
                await remove(request, identity.org_id, key_id)
                return Response(status_code=204)
            raise method_not_allowed(method)

        return await answer(work)

    async def modify(current: ProviderKeyRecord, body: dict[str, Any]) -> ProviderKeyRecord:
        """PostHog's update rules (A.3.6); ``set_as_active`` is ignored, ``is_default: true``
        (an extension) makes the key the provider's default."""
        org_id, provider = current.org_id, current.provider
        if "provider" in body and body["provider"] is not None:
            if _choice(body["provider"]) != provider:
                raise invalid("provider", "Provider cannot be changed.")
        if "deployment_id" in body and body["deployment_id"] not in (None, current.deployment_id):
            raise invalid("deployment_id", "Deployment id cannot be changed.")
        name = _string(body, "name") if "name" in body else None
        api_key = _api_key(body, provider)
        touches_deployment = any(field in body for field in _DEPLOYMENT_INPUTS)
        deployment = (
            _deployment(body, provider, deps.targets, current.deployment)
            if touches_deployment
            else None
        )
        make_default = _boolean(body, "is_default")
        if api_key is not None:
            target = deployment or current.deployment
            state, message = await validate_or_refuse(provider, api_key, target)
            changed = await deps.store.update(
                org_id, current.id, name=name, api_key=api_key, deployment=target,
                state=state, error_message=message, validated=True, make_default=make_default,
            )
        elif deployment is not None and deployment != current.deployment:
            # Another endpoint may reject the key: the user must validate again.
            changed = await deps.store.update(
                org_id, current.id, name=name, deployment=deployment,
                state="unknown", error_message=None, make_default=make_default,
            )
        else:
            changed = await deps.store.update(
                org_id, current.id, name=name, make_default=make_default
            )
        deps.on_change(org_id)
        return changed

    async def remove(request: Request, org_id: str, key_id: str) -> None:
        current = await record(org_id, key_id)
        replacement = request.query_params.get("replacement_key_id")
        if replacement:
            try:
                other = await store.get(org_id, replacement)
            except ProviderKeyNotFound:
                raise plain(400, "Replacement key not found") from None
            if other.provider != current.provider:
                raise plain(400, "Replacement key must be from the same provider")
            # Evaluations would be re-pointed here; the gateway has none.
        try:
            await store.delete(org_id, key_id)
        except ProviderKeyNotFound:
            raise not_found() from None
        deps.on_change(org_id)

    # -- actions ----------------------------------------------------------------------

    async def validate_action(request: Request, env: str, key_id: str) -> Response:
        async def work() -> Response:
            if request.method != "POST":
                raise method_not_allowed(request.method)
            identity = await authorize(deps.authenticate, request, env, PROVIDER_KEY_WRITE)
            current = await record(identity.org_id, key_id)
            if not current.api_key:
                raise plain(400, "No API key configured for this provider key.")
            outcome = await deps.validator.validate(
                current.provider, current.api_key, current.deployment
            )
            changed = await store.set_state(
                identity.org_id, key_id, outcome.state, outcome.error_message
            )
            deps.on_change(identity.org_id)
            return json_response(serialize(changed))

        return await answer(work)

    async def assign_action(request: Request, env: str, key_id: str) -> Response:
        async def work() -> Response:
            if request.method != "POST":
                raise method_not_allowed(request.method)
            identity = await authorize(
                deps.authenticate, request, env, PROVIDER_KEY_WRITE, EVALUATION_WRITE
            )
            await record(identity.org_id, key_id)
            body = await json_object(request)
            ids = body.get("evaluation_ids")
            if not isinstance(ids, list) or not ids:
                raise plain(400, "evaluation_ids is required")
            _boolean(body, "enable")
            # No evaluations exist in the gateway: nothing to re-point or enable.
            return json_response({"configs_updated": 0, "evals_enabled": 0})

        return await answer(work)

    async def dependents_action(request: Request, env: str, key_id: str) -> Response:
        async def work() -> Response:
            if request.method != "GET":
                raise method_not_allowed(request.method)
            identity = await authorize(deps.authenticate, request, env, PROVIDER_KEY_READ)
            current = await record(identity.org_id, key_id)
            others = await store.list_keys(identity.org_id, current.provider)
            alternatives = [
                {"id": r.id, "name": r.name, "provider": _provider_name(r.provider)}
                for r in others
                if r.id != current.id and r.state == "ok"
            ]
            return json_response({"evaluations": [], "alternative_keys": alternatives})

        return await answer(work)

    async def trial_collection(request: Request, env: str) -> Response:
        return await trial_action(request, env, None)

    async def trial_item(request: Request, env: str, key_id: str) -> Response:
        """Not in PostHog (its route has no id): the key's provider unless ``provider`` is
        given."""
        return await trial_action(request, env, key_id)

    async def trial_action(request: Request, env: str, key_id: str | None) -> Response:
        async def work() -> Response:
            if request.method != "GET":
                raise method_not_allowed(request.method)
            identity = await authorize(deps.authenticate, request, env, PROVIDER_KEY_READ)
            provider = request.query_params.get("provider")
            if key_id is not None:
                current = await record(identity.org_id, key_id)
                provider = provider or current.provider
            if not provider:
                raise plain(400, "provider query parameter is required")
            if POSTHOG_ALIASES.get(provider, provider) not in PROVIDER_CHOICES:
                raise plain(400, f"Unsupported provider: {provider}")
            return json_response({"evaluations": []})

        return await answer(work)

    async def key_validations(request: Request, env: str) -> Response:
        """Validate without storing (A.2): ``{"state", "error_message", "error_field"}``."""

        async def work() -> Response:
            if request.method != "POST":
                raise method_not_allowed(request.method)
            await authorize(deps.authenticate, request, env, PROVIDER_KEY_WRITE)
            body = await json_object(request)
            api_key = body.get("api_key")
            if not isinstance(api_key, str) or not api_key.strip():
                raise plain(400, "API key is required.")
            raw_provider = body.get("provider", "openai")
            if (
                not isinstance(raw_provider, str)
                or POSTHOG_ALIASES.get(raw_provider, raw_provider) not in PROVIDER_CHOICES
            ):
                choices = ", ".join(_provider_name(p) for p in PROVIDER_CHOICES)
                raise plain(400, f"Invalid provider. Must be one of: {choices}")
            provider = POSTHOG_ALIASES.get(raw_provider, raw_provider)
            values = {
                target: value
                for field, target in _DEPLOYMENT_INPUTS.items()
                if isinstance(value := body.get(field), str) and value.strip()
            }
            outcome = await deps.validator.validate(
                provider, api_key.strip(), Deployment(**values)
            )
            return json_response(
                {
                    "state": outcome.state,
                    "error_message": outcome.error_message,
                    "error_field": outcome.error_field if provider == "azure" else None,
                }
            )

        return await answer(work)

    every = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    for prefix in ("/api/environments/{env}/llm_analytics", "/api/projects/{env}/llm_analytics"):
        keys = f"{prefix}/provider_keys"
        routes: list[tuple[str, Callable[..., Awaitable[Response]], tuple[str, ...]]] = [
            (f"{prefix}/provider_key_validations", key_validations, ("POST",)),
            (keys, collection, ("GET", "POST")),
            (f"{keys}/trial_evaluations", trial_collection, ("GET",)),
            (f"{keys}/{{key_id}}", item, ("GET", "PATCH", "PUT", "DELETE")),
            (f"{keys}/{{key_id}}/validate", validate_action, ("POST",)),
            (f"{keys}/{{key_id}}/assign", assign_action, ("POST",)),
            (f"{keys}/{{key_id}}/dependent_configs", dependents_action, ("GET",)),
            (f"{keys}/{{key_id}}/trial_evaluations", trial_item, ("GET",)),
        ]
        documented = prefix.startswith("/api/environments/")
        for path, endpoint, allowed in routes:
            for variant in (path + "/", path):  # no redirect: a POST body would be lost
                for method in allowed:
                    router.add_api_route(
                        variant, endpoint, methods=[method],
                        include_in_schema=documented and variant.endswith("/"),
                        operation_id=f"{endpoint.__name__}_{method.lower()}",
                    )
                # Any other method reaches the handler too, which answers PostHog's 405.
                router.add_api_route(
                    variant, endpoint, methods=[m for m in every if m not in allowed],
                    include_in_schema=False,
                )
    return router


def include_provider_keys_api(app: FastAPI, deps: ProviderKeyApiDeps) -> None:
    app.include_router(provider_keys_router(deps))
