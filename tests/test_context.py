"""The request context: ``Helicone-*`` options parsed once, in one module."""

from __future__ import annotations

import ast
import uuid
from pathlib import Path

import pytest

from gateway.context import HeliconeOptions, RequestContext, parse_options
from gateway.store import KeyIdentity

ROOT = Path(__file__).resolve().parent.parent
_PACKAGES = ("gateway", "providers", "logging_pipeline", "cache", "ratelimit")
_ALLOWED = {
    # The one parser of Helicone-* request headers.
    Path("gateway/context.py"): None,
    # A stored property key (the feedback score in the request log), not a request header.
    Path("logging_pipeline/query/fields.py"): {"helicone-score-feedback"},
    Path("logging_pipeline/query/rows.py"): {"helicone-score-feedback"},
    # The feedback score written, and the legacy feedback body's field (a JSON key).
    Path("gateway/api/annotations.py"): {"helicone-score-feedback", "helicone-id"},
    # A response header the gateway writes (a prompt that fell back to production).
    Path("gateway/prompts/runtime.py"): {"helicone-prompt-resolution"},
    # A header the dashboard's playground sends with the request it runs in process.
    Path("gateway/dashboard/playground.py"): {"helicone-property-source"},
    # The log writer's redaction rule for stored headers: which names it redacts or keeps
    # readable, not an option read from them.
    Path("logging_pipeline/headers.py"): {"helicone-auth", "helicone-property-"},
}


class TestDefaults:
    def test_no_helicone_header(self) -> None:
        options = parse_options({"authorization": "Bearer sk-x", "host": "gw"})
        assert uuid.UUID(options.request_id).version == 7
        rest = {name: getattr(options, name) for name in HeliconeOptions.__slots__}
        del rest["request_id"]
        assert rest == {
            "auth": None,
            "target_url": None,
            "target_provider": "custom",
            "openai_api_base": None,
            "force_format": False,
            "user_id": "",
            "model_override": "",
            "omit_request": False,
            "omit_response": False,
            "cache_enabled": False,
            "cache": None,
            "cache_error": None,
            "fallbacks": None,
            "retry": None,
            "rate_limit_policy": None,
            "rate_limit_alias": None,
            "properties": {},
            "country_code": None,
        }

    def test_each_request_gets_its_own_properties(self) -> None:
        first, second = parse_options({}), parse_options({})
        first.properties["x"] = "1"
        assert second.properties == {}


class TestHeaders:
    def test_request_id(self) -> None:
        rid = "123e4567-e89b-12d3-a456-426614174000"
        assert parse_options({"helicone-request-id": f" {rid.upper()} "}).request_id == rid
        replaced = parse_options({"helicone-request-id": "ticket-42"}).request_id
        assert uuid.UUID(replaced).version == 7

    def test_values_kept_as_sent(self) -> None:
        options = parse_options(
            {
                "helicone-auth": "Bearer sk-helicone-A",
                "helicone-target-url": "https://Example.com/v1",
                "helicone-openai-api-base": "https://Azure.example/openai",
                "helicone-user-id": "User-7",
                "helicone-model-override": "GPT-4o",
            }
        )
        assert options.auth == "Bearer sk-helicone-A"
        assert options.target_url == "https://Example.com/v1"
        assert options.openai_api_base == "https://Azure.example/openai"
        assert options.user_id == "User-7"
        assert options.model_override == "GPT-4o"

    def test_empty_target_url_still_selects_the_generic_route(self) -> None:
        assert parse_options({"helicone-target-url": ""}).target_url == ""

    def test_empty_api_base_is_absent(self) -> None:
        assert parse_options({"helicone-openai-api-base": ""}).openai_api_base is None

    @pytest.mark.parametrize(
        ("value", "expected"), [(" OpenRouter ", "openrouter"), ("", "custom"), ("  ", "custom")]
    )
    def test_target_provider(self, value: str, expected: str) -> None:
        assert parse_options({"helicone-target-provider": value}).target_provider == expected

    @pytest.mark.parametrize(
        "header",
        [
            "helicone-stream-force-format",
            "helicone-omit-request",
            "helicone-omit-response",
            "helicone-cache-enabled",
        ],
    )
    @pytest.mark.parametrize(
        ("value", "expected"),
        [("true", True), ("TRUE", True), (" True ", True), ("1", False), ("yes", False),
         ("false", False), ("", False)],
    )
    def test_flags(self, header: str, value: str, expected: bool) -> None:
        options = parse_options({header: value})
        field = {
            "helicone-stream-force-format": "force_format",
            "helicone-omit-request": "omit_request",
            "helicone-omit-response": "omit_response",
            "helicone-cache-enabled": "cache_enabled",
        }[header]
        assert getattr(options, field) is expected


class TestProperties:
    def test_custom_keys_and_session_keys(self) -> None:
        options = parse_options(
            {
                "helicone-property-environment": "Prod",
                "helicone-property-": "no key: ignored",
                "helicone-session-id": "s-1",
                "helicone-session-path": "/a/b",
                "helicone-session-name": "Trip",
                "helicone-prompt-id": "p-1",
                "x-helicone-property-other": "not ours",
                "helicone-property-helicone-session-id": "a custom key",
            }
        )
        assert options.properties == {
            "environment": "Prod",
            "Helicone-Session-Id": "s-1",
            "Helicone-Session-Path": "/a/b",
            "Helicone-Session-Name": "Trip",
            "Helicone-Prompt-Id": "p-1",
            "helicone-session-id": "a custom key",
        }

    def test_keys_arrive_lower_cased(self) -> None:
        # ASGI lower-cases header names: the key is stored as it arrives.
        options = parse_options({"helicone-property-userteam": "A"})
        assert options.properties == {"userteam": "A"}


