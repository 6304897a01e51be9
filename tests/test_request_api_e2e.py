"""End to end: the Helicone-compatible request query API over real logged traffic.

A real gateway (logging on, embedded chdb, SQLite bodies) serves two organizations. Requests
go through it with the OpenAI SDK carrying ``Helicone-*`` headers; once the writer has
flushed them, the ``/v1/request/*`` endpoints are exercised over HTTP with each org's key,
exactly as a Helicone client would.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.emulator import Fault, OpenAIEmulator
from tests.harness import GatewayServer, create_key, make_settings

KEY = "sk-emulator"
SESSION = str(uuid.uuid4())


@dataclass(frozen=True)
class Call:
    """One request sent through the gateway while seeding."""

    name: str
    org: str
    model: str
    user: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    session_path: str | None = None
    fault_status: int | None = None

    @property
    def messages(self) -> list[dict[str, str]]:
        return [{"role": "user", "content": f"request {self.name}: tell me something"}]

    def headers(self) -> dict[str, str]:
        headers = {f"Helicone-Property-{k}": v for k, v in self.properties.items()}
        if self.user is not None:
            headers["Helicone-User-Id"] = self.user
        if self.session_path is not None:
            headers |= {
                "Helicone-Session-Id": SESSION,
                "Helicone-Session-Path": self.session_path,
                "Helicone-Session-Name": "Trip plan",
            }
        return headers


CALLS = (
    Call("a1", "acme", "gpt-4o-mini", "alice@example.com",
         {"Environment": "prod", "App": "web"}, session_path="/plan"),
    Call("a2", "acme", "gpt-4o-mini", "bob@example.com",
         {"Environment": "staging"}, session_path="/plan/step-1"),
    Call("a3", "acme", "gpt-4o", "alice@example.com", {"Environment": "prod"}),
    Call("a4", "acme", "gpt-4o-mini", "carol@example.com", {"Environment": "prod"},
         fault_status=429),
    Call("a5", "acme", "my-finetune", "bob@example.com"),
    Call("g1", "globex", "gpt-4o-mini", "alice@example.com", {"Environment": "prod"}),
    Call("g2", "globex", "gpt-4o", "dave@example.com", {"Environment": "staging"}),
)
ACME = [c.name for c in CALLS if c.org == "acme"]
GLOBEX = [c.name for c in CALLS if c.org == "globex"]


@dataclass
class Seeded:
    server: GatewayServer
    keys: dict[str, str]
    ids: dict[str, str]
    """Call name -> the request id the gateway assigned (``helicone-id``)."""
    completions: dict[str, Any]
    """Call name -> the parsed ChatCompletion (successful calls only)."""

    def name_of(self, request_id: str) -> str:
        return next(name for name, rid in self.ids.items() if rid == request_id)

    def post(self, org: str | None, path: str, body: Any) -> httpx.Response:
        return httpx.post(self.server.url + path, json=body, headers=_auth(self, org))

    def get(self, org: str | None, path: str) -> httpx.Response:
        return httpx.get(self.server.url + path, headers=_auth(self, org))

    def query(self, org: str, body: dict[str, Any], path: str = "/v1/request/query-clickhouse"
              ) -> list[dict[str, Any]]:
        """The rows a successful query answers (asserting the envelope)."""
        response = self.post(org, path, body)
        assert response.status_code == 200, response.text
        payload = response.json()
        assert payload["error"] is None
        assert isinstance(payload["data"], list)
        return list(payload["data"])

    def names(self, org: str, body: dict[str, Any], path: str = "/v1/request/query-clickhouse"
              ) -> list[str]:
        return [self.name_of(row["request_id"]) for row in self.query(org, body, path)]


def _auth(seeded: Seeded, org: str | None) -> dict[str, str]:
    return {} if org is None else {"authorization": f"Bearer {seeded.keys[org]}"}


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAIEmulator]:
    with OpenAIEmulator(api_key=KEY) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def seeded(
    tmp_path_factory: pytest.TempPathFactory, upstream: OpenAIEmulator
) -> Iterator[Seeded]:
    settings = make_settings(
        tmp_path_factory.mktemp("api"),
        provider_api_keys={"openai": KEY},
        provider_base_urls={"openai": upstream.base_url},
        logging_enabled=True,
        log_flush_ms=20,
    )
    keys = {org: create_key(settings, org=org) for org in ("acme", "globex")}
    with GatewayServer(settings) as server, contextlib.ExitStack() as stack:
        seeded = Seeded(server, keys, {}, {})
        clients = {
            org: openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)
            for org, key in keys.items()
        }
        for client in clients.values():  # closed here, not left to the garbage collector
            stack.callback(client.close)
        for call in CALLS:
            client = clients[call.org]
            if call.fault_status is not None:
                upstream.inject(Fault(status=call.fault_status, path="/chat/completions"))
                with pytest.raises(openai.APIStatusError) as info:
                    client.chat.completions.create(
                        model=call.model, messages=call.messages,
                        extra_headers=call.headers(),
                    )
                assert info.value.status_code == call.fault_status
                seeded.ids[call.name] = info.value.response.headers["helicone-id"]
                continue
            raw = client.chat.completions.with_raw_response.create(
                model=call.model, messages=call.messages,
                extra_headers=call.headers(),
            )
            seeded.ids[call.name] = raw.headers["helicone-id"]
            seeded.completions[call.name] = raw.parse()
        _wait_until_queryable(seeded)
        yield seeded


def _wait_until_queryable(seeded: Seeded, timeout: float = 15.0) -> None:
    """Poll ``query-ids`` (as each org) until every seeded request is readable."""
    deadline = time.monotonic() + timeout
    for org, names in (("acme", ACME), ("globex", GLOBEX)):
        wanted = [seeded.ids[n] for n in names]
        while True:
            response = seeded.post(org, "/v1/request/query-ids", {"requestIds": wanted})
            assert response.status_code == 200, response.text
            if len(response.json()["data"]) == len(wanted):
                break
            writer = seeded.server.runtime.writer
            assert time.monotonic() < deadline, (
                f"{org}: records not queryable; counters {writer and writer.counters}"
            )
            time.sleep(0.05)


# --- the rows and what they hold -------------------------------------------------------------


def test_everything_was_written(seeded: Seeded) -> None:
    writer = seeded.server.runtime.writer
    assert writer is not None
    deadline = time.monotonic() + 10  # the writer child reports its counters every 100 ms
    while writer.counters.written < len(CALLS) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert writer.counters.written == writer.counters.enqueued == len(CALLS)
    assert writer.counters.lost == writer.counters.failed == 0


def test_filter_all_returns_only_own_org_newest_first(seeded: Seeded) -> None:
    assert seeded.names("acme", {"filter": "all", "limit": 100}) == ACME[::-1]
    assert seeded.names("globex", {"filter": "all", "limit": 100}) == GLOBEX[::-1]


def test_row_shape(seeded: Seeded) -> None:
    rows = seeded.query("acme", {"filter": "all", "limit": 100})
    row = next(r for r in rows if r["request_id"] == seeded.ids["a1"])
    completion = seeded.completions["a1"]
    assert row["model"] == row["request_model"] == row["response_model"] == "gpt-4o-mini"
    assert row["provider"] == "openai"
    assert row["request_path"] == "/v1/chat/completions"
    assert row["response_status"] == 200
    assert row["request_user_id"] == "alice@example.com"
    # Header names arrive lower-cased, so custom property keys are stored lower-cased.
    assert row["properties"]["environment"] == "prod"
    assert row["properties"]["app"] == "web"
    assert row["request_properties"] == row["properties"]
    assert row["properties"]["Helicone-Session-Id"] == SESSION
    assert row["prompt_tokens"] == completion.usage.prompt_tokens
    assert row["completion_tokens"] == completion.usage.completion_tokens
    assert row["total_tokens"] == completion.usage.total_tokens
    assert row["tokens_estimated"] is False  # the provider's own count
    assert row["delay_ms"] is not None and row["delay_ms"] >= 0
    assert row["request_created_at"].endswith("Z")
    assert row["storage_location"] == "local"
    # Bodies are not inlined by the list endpoints: Helicone's placeholder instead.
    assert "helicone_message" in row["request_body"]
    assert "helicone_message" in row["response_body"]


def test_cost_is_usd(seeded: Seeded) -> None:
    rows = {seeded.name_of(r["request_id"]): r
            for r in seeded.query("acme", {"filter": "all", "limit": 100})}
    mini = rows["a1"]
    # gpt-4o-mini: a few dozen tokens cost far less than a cent (the store keeps nano-USD).
    assert mini["cost"] is not None and 0 < mini["cost"] < 0.01
    assert mini["costUSD"] == mini["cost"]
    assert rows["a3"]["cost"] > 0  # gpt-4o is priced too
    assert rows["a5"]["cost"] is None  # an unknown model has no price, not a zero price


# --- filters ---------------------------------------------------------------------------------


def _rmt(field_name: str, operator: str, value: Any) -> dict[str, Any]:
    return {"request_response_rmt": {field_name: {operator: value}}}


def _prop(key: str, operator: str, value: str) -> dict[str, Any]:
    return {"request_response_rmt": {"properties": {key: {operator: value}}}}


def _sorted_names(seeded: Seeded, org: str, node: Any) -> list[str]:
    body = {"filter": node, "limit": 100, "sort": {"created_at": "asc"}}
    return seeded.names(org, body)


def test_filter_on_property(seeded: Seeded) -> None:
    prod = _prop("environment", "equals", "prod")
    assert _sorted_names(seeded, "acme", prod) == ["a1", "a3", "a4"]
    assert _sorted_names(seeded, "globex", prod) == ["g1"]
    # Keys match case-insensitively; values are case-sensitive.
    assert _sorted_names(seeded, "acme", _prop("Environment", "equals", "prod")) == [
        "a1", "a3", "a4"
    ]
    assert _sorted_names(seeded, "acme", _prop("environment", "equals", "PROD")) == []
    assert _sorted_names(seeded, "acme", _prop("environment", "contains", "stag")) == ["a2"]
    # "null" tests for absence of the property.
    assert _sorted_names(seeded, "acme", _prop("environment", "equals", "null")) == ["a5"]
    # The legacy top-level ``properties`` table is the same map.
    legacy = {"properties": {"environment": {"equals": "staging"}}}
    assert _sorted_names(seeded, "globex", legacy) == ["g2"]


def test_filter_on_user_model_status(seeded: Seeded) -> None:
    alice = _rmt("user_id", "equals", "alice@example.com")
    assert _sorted_names(seeded, "acme", alice) == ["a1", "a3"]
    assert _sorted_names(seeded, "globex", alice) == ["g1"]
    assert _sorted_names(seeded, "acme", _rmt("model", "equals", "gpt-4o")) == ["a3"]
    assert _sorted_names(seeded, "acme", _rmt("model", "contains", "4o-MINI")) == [
        "a1", "a2", "a4"
    ]
    assert _sorted_names(seeded, "acme", _rmt("status", "equals", 429)) == ["a4"]
    assert _sorted_names(seeded, "acme", _rmt("status", "gte", 400)) == ["a4"]
    assert _sorted_names(seeded, "acme", _rmt("status", "equals", 200)) == [
        "a1", "a2", "a3", "a5"
    ]
    # Cost filter values are USD, like the API's cost field.
    assert _sorted_names(seeded, "acme", _rmt("cost", "gt", 0)) == ["a1", "a2", "a3"]
    assert _sorted_names(seeded, "acme", _rmt("cost", "gt", 1)) == []
    # The legacy tables name the same columns.
    legacy = {"response": {"status": {"equals": 429}}}
    assert _sorted_names(seeded, "acme", legacy) == ["a4"]


def test_filter_on_session(seeded: Seeded) -> None:
    session = {"sessions_request_response_rmt": {"session_session_id": {"equals": SESSION}}}
    assert _sorted_names(seeded, "acme", session) == ["a1", "a2"]
    assert _sorted_names(seeded, "globex", session) == []
    path = {"sessions_request_response_rmt": {"session_session_path": {"equals": "/plan"}}}
    assert _sorted_names(seeded, "acme", path) == ["a1"]


def test_filter_trees(seeded: Seeded) -> None:
    prod = _prop("environment", "equals", "prod")
    gpt4o_or_429 = {
        "left": _rmt("model", "equals", "gpt-4o"),
        "operator": "or",
        "right": _rmt("status", "equals", 429),
    }
    tree = {"left": prod, "operator": "and", "right": gpt4o_or_429}
    assert _sorted_names(seeded, "acme", tree) == ["a3", "a4"]
    bob_or_carol = {
        "left": _rmt("user_id", "equals", "bob@example.com"),
        "operator": "or",
        "right": _rmt("user_id", "equals", "carol@example.com"),
    }
    assert _sorted_names(seeded, "acme", bob_or_carol) == ["a2", "a4", "a5"]
    nested = {
        "left": {"left": bob_or_carol, "operator": "and", "right": prod},
        "operator": "or",
        "right": _rmt("model", "equals", "gpt-4o"),
    }
    assert _sorted_names(seeded, "acme", nested) == ["a3", "a4"]
    # The same tree never crosses into the other org.
    assert _sorted_names(seeded, "globex", nested) == ["g2"]
    # A user's organization_id leaf can only narrow the scope, never widen it.
    assert _sorted_names(seeded, "acme", {
        "left": _rmt("organization_id", "not-equals", str(uuid.uuid4())),
        "operator": "or",
        "right": "all",
    }) == ACME


# --- sorting and paging ----------------------------------------------------------------------


def test_sort_by_created_at(seeded: Seeded) -> None:
    assert seeded.names("acme", {"filter": "all", "sort": {"created_at": "asc"}}) == ACME
    assert seeded.names("acme", {"filter": "all", "sort": {"created_at": "desc"}}) == ACME[::-1]
    rows = seeded.query("acme", {"filter": "all", "sort": {"created_at": "asc"}})
    stamps = [r["request_created_at"] for r in rows]
    assert stamps == sorted(stamps)


def test_sort_by_cost(seeded: Seeded) -> None:
    for direction in ("asc", "desc"):
        rows = seeded.query("acme", {"filter": "all", "sort": {"cost": direction}})
        costs = [r["cost"] for r in rows]
        # An unpriced model (a5) shows no cost, and is stored (and sorted) as costing 0 —
        # like the failed request (a4), which is priced and cost nothing.
        assert costs.count(None) == 1
        as_stored = [c or 0 for c in costs]
        assert as_stored == sorted(as_stored, reverse=direction == "desc")
        names = [seeded.name_of(r["request_id"]) for r in rows]
        assert names[0 if direction == "desc" else -1] == "a3"  # gpt-4o: the most expensive
        assert set(names[-2:] if direction == "desc" else names[:2]) == {"a4", "a5"}
    rows = seeded.query("acme", {"filter": _rmt("cost", "gt", 0), "sort": {"cost": "desc"}})
    assert [r["cost"] for r in rows] == sorted((r["cost"] for r in rows), reverse=True)
    # gpt-4o costs several times gpt-4o-mini for a similar exchange.
    assert seeded.name_of(rows[0]["request_id"]) == "a3"


def test_limit_and_offset(seeded: Seeded) -> None:
    asc = {"filter": "all", "sort": {"created_at": "asc"}}
    assert seeded.names("acme", asc | {"limit": 2}) == ACME[:2]
    assert seeded.names("acme", asc | {"limit": 2, "offset": 1}) == ACME[1:3]
    assert seeded.names("acme", asc | {"limit": 2, "offset": 4}) == ACME[4:]
    assert seeded.names("acme", asc | {"limit": 10, "offset": 50}) == []
    assert seeded.names("acme", asc | {"limit": 0}) == []
    # Pages put together are the whole list, each row once.
    pages = [seeded.names("acme", asc | {"limit": 2, "offset": o}) for o in range(0, 6, 2)]
    assert [n for page in pages for n in page] == ACME
    # The default limit is 10 and applies without a body limit.
    assert len(seeded.query("acme", {"filter": "all"})) == len(ACME)


def test_query_endpoint_matches_query_clickhouse(seeded: Seeded) -> None:
    body = {"filter": _prop("environment", "equals", "prod"), "sort": {"created_at": "asc"}}
    point = seeded.query("acme", body, path="/v1/request/query")
    bulk = seeded.query("acme", body)
    assert [seeded.name_of(r["request_id"]) for r in point] == ["a1", "a3", "a4"]
    assert point == bulk


# --- by id -----------------------------------------------------------------------------------


def test_query_ids(seeded: Seeded) -> None:
    ids = seeded.ids
    wanted = [ids["a3"], ids["g1"], "not-a-uuid", ids["a1"], str(uuid.uuid4()), ids["a3"]]
    rows = seeded.query("acme", {"requestIds": wanted}, path="/v1/request/query-ids")
    # Input order kept, duplicates and unknown / foreign ids dropped.
    assert [seeded.name_of(r["request_id"]) for r in rows] == ["a3", "a1"]
    rows = seeded.query("globex", {"requestIds": wanted}, path="/v1/request/query-ids")
    assert [seeded.name_of(r["request_id"]) for r in rows] == ["g1"]
    assert seeded.query("acme", {"requestIds": []}, path="/v1/request/query-ids") == []
    # Upper-case ids name the same requests.
    rows = seeded.query("acme", {"requestIds": [ids["a2"].upper()]},
                        path="/v1/request/query-ids")
    assert [r["request_id"] for r in rows] == [ids["a2"]]


def test_get_request_without_body(seeded: Seeded) -> None:
    response = seeded.get("acme", f"/v1/request/{seeded.ids['a3']}")
    assert response.status_code == 200, response.text
    payload = response.json()
    assert payload["error"] is None
    row = payload["data"]
    assert row["request_id"] == seeded.ids["a3"]
    assert row["model"] == "gpt-4o" and row["request_user_id"] == "alice@example.com"
    assert row["cost"] is not None and row["cost"] > 0
    assert "helicone_message" in row["request_body"]
    assert "helicone_message" in row["response_body"]
    same = seeded.get("acme", f"/v1/request/{seeded.ids['a3']}?includeBody=false").json()
    assert same == payload


def test_get_request_with_body(seeded: Seeded) -> None:
    call = next(c for c in CALLS if c.name == "a1")
    response = seeded.get("acme", f"/v1/request/{seeded.ids['a1']}?includeBody=true")
    assert response.status_code == 200, response.text
    row = response.json()["data"]
    assert row["request_body"]["messages"] == call.messages
    assert row["request_body"]["model"] == "gpt-4o-mini"
    completion = seeded.completions["a1"]
    assert row["response_body"]["id"] == completion.id
    assert row["response_body"]["choices"][0]["message"]["content"] == (
        completion.choices[0].message.content
    )
    assert row["response_body"]["model"] == "gpt-4o-mini"  # the emulator echoes the model
    # A failed request keeps its request body and the upstream's error body.
    failed = seeded.get("acme", f"/v1/request/{seeded.ids['a4']}?includeBody=true").json()
    assert failed["data"]["response_status"] == 429
    assert failed["data"]["request_body"]["messages"][0]["content"].startswith("request a4")


def test_get_request_errors(seeded: Seeded) -> None:
    response = seeded.get("acme", f"/v1/request/{uuid.uuid4()}")
    assert response.status_code == 404
    assert response.json()["data"] is None and "not found" in response.json()["error"]
    response = seeded.get("acme", "/v1/request/not-a-uuid")
    assert response.status_code == 400
    assert "not-a-uuid" in response.json()["error"]
    response = seeded.get("acme", f"/v1/request/{seeded.ids['a1']}?includeBody=maybe")
    assert response.status_code == 400 and "includeBody" in response.json()["error"]


# --- isolation and errors --------------------------------------------------------------------


def test_org_isolation(seeded: Seeded) -> None:
    globex_ids = {seeded.ids[n] for n in GLOBEX}
    acme_ids = {seeded.ids[n] for n in ACME}
    acme_rows = seeded.query("acme", {"filter": "all", "limit": 1000})
    assert {r["request_id"] for r in acme_rows} == acme_ids
    globex_rows = seeded.query("globex", {"filter": "all", "limit": 1000})
    assert {r["request_id"] for r in globex_rows} == globex_ids
    for name in GLOBEX:
        # Filtering on the other org's request id finds nothing…
        by_id = _rmt("request_id", "equals", seeded.ids[name])
        assert seeded.query("acme", {"filter": by_id}) == []
        # …and fetching it is a 404, exactly like an id that does not exist.
        for suffix in ("", "?includeBody=true"):
            response = seeded.get("acme", f"/v1/request/{seeded.ids[name]}{suffix}")
            assert response.status_code == 404, response.text
            assert response.json() == {
                "data": None, "error": f"Request {seeded.ids[name]} not found"
            }
    response = seeded.get("globex", f"/v1/request/{seeded.ids['g1']}")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/request/query-clickhouse"),
        ("POST", "/v1/request/query"),
        ("POST", "/v1/request/query-ids"),
        ("GET", "/v1/request/00000000-0000-4000-8000-000000000000"),
    ],
)
@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer sk-helicone-not-a-real-key"}, {"authorization": "Basic x"}],
    ids=["missing", "invalid", "not-bearer"],
)
def test_unauthenticated_is_401_envelope(
    seeded: Seeded, method: str, path: str, headers: dict[str, str]
) -> None:
    body = {"requestIds": []} if path.endswith("query-ids") else {"filter": "all"}
    response = httpx.request(
        method, seeded.server.url + path, headers=headers,
        json=body if method == "POST" else None,
    )
    assert response.status_code == 401, response.text
    payload = response.json()
    assert payload["data"] is None
    assert isinstance(payload["error"], str) and payload["error"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"filter": _rmt("no_such_field", "equals", "x")}, "no_such_field"),
        ({"filter": {"no_such_table": {"model": {"equals": "x"}}}}, "no_such_table"),
        ({"filter": _rmt("model", "bogus-op", "x")}, "bogus-op"),
        ({"filter": _rmt("status", "equals", "two hundred")}, "request_response_rmt.status"),
        ({"filter": _rmt("request_created_at", "gte", "yesterday")},
         "request_response_rmt.request_created_at"),
        ({"filter": {"left": "all", "operator": "xor", "right": "all"}}, "xor"),
        ({"filter": "all", "sort": {"no_such_key": "asc"}}, "no_such_key"),
        ({"filter": "all", "sort": {"created_at": "sideways"}}, "created_at"),
        ({"filter": "all", "limit": 5000}, "limit"),
        ({"filter": "all", "offset": -1}, "offset"),
        ({"limit": 5}, "filter"),
    ],
)
def test_invalid_query_is_400_naming_the_field(
    seeded: Seeded, body: dict[str, Any], named: str
) -> None:
    for path in ("/v1/request/query-clickhouse", "/v1/request/query"):
        response = seeded.post("acme", path, body)
        assert response.status_code == 400, response.text
        payload = response.json()
        assert payload["data"] is None
        assert named in payload["error"]


def test_malformed_bodies_are_400(seeded: Seeded) -> None:
    url = seeded.server.url + "/v1/request/query-clickhouse"
    headers = _auth(seeded, "acme") | {"content-type": "application/json"}
    for content in (b"", b"{not json", b"[1, 2]"):
        response = httpx.post(url, content=content, headers=headers)
        assert response.status_code == 400, response.text
        assert response.json()["data"] is None
    response = seeded.post("acme", "/v1/request/query-ids", {"requestIds": "a1"})
    assert response.status_code == 400 and "requestIds" in response.json()["error"]


# --- logging off -----------------------------------------------------------------------------


def test_query_api_with_logging_disabled(tmp_path: Path) -> None:
    """No log store: the endpoints answer a clear envelope error, not a traceback."""
    settings = make_settings(tmp_path, logging_enabled=False)
    key = create_key(settings, org="acme")
    headers = {"authorization": f"Bearer {key}"}
    with GatewayServer(settings) as server:
        assert server.runtime.writer is None
        responses = [
            httpx.post(server.url + "/v1/request/query-clickhouse", json={"filter": "all"},
                       headers=headers),
            httpx.post(server.url + "/v1/request/query", json={"filter": "all"},
                       headers=headers),
            httpx.post(server.url + "/v1/request/query-ids",
                       json={"requestIds": [str(uuid.uuid4())]}, headers=headers),
            httpx.get(server.url + f"/v1/request/{uuid.uuid4()}?includeBody=true",
                      headers=headers),
        ]
        for response in responses:
            assert response.status_code == 503, response.text
            payload = response.json()
            assert payload["data"] is None
            assert "logging is disabled" in payload["error"].lower()
            assert "Traceback" not in response.text
        # Authentication still comes first: no key is a 401, not a 503.
        response = httpx.post(server.url + "/v1/request/query", json={"filter": "all"})
        assert response.status_code == 401
