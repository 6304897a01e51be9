"""Budgets (a gateway key's, a user's, an organisation's spend per UTC day or month) blocking
on every path — unified, passthrough (``/oai``, ``Helicone-Target-Url``), streamed,
embeddings — settled from the real usage, with request logging off; the admin API's
authentication and routes; ``gateway credits`` on the command line.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from gateway.metering import usd_to_nano
from gateway.scopes import ADMIN, INVOKE
from gateway.store import BudgetState, Period, Scope
from providers.usage import Usage
from tests.emulator import Fault, OpenAIEmulator
from tests.harness import GatewayServer, make_settings
from tests.test_cli import assert_clean_failure, create_key, run

MANAGED, GROQ = "sk-managed", "sk-groq"
MESSAGES = [{"role": "user", "content": "stay within budget"}]


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=MANAGED) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def groq() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=GROQ) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator, groq: OpenAIEmulator
) -> Iterator[GatewayServer]:
    settings = make_settings(
        tmp_path_factory.mktemp("gw"),
        provider_api_keys={"openai": MANAGED, "groq": GROQ},
        provider_base_urls={"openai": upstream.base_url, "groq": groq.base_url},
        allowed_target_hosts=[upstream.origin],
        # Long: the admin API must make its changes visible at once all the same.
        credits_cache_ttl_seconds=300,
    )
    with GatewayServer(settings) as gateway:
        yield gateway


@pytest.fixture(autouse=True)
def _clean(upstream: OpenAIEmulator, groq: OpenAIEmulator) -> Iterator[None]:
    yield
    upstream.reset()
    groq.reset()


@dataclass
class Org:
    server: GatewayServer
    id: str
    name: str
    key: str
    key_id: str

    def sdk(self, **headers: str) -> openai.OpenAI:
        return openai.OpenAI(
            base_url=self.server.url + "/v1", api_key=self.key, max_retries=0,
            default_headers=headers or None,
        )  # fmt: skip

    def budget(self, scope: Scope, subject: str, period: Period, usd: str) -> str:
        credits = self.server.runtime.store.credits
        state = self.server.call(
            credits.set_budget(self.id, scope, subject, period, usd_to_nano(usd))
        )
        self.server.runtime.meter.invalidate(self.id)
        return state.id

    def budgets(self) -> dict[str, BudgetState]:
        """By id, once no hold is open (a hold settles right after the answer's last byte)."""
        credits = self.server.runtime.store.credits
        deadline = time.monotonic() + 5
        while self.server.call(credits.holds(self.id)) and time.monotonic() < deadline:
            time.sleep(0.01)
        return {b.id: b for b in self.server.call(credits.budgets(self.id))}

    def passthrough(self, path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
        return httpx.post(
            self.server.url + path,
            content=orjson.dumps(body),
            headers={
                "helicone-auth": f"Bearer {self.key}",
                "authorization": f"Bearer {MANAGED}",  # the client's own provider key
                "content-type": "application/json",
                **headers,
            },
            timeout=30,
        )


def _org(server: GatewayServer) -> Org:
    name = f"org-{uuid.uuid4().hex[:8]}"
    key, record = server.call(server.runtime.store.create_key(name))
    return Org(server, record.org_id, name, key, record.id)


def _cost(server: GatewayServer, usage: Any, model: str = "gpt-4o-mini") -> int:
    registry = server.runtime.registry
    assert registry is not None
    if isinstance(usage, dict):
        prompt, completion = usage["prompt_tokens"], usage.get("completion_tokens", 0)
    else:
        prompt, completion = usage.prompt_tokens, getattr(usage, "completion_tokens", 0)
    result = registry.cost("openai", model, Usage(prompt, completion))
    assert result.known and result.nano_usd > 0
    return result.nano_usd


def _refusal(error: openai.APIStatusError | httpx.Response) -> dict[str, Any]:
    if isinstance(error, httpx.Response):
        assert error.status_code == 429, error.text
        body: dict[str, Any] = error.json()["error"]
    else:
        assert error.status_code == 429
        assert isinstance(error.body, dict)
        body = error.body
    assert body["code"] == "budget_exceeded"
    assert body["type"] == "rate_limit_error"
    return body


# --- unified -------------------------------------------------------------------------------


def test_a_key_budget_settles_to_the_real_cost_then_blocks_without_failing_over(
    server: GatewayServer, upstream: OpenAIEmulator, groq: OpenAIEmulator
) -> None:
    org = _org(server)
    budget = org.budget("key", org.key_id, "day", "1")
    with org.sdk() as sdk:
        completion = sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        spent = _cost(server, completion.usage)
        assert org.budgets()[budget].spent_nano == spent
        # Lower the limit below what is spent plus the next request's worst case.
        org.budget("key", org.key_id, "day", "0.000001")
        upstream.reset()
        with pytest.raises(openai.RateLimitError) as caught:
            sdk.chat.completions.create(
                model="gpt-4o-mini/openai,gpt-4o-mini/groq", messages=MESSAGES
            )
    error = _refusal(caught.value)
    assert f"daily budget of gateway key {org.key_id}" in error["message"]
    assert "per UTC day" in error["message"]
    assert error["budget"]["scope"] == "key" and error["budget"]["limit_usd"] == "0.000001"
    # The gateway's own refusal: no attempt was sent, none failed over.
    assert upstream.requests == [] and groq.requests == []
    assert org.budgets()[budget].spent_nano == spent


def test_a_user_budget_applies_to_that_user_only(
    server: GatewayServer, upstream: OpenAIEmulator
) -> None:
    org = _org(server)
    org.budget("user", "alice", "month", "0")
    with org.sdk(**{"Helicone-User-Id": "alice"}) as alice, pytest.raises(
        openai.RateLimitError
    ) as caught:
        alice.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    message = _refusal(caught.value)["message"]
    assert "monthly budget of user 'alice'" in message and "UTC calendar month" in message
    with org.sdk(**{"Helicone-User-Id": "bob"}) as bob:
        bob.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    with org.sdk() as nobody:
        nobody.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert len(upstream.requests) == 2


def test_a_streamed_unified_request_is_settled_from_its_stream(
    server: GatewayServer, upstream: OpenAIEmulator
) -> None:
    org = _org(server)
    budget = org.budget("org", org.id, "day", "1")
    with org.sdk() as sdk:
        chunks = list(
            sdk.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True,
                stream_options={"include_usage": True},
            )
        )  # fmt: skip
        spent = _cost(server, chunks[-1].usage)
        assert org.budgets()[budget].spent_nano == spent
        org.budget("org", org.id, "day", "0")
        with pytest.raises(openai.RateLimitError) as caught:
            sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    assert f"daily budget of organisation '{org.name}'" in _refusal(caught.value)["message"]


def test_embeddings_are_metered(server: GatewayServer, upstream: OpenAIEmulator) -> None:
    org = _org(server)
    budget = org.budget("org", org.id, "month", "1")
    with org.sdk() as sdk:
        answer = sdk.embeddings.create(model="text-embedding-3-small", input="count me")
    spent = _cost(server, answer.usage, "text-embedding-3-small")
    assert org.budgets()[budget].spent_nano == spent


def test_concurrent_requests_cannot_share_what_is_left(
    server: GatewayServer, upstream: OpenAIEmulator
) -> None:
    """The reservation holds the worst case while the first request is in flight: a second
    one that would fit only once the first settles is refused, not let through."""
    org = _org(server)
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 1000}
    # 1000 output tokens at 0.60/1M = 600,000 nano: one request's worst case fits, two do not.
    org.budget("org", org.id, "day", "0.001")
    upstream.inject(Fault(delay=2.0))
    results: list[int] = []
    first = threading.Thread(
        target=lambda: results.append(org.passthrough("/oai/v1/chat/completions", body).status_code)
    )
    first.start()
    credits = server.runtime.store.credits
    deadline = time.monotonic() + 5
    while not server.call(credits.holds(org.id)) and time.monotonic() < deadline:
        time.sleep(0.01)  # until the first one holds its reservation
    second = org.passthrough("/oai/v1/chat/completions", body)
    first.join(10)
    assert results == [200]
    _refusal(second)


