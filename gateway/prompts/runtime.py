"""Prompts at request time: version resolution with a per-process cache, invalidated on every
prompt write (and, with ``REDIS_URL``, in every other gateway process through Redis pub/sub),
and the expansion of a chat request that names a ``prompt_id`` (D.2, E.6).

Only requests that carry a prompt field reach this module; the data plane's check is one
set-disjointness test on the body's keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.errors import GatewayError
from gateway.prompts.assemble import (
    PromptError,
    chat_body,
    merge,
    partial_refs,
    partial_text,
)
from gateway.redisconn import RedisUnavailable, SharedRedis
from gateway.scopes import PROMPT_READ, allows
from gateway.store import (
    KeyIdentity,
    PromptNotFound,
    PromptStore,
    PromptVersionRecord,
    UnknownSelection,
)

logger = logging.getLogger("gateway.prompts")

MAX_CACHED_PER_ORG = 10_000
"""Resolved versions one organisation may hold in the cache (it is emptied past this)."""
RESPONSES_MESSAGE = "Helicone Prompts is not supported for Responses API format on the AI Gateway"
FALLBACK_HEADER = (b"helicone-prompt-resolution", b"fallback-production")
_PUBLISH_BUDGET = 1.0
_RESUBSCRIBE_SECONDS = 1.0


def prompt_error(message: str) -> GatewayError:
    """The 400 of an unusable prompt, in the nested shape of D.2.3 step 6."""
    return GatewayError(
        400,
        message,
        code="invalid_prompt",
        payload={
            "error": {"message": message, "type": "invalid_prompt", "param": None, "code": 400}
        },
    )


@dataclass(frozen=True, slots=True)
class Resolved:
    """A prompt version chosen for a request; ``fallback``: production, because the asked
    environment or version does not exist (lenient mode only)."""

    short_id: str
    version: PromptVersionRecord
    fallback: bool = False


@dataclass(frozen=True, slots=True)
class PromptUse:
    """What the request record keeps of a prompt-driven request."""

    prompt_id: str
    version_id: str
    inputs: str
    environment: str
    fallback: bool


class ResolvedCache:
    """Resolved versions by organisation, each entry for ``ttl`` seconds; a write to an
    organisation's prompts drops all of its entries (:meth:`invalidate`)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._orgs: dict[str, dict[tuple[str, str | None, str | None], tuple[float, Resolved]]]
        self._orgs = {}

    def get(self, org_id: str, key: tuple[str, str | None, str | None]) -> Resolved | None:
        entries = self._orgs.get(org_id)
        if entries is None:
            return None
        found = entries.get(key)
        if found is None:
            return None
        if found[0] < time.monotonic():
            del entries[key]
            return None
        return found[1]

    def put(self, org_id: str, key: tuple[str, str | None, str | None], value: Resolved) -> None:
        if self.ttl <= 0:
            return
        entries = self._orgs.setdefault(org_id, {})
        if len(entries) >= MAX_CACHED_PER_ORG:
            entries.clear()
        entries[key] = (time.monotonic() + self.ttl, value)

    def invalidate(self, org_id: str) -> None:
        self._orgs.pop(org_id, None)

    def clear(self) -> None:
        self._orgs.clear()


