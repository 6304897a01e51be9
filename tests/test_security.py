"""Issue 9, items 1-2: no request reaches an address the operator did not configure, and
secrets (gateway keys, provider base URLs, query-string credentials) stay out of upstream
requests, records, error messages and ``/healthz``.

Everything runs end to end on real sockets: a gateway (tests/harness.py) in front of the
OpenAI emulator, requests sent as raw HTTP where a client library would normalise the path.
"""

from __future__ import annotations

import http.client
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from pydantic import ValidationError

from gateway.app import logging_health
from gateway.errors import GatewayError
from gateway.redact import redact_url
from gateway.targets import TargetPolicy
from providers.addresses import is_local_host
from providers.routing import ProviderDirectory, RoutingError
from tests.emulator import OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings

MANAGED_KEY = "sk-managed-upstream"
MESSAGES = [{"role": "user", "content": "hi there"}]


def post_chat(server: GatewayServer, key: str, model: str) -> httpx.Response:
    """A chat completion for ``model`` with the gateway key in ``Authorization``."""
    return httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": model, "messages": MESSAGES},
        headers={"authorization": f"Bearer {key}"},
    )


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    """Accepts any provider key, so tests see exactly which headers arrived."""
    with OpenAIEmulator(api_key=None) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def _reset(upstream: OpenAIEmulator) -> None:
    upstream.reset()


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator
) -> Iterator[tuple[GatewayServer, str]]:
    """openai and groq point at the emulator; ollama is left at its built-in localhost URL."""
    settings = make_settings(
        tmp_path_factory.mktemp("gw"),
        provider_api_keys={"openai": MANAGED_KEY, "cerebras": "sk-cerebras"},
        provider_base_urls={
            "openai": upstream.base_url,
            "groq": upstream.base_url,
            # nothing listens on port 1: the "upstream unreachable" case
            "cerebras": "http://127.0.0.1:1/v1",
        },
        allowed_target_hosts=[upstream.origin],
    )
    key = create_key(settings)
    with GatewayServer(settings) as server:
        yield server, key


@pytest.fixture(scope="module")
def local_gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator
) -> Iterator[tuple[GatewayServer, str]]:
    """The operator configured ollama explicitly (its base URL is the emulator)."""
    settings = make_settings(
        tmp_path_factory.mktemp("gw-local"), provider_base_urls={"ollama": upstream.base_url}
    )
    key = create_key(settings)
    with GatewayServer(settings) as server:
        yield server, key