# --- passthrough ---------------------------------------------------------------------------


def test_passthrough_is_settled_and_blocked(
    server: GatewayServer, upstream: OpenAIEmulator
) -> None:
    org = _org(server)
    budget = org.budget("org", org.id, "day", "1")
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    answer = org.passthrough("/oai/v1/chat/completions", body)
    assert answer.status_code == 200
    spent = _cost(server, answer.json()["usage"])
    assert org.budgets()[budget].spent_nano == spent
    org.budget("org", org.id, "day", "0")
    refused = org.passthrough("/v1/gateway/openai/v1/chat/completions", body)
    assert f"daily budget of organisation '{org.name}'" in _refusal(refused)["message"]
    assert len(upstream.requests) == 1


def test_a_passthrough_stream_is_settled_from_the_stream(
    server: GatewayServer, upstream: OpenAIEmulator
) -> None:
    """Logging is off, yet the stream's usage is asked for (and stripped when the client did
    not ask) so the budget is charged what the provider reports."""
    assert server.runtime.writer is None
    org = _org(server)
    budget = org.budget("user", "carol", "day", "1")
    body = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}
    with_usage = org.passthrough(
        "/oai/v1/chat/completions",
        {**body, "stream_options": {"include_usage": True}},
        **{"helicone-user-id": "carol"},
    )
    events = [
        orjson.loads(line[6:])
        for line in with_usage.text.splitlines()
        if line.startswith("data: {")
    ]
    cost = _cost(server, events[-1]["usage"])
    assert org.budgets()[budget].spent_nano == cost
    without = org.passthrough("/oai/v1/chat/completions", body, **{"helicone-user-id": "carol"})
    assert '"usage":{' not in without.text.replace(" ", "")
    assert orjson.loads(upstream.requests[-1].body)["stream_options"] == {"include_usage": True}
    assert org.budgets()[budget].spent_nano == 2 * cost


