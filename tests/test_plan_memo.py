"""The router remembers the plain plan of a request that brings no keys of its own.

What is remembered must be exactly what planning again would give: the same attempts, health
still moving a cooled-down provider last per request (and not keeping it last once it is
healthy again), load-balanced plans still rotating, and BYOK or client-key plans never reused.
"""

from __future__ import annotations

from pathlib import Path

from gateway.routing import Router
from gateway.runtime import Runtime
from providers.health import CREDITS_KEY_ID
from providers.plan import ProviderKey
from providers.registry import Registry
from tests.harness import make_settings

CHAIN = "my-model/openai,my-model/groq"


def _router(tmp_path: Path, keys: dict[str, str]) -> Router:
    settings = make_settings(tmp_path, provider_api_keys=keys)
    return Router(Runtime(settings), Registry.load())


def _providers(router: Router, model: str, **kw: object) -> list[str]:
    return [a.provider for a in router.plan(model, "/chat/completions", None, **kw)]  # type: ignore[arg-type]


def test_remembered_plan_is_reused_and_equal(tmp_path: Path) -> None:
    router = _router(tmp_path, {"openai": "sk-a", "groq": "sk-b"})
    first = router.plan(CHAIN, "/chat/completions", None)
    assert router._plans, "a keyless plan is remembered"
    again = router.plan(CHAIN, "/chat/completions", None)
    assert again == first and again is not first  # a fresh list each time (callers may edit it)


def test_health_reorders_a_remembered_plan_per_request(tmp_path: Path) -> None:
    router = _router(tmp_path, {"openai": "sk-a", "groq": "sk-b"})
    assert _providers(router, CHAIN) == ["openai", "groq"]
    for _ in range(3):
        router.health.failure("openai", CREDITS_KEY_ID)
    assert _providers(router, CHAIN) == ["groq", "openai"]
    router.health.success("openai", CREDITS_KEY_ID)
    assert _providers(router, CHAIN) == ["openai", "groq"]


def test_plan_made_while_unhealthy_is_not_remembered(tmp_path: Path) -> None:
    router = _router(tmp_path, {"openai": "sk-a", "groq": "sk-b"})
    for _ in range(3):
        router.health.failure("openai", CREDITS_KEY_ID)
    assert _providers(router, CHAIN) == ["groq", "openai"]
    assert not router._plans
    router.health.reset()
    assert _providers(router, CHAIN) == ["openai", "groq"]


def test_balanced_plans_keep_rotating(tmp_path: Path) -> None:
    # Several providers at one price: each plan starts with the next one (round robin).
    registry = Registry.load()
    tied = None
    for model in registry.models():
        offers = [o for o in registry.offerings(model.id) if o.routed]
        prices = [o.per_million for o in offers]
        if len(offers) >= 2 and prices.count(min(prices, key=lambda p: (p is None, p))) >= 2:
            tied = model.id
            break
    assert tied is not None, "the registry has a model offered at one price by two providers"
    keys = {o.provider: "sk-x" for o in registry.offerings(tied)}
    router = _router(tmp_path, keys)
    firsts = {_providers(router, tied)[0] for _ in range(6)}
    assert len(firsts) >= 2
    assert (tied, "/chat/completions", False) not in router._plans


def test_byok_and_client_key_plans_are_not_remembered(tmp_path: Path) -> None:
    router = _router(tmp_path, {"openai": "sk-a", "groq": "sk-b"})
    byok = {"groq": [ProviderKey("k1", None, object())]}
    router.plan(CHAIN, "/chat/completions", None, byok)
    router.plan(CHAIN, "/chat/completions", "sk-client")
    assert not router._plans