def raw(
    server: GatewayServer, method: str, path: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    """Send ``path`` byte for byte (httpx and the SDKs would remove ``..`` segments)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        return response.status, orjson.loads(response.read() or b"{}")
    finally:
        connection.close()


# --- 1. local providers need explicit configuration ------------------------------------------


def test_unconfigured_local_provider_is_refused_on_unified_routes(
    gateway: tuple[GatewayServer, str],
) -> None:
    server, key = gateway
    response = post_chat(server, key, "llama3/ollama")
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert "OLLAMA_BASE_URL" in error["message"]
    assert error["param"] == "model"


def test_unconfigured_local_provider_is_refused_on_passthrough(
    gateway: tuple[GatewayServer, str],
) -> None:
    server, key = gateway
    status, body = raw(
        server, "DELETE", "/v1/gateway/ollama/api/delete", {"helicone-auth": f"Bearer {key}"}
    )
    assert status == 400, body
    assert body["error"]["code"] == "provider_not_configured"
    assert "OLLAMA_BASE_URL" in body["error"]["message"]


def test_unconfigured_local_provider_is_not_listed_or_called() -> None:
    directory = ProviderDirectory({}, {})
    assert "ollama" not in [config.spec.name for config in directory.usable()]
    with pytest.raises(RoutingError, match="OLLAMA_BASE_URL"):
        directory.resolve("llama3/ollama")


def test_configured_local_provider_works(
    local_gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = local_gateway
    response = post_chat(server, key, "llama3/ollama")
    assert response.status_code == 200, response.text
    assert upstream.requests[-1].path == "/v1/chat/completions"
    # Its own models (no registry knows them) were asked once, at startup: listing them
    # again asks it nothing.
    asked = [r for r in upstream.requests if r.path == "/v1/models"]
    for _ in range(3):
        listed = httpx.get(server.url + "/v1/models").json()["data"]
        assert listed and all(model["id"].endswith("/ollama") for model in listed)
    assert [r for r in upstream.requests if r.path == "/v1/models"] == asked
    # configured by key alone (the built-in URL stays): usable too, the operator asked for it
    assert ProviderDirectory({"ollama": "x"}, {}).resolve("llama3/ollama").api_key == "x"


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("api.localhost", True),
        ("127.0.0.1", True),
        ("10.1.2.3", True),
        ("192.168.0.5", True),
        ("169.254.169.254", True),
        ("100.64.0.1", True),
        ("::1", True),
        ("fd00::1", True),
        ("fe80::1", True),
        ("0.0.0.0", True),
        ("ollama", True),
        ("gpu.internal", True),
        ("api.openai.com", False),
        ("8.8.8.8", False),
        ("2001:4860:4860::8888", False),
    ],
)
def test_local_host_detection(host: str, local: bool) -> None:
    assert is_local_host(host) is local


# --- 2. passthrough paths stay under the provider's base path ----------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/v1/gateway/ollama/../api/delete",
        "/v1/gateway/ollama/%2e%2e/api/delete",
        "/v1/gateway/ollama/v1/%2E%2E/%2E%2E/api/delete",
        "/v1/gateway/ollama/%252e%252e/api/delete",
        "/v1/gateway/ollama/..%2Fapi/delete",
        "/v1/gateway/ollama/v1/./../api/delete",
    ],
)
def test_dot_segments_are_refused(
    local_gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator, path: str
) -> None:
    server, key = local_gateway
    status, body = raw(server, "DELETE", path, {"helicone-auth": f"Bearer {key}"})
    assert status == 400, body
    assert body["error"]["code"] == "invalid_path"
    assert upstream.requests == []


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/oai/v1/../../admin", {}),
        ("/oai/v1/%2e%2e/admin", {}),
        ("/v1/gateway/groq/v1/../../admin", {}),
        ("/v1/../admin", {"helicone-target-url": "{origin}"}),
        ("/v1/%2e%2e/admin", {"helicone-target-url": "{origin}/v1"}),
    ],
)
def test_dot_segments_are_refused_on_every_passthrough_route(
    gateway: tuple[GatewayServer, str],
    upstream: OpenAIEmulator,
    path: str,
    headers: dict[str, str],
) -> None:
    server, key = gateway
    sent = {name: value.format(origin=upstream.origin) for name, value in headers.items()}
    status, body = raw(server, "GET", path, {"helicone-auth": f"Bearer {key}", **sent})
    assert status == 400, body
    assert body["error"]["code"] == "invalid_path"
    assert upstream.requests == []


def test_encoded_query_characters_stay_in_the_path(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    """``%3F`` in the path is a literal character, not the start of a query."""
    server, key = gateway
    path = "/oai/v1/models%3Fx=1?limit=2"
    status, _ = raw(server, "GET", path, {"helicone-auth": f"Bearer {key}"})
    assert status == 404
    sent = upstream.requests[-1]
    assert (sent.path, sent.query) == ("/v1/models?x=1", "limit=2")


# --- 3. the target allow-list ------------------------------------------------------------------


class TestTargetPolicy:
    policy = TargetPolicy(
        ["models.internal", "*.corp.example", "http://127.0.0.1:9999"],
        ["http://10.1.2.3:8000/v1"],
    )

    @pytest.mark.parametrize(
        "url",
        [
            "https://api.openai.com",
            "https://api.openai.com:443/v1",
            "https://bedrock-runtime.us-east-1.amazonaws.com",
            "https://bedrock-runtime.us-gov-west-1.amazonaws.com",
            "https://us-central1-aiplatform.googleapis.com",
            "https://models.internal",
            "https://a.corp.example",
            "http://127.0.0.1:9999",
            "http://10.1.2.3:8000",
        ],
    )
    def test_allowed(self, url: str) -> None:
        assert self.policy.allows(url)

    @pytest.mark.parametrize(
        "url",
        [
            # a pattern without a port allows the scheme's default port only
            "https://api.openai.com:8443",
            "https://models.internal:22",
            "https://a.corp.example:6379",
            # provider hosts over https only
            "http://api.openai.com",
            "http://models.internal",
            # an http:// entry allows http only
            "https://127.0.0.1:9999",
            # a wildcard stays within one DNS label
            "https://bedrock-runtime.attacker-bucket.s3.amazonaws.com",
            "https://bedrock-runtime.s3.amazonaws.com",
            "https://bedrock-runtime.s3-external-1.amazonaws.com",
            "https://a.b.corp.example",
            "https://evil.example/x.aiplatform.googleapis.com",
            # credentials in the URL, and what parsers disagree on
            "https://user:pw@api.openai.com",
            "http://127.0.0.1:9999\\@api.openai.com",
            "https://api.openai.com\\@127.0.0.1:9999",
        ],
    )
    def test_refused(self, url: str) -> None:
        assert not self.policy.allows(url)

    @pytest.mark.parametrize("url", ["http://[", "https://api.openai.com:99999", "https://:443"])
    def test_malformed_is_a_400(self, url: str) -> None:
        with pytest.raises(GatewayError) as info:
            self.policy.check(url, "Helicone-Target-Url")
        assert info.value.status == 400

    def test_bad_entries_are_refused(self) -> None:
        for entry in ("ftp://host", "http://[", "host:port", "user@host"):
            with pytest.raises(ValueError, match="GATEWAY_ALLOWED_TARGET_HOSTS"):
                TargetPolicy([entry], [])


@pytest.mark.parametrize(
    "target",
    [
        "http://[",
        "http://127.0.0.1:1\\@api.openai.com",
        "https://api.openai.com:99999",
        "http://{host}:{port}\\@api.openai.com",
        "{origin}?x=1",
    ],
)
def test_bad_target_urls_are_400(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator, target: str
) -> None:
    server, key = gateway
    value = target.format(origin=upstream.origin, host=upstream.host, port=upstream.port)
    status, body = raw(
        server,
        "GET",
        "/v1/models",
        {"helicone-auth": f"Bearer {key}", "helicone-target-url": value},
    )
    assert status == 400, body
    assert body["error"]["code"] == "target_not_allowed"
    assert upstream.requests == []


# --- 4. the gateway key never reaches a provider -----------------------------------------------


def _carries(headers: dict[str, str], secret: str) -> list[str]:
    return [name for name, value in headers.items() if secret in value]


def test_gateway_key_is_not_forwarded_on_passthrough(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    response = httpx.get(
        server.url + "/oai/v1/models",
        headers={
            "helicone-auth": f"Bearer {key}",
            "authorization": f"Bearer {key}",
            "x-api-key": key,
            "api-key": f"bearer {key}",
            "x-kept": "yes",
        },
    )
    assert response.status_code == 200, response.text
    sent = upstream.requests[-1].headers
    assert _carries(sent, key) == []
    assert sent["x-kept"] == "yes"


def test_gateway_key_is_not_forwarded_on_unified_routes(
    gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = gateway
    response = httpx.post(
        server.url + "/v1/chat/completions",
        json={"model": "gpt-4o-mini", "messages": MESSAGES},
        headers={"helicone-auth": f"Bearer {key}", "authorization": f"Bearer {key}",
                 "x-api-key": key, "api-key": key},
    )
    assert response.status_code == 200, response.text
    sent = upstream.requests[-1].headers
    assert _carries(sent, key) == []
    # the gateway key was no provider key: the managed key is used instead
    assert sent["authorization"] == f"Bearer {MANAGED_KEY}"


# --- 5. secrets stay out of records and error messages -----------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://h/v1/x?key=abc&limit=2", "https://h/v1/x?key=REDACTED&limit=2"),
        (
            "https://h/x?X-Amz-Signature=s&X-Amz-Credential=c&X-Amz-Security-Token=t&a=1",
            "https://h/x?X-Amz-Signature=REDACTED&X-Amz-Credential=REDACTED"
            "&X-Amz-Security-Token=REDACTED&a=1",
        ),
        ("https://h/x?API-KEY=1&api_key=2&Token=3&sig=4&access_token=5",
         "https://h/x?API-KEY=REDACTED&api_key=REDACTED&Token=REDACTED&sig=REDACTED"
         "&access_token=REDACTED"),
        ("https://user:pw@h:8443/v1", "https://h:8443/v1"),
        ("https://h/x?api%2Dkey=1&flag", "https://h/x?api%2Dkey=REDACTED&flag"),
        ("https://h/v1/models", "https://h/v1/models"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_upstream_errors_name_the_provider_not_the_url(
    gateway: tuple[GatewayServer, str],
) -> None:
    server, key = gateway
    response = post_chat(server, key, "llama/cerebras")
    assert response.status_code == 502, response.text
    message = response.json()["error"]["message"]
    assert "cerebras" in message
    assert "127.0.0.1" not in message and "http" not in message


@pytest.fixture(scope="module")
def logged_gateway(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator
) -> Iterator[tuple[GatewayServer, str]]:
    """Logging on (the writer child owns the embedded store, so no chdb in this process)."""
    settings = make_settings(
        tmp_path_factory.mktemp("gw-logged"),
        provider_api_keys={"openai": MANAGED_KEY},
        provider_base_urls={"openai": upstream.base_url},
        allowed_target_hosts=[upstream.origin],
        logging_enabled=True,
        log_flush_ms=20,
    )
    key = create_key(settings)
    with GatewayServer(settings) as server:
        yield server, key


def _record(server: GatewayServer, key: str, request_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 15
    while True:
        response = httpx.get(
            f"{server.url}/v1/request/{request_id}", headers={"authorization": f"Bearer {key}"}
        )
        if response.status_code == 200:
            data: dict[str, Any] = response.json()["data"]
            return data
        assert time.monotonic() < deadline, response.text
        time.sleep(0.05)


def test_records_hold_no_base_url_and_no_query_credentials(
    logged_gateway: tuple[GatewayServer, str], upstream: OpenAIEmulator
) -> None:
    server, key = logged_gateway
    unified = post_chat(server, key, "gpt-4o-mini")
    passthrough = httpx.get(
        server.url + "/oai/v1/models?key=s3cret&limit=2&X-Amz-Signature=abc",
        headers={"helicone-auth": f"Bearer {key}", "authorization": "Bearer sk-own"},
    )
    generic = httpx.get(
        server.url + "/v1/models?access_token=s3cret",
        headers={"helicone-auth": f"Bearer {key}", "helicone-target-url": upstream.origin},
    )
    for response in (unified, passthrough, generic):
        assert response.status_code == 200, response.text
    urls = [_record(server, key, r.headers["helicone-id"])["target_url"] for r in
            (unified, passthrough, generic)]
    assert urls[0] == "{OPENAI_BASE_URL}/chat/completions"
    assert urls[1] == "{OPENAI_BASE_URL}/models?key=REDACTED&limit=2&X-Amz-Signature=REDACTED"
    # a client-named target is the client's own URL: kept, its credentials redacted
    assert urls[2] == f"{upstream.origin}/v1/models?access_token=REDACTED"
    assert "s3cret" not in "".join(urls)
    assert upstream.origin not in "".join(urls[:2])


# --- 6. /healthz shows counters and states, no error texts --------------------------------------


def test_healthz_has_counters_and_a_state_but_no_text(
    logged_gateway: tuple[GatewayServer, str],
) -> None:
    server, _ = logged_gateway
    logging = httpx.get(server.url + "/healthz").json()["logging"]
    assert logging["state"] == "ok"
    assert "last_error" not in logging
    assert all(isinstance(value, int) for name, value in logging.items() if name != "state")


def test_healthz_state_is_degraded_while_records_wait_after_a_failure() -> None:
    failing = {"enqueued": 5, "written": 0, "replayed": 0, "failed": 5, "lost": 0,
               "batches": 0, "pending_bytes": 4000,
               "last_error": "OSError: [Errno 111] db.internal:8123"}
    health = logging_health(failing)
    assert health["state"] == "degraded"
    assert health["pending_bytes"] == 4000
    assert "db.internal" not in orjson.dumps(health).decode()
    recovered = {**failing, "written": 5, "pending_bytes": 0, "last_error": ""}  # as the writer
    assert logging_health(recovered)["state"] == "ok"  # clears it after a successful write


# --- 7. a base URL with credentials is refused at start-up -------------------------------------


def test_base_url_with_userinfo_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as info:
        make_settings(tmp_path, provider_base_urls={"groq": "https://user:hunter2@h.example/v1"})
    text = str(info.value)
    assert "GROQ_BASE_URL" in text
    assert "hunter2" not in text