def test_helicone_target_url_is_metered(server: GatewayServer, upstream: OpenAIEmulator) -> None:
    org = _org(server)
    budget = org.budget("key", org.key_id, "month", "1")
    headers = {"helicone-target-url": upstream.origin}
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    answer = org.passthrough("/v1/chat/completions", body, **headers)
    assert answer.status_code == 200
    # Priced as the model's maker prices it (the target's provider is "custom").
    assert org.budgets()[budget].spent_nano == _cost(server, answer.json()["usage"])
    org.budget("key", org.key_id, "month", "0")
    refused = org.passthrough("/v1/chat/completions", body, **headers)
    assert f"monthly budget of gateway key {org.key_id}" in _refusal(refused)["message"]


def test_helicone_fallbacks_are_metered(server: GatewayServer, upstream: OpenAIEmulator) -> None:
    org = _org(server)
    budget = org.budget("org", org.id, "day", "1")
    fallbacks = orjson.dumps(
        [{"target-url": upstream.origin, "headers": {}, "onCodes": [500]}]
    ).decode()
    body = {"model": "gpt-4o-mini", "messages": MESSAGES}
    answer = org.passthrough("/v1/chat/completions", body, **{"helicone-fallbacks": fallbacks})
    assert answer.status_code == 200, answer.text
    assert org.budgets()[budget].spent_nano == _cost(server, answer.json()["usage"])
    org.budget("org", org.id, "day", "0")
    refused = org.passthrough("/v1/chat/completions", body, **{"helicone-fallbacks": fallbacks})
    _refusal(refused)
    assert len(upstream.requests) == 1


# --- the admin API -------------------------------------------------------------------------


def _admin(server: GatewayServer, scopes: frozenset[str] | None = frozenset({ADMIN})) -> str:
    key, _ = server.call(server.runtime.store.create_key("operators", scopes=scopes))
    return key


def _call(
    server: GatewayServer, method: str, path: str, key: str | None, body: Any = None
) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.request(
        method, server.url + path, headers=headers,
        content=orjson.dumps(body) if body is not None else None, timeout=30,
    )  # fmt: skip