class TestCountry:
    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            ({"cf-ipcountry": "de"}, "DE"),
            ({"cf-ipcountry": "XX", "x-country-code": "fr"}, "XX"),
            ({"cf-ipcountry": "USA", "cloudfront-viewer-country": "us"}, "US"),
            ({"cf-ipcountry": "1a", "x-vercel-ip-country": "ca"}, "CA"),
            ({"x-country-code": "jp"}, "JP"),
            ({"x-country-code": ""}, None),
            ({"x-country-code": "j"}, None),
        ],
    )
    def test_first_valid_two_letter_code(
        self, headers: dict[str, str], expected: str | None
    ) -> None:
        assert parse_options(headers).country_code == expected


class TestContext:
    def test_capture_is_filled_from_the_options(self) -> None:
        ctx = RequestContext(
            parse_options(
                {
                    "helicone-request-id": "123e4567-e89b-12d3-a456-426614174000",
                    "helicone-user-id": "u",
                    "helicone-model-override": "m",
                    "helicone-omit-request": "true",
                    "helicone-omit-response": "true",
                    "helicone-cache-enabled": "true",
                    "helicone-property-a": "1",
                    "cf-ipcountry": "nl",
                }
            )
        )
        identity = KeyIdentity(key_id="k", org_id="o", org_name="org")
        capture = ctx.new_capture(identity, "/v1/chat/completions")
        assert (capture.request_id, capture.organization_id, capture.api_key_id, capture.path) == (
            "123e4567-e89b-12d3-a456-426614174000", "o", "k", "/v1/chat/completions"
        )
        assert capture.started == ctx.started
        assert (capture.user_id, capture.model_override) == ("u", "m")
        assert capture.properties == {"a": "1"}
        assert capture.omit_request and capture.omit_response and capture.cache_enabled
        assert capture.country_code == "NL"
        assert ctx.base_headers == [(b"helicone-id", b"123e4567-e89b-12d3-a456-426614174000")]

    def test_path_key_makes_authorization_the_providers(self) -> None:
        ctx = RequestContext(parse_options({}))
        ctx.use_path_key("sk-helicone-k", {"authorization": "Bearer sk-openai"})
        creds = ctx.request_credentials({"authorization": "Bearer sk-openai"})
        assert (creds.gateway_key, creds.provider_authorization) == (
            "sk-helicone-k", "Bearer sk-openai"
        )

    def test_log_journals_once(self) -> None:
        ctx = RequestContext(parse_options({}))
        ctx.capture = ctx.new_capture(KeyIdentity(key_id="k", org_id="o", org_name="n"), "/x")
        sunk: list[object] = []
        ctx.sink = sunk.append
        ctx.log()
        ctx.log()
        assert len(sunk) == 1


def helicone_header_literals(root: Path) -> list[str]:
    """Every string literal naming a lower-case ``helicone-`` header outside the allowed
    places, as ``path:line: value``.

    Request header names reach the code lower-cased (ASGI), so reading one needs such a
    literal; mixed-case ``Helicone-…`` strings are labels in messages and docs.
    """
    found: list[str] = []
    for package in _PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            relative = path.relative_to(root)
            allowed = _ALLOWED.get(relative, set())
            if allowed is None:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Constant):
                    continue
                value = node.value
                if isinstance(value, bytes):
                    value = value.decode("latin-1")
                if isinstance(value, str) and value.startswith("helicone-"):
                    if value not in allowed:
                        found.append(f"{relative}:{node.lineno}: {value!r}")
    return found


def test_only_the_context_reads_helicone_headers() -> None:
    assert helicone_header_literals(ROOT) == []


@pytest.mark.parametrize(
    ("path", "headers", "route"),
    [
        ("/v1/chat/completions", {}, "unified"),
        ("/responses", {}, "unified"),
        ("/v1/models", {}, "models"),
        ("/oai/v1/chat/completions", {}, "passthrough"),
        ("/anthropic/v1/messages", {}, "passthrough"),
        ("/v1/gateway/groq/v1/chat/completions", {}, "passthrough"),
        ("/v1/chat/completions", {"helicone-target-url": "https://api.groq.com"}, "target_url"),
        ("/oai/v1/log", {"helicone-target-url": "https://api.groq.com"}, "manual_log"),
        ("/healthz", {}, "app"),
    ],
)
async def test_the_data_plane_names_the_kind_of_handler_in_the_context(
    tmp_path: Path, path: str, headers: dict[str, str], route: str
) -> None:
    from gateway.asgi import Message, Scope
    from gateway.dataplane import DataPlane
    from gateway.runtime import Runtime
    from tests.harness import make_settings

    seen: list[str] = []

    async def spy(scope: Scope, *args: object) -> None:
        seen.append(args[-1].route)  # type: ignore[attr-defined]

    async def app(scope: Scope, receive: object, send: object) -> None:
        seen.append("app")

    plane = DataPlane(app, Runtime(make_settings(tmp_path)))
    plane.routes = {p: (kind, spy) for p, (kind, _) in plane.routes.items()}
    plane.passthrough.generic = spy  # type: ignore[method-assign]
    plane.manual_log = spy  # type: ignore[assignment]
    plane.passthrough.provider = spy  # type: ignore[method-assign]

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        return None

    scope = {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(),
             "query_string": b"", "headers": [(k.encode(), v.encode()) for k, v in headers.items()]}
    await plane(scope, receive, send)
    assert seen == [route]
