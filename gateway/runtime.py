"""Everything one gateway process holds while it runs, created at startup, closed at shutdown.

There is no module-level state: the app factory builds one :class:`Runtime` and hands it to
the data plane and the lifespan, so tests can run several gateways in one process.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from gateway.auth import Authenticator, Credentials, KeyCache
from gateway.settings import Settings
from gateway.store import DEFAULT_ORG, ControlStore, KeyIdentity
from gateway.targets import TargetPolicy
from gateway.upstream import UpstreamClient
from providers.routing import DEFAULT_PROVIDER, ProviderConfig, ProviderDirectory

logger = logging.getLogger("gateway.runtime")


class Runtime:
    """The process's shared resources: upstream pool, control-plane store, key cache."""

    def __init__(self, settings: Settings, store: ControlStore | None = None) -> None:
        self.settings = settings
        self.store = store or ControlStore.from_settings(settings)
        self.providers = ProviderDirectory(settings.provider_api_keys, settings.provider_base_urls)
        self.targets = TargetPolicy(
            settings.allowed_target_hosts, settings.provider_base_urls.values()
        )
        self.upstream = UpstreamClient(
            settings.upstream_connect_timeout,
            settings.upstream_read_timeout,
            settings.upstream_max_connections,
        )
        self.key_cache = KeyCache(self.store, settings.key_cache_ttl_seconds)
        self.authenticator = Authenticator(self.key_cache, None)

    async def start(self) -> None:
        await self.store.migrate()
        if self.settings.allow_anonymous:
            org_id = await self.store.ensure_org(DEFAULT_ORG)
            anonymous = KeyIdentity(key_id="anonymous", org_id=org_id, org_name=DEFAULT_ORG)
            self.authenticator = Authenticator(self.key_cache, anonymous)
        await self.upstream.start()

    async def close(self) -> None:
        await self.upstream.close()
        await self.store.close()

    async def authenticate(self, credentials: Credentials) -> KeyIdentity:
        return await self.authenticator.authenticate(credentials)

    async def list_models(self) -> list[dict[str, Any]]:
        """Every usable provider's ``/models``, fetched concurrently; failures are skipped."""
        configs = self.providers.usable()
        results = await asyncio.gather(
            *(self._provider_models(config) for config in configs), return_exceptions=True
        )
        models: list[dict[str, Any]] = []
        for config, result in zip(configs, results, strict=True):
            if isinstance(result, BaseException):
                logger.info("model list from %s failed: %r", config.spec.name, result)
                continue
            models.extend(result)
        return models

    async def _provider_models(self, config: ProviderConfig) -> list[dict[str, Any]]:
        headers = {"authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        async with self.upstream.session.get(config.base_url + "/models", headers=headers) as r:
            r.raise_for_status()
            body = orjson.loads(await r.read())
        suffix = "" if config.spec.name == DEFAULT_PROVIDER else f"/{config.spec.name}"
        out = []
        for item in body.get("data", []):
            if isinstance(item, dict) and isinstance(item.get("id"), str):
                out.append(
                    {
                        "id": item["id"] + suffix,
                        "object": "model",
                        "created": item.get("created", 0),
                        "owned_by": item.get("owned_by", config.spec.name),
                    }
                )
        return out
