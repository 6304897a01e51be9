"""Vertex AI without a network: the adapter's paths and bodies, errors by publisher, locations
and hosts, and the URL a routed attempt is sent to (``Exchange.prepare`` on Vertex's own
hosts, which the end-to-end tests replace with the emulator)."""

from __future__ import annotations

import asyncio
import base64
import struct
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from gateway.errors import GatewayError
from gateway.passthrough import _vertex_host
from gateway.routing import Exchange
from gateway.settings import Settings
from gateway.targets import TargetPolicy
from gateway.vertex_auth import VertexTokens
from providers.adapter import TranslationError
from providers.plan import Attempt
from providers.routing import ProviderDirectory
from providers.spec import PROVIDERS
from providers.vertex import (
    MULTI_REGIONS,
    VertexAdapter,
    answer_wire,
    endpoint_url,
    is_location,
    is_project,
    location_in_path,
)
from tests.harness import make_settings

CHAT: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}]}


def test_hosts_and_names() -> None:
    assert endpoint_url("global") == "https://aiplatform.googleapis.com"
    assert endpoint_url("us-east5") == "https://us-east5-aiplatform.googleapis.com"
    assert all(is_location(x) for x in ("global", "us", "eu", "us-central1", "europe-west4"))
    assert not any(
        is_location(x) for x in ("", "evil.com/", "asia", "US", "us.rep", "us-east5.x", "GLOBAL")
    )
    assert all(is_project(x) for x in ("my-project", "123456789", "example.com:proj"))
    assert not any(is_project(x) for x in ("", "a/b", "a..b", "x?y", "Proj"))
    claude = "/v1/projects/p/locations/us-east5/publishers/anthropic/models/c@1:rawPredict"
    assert (answer_wire(claude), location_in_path(claude)) == ("anthropic", "us-east5")
    assert answer_wire("/v1/projects/p/locations/global/publishers/google/models/g:x") == "gemini"
    assert location_in_path("/v1/models/g:generateContent") is None


def test_claude_body_path_and_headers() -> None:
    adapter = VertexAdapter()
    call = adapter.build_request(
        {**CHAT, "model": "claude-sonnet-4@20250514", "stream": True},
        api_key=None, default_max_tokens=512,
    )
    assert adapter.wire == "anthropic"
    assert call.path == "/publishers/anthropic/models/claude-sonnet-4@20250514:streamRawPredict"
    assert call.headers == {"content-type": "application/json"}
    assert call.body["anthropic_version"] == "vertex-2023-10-16"
    assert "model" not in call.body and call.body["stream"] is True
    assert call.body["max_tokens"] == 512
    with pytest.raises(TranslationError, match="service_tier"):
        adapter.build_request({**CHAT, "model": "claude-x", "service_tier": "default"},
                              api_key=None, default_max_tokens=1)