def test_the_admin_api_needs_the_admin_scope_named(server: GatewayServer) -> None:
    org = _org(server)
    path = f"/admin/credits/{org.name}"
    assert _call(server, "GET", path, None).status_code == 401
    assert _call(server, "GET", path, "sk-helicone-notakey0000000000000000").status_code == 401
    # A full-access key belongs to one organisation: not the operator.
    refused = _call(server, "GET", path, org.key)
    assert refused.status_code == 403
    assert ADMIN in refused.json()["error"]["message"]
    assert _call(server, "GET", path, _admin(server, frozenset({INVOKE}))).status_code == 403
    assert _call(server, "POST", path + "/add", org.key, {"amount_usd": "5"}).status_code == 403
    shown = _call(server, "GET", path, _admin(server))
    assert shown.status_code == 200
    assert shown.json() == {"org": {"id": org.id, "name": org.name}, "account": None, "budgets": []}


def test_the_admin_api_manages_accounts_and_budgets(
    server: GatewayServer, upstream: OpenAIEmulator
) -> None:
    admin = _admin(server)
    org = _org(server)
    # Unmetered, and cached as such for the server's long TTL.
    with org.sdk() as sdk:
        sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    added = _call(server, "POST", f"/admin/credits/{org.id}/add", admin, {"amount_usd": "0.25"})
    assert added.status_code == 200, added.text
    account = added.json()["account"]
    assert (account["balance_usd"], account["balance_nano"]) == ("0.25", 250_000_000)
    assert account["available_nano"] == 250_000_000 and account["org_name"] == org.name
    # Taking it back to zero: the next credits request is refused at once (no stale cache).
    taken = _call(server, "POST", f"/admin/credits/{org.name}/add", admin, {"amount_usd": "-0.25"})
    assert taken.json()["account"]["balance_nano"] == 0
    with org.sdk() as sdk, pytest.raises(openai.RateLimitError, match="Insufficient credits"):
        sdk.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    listed = _call(server, "GET", "/admin/credits", admin).json()["data"]
    assert org.id in {a["org_id"] for a in listed}

    put = _call(
        server, "PUT", f"/admin/credits/{org.name}/budgets", admin,
        {"scope": "key", "subject": org.key[:16], "period": "day", "limit_usd": "2.5"},
    )  # fmt: skip
    assert put.status_code == 200, put.text
    budget = put.json()
    assert (budget["subject"], budget["limit_nano"], budget["spent_nano"]) == (
        org.key_id, 2_500_000_000, 0
    )
    again = _call(
        server, "PUT", f"/admin/credits/{org.name}/budgets", admin,
        {"scope": "key", "subject": org.key_id, "period": "day", "limit_usd": "3"},
    )  # fmt: skip
    assert again.json()["id"] == budget["id"] and again.json()["limit_usd"] == "3.00"
    budgets = _call(server, "GET", f"/admin/credits/{org.name}/budgets", admin).json()["data"]
    assert [b["id"] for b in budgets] == [budget["id"]]
    path = f"/admin/credits/{org.name}/budgets/{budget['id']}"
    assert _call(server, "DELETE", path, admin).status_code == 204
    assert _call(server, "DELETE", path, admin).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "fragment"),
    [
        ("GET", "/admin/credits/no-such-org", None, 404, "Unknown organisation"),
        ("POST", "/admin/credits/{org}/add", {"amount_usd": "1.0000000001"}, 400, "9 decimals"),
        ("POST", "/admin/credits/{org}/add", {"amount_usd": 5}, 400, "decimal string"),
        ("POST", "/admin/credits/{org}/add", [1], 400, "JSON object"),
        ("PUT", "/admin/credits/{org}/budgets",
         {"scope": "team", "period": "day", "limit_usd": "1"}, 400, "'scope'"),
        ("PUT", "/admin/credits/{org}/budgets",
         {"scope": "org", "period": "week", "limit_usd": "1"}, 400, "'period'"),
        ("PUT", "/admin/credits/{org}/budgets",
         {"scope": "org", "period": "day", "limit_usd": "-1"}, 400, "negative"),
        ("PUT", "/admin/credits/{org}/budgets",
         {"scope": "user", "period": "day", "limit_usd": "1"}, 400, "user id"),
        ("PUT", "/admin/credits/{org}/budgets",
         {"scope": "key", "subject": "{other_key}", "period": "day", "limit_usd": "1"}, 400,
         "another organisation"),
    ],
)  # fmt: skip
def test_the_admin_api_refuses_bad_input_clearly(
    server: GatewayServer, method: str, path: str, body: Any, status: int, fragment: str
) -> None:
    org, other = _org(server), _org(server)
    if isinstance(body, dict) and body.get("subject") == "{other_key}":
        body = {**body, "subject": other.key_id}
    answer = _call(server, method, path.format(org=org.name), _admin(server), body)
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert fragment in error["message"]
    assert error["type"] == ("not_found_error" if status == 404 else "invalid_request_error")