class PromptRuntime:
    """Resolution, expansion and invalidation of managed prompts for one process."""

    def __init__(
        self,
        store: PromptStore,
        *,
        ttl: float = 300.0,
        fallback: bool = False,
        substitute_runtime: bool = True,
        redis: SharedRedis | None = None,
    ) -> None:
        self.store = store
        self.cache = ResolvedCache(ttl)
        self.fallback = fallback
        self.substitute_runtime = substitute_runtime
        self._redis = redis
        self._channel = (redis.prefix if redis is not None else "") + "prompts:invalidate"
        self._listener: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()
        """Set once the Redis subscription is live (tests wait on it)."""

    # -- invalidation ----------------------------------------------------------------------

    async def start(self) -> None:
        if self._redis is not None and self._listener is None:
            self._listener = asyncio.create_task(self._listen(self._redis))

    async def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def changed(self, org_id: str) -> None:
        """A prompt of ``org_id`` was written: forget its resolved versions here, and tell
        the other processes (best effort: their entries expire after the TTL anyway)."""
        self.cache.invalidate(org_id)
        redis = self._redis
        if redis is None:
            return
        channel = self._channel
        try:
            await redis.run(lambda client: client.publish(channel, org_id), _PUBLISH_BUDGET)
        except RedisUnavailable:
            logger.info("prompt invalidation not published (Redis unavailable)")

    async def _listen(self, redis: SharedRedis) -> None:
        """Apply other processes' invalidations; after a lost subscription everything cached
        is dropped (messages may have been missed meanwhile)."""
        while True:
            pubsub = None
            try:
                pubsub = redis.client.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self._channel)
                self.cache.clear()
                self.subscribed.set()
                async for message in pubsub.listen():
                    data = message.get("data")
                    if isinstance(data, bytes):
                        self.cache.invalidate(data.decode("utf-8", "replace"))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                logger.info("prompt invalidation subscription lost: %r", exc)
            finally:
                self.subscribed.clear()
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        await pubsub.aclose()  # type: ignore[no-untyped-call]
            self.cache.clear()
            await asyncio.sleep(_RESUBSCRIBE_SECONDS)

    # -- resolution ------------------------------------------------------------------------

    async def resolve(
        self, org_id: str, ref: str, environment: str | None, version_id: str | None
    ) -> Resolved:
        """The version a request gets (D.2.2): the one deployed to ``environment``, else
        ``version_id`` (which must belong to the prompt), else production. An unknown
        environment or version is a 400, or production in lenient mode."""
        key = (ref, environment, version_id)
        cached = self.cache.get(org_id, key)
        if cached is not None:
            return cached
        resolved = await self._resolve(org_id, ref, environment, version_id)
        self.cache.put(org_id, key, resolved)
        return resolved

    async def _resolve(
        self, org_id: str, ref: str, environment: str | None, version_id: str | None
    ) -> Resolved:
        try:
            prompt, version, fallback = await self.store.resolve(
                org_id, ref, environment, version_id, lenient=self.fallback
            )
        except PromptNotFound:
            raise PromptError(f"Invalid prompt ID - no prompt '{ref[:64]}' found") from None
        except UnknownSelection as exc:
            raise PromptError(str(exc)) from None
        return Resolved(prompt.short_id, version, fallback)

    # -- expansion -------------------------------------------------------------------------

    async def expand(
        self, identity: KeyIdentity, endpoint: str, payload: Mapping[str, Any]
    ) -> tuple[dict[str, Any], PromptUse]:
        """The request to forward for a body with prompt fields, and what to record."""
        if endpoint != "/chat/completions":
            message = (
                RESPONSES_MESSAGE
                if endpoint == "/responses"
                else f"Prompts are not supported on {endpoint}; use /v1/chat/completions"
            )
            raise prompt_error(message)
        if not allows(identity.scopes, PROMPT_READ):
            raise GatewayError(
                403,
                f"This gateway key lacks the '{PROMPT_READ}' scope needed to use prompt_id.",
                code="missing_scope",
            )
        ref = payload.get("prompt_id")
        if ref is None:
            raise prompt_error("No prompt ID provided")
        environment = payload.get("environment")
        version_id = payload.get("version_id")
        inputs = payload.get("inputs")
        if not isinstance(ref, str) or not ref:
            raise prompt_error("'prompt_id' must be a non-empty string")
        for name, value in (("environment", environment), ("version_id", version_id)):
            if value is not None and not isinstance(value, str):
                raise prompt_error(f"'{name}' must be a string")
        if inputs is None:
            inputs = {}
        if not isinstance(inputs, dict):
            raise prompt_error("'inputs' must be an object of variable names to values")
        try:
            resolved = await self.resolve(identity.org_id, ref, environment, version_id)
            version = resolved.version
            saved = chat_body(version.body, version.body_kind)
            partials = await self._partials(identity.org_id, saved)
            body = merge(
                saved,
                payload,
                inputs,
                partials=partials,
                model=version.model,
                mustache=version.template_syntax == "mustache",
                substitute_runtime=self.substitute_runtime,
            )
        except PromptError as exc:
            raise prompt_error(str(exc)) from None
        if not body.get("model"):
            raise GatewayError(
                400, "Missing required field 'model' (the prompt has none).", param="model"
            )
        use = PromptUse(
            prompt_id=resolved.short_id,
            version_id=version.id,
            inputs=orjson.dumps(inputs).decode(),
            environment=environment or "",
            fallback=resolved.fallback,
        )
        return body, use

    async def _partials(self, org_id: str, saved: Mapping[str, Any]) -> dict[str, str]:
        """Each partial tag of ``saved`` -> its text (one level: partials inside are kept)."""
        texts: dict[str, str] = {}
        for ref in partial_refs(saved):
            resolved = await self.resolve(org_id, ref.prompt_id, ref.environment, None)
            version = resolved.version
            texts[ref.tag] = partial_text(chat_body(version.body, version.body_kind), ref.index)
        return texts
