"""The Helicone filter-AST compiler and the /v1/request/* endpoints against a real chdb table.

One chdb session (one per process is allowed) holds ``request_response_rmt`` created from
``logging_pipeline.schema.MIGRATIONS`` and a known dataset: two full orgs (A, B) plus a bulk
org (C) for the default limit. Every filter is run for real and checked against the rows it
must return, by short name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from chdb import session as chdb_session
from fastapi import FastAPI

from gateway.api import RequestApiDeps, include_request_api
from gateway.errors import GatewayError
from logging_pipeline.bodies import BodyStoreError
from logging_pipeline.clickhouse import LogStoreError
from logging_pipeline.clickhouse.values import bind_text
from logging_pipeline.query import (
    BODY_PLACEHOLDER,
    BODY_REPLACED,
    FilterError,
    ParamBinder,
    RequestQuery,
    build_get_query,
    build_ids_query,
    build_request_query,
    compile_filter,
    helicone_request,
)
from logging_pipeline.schema import MIGRATIONS, REQUEST_TABLE

ORG_A = "11111111-1111-4111-8111-111111111111"
ORG_B = "22222222-2222-4222-8222-222222222222"
ORG_C = "33333333-3333-4333-8333-333333333333"
ORG_D = "44444444-4444-4444-8444-444444444444"
KEYS = {"key-a": ORG_A, "key-b": ORG_B, "key-c": ORG_C, "key-d": ORG_D}


def rid(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


NAMES = {rid(1): "A1", rid(2): "A2", rid(3): "A3", rid(4): "A4", rid(5): "A5", rid(6): "A6",
         rid(101): "B1", rid(102): "B2", rid(401): "D1", rid(402): "D2",
         rid(403): "D3"}
ALL_A = ["A1", "A2", "A3", "A4", "A5", "A6"]


def _row(org: str, n: int, created: str, **values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "organization_id": org, "request_id": rid(n), "request_created_at": created,
        "response_created_at": created, "status": 200, "provider": "OPENAI",
        "model": "gpt-4o", "properties": {}, "scores": {}, "assets": [],
        "updated_at": "2024-03-01 00:00:00.000",
    }
    base.update(values)
    return base


DATASET: list[dict[str, Any]] = [
    # An older version of A2: FINAL must hide it (same sort key, older updated_at).
    _row(ORG_A, 2, "2024-01-02 00:00:00.000", user_id="bob-old",
         updated_at="2024-01-01 00:00:00.000"),
    _row(ORG_A, 1, "2024-01-01 10:00:00.000", request_model="gpt-4o", latency=100,
         time_to_first_token=20, user_id="alice@example.com", prompt_tokens=10,
         completion_tokens=20, cost=1_500_000, country_code="US", threat=False,
         cache_enabled=True, request_body="what's the weather in Paris?",
         response_body="Sunny.", target_url="https://api.openai.com/v1",
         request_path="/v1/chat/completions",
         properties={"Environment": "prod", "App": "mobile", "Helicone-Session-Id": "s1",
                     "Helicone-Session-Name": "Trip plan", "Helicone-Session-Path": "/plan"},
         scores={"accuracy": 0.9}),
    _row(ORG_A, 2, "2024-01-02 00:00:00.000", model="gpt-4o-mini", latency=250,
         user_id="bob", prompt_tokens=100, completion_tokens=50, tokens_estimated=True,
         cost=200_000,
         country_code="DE", threat=True,
         properties={"environment": "staging", "Helicone-Session-Id": "s1",
                     "Helicone-Session-Name": "Trip plan",
                     "Helicone-Session-Path": "/plan/step"},
         scores={"accuracy": 0.5, "helicone-score-feedback": 1}),
    _row(ORG_A, 3, "2024-01-03 12:00:00.500", model="claude-3-5-sonnet", provider="ANTHROPIC",
         status=429, latency=50, user_id="alice@example.com", cost=None, cost_known=False,
         properties={"Environment": "prod", "Helicone-Session-Id": "s2",
                     "Helicone-Session-Name": "Research"}),
    _row(ORG_A, 4, "2024-01-04 00:00:00.000", status=500, response_created_at=None,
         cost=0, country_code="US", cache_reference_id=rid(1), assets=["img-1"],
         scores={"helicone-score-feedback": 0}),
    _row(ORG_A, 5, "2024-01-05 08:30:00.000", model="gpt-4", latency=1000,
         user_id="o'brien", prompt_tokens=1000, completion_tokens=500, cost=10_000_000,
         country_code="FR", is_passthrough_billing=True, prompt_id="story",
         prompt_version="v2", properties={"Quote": 'it\'s "quoted"'}),
    _row(ORG_A, 6, "2024-02-01 00:00:00.000", model="gpt-4o-mini", latency=300,
         user_id="carol", prompt_tokens=5, completion_tokens=5, cost=10_000,
         country_code="US",
         properties={"Helicone-Session-Id": "s3", "Helicone-Session-Name": "Trip plan"}),
    _row(ORG_B, 101, "2024-01-01 10:00:00.000", user_id="alice@example.com", latency=100,
         cost=5_000_000_000,
         properties={"Environment": "prod", "Helicone-Session-Id": "s1",
                     "Helicone-Session-Name": "Trip plan"}),
    _row(ORG_B, 102, "2024-01-03 00:00:00.000", status=404),
    *[_row(ORG_C, 200 + i, f"2024-03-{i + 1:02d} 00:00:00.000") for i in range(15)],
    # Backslashes, which ClickHouse's LIKE treats as escapes.
    _row(ORG_D, 401, "2024-04-01 00:00:00.000", user_id="C:\\Users\\",
         properties={"dir": "C:\\temp\\"}),
    _row(ORG_D, 402, "2024-04-02 00:00:00.000", user_id="50%_off",
         properties={"dir": "C:\\temp"}),
    # One request id reused by two requests (Helicone-Request-Id): two rows, one body kept.
    _row(ORG_D, 403, "2024-04-03 10:00:00.000", request_model="gpt-4o", body_token=111),
    _row(ORG_D, 403, "2024-04-03 11:00:00.000", request_model="gpt-4o-mini",
         body_token="18446744073709551615"),
]


class ChdbQuery:
    """``RequestApiDeps.query`` over chdb: ``params=`` bound as the real transports bind them
    (:func:`bind_text`: ClickHouse reads parameters as escaped text), JSONEachRow rows."""

    def __init__(self, session: chdb_session.Session) -> None:
        self.session = session
        self.statements: list[tuple[str, dict[str, Any]]] = []

    async def __call__(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        self.statements.append((sql, dict(params)))
        bound = {name: bind_text(value) for name, value in params.items()}
        result = self.session.query(sql, "JSONEachRow", params=bound)
        return [orjson.loads(line) for line in result.bytes().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def chdb_query(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ChdbQuery]:
    path: Path = tmp_path_factory.mktemp("chdb_query")
    session = chdb_session.Session(str(path))
    try:
        for _version, statements in MIGRATIONS:
            for statement in statements:
                session.query(statement)
        lines = b"\n".join(orjson.dumps(row) for row in DATASET).decode()
        session.query(f"INSERT INTO {REQUEST_TABLE} FORMAT JSONEachRow\n{lines}")
        yield ChdbQuery(session)
    finally:
        session.close()


async def names(
    q: ChdbQuery, filter: Any, org: str = ORG_A, *, sort: Any = None, limit: int = 100,
    offset: int = 0, **flags: Any,
) -> list[str]:
    body: dict[str, Any] = {"filter": filter, "limit": limit, "offset": offset, **flags}
    if sort is not None:
        body["sort"] = sort
    compiled = build_request_query(org, RequestQuery.from_body(body))
    rows = await q(compiled.sql, compiled.params)
    return [NAMES.get(str(r["request_id"]), str(r["request_id"])) for r in rows]


def rmt(field: str, operator: str, value: Any) -> dict[str, Any]:
    return {"request_response_rmt": {field: {operator: value}}}


def branch(left: Any, op: str, right: Any) -> dict[str, Any]:
    return {"left": left, "operator": op, "right": right}


# --- operators ---------------------------------------------------------------------------

OPERATOR_CASES: list[tuple[str, Any, list[str]]] = [
    # text
    ("model equals", rmt("model", "equals", "gpt-4o"), ["A1", "A4"]),
    ("model not-equals", rmt("model", "not-equals", "gpt-4o"), ["A2", "A3", "A5", "A6"]),
    ("model like", rmt("model", "like", "gpt-4o%"), ["A1", "A2", "A4", "A6"]),
    ("model like is case-sensitive", rmt("model", "like", "GPT-4o%"), []),
    ("model ilike", rmt("model", "ilike", "GPT-4O%"), ["A1", "A2", "A4", "A6"]),
    ("model contains (case-insensitive)", rmt("model", "contains", "MINI"), ["A2", "A6"]),
    ("contains is literal, not a pattern", rmt("model", "contains", "gpt%"), []),
    ("model not-contains", rmt("model", "not-contains", "gpt"), ["A3"]),
    ("provider equals", rmt("provider", "equals", "ANTHROPIC"), ["A3"]),
    ("user with a quote", rmt("user_id", "equals", "o'brien"), ["A5"]),
    ("user equals null = unset", rmt("user_id", "equals", "null"), ["A4"]),
    ("country not-equals skips NULL", rmt("country_code", "not-equals", "US"), ["A2", "A5"]),
    ("country equals null", rmt("country_code", "equals", "null"), ["A3"]),
    ("country not-equals null", rmt("country_code", "not-equals", "null"),
     ["A1", "A2", "A4", "A5", "A6"]),
    ("request_id equals", rmt("request_id", "equals", rid(3)), ["A3"]),
    ("request_id equals uppercase", rmt("request_id", "equals", rid(3).upper()), ["A3"]),
    ("request_id not-equals", rmt("request_id", "not-equals", rid(3)),
     ["A1", "A2", "A4", "A5", "A6"]),
    ("request_id contains", rmt("request_id", "contains", "000000000005"), ["A5"]),
    ("request_id garbage", rmt("request_id", "equals", "nope"), []),
    ("cache_reference_id", rmt("cache_reference_id", "equals", rid(1)), ["A4"]),
    ("prompt_id", rmt("prompt_id", "equals", "story"), ["A5"]),
    ("prompt_version", rmt("prompt_version", "ilike", "V%"), ["A5"]),
    ("target_url", rmt("target_url", "contains", "openai.com"), ["A1"]),
    ("request_body contains", rmt("request_body", "contains", "WEATHER"), ["A1"]),
    ("response_body contains", rmt("response_body", "contains", "sunny"), ["A1"]),
    ("node_id is never recorded", rmt("node_id", "equals", "n1"), []),
    ("job_id empty matches all", rmt("job_id", "equals", ""), ALL_A),
    ("scores_column", rmt("scores_column", "equals", "{}"), ["A3", "A5", "A6"]),
    ("assets contains", rmt("assets", "contains", "IMG"), ["A4"]),
    ("assets not-equals", rmt("assets", "not-equals", "img-1"), ["A1", "A2", "A3", "A5", "A6"]),
    # number
    ("status equals", rmt("status", "equals", 200), ["A1", "A2", "A5", "A6"]),
    ("status equals numeric string", rmt("status", "equals", "200"), ["A1", "A2", "A5", "A6"]),
    ("status not-equals", rmt("status", "not-equals", 200), ["A3", "A4"]),
    ("status gte", rmt("status", "gte", 429), ["A3", "A4"]),
    ("status gt", rmt("status", "gt", 429), ["A4"]),
    ("status lte", rmt("status", "lte", 429), ["A1", "A2", "A3", "A5", "A6"]),
    ("status lt", rmt("status", "lt", 429), ["A1", "A2", "A5", "A6"]),
    ("latency gt skips NULL", rmt("latency", "gt", 200), ["A2", "A5", "A6"]),
    ("latency equals null", rmt("latency", "equals", "null"), ["A4"]),
    ("time_to_first_token", rmt("time_to_first_token", "lte", 20), ["A1"]),
    ("cost in USD gte", rmt("cost", "gte", 0.0015), ["A1", "A5"]),
    ("cost in USD equals", rmt("cost", "equals", 0.0015), ["A1"]),
    ("cost in USD lt", rmt("cost", "lt", 0.001), ["A2", "A4", "A6"]),
    ("total_tokens", rmt("total_tokens", "gt", 100), ["A2", "A5"]),
    ("prompt_tokens", rmt("prompt_tokens", "gte", 100), ["A2", "A5"]),
    ("completion_tokens", rmt("completion_tokens", "lt", 20), ["A6"]),
    ("prompt_cache_read_tokens", rmt("prompt_cache_read_tokens", "equals", 0), ALL_A),
    # timestamp (gte/lte inclusive, gt/lt exclusive)
    ("created gte", rmt("request_created_at", "gte", "2024-01-03T00:00:00Z"),
     ["A3", "A4", "A5", "A6"]),
    ("created lte inclusive", rmt("request_created_at", "lte", "2024-01-02T00:00:00Z"),
     ["A1", "A2"]),
    ("created lt exclusive", rmt("request_created_at", "lt", "2024-01-02T00:00:00Z"), ["A1"]),
    ("created gt exclusive", rmt("request_created_at", "gt", "2024-01-04T00:00:00Z"),
     ["A5", "A6"]),
    ("created equals ms", rmt("request_created_at", "equals", "2024-01-03T12:00:00.500Z"),
     ["A3"]),
    ("created equals with offset",
     rmt("request_created_at", "equals", "2024-01-03T14:00:00.5+02:00"), ["A3"]),
    ("response_created_at null", rmt("response_created_at", "equals", "null"), ["A4"]),
    # boolean
    ("cache_enabled", rmt("cache_enabled", "equals", True), ["A1"]),
    ("tokens_estimated", rmt("tokens_estimated", "equals", True), ["A2"]),
    ("threat true", rmt("threat", "equals", True), ["A2"]),
    ("threat false", rmt("threat", "equals", False), ["A1"]),
    ("is_passthrough_billing", rmt("is_passthrough_billing", "equals", True), ["A5"]),
    ("cached true", rmt("cached", "equals", True), ["A4"]),
    ("cached false", rmt("cached", "equals", False), ["A1", "A2", "A3", "A5", "A6"]),
    ("feedback score true", rmt("helicone-score-feedback", "equals", True), ["A2"]),
    ("feedback score false", rmt("helicone-score-feedback", "equals", False), ["A4"]),
    ("legacy feedback.rating", {"feedback": {"rating": {"equals": True}}}, ["A2"]),
    # legacy tables
    ("request.user_id", {"request": {"user_id": {"equals": "alice@example.com"}}},
     ["A1", "A3"]),
    ("request.model is request_model", {"request": {"model": {"equals": "gpt-4o"}}}, ["A1"]),
    ("request.prompt", {"request": {"prompt": {"contains": "paris"}}}, ["A1"]),
    ("request.path", {"request": {"path": {"equals": "/v1/chat/completions"}}}, ["A1"]),
    ("request.id", {"request": {"id": {"equals": rid(2)}}}, ["A2"]),
    ("request.created_at", {"request": {"created_at": {"gte": "2024-01-05"}}}, ["A5", "A6"]),
    ("response.status", {"response": {"status": {"gte": 400}}}, ["A3", "A4"]),
    ("response.body_model", {"response": {"body_model": {"equals": "gpt-4"}}}, ["A5"]),
    ("response.body_tokens", {"response": {"body_tokens": {"equals": 30}}}, ["A1"]),
    ("response.body_completion", {"response": {"body_completion": {"contains": "sun"}}},
     ["A1"]),
]


@pytest.mark.parametrize(("case", "filter", "expected"), OPERATOR_CASES,
                         ids=[c[0] for c in OPERATOR_CASES])
async def test_operator(chdb_query: ChdbQuery, case: str, filter: Any,
                        expected: list[str]) -> None:
    assert sorted(await names(chdb_query, filter)) == expected, case


# --- properties, scores, sessions ---------------------------------------------------------

def props(key: str, operator: str, value: Any) -> dict[str, Any]:
    return rmt("properties", key, {operator: value})


MAP_CASES: list[tuple[str, Any, list[str]]] = [
    ("property equals", props("Environment", "equals", "prod"), ["A1", "A3"]),
    ("property key is case-insensitive", props("ENVIRONMENT", "equals", "staging"), ["A2"]),
    ("property value is case-sensitive", props("Environment", "equals", "PROD"), []),
    ("property contains", props("environment", "contains", "PRO"), ["A1", "A3"]),
    ("property like", props("environment", "like", "st%"), ["A2"]),
    ("property ilike", props("environment", "ilike", "ST%"), ["A2"]),
    ("property not-equals includes missing", props("Environment", "not-equals", "prod"),
     ["A2", "A4", "A5", "A6"]),
    ("property not-contains", props("Environment", "not-contains", "o"),
     ["A2", "A4", "A5", "A6"]),
    ("property missing", props("Environment", "equals", "null"), ["A4", "A5", "A6"]),
    ("property present", props("Environment", "not-equals", "null"), ["A1", "A2", "A3"]),
    ("property value with quotes", props("Quote", "equals", 'it\'s "quoted"'), ["A5"]),
    ("top-level properties (legacy)", {"properties": {"App": {"equals": "mobile"}}}, ["A1"]),
    ("session id via properties",
     {"properties": {"Helicone-Session-Id": {"equals": "s1"}}}, ["A1", "A2"]),
    ("property_key", rmt("property_key", "equals", "app"), ["A1"]),
    ("search_properties over keys", rmt("search_properties", "q", {"contains": "ENVIRON"}),
     ["A1", "A2", "A3"]),
    ("score gte", rmt("scores", "accuracy", {"gte": 0.9}), ["A1"]),
    ("score lt", rmt("scores", "accuracy", {"lt": 0.9}), ["A2"]),
    ("score equals string", rmt("scores", "accuracy", {"equals": "0.5"}), ["A2"]),
    ("score not-equals needs the score", rmt("scores", "accuracy", {"not-equals": 0.5}),
     ["A1"]),
    ("score gt / lte", branch(rmt("scores", "accuracy", {"gt": 0.1}), "and",
                               rmt("scores", "accuracy", {"lte": 0.5})), ["A2"]),
    ("score absent", rmt("scores", "accuracy", {"equals": "null"}), ["A3", "A4", "A5", "A6"]),
    ("session id", {"sessions_request_response_rmt": {"session_session_id": {"equals": "s1"}}},
     ["A1", "A2"]),
    ("session name", {"sessions_request_response_rmt": {
        "session_session_name": {"equals": "Trip plan"}}}, ["A1", "A2", "A6"]),
    ("session path", {"sessions_request_response_rmt": {
        "session_session_path": {"like": "/plan/%"}}}, ["A2"]),
    ("session requests", {"sessions_request_response_rmt": {
        "session_total_requests": {"gte": 2}}}, ["A1", "A2"]),
    ("session cost USD", {"sessions_request_response_rmt": {
        "session_total_cost": {"gt": 0.001}}}, ["A1", "A2"]),
    ("session cost is org-scoped", {"sessions_request_response_rmt": {
        "session_total_cost": {"gt": 1}}}, []),
    ("session tokens", {"sessions_request_response_rmt": {
        "session_total_tokens": {"gte": 100}}}, ["A1", "A2"]),
    ("session prompt tokens", {"sessions_request_response_rmt": {
        "session_prompt_tokens": {"equals": 110}}}, ["A1", "A2"]),
    ("session completion tokens", {"sessions_request_response_rmt": {
        "session_completion_tokens": {"lt": 10}}}, ["A3", "A6"]),
    ("session created", {"sessions_request_response_rmt": {
        "session_created_at": {"gte": "2024-01-03T00:00:00Z"}}}, ["A3", "A6"]),
    ("session latest", {"sessions_request_response_rmt": {
        "session_latest_request_created_at": {"lte": "2024-01-02T00:00:00Z"}}}, ["A1", "A2"]),
]


@pytest.mark.parametrize(("case", "filter", "expected"), MAP_CASES,
                         ids=[c[0] for c in MAP_CASES])
async def test_maps_and_sessions(chdb_query: ChdbQuery, case: str, filter: Any,
                                 expected: list[str]) -> None:
    assert sorted(await names(chdb_query, filter)) == expected, case


# --- tree ---------------------------------------------------------------------------------

async def test_all_empty_and_nesting(chdb_query: ChdbQuery) -> None:
    assert sorted(await names(chdb_query, "all")) == ALL_A
    assert sorted(await names(chdb_query, {})) == ALL_A
    assert sorted(await names(chdb_query, {"request_response_rmt": {}})) == ALL_A
    either = branch(rmt("model", "equals", "gpt-4o"), "or",
                    rmt("model", "equals", "claude-3-5-sonnet"))
    assert sorted(await names(chdb_query, branch(either, "and", rmt("status", "gte", 400)))) \
        == ["A3", "A4"]
    # OR binds only inside its branch: status >= 400 OR (model = gpt-4o AND status = 200)
    inner = branch(rmt("model", "equals", "gpt-4o"), "and", rmt("status", "equals", 200))
    assert sorted(await names(chdb_query, branch(rmt("status", "gte", 400), "or", inner))) \
        == ["A1", "A3", "A4"]
    # The docs' date range + property example (three levels).
    dated = branch(
        branch(rmt("request_created_at", "gte", "2024-01-01T00:00:00Z"), "and",
               rmt("request_created_at", "lte", "2024-01-31T23:59:59Z")),
        "and", props("Environment", "equals", "prod"))
    assert sorted(await names(chdb_query, dated)) == ["A1", "A3"]
    # Several operators/fields/tables in one leaf are ANDed.
    one_leaf = {"request_response_rmt": {
        "request_created_at": {"gte": "2024-01-02T00:00:00Z", "lte": "2024-01-04T00:00:00Z"},
        "status": {"equals": 200}}, "request": {"user_id": {"equals": "bob"}}}
    assert await names(chdb_query, one_leaf) == ["A2"]
    deep: Any = rmt("status", "equals", 429)
    for _ in range(40):
        deep = branch(deep, "and", "all")
    assert await names(chdb_query, deep) == ["A3"]


# --- sort and paging ----------------------------------------------------------------------

SORT_CASES: list[tuple[Any, list[str]]] = [
    (None, ["A6", "A5", "A4", "A3", "A2", "A1"]),
    ({"created_at": "asc"}, ["A1", "A2", "A3", "A4", "A5", "A6"]),
    ({"created_at": "DESC"}, ["A6", "A5", "A4", "A3", "A2", "A1"]),
    ({"latency": "asc"}, ["A3", "A1", "A2", "A6", "A5", "A4"]),
    ({"latency": "desc"}, ["A5", "A6", "A2", "A1", "A3", "A4"]),
    ({"cost": "desc"}, ["A5", "A1", "A2", "A6", "A4", "A3"]),
    ({"cost_usd": "asc"}, ["A4", "A6", "A2", "A1", "A5", "A3"]),
    ({"total_tokens": "desc", "created_at": "asc"}, ["A5", "A2", "A1", "A6", "A3", "A4"]),
    ({"user_id": "asc", "created_at": "desc"}, ["A4", "A3", "A1", "A2", "A6", "A5"]),
    ({"body_model": "asc", "created_at": "asc"}, ["A3", "A5", "A1", "A4", "A2", "A6"]),
    ({"properties": {"environment": "asc"}, "created_at": "asc"},
     ["A4", "A5", "A6", "A1", "A3", "A2"]),
    ({"scores": {"accuracy": "desc"}, "created_at": "asc"},
     ["A1", "A2", "A3", "A4", "A5", "A6"]),
    ({"is_cached": "desc", "created_at": "asc"}, ["A4", "A1", "A2", "A3", "A5", "A6"]),
]


@pytest.mark.parametrize(("sort", "expected"), SORT_CASES, ids=[str(s) for s, _ in SORT_CASES])
async def test_sort(chdb_query: ChdbQuery, sort: Any, expected: list[str]) -> None:
    assert await names(chdb_query, "all", sort=sort) == expected


async def test_random_sort_and_paging(chdb_query: ChdbQuery) -> None:
    assert sorted(await names(chdb_query, "all", sort={"random": True})) == ALL_A
    asc = {"created_at": "asc"}
    assert await names(chdb_query, "all", sort=asc, limit=2, offset=1) == ["A2", "A3"]
    assert await names(chdb_query, "all", sort=asc, limit=2, offset=5) == ["A6"]
    assert await names(chdb_query, "all", sort=asc, limit=0) == []
    # Paging over the bulk org is stable and complete.
    pages = [await names(chdb_query, "all", ORG_C, limit=4, offset=o) for o in (0, 4, 8, 12)]
    flat = [n for page in pages for n in page]
    assert len(flat) == 15 and len(set(flat)) == 15
    compiled = build_request_query(ORG_C, RequestQuery.from_body({"filter": "all"}))
    assert len(await chdb_query(compiled.sql, compiled.params)) == 10  # default limit
    assert await names(chdb_query, "all", ORG_C, limit=1000) != []


@pytest.mark.parametrize(("body", "message"), [
    ({"filter": "all", "limit": 1001}, "invalid limit"),
    ({"filter": "all", "limit": -1}, "invalid limit"),
    ({"filter": "all", "limit": 2.5}, "invalid limit"),
    ({"filter": "all", "limit": "10"}, "invalid limit"),
    ({"filter": "all", "limit": True}, "invalid limit"),
    ({"filter": "all", "offset": -1}, "invalid offset"),
    ({"filter": "all", "offset": float("nan")}, "invalid offset"),
    ({"filter": "all", "isCached": "yes"}, "isCached"),
    ({"filter": "all", "sort": "created_at"}, "sort must be an object"),
    ({"limit": 10}, "missing required field 'filter'"),
    ([], "JSON object"),
])
def test_paging_and_body_bounds(body: Any, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        RequestQuery.from_body(body)


async def test_flags(chdb_query: ChdbQuery) -> None:
    assert await names(chdb_query, "all", isCached=True) == ["A4"]
    assert sorted(await names(chdb_query, "all", isScored=True)) == ["A1", "A2", "A4"]
    assert sorted(await names(chdb_query, "all", isScored=False)) == ["A3", "A5", "A6"]
    assert len(await names(chdb_query, "all", isCached=False, includeInputs=True,
                           isPartOfExperiment=False, somethingNew=1)) == 6


# --- isolation, FINAL, injection, errors --------------------------------------------------

async def test_org_isolation(chdb_query: ChdbQuery) -> None:
    assert sorted(await names(chdb_query, "all", ORG_B)) == ["B1", "B2"]
    assert await names(chdb_query, rmt("organization_id", "equals", ORG_B)) == []
    widen = branch("all", "or", rmt("organization_id", "equals", ORG_B))
    assert sorted(await names(chdb_query, widen)) == ALL_A
    assert sorted(await names(chdb_query, rmt("user_id", "equals", "alice@example.com"),
                              ORG_B)) == ["B1"]
    assert sorted(await names(chdb_query, props("Environment", "equals", "prod"), ORG_B)) \
        == ["B1"]
    compiled = build_ids_query(ORG_B, [rid(1), rid(101)])
    assert [r["request_id"] for r in await chdb_query(compiled.sql, compiled.params)] \
        == [rid(101)]
    compiled = build_get_query(ORG_B, rid(1))
    assert await chdb_query(compiled.sql, compiled.params) == []


async def test_final_hides_old_versions(chdb_query: ChdbQuery) -> None:
    assert await names(chdb_query, rmt("user_id", "equals", "bob-old")) == []
    assert await names(chdb_query, rmt("user_id", "equals", "bob")) == ["A2"]


INJECTION_VALUES = ["x' OR 1=1 --", "') OR ('1'='1", "\\' OR 1=1; DROP TABLE x --",
                    "{p0:String}", "}' OR 1 --"]


@pytest.mark.parametrize("value", INJECTION_VALUES)
async def test_injection_in_values_and_keys_is_inert(chdb_query: ChdbQuery, value: str) -> None:
    for filter in (rmt("user_id", "equals", value), rmt("model", "like", value),
                   rmt("request_id", "equals", value), props(value, "equals", value),
                   props(value, "not-equals", "null"), rmt("scores", value, {"gt": 0}),
                   rmt("property_key", "equals", value),
                   rmt("search_properties", value, {"equals": value})):
        assert await names(chdb_query, filter) == []
        compiled = build_request_query(ORG_A, RequestQuery.from_body({"filter": filter}))
        assert value in compiled.params.values()
        if not value.startswith("{p"):  # a placeholder-shaped value matches our own text
            assert value not in compiled.sql
    # The same hostile text as a sort key of a map is bound too.
    assert len(await names(chdb_query, "all", sort={"properties": {value: "asc"}})) == 6
    assert sorted(await names(chdb_query, "all")) == ALL_A  # the table is intact


@pytest.mark.parametrize(("filter", "expected"), [
    # A trailing backslash has nothing to escape: it matches a backslash (it was a 500).
    (rmt("user_id", "like", "C:\\Users\\"), ["D1"]),
    (rmt("user_id", "ilike", "c:\\users\\"), ["D1"]),
    (rmt("user_id", "like", "%\\"), ["D1"]),
    (props("dir", "like", "%\\"), ["D1"]),
    (props("dir", "ilike", "c:\\TEMP"), ["D2"]),
    (rmt("search_properties", "dir", {"like": "d%\\"}), []),
    # An escaped backslash at the end stays one literal backslash.
    (rmt("user_id", "like", "C:\\Users\\\\"), ["D1"]),
    # Backslash escapes of the wildcards keep their ClickHouse meaning.
    (rmt("user_id", "like", "50\\%\\_off"), ["D2"]),
    (rmt("user_id", "like", "50\\%\\_of"), []),
    # contains/equals are literal already.
    (rmt("user_id", "contains", "users\\"), ["D1"]),
    (rmt("user_id", "equals", "C:\\Users\\"), ["D1"]),
    (props("dir", "contains", "\\"), ["D1", "D2"]),
])
async def test_backslashes_in_text_values(chdb_query: ChdbQuery, filter: Any,
                                          expected: list[str]) -> None:
    assert sorted(await names(chdb_query, filter, ORG_D)) == expected


@pytest.mark.parametrize(("filter", "fragment"), [
    ({"request_response_rmt": {"model = model OR 1=1 --": {"equals": "x"}}},
     "model = model OR 1=1 --"),
    ({"request_response_rmt": {"model": {"equals' OR 1=1 --": "x"}}}, "equals' OR 1=1 --"),
    ({"requests; DROP TABLE x": {"model": {"equals": "x"}}}, "requests; DROP TABLE x"),
    ({"request_response_rmt": {"nope": {"equals": "x"}}}, "nope"),
    ({"request_response_rmt": {"model": {"gte": "x"}}}, "'gte' for request_response_rmt.model"),
    ({"request_response_rmt": {"status": {"contains": "2"}}}, "'contains'"),
    ({"request_response_rmt": {"request_created_at": {"not-equals": "2024-01-01"}}},
     "'not-equals'"),
    ({"request_response_rmt": {"cache_enabled": {"gt": True}}}, "'gt'"),
    (rmt("status", "equals", "two hundred"), "request_response_rmt.status.equals"),
    (rmt("status", "equals", float("inf")), "expects a number"),
    (rmt("model", "equals", 5), "request_response_rmt.model.equals expects a string"),
    (rmt("request_created_at", "gte", "yesterday"), "ISO-8601"),
    (rmt("request_created_at", "gte", 1700000000), "ISO-8601"),
    (rmt("threat", "equals", "maybe"), "expects a boolean"),
    (rmt("scores", "accuracy", {"contains": "1"}), "scores are numeric"),
    (rmt("scores", "accuracy", {"gt": "high"}), "accuracy"),
    (rmt("property_key", "contains", "x"), "'contains'"),
    (props("", "equals", "x"), "invalid key"),
    (props("Environment", "gt", "x"), "'gt'"),
    ({"request_response_rmt": {"model": "gpt-4o"}}, "request_response_rmt.model must be an"),
    ({"request_response_rmt": ["model"]}, "request_response_rmt must be an object"),
    ({"values": {"": {"equals": "y"}}}, "invalid key"),
    ({"values": {"x": {"gt": "y"}}}, "'gt'"),
    ({"cache_hits": {"latency": {"gt": 1}}}, "cache_hits"),
    ({"request": {"auth_hash": {"equals": "x"}}}, "request.auth_hash"),
    ({"feedback": {"id": {"equals": 1}}}, "feedback.id"),
    ({"sessions_request_response_rmt": {"session_tag": {"equals": "x"}}}, "session_tag"),
    ({"left": "all", "operator": "xor", "right": "all"}, "'xor'"),
    ({"left": "all", "operator": "and"}, "missing right"),
    ({"left": "all", "operator": "and", "right": "all", "extra": 1}, "'extra'"),
    ("everything", "must be \"all\""),
    ([rmt("model", "equals", "x")], "must be \"all\""),
])
def test_filter_errors_name_the_offending_part(filter: Any, fragment: str) -> None:
    with pytest.raises(FilterError) as info:
        compile_filter(filter, ParamBinder())
    assert fragment in info.value.message


@pytest.mark.parametrize(("sort", "fragment"), [
    ({"created_at; DROP TABLE x": "asc"}, "created_at; DROP TABLE x"),
    ({"created_at": "sideways"}, "sort.created_at must be \"asc\" or \"desc\""),
    ({"created_at": "asc; DROP TABLE x"}, "asc; DROP TABLE x"),
    ({"values": "asc"}, "sort.values"),
    ({"random": False}, "sort.random"),
    ({"properties": "asc"}, "sort.properties"),
])
def test_sort_errors(sort: Any, fragment: str) -> None:
    with pytest.raises(FilterError) as info:
        build_request_query(ORG_A, RequestQuery(filter="all", sort=sort))
    assert fragment in info.value.message


def test_limits_on_filter_size() -> None:
    deep: Any = "all"
    for _ in range(100):
        deep = branch(deep, "and", "all")
    with pytest.raises(FilterError, match="nested deeper"):
        compile_filter(deep, ParamBinder())
    wide = {"request_response_rmt": {"properties": {f"k{i}": {"equals": "v"}
                                                    for i in range(600)}}}
    with pytest.raises(FilterError, match="more than 500 conditions"):
        compile_filter(wide, ParamBinder())


def test_org_scope_is_always_bound() -> None:
    compiled = build_request_query(ORG_A, RequestQuery(filter=rmt("model", "equals", "x")))
    assert "organization_id = {org:UUID} AND" in compiled.sql
    assert compiled.params["org"] == ORG_A
    assert " FINAL " in compiled.sql
    assert "'x'" not in compiled.sql and compiled.params["p0"] == "x"
    with pytest.raises(ValueError, match="not a UUID"):
        build_request_query("default", RequestQuery())
    with pytest.raises(FilterError, match="Invalid requestId"):
        build_get_query(ORG_A, "1 OR 1=1")


# --- rows -> HeliconeRequest ---------------------------------------------------------------

def test_helicone_request_accepts_datetimes_and_strings() -> None:
    row = {"request_id": rid(9), "request_created_at": datetime(2024, 1, 2, 3, 4, 5, 678000,
                                                               tzinfo=UTC),
           "response_created_at": "2024-01-02 03:04:06.000", "updated_at": "2024-01-02T03:04:07Z",
           "status": "200", "cost": "2500000000", "latency": "1000", "properties": {},
           "scores": {"s": 1.0}, "cache_reference_id": "00000000-0000-0000-0000-000000000000"}
    out = helicone_request(row)
    assert out["request_created_at"] == "2024-01-02T03:04:05.678Z"
    assert out["response_created_at"] == "2024-01-02T03:04:06.000Z"
    assert out["updated_at"] == "2024-01-02T03:04:07.000Z"
    assert out["response_status"] == 200 and out["delay_ms"] == 1000
    assert out["cost"] == 2.5 and out["scores"] == {"s": 1}
    assert out["cache_reference_id"] is None and out["total_tokens"] is None
    assert out["request_body"] == dict(BODY_PLACEHOLDER)
    assert out["attempts"] == [] and out["cache_saved_cost"] == 0


def test_helicone_request_shows_attempts_and_cache_savings() -> None:
    """The failover attempts come back as objects; the savings of a cache hit in USD and ms."""
    attempts = '[{"source": "openai", "status": 503, "latency_ms": 12}, ' \
        '{"source": "anthropic", "status": 200, "latency_ms": 80}]'
    out = helicone_request({"request_id": rid(9), "attempts": attempts,
                            "cache_saved_cost": "1500000000", "cache_saved_latency": "640"})
    assert out["attempts"] == [{"source": "openai", "status": 503, "latency_ms": 12},
                               {"source": "anthropic", "status": 200, "latency_ms": 80}]
    assert out["cache_saved_cost"] == 1.5 and out["cache_saved_latency"] == 640
    assert helicone_request({"request_id": rid(9), "attempts": "not json"})["attempts"] == []


# --- endpoints ----------------------------------------------------------------------------

HELICONE_REQUEST_FIELDS = {
    "request_id", "request_created_at", "request_body", "request_path", "request_user_id",
    "request_properties", "properties", "request_model", "response_model", "model_override",
    "model", "provider", "target_url", "helicone_user", "response_id", "response_created_at",
    "response_status", "response_body", "delay_ms", "time_to_first_token", "total_tokens",
    "prompt_tokens", "completion_tokens", "prompt_cache_write_tokens",
    "prompt_cache_read_tokens", "reasoning_tokens", "prompt_audio_tokens",
    "completion_audio_tokens", "cost", "costUSD", "prompt_id", "prompt_version",
    "feedback_created_at", "feedback_id", "feedback_rating", "signed_body_url", "llmSchema",
    "country_code", "asset_ids", "asset_urls", "assets", "scores", "cache_reference_id",
    "cache_enabled", "updated_at", "request_referrer", "ai_gateway_body_mapping",
    "storage_location", "tokens_estimated", "attempts", "cache_saved_cost", "cache_saved_latency",
}


async def fake_authenticate(headers: dict[str, str]) -> str:
    raw = headers.get("authorization") or headers.get("helicone-auth") or ""
    key = raw.removeprefix("Bearer ").strip()
    if not key:
        raise GatewayError(401, "Missing API key")
    if key not in KEYS:
        raise GatewayError(401, "Invalid API key")
    return KEYS[key]


async def fake_bodies(org_id: str, request_id: str) -> dict[str, Any] | None:
    if (org_id, request_id) == (ORG_A, rid(1)):
        return {"request": {"model": "gpt-4o", "messages": []}, "response": {"id": "chatcmpl"}}
    return None


@pytest.fixture
def client(chdb_query: ChdbQuery) -> httpx.AsyncClient:
    app = FastAPI()
    include_request_api(app, RequestApiDeps(fake_authenticate, chdb_query, fake_bodies))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test",
                             headers={"authorization": "Bearer key-a"})


async def test_query_clickhouse_endpoint(client: httpx.AsyncClient) -> None:
    async with client:
        r = await client.post("/v1/request/query-clickhouse",
                              json={"filter": "all", "limit": 1000, "offset": 0})
        assert r.status_code == 200
        body = r.json()
        assert body["error"] is None and set(body) == {"data", "error"}
        data = body["data"]
        assert [NAMES[d["request_id"]] for d in data] == ["A6", "A5", "A4", "A3", "A2", "A1"]
        assert all(set(d) == HELICONE_REQUEST_FIELDS for d in data)
        a1 = data[-1]
        assert a1["cost"] == 0.0015 and a1["delay_ms"] == 100 and a1["response_status"] == 200
        assert a1["request_body"] == dict(BODY_PLACEHOLDER) == a1["response_body"]
        assert a1["request_properties"]["Helicone-Session-Id"] == "s1"
        assert a1["request_created_at"] == "2024-01-01T10:00:00.000Z"
        assert a1["total_tokens"] == 30 and a1["request_user_id"] == "alice@example.com"
        a2 = data[-2]
        assert a2["feedback_rating"] is True and a2["scores"]["accuracy"] == 0.5
        # Ours, not Helicone's: whether the tokens (and so the cost) are a tiktoken estimate.
        assert a2["tokens_estimated"] is True and a1["tokens_estimated"] is False
        assert data[3]["cost"] is None  # A3: price unknown
        assert data[2]["cache_reference_id"] == rid(1) and data[2]["asset_ids"] == ["img-1"]
        r = await client.post("/v1/request/query-clickhouse", json={
            "filter": {"request_response_rmt": {"properties": {
                "Environment": {"equals": "prod"}}}}, "limit": 100})
        assert sorted(NAMES[d["request_id"]] for d in r.json()["data"]) == ["A1", "A3"]
        example = {"filter": {}, "isCached": False, "limit": 10, "offset": 0,
                   "sort": {"created_at": "desc"}, "isPartOfExperiment": False}
        r = await client.post("/v1/request/query-clickhouse", json=example)
        assert r.status_code == 200 and len(r.json()["data"]) == 6


async def test_query_endpoint_legacy_filters(client: httpx.AsyncClient) -> None:
    async with client:
        r = await client.post("/v1/request/query", json={"filter": {
            "operator": "and",
            "right": {"request": {"model": {"contains": "gpt-4o"}}},
            "left": {"request": {"user_id": {"equals": "alice@example.com"}}}}})
        assert r.status_code == 200
        assert [NAMES[d["request_id"]] for d in r.json()["data"]] == ["A1"]
        r = await client.post("/v1/request/query", json={
            "filter": {"properties": {"Helicone-Session-Id": {"equals": "s1"}}},
            "sort": {"created_at": "asc"}})
        data = r.json()["data"]
        assert [NAMES[d["request_id"]] for d in data] == ["A1", "A2"]
        assert [d["request_properties"]["Helicone-Session-Path"] for d in data] == \
            ["/plan", "/plan/step"]
        assert all("signed_body_url" in d for d in data)


async def test_query_ids_endpoint(client: httpx.AsyncClient) -> None:
    async with client:
        ids = [rid(3), rid(99), rid(1).upper(), "not-a-uuid", rid(101), rid(3)]
        r = await client.post("/v1/request/query-ids", json={"requestIds": ids})
        assert r.status_code == 200
        assert [NAMES[d["request_id"]] for d in r.json()["data"]] == ["A3", "A1"]
        r = await client.post("/v1/request/query-ids", json={"requestIds": []})
        assert r.json() == {"data": [], "error": None}
        r = await client.post("/v1/request/query-ids", json={"requestIds": [rid(1)] * 1001})
        assert r.status_code == 400 and "at most 1000" in r.json()["error"]
        r = await client.post("/v1/request/query-ids", json={"ids": [rid(1)]})
        assert r.status_code == 400 and "requestIds" in r.json()["error"]
        r = await client.post("/v1/request/query-ids", json={"requestIds": [1, 2]})
        assert r.status_code == 400 and "array of strings" in r.json()["error"]


async def test_get_request_endpoint(client: httpx.AsyncClient) -> None:
    async with client:
        r = await client.get(f"/v1/request/{rid(1)}")
        assert r.status_code == 200
        data = r.json()["data"]
        assert data["request_id"] == rid(1) and set(data) == HELICONE_REQUEST_FIELDS
        assert data["request_body"] == dict(BODY_PLACEHOLDER)
        r = await client.get(f"/v1/request/{rid(1)}", params={"includeBody": "true"})
        data = r.json()["data"]
        assert data["request_body"] == {"model": "gpt-4o", "messages": []}
        assert data["response_body"] == {"id": "chatcmpl"}
        r = await client.get(f"/v1/request/{rid(2)}", params={"includeBody": "true"})
        assert r.json()["data"]["request_body"] is None  # nothing stored
        r = await client.get(f"/v1/request/{rid(1)}", params={"includeBody": "maybe"})
        assert r.status_code == 400 and "includeBody" in r.json()["error"]
        r = await client.get(f"/v1/request/{rid(99)}")
        assert r.status_code == 404
        assert r.json() == {"data": None, "error": f"Request {rid(99)} not found"}
        r = await client.get(f"/v1/request/{rid(101)}")  # org B's request
        assert r.status_code == 404
        r = await client.get("/v1/request/not-a-uuid")
        assert r.status_code == 400 and "Invalid requestId" in r.json()["error"]
        r = await client.get(f"/v1/request/{rid(101)}", headers={"authorization": "key-b"})
        assert r.status_code == 200 and r.json()["data"]["response_status"] == 200


async def test_auth_errors(client: httpx.AsyncClient) -> None:
    async with client:
        for headers in ({"authorization": ""}, {"authorization": "Bearer wrong"}):
            r = await client.post("/v1/request/query", json={"filter": "all"}, headers=headers)
            assert r.status_code == 401
            assert r.json()["data"] is None and "API key" in r.json()["error"]
            r = await client.get(f"/v1/request/{rid(1)}", headers=headers)
            assert r.status_code == 401
        r = await client.post("/v1/request/query", json={"filter": "all"},
                              headers={"authorization": "", "helicone-auth": "Bearer key-b"})
        assert sorted(NAMES[d["request_id"]] for d in r.json()["data"]) == ["B1", "B2"]


async def test_bad_requests_are_400_envelopes(client: httpx.AsyncClient) -> None:
    async with client:
        cases: list[tuple[bytes, str]] = [
            (b"{not json", "not valid JSON"),
            (b"", "empty"),
            (b"[1, 2]", "JSON object"),
            (orjson.dumps({"filter": rmt("bogus", "equals", 1)}), "request_response_rmt.bogus"),
            (orjson.dumps({"filter": rmt("model", "between", 1)}), "'between'"),
            (orjson.dumps({"filter": "all", "limit": 5000}), "invalid limit"),
            (orjson.dumps({"filter": "all", "sort": {"nope": "asc"}}), "'nope'"),
            # Offsets that push a date out of Python's range (an OverflowError, a 500).
            (orjson.dumps({"filter": rmt("request_created_at", "gte",
                                         "0001-01-01T00:00:00+14:00")}), "out of range"),
            (orjson.dumps({"filter": rmt("request_created_at", "lt",
                                         "9999-12-31T23:59:59-14:00")}), "out of range"),
            # As deep as the parser reads: refused like on the data plane, naming the limit.
            (b'{"filter": "all", "x": ' + b"[" * 1000 + b"]" * 1000 + b"}",
             "nested deeper than 128 levels"),
            (b'{"filter": ' + b'{"left": ' * 200 + b'"all"' + b"}" * 200 + b"}",
             "nested deeper than 128 levels"),
        ]
        for path in ("/v1/request/query", "/v1/request/query-clickhouse"):
            for raw, fragment in cases:
                r = await client.post(path, content=raw,
                                      headers={"content-type": "application/json"})
                assert r.status_code == 400, (path, raw)
                assert r.json()["data"] is None and fragment in r.json()["error"]


async def test_internal_errors_are_500_envelopes(caplog: pytest.LogCaptureFixture) -> None:
    async def broken_query(sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        raise RuntimeError("Code: 999. DB::Exception: secret internals")

    app = FastAPI()
    include_request_api(app, RequestApiDeps(fake_authenticate, broken_query, fake_bodies))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 headers={"authorization": "key-a"}) as client:
        r = await client.post("/v1/request/query", json={"filter": "all"})
    assert r.status_code == 500
    assert r.json() == {"data": None, "error": "Internal error while querying requests"}
    assert "secret internals" in caplog.text


async def test_like_ending_in_backslash_over_the_api(client: httpx.AsyncClient) -> None:
    async with client:
        for operator in ("like", "ilike"):
            r = await client.post("/v1/request/query",
                                  json={"filter": rmt("user_id", operator, "alice\\")})
            assert r.status_code == 200, r.text
            assert r.json() == {"data": [], "error": None}


def _balanced(leaves: int, leaf: Any = "all") -> Any:
    """A balanced and/or tree over ``leaves`` copies of ``leaf`` (a power of two)."""
    level: list[Any] = [leaf] * leaves
    while len(level) > 1:
        level = [branch(level[i], "and" if i % 4 else "or", level[i + 1])
                 for i in range(0, len(level), 2)]
    return level[0]


async def test_wide_filter_trees_are_400_naming_the_limit(chdb_query: ChdbQuery) -> None:
    """Depth 17 passes the depth bound; 131,071 nodes compiled to SQL ClickHouse refused.

    (The 3 MB body is over the query API's default body limit: raised here to test the tree.)
    """
    async with _app(query=chdb_query, max_body_bytes=2**25) as client:
        r = await client.post("/v1/request/query", json={"filter": _balanced(65_536)})
        assert r.status_code == 400, r.text[:300]
        assert r.json()["data"] is None
        assert "more than 1000 nodes" in r.json()["error"]
        # Every tree of at most 500 single-condition leaves fits.
        leaf = rmt("status", "gte", 0)
        r = await client.post("/v1/request/query", json={"filter": _balanced(256, leaf)})
        assert r.status_code == 200, r.text[:300]
        assert len(r.json()["data"]) == 6


async def test_sort_is_bounded(chdb_query: ChdbQuery) -> None:
    async with _app(query=chdb_query, max_body_bytes=2**25) as client:
        many = {"properties": {f"k{i}": "asc" for i in range(20_000)}}
        r = await client.post("/v1/request/query", json={"filter": "all", "sort": many})
        assert r.status_code == 400, r.text[:300]
        assert "more than 20 sort terms" in r.json()["error"]
        long_key = {"scores": {"k" * 2000: "asc"}}
        r = await client.post("/v1/request/query", json={"filter": "all", "sort": long_key})
        assert r.status_code == 400, r.text[:300]
        assert "1-1024 characters" in r.json()["error"]


@pytest.mark.parametrize(("leaf", "expected"), [
    ({"sessions_request_response_rmt": {"session_total_cost": {"gte": 0}}},
     ["A1", "A2", "A3", "A6"]),
    ({"properties": {"Environment": {"ilike": "%prod%"}}}, ["A1", "A3"]),
    ({"request_response_rmt": {"search_properties": {"k": {"contains": "env"}}}},
     ["A1", "A2", "A3"]),
], ids=["session-aggregate", "property", "search-properties"])
async def test_largest_accepted_filters_run(chdb_query: ChdbQuery, leaf: Any,
                                            expected: list[str]) -> None:
    """The bounds are tight enough: the biggest filters they admit are statements that run."""
    tree = _balanced(256, leaf)
    for leaves in (128, 64, 32, 16, 4):  # 500 conditions, 999 nodes
        tree = branch(tree, "or", _balanced(leaves, leaf))
    assert sorted(await names(chdb_query, tree)) == expected  # and/or of one leaf: the leaf


# --- body size, and a log store that is down ----------------------------------------------------


def _app(**deps: Any) -> httpx.AsyncClient:
    values: dict[str, Any] = {"authenticate": fake_authenticate, "query": ChdbQueryStub(),
                              "get_bodies": fake_bodies}
    values.update(deps)
    app = FastAPI()
    include_request_api(app, RequestApiDeps(**values))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                             headers={"authorization": "key-a"})


class ChdbQueryStub:
    """A store that answers no rows (for tests about what happens before the query)."""

    async def __call__(self, sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        return []


async def test_body_over_the_limit_is_413_envelope() -> None:
    async with _app(max_body_bytes=1000) as client:
        big = {"filter": "all", "pad": "x" * 2000}
        for path in ("/v1/request/query", "/v1/request/query-clickhouse",
                     "/v1/request/query-ids"):
            r = await client.post(path, json=big)  # Content-Length: refused before reading
            assert r.status_code == 413, r.text
            assert r.json() == {"data": None, "error": "Request body is larger than the query "
                                "API's limit of 1000 bytes."}

        async def chunks() -> Any:  # no Content-Length: refused while reading
            for _ in range(20):
                yield b" " * 100
        r = await client.post("/v1/request/query", content=chunks())
        assert r.status_code == 413 and "1000 bytes" in r.json()["error"]
        r = await client.post("/v1/request/query", json={"filter": "all"})
        assert r.status_code == 200
        r = await client.post("/v1/request/query", content=b"{}",
                              headers={"content-length": "nope"})
        assert r.status_code == 400


@pytest.mark.parametrize("failure", [
    LogStoreError("the log writer process exited"),
    LogStoreError("the log writer process is unreachable: [Errno 32] Broken pipe"),
    LogStoreError("clickhouse: HTTPConnectionPool(host='ch', port=8123): Connection refused"),
    ConnectionRefusedError(111, "Connection refused"),
    TimeoutError(),
], ids=["child-exited", "child-unreachable", "server-refused", "oserror", "timeout"])
async def test_store_down_is_503_envelope(failure: Exception,
                                          caplog: pytest.LogCaptureFixture) -> None:
    async def down(sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        raise failure

    async with _app(query=down) as client:
        for r in (await client.post("/v1/request/query", json={"filter": "all"}),
                  await client.post("/v1/request/query-ids", json={"requestIds": [rid(1)]}),
                  await client.get(f"/v1/request/{rid(1)}")):
            assert r.status_code == 503, r.text
            assert r.json() == {"data": None, "error": "The request log store is unavailable; "
                                "try again shortly."}
            assert r.headers["retry-after"] == "5"
    assert "log store unavailable" in caplog.text


async def test_body_store_down_is_503_envelope(chdb_query: ChdbQuery) -> None:
    async def down(org_id: str, request_id: str) -> dict[str, Any] | None:
        raise BodyStoreError("cannot read bodies from /data/bodies.sqlite3: disk I/O error")

    async with _app(query=chdb_query, get_bodies=down) as client:
        r = await client.get(f"/v1/request/{rid(1)}", params={"includeBody": "true"})
        assert r.status_code == 503, r.text
        assert r.json()["data"] is None and "unavailable" in r.json()["error"]
        r = await client.get(f"/v1/request/{rid(1)}")  # no body asked: no body store needed
        assert r.status_code == 200


async def test_hung_store_is_503_after_the_timeout() -> None:
    async def hung(sql: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        await asyncio.sleep(60)
        return []

    async with _app(query=hung, query_timeout=0.2) as client:
        r = await client.post("/v1/request/query", json={"filter": "all"})
    assert r.status_code == 503, r.text
    assert "unavailable" in r.json()["error"]



@pytest.mark.parametrize(("stored_token", "shown"), [
    (18446744073709551615, "body"),  # the newest request's body: shown with its row
    (111, "replaced"),  # the older request's body was written last: not shown
    (None, "replaced"),  # a body without a token cannot be the row's
])
async def test_reused_request_id_never_mixes_row_and_body(
    chdb_query: ChdbQuery, stored_token: int | None, shown: str
) -> None:
    model = "gpt-4o-mini" if stored_token == 18446744073709551615 else "gpt-4o"
    document: dict[str, Any] = {"request": {"model": model}, "response": {"model": model}}
    if stored_token is not None:
        document["token"] = stored_token

    async def bodies(org_id: str, request_id: str) -> dict[str, Any] | None:
        return document if (org_id, request_id) == (ORG_D, rid(403)) else None

    app = FastAPI()
    include_request_api(app, RequestApiDeps(fake_authenticate, chdb_query, bodies))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t",
                                 headers={"authorization": "key-d"}) as client:
        r = await client.get(f"/v1/request/{rid(403)}", params={"includeBody": "true"})
        assert r.status_code == 200, r.text
        data = r.json()["data"]
        assert data["request_model"] == "gpt-4o-mini"  # the newest request's row
        if shown == "body":
            assert data["request_body"] == {"model": "gpt-4o-mini"}
            assert data["response_body"] == {"model": "gpt-4o-mini"}
        else:
            assert data["request_body"] == dict(BODY_REPLACED) == data["response_body"]
        r = await client.post("/v1/request/query-ids", json={"requestIds": [rid(403)]})
        assert [d["request_model"] for d in r.json()["data"]] == ["gpt-4o-mini"]