# --- the CLI -------------------------------------------------------------------------------


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A fresh installation's environment (as tests/test_cli.py's)."""
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GATEWAY_") and name != "DATABASE_URL"
    }
    clean["GATEWAY_DATA_DIR"] = str(tmp_path / "data")
    return clean


def test_gateway_credits_cli(env: dict[str, str]) -> None:
    key = create_key(env, "--org", "acme")
    added = run(env, "credits", "add", "acme", "12.5")
    assert added.returncode == 0, added.stderr
    assert "Added 12.50 USD to org 'acme': balance 12.50 USD" in added.stdout
    assert run(env, "credits", "add", "acme", "-2.25").returncode == 0
    day = run(env, "credits", "set-budget", "--org", "acme", "--period", "day", "--limit-usd", "3")
    assert day.returncode == 0
    assert "The daily budget of org 'acme' is 3.00 USD per UTC day" in day.stdout
    user = run(
        env, "credits", "set-budget", "--org", "acme", "--user", "alice", "--period", "month",
        "--limit-usd", "0.5",
    )  # fmt: skip
    assert "user 'alice' of org 'acme' is 0.50 USD per UTC calendar month" in user.stdout
    by_key = run(
        env, "credits", "set-budget", "--key", key[:16], "--period", "day", "--limit-usd", "1"
    )
    assert by_key.returncode == 0 and key[:16] in by_key.stdout

    shown = run(env, "credits", "show", "acme")
    assert shown.returncode == 0
    assert "Org 'acme': balance 10.25 USD, reserved 0.00, available 10.25." in shown.stdout
    rows = [line.split() for line in shown.stdout.splitlines()[2:]]
    assert sorted((r[1], r[3], r[4]) for r in rows) == [
        ("key", "day", "1.00"), ("org", "day", "3.00"), ("user", "month", "0.50")
    ]
    listed = run(env, "credits", "list")
    assert listed.stdout.splitlines()[1].split() == ["acme", "10.25", "0.00", "10.25", "3"]

    removed = run(
        env, "credits", "set-budget", "--org", "acme", "--user", "alice", "--period", "month",
        "--remove",
    )  # fmt: skip
    assert "Removed the monthly budget of user 'alice'" in removed.stdout
    assert len(run(env, "credits", "show", "acme").stdout.splitlines()) == 4


@pytest.mark.parametrize(
    "args",
    [
        ("credits", "add", "nobody", "1"),
        ("credits", "set-budget", "--period", "day", "--limit-usd", "1"),
        ("credits", "set-budget", "--org", "acme", "--period", "day"),
        ("credits", "set-budget", "--key", "sk-helicone-zzzz", "--period", "day",
         "--limit-usd", "1"),
        ("credits", "set-budget", "--org", "acme", "--user", "x", "--period", "day", "--remove"),
    ],
)  # fmt: skip
def test_gateway_credits_cli_fails_cleanly(env: dict[str, str], args: tuple[str, ...]) -> None:
    create_key(env, "--org", "acme")
    assert_clean_failure(run(env, *args))


def test_gateway_credits_cli_refuses_inexact_amounts(env: dict[str, str]) -> None:
    create_key(env, "--org", "acme")
    result = run(env, "credits", "add", "acme", "0.0000000001")
    assert_clean_failure(result, code=2)
    assert "9 decimals" in result.stderr