def test_gemini_body_and_path() -> None:
    adapter = VertexAdapter()
    call = adapter.build_request({**CHAT, "model": "gemini-2.5-flash"}, api_key="unused",
                                 default_max_tokens=1)
    assert adapter.wire == "gemini"
    assert call.path == "/publishers/google/models/gemini-2.5-flash:generateContent"
    assert call.body == {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    assert "x-goog-api-key" not in call.headers
    streamed = adapter.build_request({**CHAT, "model": "gemini-2.5-flash", "stream": True},
                                     api_key=None, default_max_tokens=1)
    assert streamed.path.endswith(":streamGenerateContent?alt=sse")
    for bad in ("../x", "a/b", "", "m:x"):
        with pytest.raises(TranslationError, match="Invalid Vertex AI model id"):
            adapter.build_request({**CHAT, "model": bad}, api_key=None, default_max_tokens=1)


def test_errors_in_the_publishers_shape_and_vertexs_own() -> None:
    google = orjson.dumps(
        {"error": {"code": 403, "message": "denied", "status": "PERMISSION_DENIED"}}
    )
    anthropic = orjson.dumps({"type": "error", "error": {"type": "overloaded_error",
                                                         "message": "Overloaded"}})
    claude = VertexAdapter()
    claude.build_request({**CHAT, "model": "claude-x"}, api_key=None, default_max_tokens=1)
    assert claude.error(403, google)["error"]["code"] == "PERMISSION_DENIED"
    assert claude.error(529, anthropic)["error"]["type"] == "overloaded_error"
    gemini = VertexAdapter()
    assert gemini.error(502, b"<html>bad gateway</html>")["error"]["message"].startswith(
        "Google returned HTTP 502"
    )


def test_multi_region_hosts_are_allowed_read_as_vertex_and_chosen_by_the_path(
    tmp_path: Path,
) -> None:
    assert dict(MULTI_REGIONS) == {
        "us": "https://aiplatform.us.rep.googleapis.com",
        "eu": "https://aiplatform.eu.rep.googleapis.com",
    }
    claude = "/v1/projects/p/locations/eu/publishers/anthropic/models/claude-x@1:rawPredict"
    assert location_in_path(claude) == "eu"
    assert _vertex_host(claude) == "https://aiplatform.eu.rep.googleapis.com"
    for location, host in MULTI_REGIONS.items():
        assert endpoint_url(location) == host
        assert TargetPolicy([], []).allows(host + claude)  # Helicone-Target-Url may name it
        assert PROVIDERS.wire_for(host.removeprefix("https://"), "", claude) == "anthropic"
    assert not TargetPolicy([], []).allows("https://aiplatform.asia.rep.googleapis.com/v1")
    with pytest.raises(GatewayError) as caught:
        _vertex_host("/v1/projects/p/locations/asia/publishers/google/models/g:x")
    assert caught.value.status == 400 and "'us', 'eu'" in caught.value.message
    settings = Settings(_env_file=None, data_dir=tmp_path, vertex_location="eu")  # type: ignore[call-arg]
    assert settings.vertex_location == "eu"
    with pytest.raises(ValueError, match="multi-region"):
        Settings(_env_file=None, data_dir=tmp_path, vertex_location="asia")  # type: ignore[call-arg]


def _exchange(tmp_path: Path, **settings: Any) -> Exchange:
    values = make_settings(tmp_path, **settings)
    runtime = SimpleNamespace(
        settings=values,
        providers=ProviderDirectory(values.provider_api_keys, values.provider_base_urls),
        vertex=VertexTokens(),
        fetcher=None,
        max_output_tokens=lambda provider, model: 1024,
    )
    ctx = SimpleNamespace(strip_usage=False)
    return Exchange(runtime, ctx, "/chat/completions", dict(CHAT), b"", {})  # type: ignore[arg-type]


def _attempt(model: str) -> Attempt:
    return Attempt("vertex", model, "credits", None, None, 0, f"{model}/vertex", model)


@pytest.mark.parametrize(
    ("location", "host"),
    [("global", "https://aiplatform.googleapis.com"),
     ("europe-west4", "https://europe-west4-aiplatform.googleapis.com"),
     # The multi-regions: Google's regional endpoint proxies, not `us-aiplatform…`.
     ("us", "https://aiplatform.us.rep.googleapis.com"),
     ("eu", "https://aiplatform.eu.rep.googleapis.com")],
)
def test_an_attempt_goes_to_its_locations_host(tmp_path: Path, location: str, host: str) -> None:
    exchange = _exchange(tmp_path, vertex_project="my-project", vertex_location=location)
    call = asyncio.run(exchange.prepare(_attempt("claude-sonnet-4@20250514"), "ya29.token"))
    path = (f"/v1/projects/my-project/locations/{location}/publishers/anthropic/models/"
            "claude-sonnet-4@20250514:rawPredict")
    assert str(call.url) == host + path
    assert call.recorded_url == host + path
    assert call.headers["authorization"] == "Bearer ya29.token" and call.wire == "anthropic"
    assert PROVIDERS.wire_for(call.url.raw_host or "", "", call.url.path) == "anthropic"


def test_without_a_project_the_attempt_is_a_400_naming_the_settings(tmp_path: Path) -> None:
    exchange = _exchange(tmp_path)
    with pytest.raises(GatewayError) as caught:
        asyncio.run(exchange.prepare(_attempt("gemini-2.5-flash"), "ya29.token"))
    assert caught.value.status == 400 and "GATEWAY_VERTEX_PROJECT" in caught.value.message


def test_embeddings_request_and_answer() -> None:
    adapter = VertexAdapter()
    call = adapter.build_embeddings_request(
        {"model": "text-embedding-005", "input": "one", "dimensions": 4, "user": "u-1"},
        api_key="unused",
    )
    assert call.path == "/publishers/google/models/text-embedding-005:predict"
    assert call.body == {
        "instances": [{"content": "one"}],
        "parameters": {"autoTruncate": False, "outputDimensionality": 4},
    }
    assert adapter.wire == "gemini" and "x-goog-api-key" not in call.headers
    answer = {
        "predictions": [
            {"embeddings": {"values": [0.5, -1.0], "statistics": {"token_count": 3}}},
            {"embeddings": {"values": [0.25, 2.0], "statistics": {"tokenCount": 4.0}}},
        ],
        "metadata": {"billableCharacterCount": 9},
    }
    floats = adapter.embeddings(answer, {"model": "text-embedding-005"})
    assert floats == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": [0.5, -1.0]},
            {"object": "embedding", "index": 1, "embedding": [0.25, 2.0]},
        ],
        "model": "text-embedding-005",
        "usage": {"prompt_tokens": 7, "total_tokens": 7},
    }
    packed = adapter.embeddings(answer, {"model": "m", "encoding_format": "base64"})
    assert base64.b64decode(packed["data"][1]["embedding"]) == struct.pack("<2f", 0.25, 2.0)
    with pytest.raises(ValueError, match="predictions"):
        adapter.embeddings({"embedding": {"values": [1.0]}}, {"model": "m"})
    for bad, param in (
        ({"input": ""}, "input"),
        ({"input": [[1, 2]]}, "input"),
        ({"input": ["x"] * 251}, "input"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "x", "auto_truncate": "yes"}, "auto_truncate"),
        ({"input": "x", "task_type": "RETRIEVAL_QUERY", "title": "t"}, "title"),
        ({"input": "x", "instances": []}, "instances"),
    ):
        with pytest.raises(TranslationError) as caught:
            adapter.build_embeddings_request({"model": "text-embedding-005", **bad}, api_key=None)
        assert caught.value.param == param
    with pytest.raises(TranslationError, match="not an embedding model"):
        adapter.build_embeddings_request({"model": "claude-x", "input": "x"}, api_key=None)


def test_an_embeddings_attempt_goes_to_predict_with_the_token(tmp_path: Path) -> None:
    exchange = _exchange(tmp_path, vertex_project="my-project", vertex_location="us")
    exchange.endpoint = "/embeddings"
    exchange.payload = {"model": "text-embedding-005/vertex", "input": ["a", "b"]}
    call = asyncio.run(exchange.prepare(_attempt("text-embedding-005"), "ya29.token"))
    assert str(call.url) == (
        "https://aiplatform.us.rep.googleapis.com/v1/projects/my-project/locations/us/"
        "publishers/google/models/text-embedding-005:predict"
    )
    assert call.headers["authorization"] == "Bearer ya29.token" and call.wire == "gemini"
    assert orjson.loads(call.body)["instances"] == [{"content": "a"}, {"content": "b"}]
