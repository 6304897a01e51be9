"""``GATEWAY_PROVIDER_COOLDOWN_SECONDS``: how long a failing (provider, key) goes last.

The router's health record takes its window from the setting; 0 keeps every plan in its
planned order however often an attempt failed (what the bench's failover measurement needs:
otherwise the failing provider would be skipped after three requests).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.routing import Router
from gateway.runtime import Runtime
from gateway.settings import Settings
from providers.health import CREDITS_KEY_ID
from providers.registry import Registry
from tests.harness import make_settings

CHAIN = "my-model/openai,my-model/groq"


def _router(tmp_path: Path, **overrides: float) -> Router:
    settings = make_settings(
        tmp_path, provider_api_keys={"openai": "sk-a", "groq": "sk-b"}, **overrides
    )
    return Router(Runtime(settings), Registry.load())


def _first_after_failures(router: Router, failures: int) -> str:
    for _ in range(failures):
        router.health.failure("openai", CREDITS_KEY_ID)
    return router.plan(CHAIN, "/chat/completions", None)[0].provider


def test_default_window_moves_a_failing_provider_last(tmp_path: Path) -> None:
    router = _router(tmp_path)
    assert router.health.cooldown == 30.0
    assert _first_after_failures(router, 3) == "groq"


def test_zero_keeps_the_planned_order(tmp_path: Path) -> None:
    router = _router(tmp_path, provider_cooldown_seconds=0)
    assert _first_after_failures(router, 10) == "openai"


def test_setting_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATEWAY_PROVIDER_COOLDOWN_SECONDS", "2.5")
    assert Settings(_env_file=None).provider_cooldown_seconds == 2.5  # type: ignore[call-arg]
    monkeypatch.setenv("GATEWAY_PROVIDER_COOLDOWN_SECONDS", "-1")
    with pytest.raises(ValueError, match="provider_cooldown_seconds"):
        Settings(_env_file=None)  # type: ignore[call-arg]
