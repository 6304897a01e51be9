"""The router works out once per (provider, endpoint) what an attempt on the operator's own
endpoint of an OpenAI-format provider sends (``Router.native_target``).

What it gives must be exactly what working it out per request gives: the same URL, recorded
URL, headers, body and model for every provider and unified endpoint, with the managed key or
a client's own; and a directory put in place of the first (other keys, other base URLs) must
be used from the next request on.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.context import RequestContext, parse_options
from gateway.errors import GatewayError
from gateway.routing import Exchange, Router, UpstreamCall
from gateway.runtime import Runtime
from providers.plan import Attempt
from providers.registry import Registry
from providers.routing import ProviderDirectory
from providers.spec import PROVIDERS
from tests.harness import make_settings

ENDPOINTS = ("/chat/completions", "/responses", "/embeddings")
GATEWAY_KEY = "sk-helicone-abc"


def _runtime(tmp_path: Path, keys: dict[str, str], urls: dict[str, str]) -> Runtime:
    runtime = Runtime(make_settings(tmp_path, provider_api_keys=keys, provider_base_urls=urls))
    runtime._router = Router(runtime, Registry.load())
    return runtime


def _prepare(
    runtime: Runtime, provider: str, endpoint: str, client_key: str | None, *, per_request: bool
) -> UpstreamCall | str | None:
    """The call a walk makes for a credits attempt (or the error it raises): with
    ``per_request``, ``Exchange.prepare`` with ``key_for``'s key, as before the router's table;
    else ``Exchange.native_call`` (None: it leaves the attempt to ``prepare``)."""
    headers = {
        "authorization": f"Bearer {GATEWAY_KEY}",
        "content-type": "application/json",
        "x-client": "kept",
        "x-api-key": GATEWAY_KEY,  # the gateway key under another name: dropped
    }
    attempt = Attempt(provider, "other-model", "credits", None, None, 0, provider, "my-model")
    return attempt_call(runtime, endpoint, headers, "my-model", attempt, client_key,
                        per_request=per_request)  # fmt: skip


def attempt_call(
    runtime: Runtime,
    endpoint: str,
    headers: dict[str, str],
    model: str,
    attempt: Attempt,
    client_key: str | None,
    *,
    per_request: bool,
) -> UpstreamCall | str | None:
    """The call a walk makes for ``attempt`` of a request for ``model`` on ``endpoint`` (or the
    error it raises): with ``per_request``, ``Exchange.prepare`` with ``key_for``'s key; else
    ``Exchange.native_call`` (None: it leaves the attempt to ``prepare``)."""
    payload: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "x"}]}
    if endpoint == "/embeddings":
        payload = {"model": model, "input": "x"}
    ctx = RequestContext(parse_options(headers))
    exchange = Exchange(runtime, ctx, endpoint, payload, orjson.dumps(payload), headers)
    try:
        if per_request:
            return asyncio.run(exchange.prepare(attempt, exchange.key_for(attempt, client_key)))
        return exchange.native_call(runtime.router, attempt, client_key)
    except GatewayError as exc:
        return f"{exc.status} {exc.code}"


def _same(fast: UpstreamCall | str | None, slow: UpstreamCall | str | None) -> None:
    assert slow is not None
    if fast is None:  # left to prepare: refused, translated, or an Azure deployment's URL
        assert (
            isinstance(slow, str) or slow.translation is not None
            or slow.spec.api_style == "azure"
        )
        return
    assert isinstance(fast, UpstreamCall) and isinstance(slow, UpstreamCall)
    assert (fast.spec, str(fast.url), fast.recorded_url, fast.headers, fast.body, fast.model) == (
        slow.spec, str(slow.url), slow.recorded_url, slow.headers, slow.body, slow.model,
    )  # fmt: skip
    assert fast.translation is None and slow.translation is None


SIMPLE = [spec.name for spec in PROVIDERS if spec.auth not in ("sigv4", "oauth")]


@pytest.mark.parametrize("overridden", [False, True])
def test_remembered_target_is_what_each_request_would_work_out(
    tmp_path: Path, overridden: bool
) -> None:
    routed = [name for name in SIMPLE if name in PROVIDERS.routed()]
    keys = {name: f"sk-{name}" for name in routed}
    urls = {name: f"http://127.0.0.1:9/{name}" for name in routed} if overridden else {}
    runtime = _runtime(tmp_path, keys, urls)
    remembered = 0
    for name in routed:
        for endpoint in ENDPOINTS:
            for client_key in (None, "sk-client"):  # the managed key, a client's own
                for _ in range(2):  # worked out, then remembered
                    fast = _prepare(runtime, name, endpoint, client_key, per_request=False)
                    slow = _prepare(runtime, name, endpoint, client_key, per_request=True)
                    _same(fast, slow)
            if runtime.router._targets.get((name, endpoint)) is not None:
                remembered += 1
    assert remembered >= 10, "the usual providers' native endpoints are remembered"
    openai = _prepare(runtime, "openai", "/chat/completions", None, per_request=False)
    assert isinstance(openai, UpstreamCall)
    assert openai.headers["authorization"] == "Bearer sk-openai"
    assert "x-api-key" not in openai.headers and openai.headers["x-client"] == "kept"
    recorded = "{OPENAI_BASE_URL}" if overridden else "https://api.openai.com/v1"
    assert openai.recorded_url == recorded + "/chat/completions"


def test_a_directory_put_in_place_is_used_from_the_next_request(tmp_path: Path) -> None:
    runtime = _runtime(tmp_path, {"openai": "sk-old"}, {"openai": "http://127.0.0.1:9/old"})
    first = _prepare(runtime, "openai", "/chat/completions", None, per_request=False)
    assert isinstance(first, UpstreamCall)
    assert (str(first.url), first.headers["authorization"]) == (
        "http://127.0.0.1:9/old/chat/completions", "Bearer sk-old",
    )  # fmt: skip
    runtime.providers = ProviderDirectory({"openai": "sk-new"}, {"openai": "http://127.0.0.1:9/new"})
    again = _prepare(runtime, "openai", "/chat/completions", None, per_request=False)
    assert isinstance(again, UpstreamCall)
    assert (str(again.url), again.headers["authorization"]) == (
        "http://127.0.0.1:9/new/chat/completions", "Bearer sk-new",
    )  # fmt: skip


def test_a_provider_without_an_endpoint_is_still_refused(tmp_path: Path) -> None:
    """Azure has no built-in endpoint: not remembered, and refused per request as before."""
    runtime = _runtime(tmp_path, {"azure": "k"}, {})
    assert _prepare(runtime, "azure", "/chat/completions", None, per_request=False) is None
    answer = _prepare(runtime, "azure", "/chat/completions", None, per_request=True)
    assert answer == "400 provider_not_configured"
    assert runtime.router._targets[("azure", "/chat/completions")] is None
