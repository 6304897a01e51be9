"""The aggregate read API (sessions, users, properties, evals, dashboard) over real HTTP, on
both engines: the embedded chdb transport, and clickhouse-connect talking to a ClickHouse
HTTP endpoint (tests/clickhouse_http.py). Every test runs once per engine.

Rows are the writer's own (:func:`build_record` on real captures, inserted with the
transport's ``insert``), and scores are applied as annotations apply them (the row
re-inserted with a newer ``updated_at``), so ``FINAL`` is exercised too; the dashboard's hourly
rollups are then computed, so the series comes from them where they apply.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from gateway.api import RequestApiDeps, include_request_api
from gateway.api.dashboard import include_aggregate_api
from gateway.errors import GatewayError
from logging_pipeline.clickhouse.chdb_transport import ChdbTransport
from logging_pipeline.clickhouse.connect_transport import ClickHouseConnectTransport
from logging_pipeline.clickhouse.migrate import migrate
from logging_pipeline.clickhouse.transport import LogTransport
from logging_pipeline.estimate import TokenEstimator
from logging_pipeline.record import build_record
from logging_pipeline.rollup import refresh
from logging_pipeline.schema import INSERT_COLUMNS, REQUEST_TABLE
from providers.registry import Registry
from tests.analytics_data import (
    ACME_REQS,
    DATA,
    KEYS,
    RESEARCH,
    TRIP,
    capture_of,
    scored_row,
)
from tests.clickhouse_http import ChdbHttpServer

T = TypeVar("T")


async def authenticate(headers: dict[str, str]) -> str:
    key = headers.get("authorization", "").removeprefix("Bearer ").strip()
    if key not in KEYS:
        raise GatewayError(401, "Unauthorized")
    return KEYS[key]


async def no_bodies(org_id: str, request_id: str) -> dict[str, Any] | None:
    return None


class ApiServer:
    """The request and aggregate routers over ``transport``, served by uvicorn on a socket."""

    def __init__(self, make_transport: Any, *, migrated: bool = True) -> None:
        self._make_transport = make_transport
        self._migrated = migrated
        self.transport: LogTransport | None = None
        self.app = FastAPI()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning"))
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _query(self, sql: str, params: Any) -> list[dict[str, Any]]:
        assert self.transport is not None
        return await self.transport.query(sql, params)

    def _run(self) -> None:
        self._loop.run_until_complete(self._server.serve(sockets=[self._sock]))

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(120)

    def start(self) -> ApiServer:
        deps = RequestApiDeps(authenticate=authenticate, query=self._query, get_bodies=no_bodies)
        include_request_api(self.app, deps)
        include_aggregate_api(self.app, deps)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        assert self._server.started
        self.transport = self.call(self._open())
        return self

    async def _open(self) -> LogTransport:
        transport: LogTransport = self._make_transport()
        if self._migrated:
            await migrate(transport)
        return transport

    def stop(self) -> None:
        if self.transport is not None:
            self.call(self.transport.close())
        self._server.should_exit = True
        self._thread.join(30)
        self._loop.close()
        self._sock.close()


async def insert_dataset(transport: LogTransport, tmp: Path) -> None:
    """The writer's rows for :data:`DATA`, then the scored versions of the scored ones."""
    prices = await asyncio.to_thread(Registry.load)
    estimator = TokenEstimator(tmp / "tiktoken")
    records = {req.name: build_record(capture_of(req), prices, estimator) for req in DATA}
    await transport.insert(REQUEST_TABLE, INSERT_COLUMNS, [r.row for r in records.values()])
    scored = [scored_row(records[req.name].row, INSERT_COLUMNS, req) for req in DATA if req.scores]
    await transport.insert(REQUEST_TABLE, (*INSERT_COLUMNS, "scores"), scored)
    # The writer's rollup refresh, done: the dashboard series reads the hourly rollups for
    # whole hours (and the request rows at the edges), and must answer the same.
    await refresh(transport, settle_seconds=0)


@pytest.fixture(scope="module", params=["chdb", "clickhouse-connect"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
        ) -> Iterator[Api]:  # fmt: skip
    tmp = tmp_path_factory.mktemp(f"analytics-{request.param}")
    http: ChdbHttpServer | None = None
    if request.param == "chdb":
        server = ApiServer(lambda: ChdbTransport(tmp / "chdb"))
    else:
        http = ChdbHttpServer(tmp / "clickhouse").start()
        url = http.url
        server = ApiServer(lambda: ClickHouseConnectTransport(url))
    try:
        server.start()
        assert server.transport is not None
        server.call(insert_dataset(server.transport, tmp))
        yield Api(server.url, request.param)
    finally:
        server.stop()
        if http is not None:
            http.stop()


class Api:
    def __init__(self, url: str, engine: str) -> None:
        self.url = url
        self.engine = engine

    def post(self, path: str, body: Any, key: str | None = "key-acme") -> httpx.Response:
        headers = {} if key is None else {"authorization": f"Bearer {key}"}
        return httpx.post(self.url + path, json=body, headers=headers, timeout=60)

    def get(self, path: str, key: str | None = "key-acme") -> httpx.Response:
        headers = {} if key is None else {"authorization": f"Bearer {key}"}
        return httpx.get(self.url + path, headers=headers, timeout=60)

    def data(self, path: str, body: Any = None, key: str = "key-acme") -> Any:
        response = self.get(path, key) if body is None else self.post(path, body, key)
        assert response.status_code == 200, response.text
        payload = response.json()
        assert payload["error"] is None
        return payload["data"]

    def error(self, path: str, body: Any, status: int = 400) -> str:
        response = self.post(path, body)
        assert response.status_code == status, response.text
        payload = response.json()
        assert payload["data"] is None and isinstance(payload["error"], str)
        return str(payload["error"])

    def rows(self, body: dict[str, Any], key: str = "key-acme") -> list[dict[str, Any]]:
        return list(self.data("/v1/request/query", {"limit": 1000, **body}, key))

    def costs(self, key: str = "key-acme") -> dict[str, float]:
        """Request id -> cost (USD, 0 when unknown) as the request API shows it."""
        return {r["request_id"]: r["cost"] or 0.0 for r in self.rows({"filter": "all"}, key)}


def ids(*names: str) -> set[str]:
    return {r.id for r in DATA if r.name in names}


def req(name: str) -> Any:
    return next(r for r in DATA if r.name == name)


MS_RANGE = {"startTimeUnixMs": 1_704_067_200_000, "endTimeUnixMs": 1_706_745_600_000}
"""January 2024."""


def sessions_body(**extra: Any) -> dict[str, Any]:
    return {"search": "", "timeFilter": MS_RANGE, "timezoneDifference": 0, "filter": "all", **extra}


# --- data sanity: the writer's rows --------------------------------------------------------


def test_dataset_is_queryable(api: Api) -> None:
    rows = api.rows({"filter": "all"})
    assert {r["request_id"] for r in rows} == {r.id for r in ACME_REQS}
    by_id = {r["request_id"]: r for r in rows}
    assert by_id[req("t4").id]["time_to_first_token"] == 40
    assert by_id[req("t2").id]["delay_ms"] == 300
    assert by_id[req("t1").id]["scores"] == {"accuracy": 0.9, "helicone-score-feedback": 1}
    assert by_id[req("t2").id]["cost"] > by_id[req("t1").id]["cost"] > 0  # gpt-4o > mini


# --- sessions ----------------------------------------------------------------------------------


def test_session_query_aggregates(api: Api) -> None:
    sessions = api.data("/v1/session/query", sessions_body())
    assert [s["session_id"] for s in sessions] == [RESEARCH, TRIP]  # newest first
    trip = sessions[1]
    costs = api.costs()
    trip_ids = ids("t1", "t2", "t3", "t4", "t5")
    assert trip["session_name"] == "Trip plan"
    assert trip["total_requests"] == 5
    assert trip["prompt_tokens"] == 10 + 100 + 20 + 10  # t3 failed: no usage
    assert trip["completion_tokens"] == 5 + 50 + 30 + 5
    assert trip["total_tokens"] == trip["prompt_tokens"] + trip["completion_tokens"]
    assert trip["total_cost"] == pytest.approx(sum(costs[i] for i in trip_ids))
    assert trip["avg_latency"] == pytest.approx((100 + 300 + 50 + 200 + 100) / 5)
    assert trip["user_ids"] == ["alice", "bob"]
    assert trip["created_at"] == "2024-01-08T00:00:00.000Z"
    assert trip["latest_request_created_at"] == "2024-01-08T00:04:00.000Z"
    assert set(trip) == {
        "created_at",
        "latest_request_created_at",
        "session_id",
        "session_name",
        "total_cost",
        "total_requests",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "avg_latency",
        "user_ids",
    }
    # globex has a session with the same id: its own single request only.
    theirs = api.data("/v1/session/query", sessions_body(), key="key-globex")
    assert [(s["session_id"], s["total_requests"]) for s in theirs] == [(TRIP, 1)]


def test_session_query_search_name_filter_paging(api: Api) -> None:
    def names(**extra: Any) -> list[str]:
        return [s["session_id"] for s in api.data("/v1/session/query", sessions_body(**extra))]

    assert names(search="TRIP") == [TRIP]  # name, case-insensitive
    assert names(search="research") == [RESEARCH]  # id
    assert names(nameEquals="Research") == [RESEARCH]
    assert names(nameEquals="research") == []
    many = {"sessions_request_response_rmt": {"session_total_requests": {"gte": 3}}}
    assert names(filter=many) == [TRIP]
    cost = {"sessions_request_response_rmt": {"session_total_cost": {"gt": 0}}}
    assert set(names(filter=cost)) == {TRIP, RESEARCH}
    # A per-request leaf selects which rows are aggregated: only gpt-4o's one request.
    by_model = api.data(
        "/v1/session/query",
        sessions_body(filter={"request_response_rmt": {"model": {"equals": "gpt-4o"}}}),
    )
    assert [(s["session_id"], s["total_requests"]) for s in by_model] == [(TRIP, 1)]
    both = {
        "left": {"request_response_rmt": {"user_id": {"equals": "alice"}}},
        "operator": "and",
        "right": many,
    }
    assert names(filter=both) == [TRIP]
    assert names(filter={"properties": {"Environment": {"equals": "staging"}}}) == [TRIP]
    assert names(limit=1) == [RESEARCH]
    assert names(limit=1, offset=1) == [TRIP]
    # The time filter is exclusive at both ends (Helicone's gt/lt).
    start = 1_704_672_000_000  # 2024-01-08T00:00:00Z: t1's start
    assert names(timeFilter={"startTimeUnixMs": start, "endTimeUnixMs": start + 60_000}) == []
    assert names(timeFilter={"startTimeUnixMs": start - 1, "endTimeUnixMs": start + 1}) == [TRIP]


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"search": "", "timezoneDifference": 0, "filter": "all"}, "timeFilter"),
        (sessions_body(timeFilter={"startTimeUnixMs": 5, "endTimeUnixMs": 1}), "start"),
        (sessions_body(timeFilter={"startTimeUnixMs": "x", "endTimeUnixMs": 1}), "startTimeUnixMs"),
        (sessions_body(timezoneDifference=5000), "timezoneDifference"),
        (sessions_body(limit=5000), "limit"),
        (sessions_body(filter={"request_response_rmt": {"nope": {"equals": 1}}}), "nope"),
        (
            sessions_body(
                filter={
                    "left": {"request_response_rmt": {"model": {"equals": "x"}}},
                    "operator": "or",
                    "right": {"sessions_request_response_rmt": {"session_total_cost": {"gt": 1}}},
                }
            ),
            "or",
        ),
        ([], "JSON object"),
    ],
)
def test_session_query_bad_bodies(api: Api, body: Any, named: str) -> None:
    assert named in api.error("/v1/session/query", body)


def test_session_metrics(api: Api) -> None:
    body = {
        "nameContains": "",
        "timezoneDifference": 0,
        "timeFilter": MS_RANGE,
        "filter": "all",
        "pSize": "p99",
        "useInterquartile": False,
    }
    metrics = api.data("/v1/session/metrics/query", body)
    assert set(metrics) == {"session_count", "session_duration", "session_cost", "average"}
    # Two sessions (5 and 2 requests); histogram heights add up to the sessions kept.
    assert sum(row["value"] for row in metrics["session_count"]) == pytest.approx(2)
    assert metrics["average"]["session_count"] == [{"average": 3.5}]
    assert metrics["average"]["session_duration"] == [{"average": (240 + 60) / 2}]
    costs = api.costs()
    total = sum(costs[i] for i in ids("t1", "t2", "t3", "t4", "t5", "r1", "r2"))
    assert metrics["average"]["session_cost"][0]["average"] == pytest.approx(total / 2)
    for row in metrics["session_count"]:
        assert isinstance(row["range_start"], str) and isinstance(row["range_end"], str)
        assert float(row["range_start"]) <= float(row["range_end"])
    # Clipping is by rank: with two sessions, p50's bound is the larger (5): both are kept;
    # the interquartile range of p50 is that one value.
    clipped = api.data("/v1/session/metrics/query", body | {"pSize": "p50"})
    assert sum(r["value"] for r in clipped["session_count"]) == pytest.approx(2)
    iqr = api.data("/v1/session/metrics/query", body | {"pSize": "p50", "useInterquartile": True})
    assert sum(r["value"] for r in iqr["session_count"]) == pytest.approx(1)
    assert float(iqr["session_count"][0]["range_start"]) == 5
    # The averages are over every session, clipped or not.
    assert clipped["average"] == metrics["average"]
    named = api.data("/v1/session/metrics/query", body | {"nameContains": "TRIP"})
    assert named["average"]["session_count"] == [{"average": 5}]
    none = api.data("/v1/session/metrics/query", body | {"nameContains": "nothing"})
    assert none["session_count"] == [] and none["average"]["session_count"] == [{"average": 0}]
    assert "pSize" in api.error("/v1/session/metrics/query", body | {"pSize": "p42"})


def test_session_trace_tree(api: Api) -> None:
    trace = api.data(f"/v1/session/{TRIP}/trace")
    assert trace["session_id"] == TRIP and trace["session_name"] == "Trip plan"
    assert trace["truncated"] is False
    order = [(r["path"], r["request_id"]) for r in trace["requests"]]
    assert order == [
        ("/plan", req("t1").id),
        ("/plan/flights", req("t2").id),
        ("/plan/flights", req("t3").id),
        ("/plan/hotels", req("t4").id),
        ("/summary", req("t5").id),
    ]
    flights_request = trace["requests"][2]
    assert flights_request["path_segments"] == ["plan", "flights"]  # "plan/flights/" normalised
    assert flights_request["error"] is True and flights_request["status"] == 500
    assert trace["requests"][3]["time_to_first_token"] == 40
    root = trace["tree"]
    assert root["path"] == "/" and root["own"]["requests"] == 0
    assert [c["path"] for c in root["children"]] == ["/plan", "/summary"]
    plan = root["children"][0]
    assert [c["name"] for c in plan["children"]] == ["flights", "hotels"]
    flights = plan["children"][0]
    assert flights["request_ids"] == [req("t2").id, req("t3").id]
    assert flights["own"] == flights["totals"]
    assert flights["own"]["requests"] == 2 and flights["own"]["errors"] == 1
    assert flights["own"]["latency_ms"] == 350
    assert flights["own"]["prompt_tokens"] == 100
    assert plan["own"]["requests"] == 1
    assert plan["totals"]["requests"] == 4 and plan["totals"]["errors"] == 1
    assert plan["totals"]["total_tokens"] == 15 + 150 + 50
    costs = api.costs()
    assert plan["totals"]["cost"] == pytest.approx(
        sum(costs[i] for i in ids("t1", "t2", "t3", "t4"))
    )
    assert root["totals"] == trace["totals"]
    assert trace["totals"]["requests"] == 5
    assert trace["totals"]["start"] == "2024-01-08T00:00:00.000Z"
    assert trace["totals"]["end"] == "2024-01-08T00:04:00.100Z"  # t5's start + 100 ms
    assert trace["totals"]["duration_ms"] == 240_100
    # A request without a path sits at the root.
    research = api.data(f"/v1/session/{RESEARCH}/trace")
    assert research["tree"]["request_ids"] == [req("r2").id]
    assert [c["path"] for c in research["tree"]["children"]] == ["/search"]
    # Another org's session with the same id is its own.
    theirs = api.data(f"/v1/session/{TRIP}/trace", key="key-globex")
    assert [r["request_id"] for r in theirs["requests"]] == [req("g1").id]


def test_session_trace_not_found(api: Api) -> None:
    response = api.get("/v1/session/no-such-session/trace")
    assert response.status_code == 404
    assert response.json() == {"data": None, "error": "Session no-such-session not found"}


# --- users -------------------------------------------------------------------------------------


def test_user_query(api: Api) -> None:
    users = api.data("/v1/user/query", {})
    assert [u["user_id"] for u in users] == ["alice", "carol", "dave", "bob", "erin"]
    alice = users[0]
    costs = api.costs()
    assert alice == {
        "user_id": "alice",
        "count": 4,
        "prompt_tokens": 140,
        "completion_tokens": 90,
        "cost": pytest.approx(sum(costs[i] for i in ids("t1", "t2", "t4", "t5"))),
    }
    picked = api.data("/v1/user/query", {"userIds": ["bob", "nobody", "dave"]})
    assert sorted(u["user_id"] for u in picked) == ["bob", "dave"]
    # Seconds, inclusive: 2024-01-09 00:00 .. 2024-01-11 00:00 holds n1 and n3 (dave).
    window = {"startTimeUnixSeconds": 1_704_758_400, "endTimeUnixSeconds": 1_704_931_200}
    assert api.data("/v1/user/query", {"timeFilter": window}) == [
        {
            "user_id": "dave",
            "count": 2,
            "prompt_tokens": 20,
            "completion_tokens": 10,
            "cost": pytest.approx(costs[req("n1").id] + costs[req("n3").id]),
        }
    ]
    theirs = api.data("/v1/user/query", {}, key="key-globex")
    assert [(u["user_id"], u["count"]) for u in theirs] == [("alice", 1)]
    assert "userIds" in api.error("/v1/user/query", {"userIds": "alice"})
    assert "JSON object" in api.error("/v1/user/query", ["alice"])
    assert len(api.data("/v1/user/query", {})) == 5
    response = httpx.post(api.url + "/v1/user/query", headers={"authorization": "Bearer key-acme"})
    assert response.status_code == 200 and len(response.json()["data"]) == 5  # no body at all


def user_metrics(api: Api, **body: Any) -> dict[str, Any]:
    return dict(
        api.data("/v1/user/metrics/query", {"filter": "all", "offset": 0, "limit": 100} | body)
    )


def test_user_metrics(api: Api) -> None:
    result = user_metrics(api)
    assert result["hasUsers"] is True and result["count"] == 5
    # Default sort: last active first.
    assert [u["user_id"] for u in result["users"]] == ["dave", "erin", "carol", "alice", "bob"]
    alice = next(u for u in result["users"] if u["user_id"] == "alice")
    assert alice["id"] == "alice"
    assert alice["total_requests"] == 4 and alice["active_for"] == 1
    assert alice["average_requests_per_day_active"] == 4
    assert alice["average_tokens_per_request"] == (140 + 90) / 4
    assert alice["first_active"] == "2024-01-08T00:00:00.000Z"
    assert alice["last_active"] == "2024-01-08T00:04:00.000Z"
    carol = next(u for u in result["users"] if u["user_id"] == "carol")
    assert carol["rate_limited_count"] == 1  # r2 answered 429
    dave = next(u for u in result["users"] if u["user_id"] == "dave")
    assert dave["active_for"] == 2  # Jan 9 and Jan 10
    by_requests = user_metrics(api, sort={"total_requests": "desc"})
    assert [u["user_id"] for u in by_requests["users"]][:3] == ["alice", "carol", "dave"]
    by_cost = user_metrics(api, sort={"cost": "asc"})
    costs = [u["cost"] for u in by_cost["users"]]
    assert costs == sorted(costs)


def test_user_metrics_filters_and_paging(api: Api) -> None:
    busy = {"users_view": {"user_total_requests": {"gte": 2}}}
    result = user_metrics(api, filter=busy, sort={"user_id": "asc"})
    assert [u["user_id"] for u in result["users"]] == ["alice", "carol", "dave"]
    assert result["count"] == 3
    # users_view and request leaves combine with "and": alice's gpt-4o request only.
    both = {
        "left": {"request_response_rmt": {"model": {"equals": "gpt-4o"}}},
        "operator": "and",
        "right": {"users_view": {"user_user_id": {"equals": "alice"}}},
    }
    only = user_metrics(api, filter=both)
    assert [(u["user_id"], u["total_requests"]) for u in only["users"]] == [("alice", 1)]
    # The legacy top-level properties table works on every endpoint.
    legacy = {"properties": {"environment": {"equals": "staging"}}}
    assert [u["user_id"] for u in user_metrics(api, filter=legacy)["users"]] == ["bob"]
    page = user_metrics(api, filter=busy, sort={"user_id": "asc"}, limit=1, offset=1)
    assert [u["user_id"] for u in page["users"]] == ["carol"] and page["count"] == 3
    past = user_metrics(api, filter=busy, limit=10, offset=50)
    assert past["users"] == [] and past["count"] == 3 and past["hasUsers"] is True
    nobody = user_metrics(api, filter={"users_view": {"user_cost": {"gt": 1000}}})
    assert nobody == {"hasUsers": True, "count": 0, "users": []}
    # Local days: with UTC-5, dave's two requests are on Jan 8 and Jan 9 local: still 2 days;
    # alice's four are all on Jan 7 local.
    shifted = user_metrics(api, timeZoneDifferenceMinutes=300)
    alice = next(u for u in shifted["users"] if u["user_id"] == "alice")
    assert alice["active_for"] == 1
    window = {"startTimeUnixSeconds": 1_704_758_400, "endTimeUnixSeconds": 1_704_931_200}
    assert [u["user_id"] for u in user_metrics(api, timeFilter=window)["users"]] == ["dave"]
    # A month of whole days comes from the per-day user rollup: the answers of the rows.
    month = {"startTimeUnixSeconds": 1_704_067_200, "endTimeUnixSeconds": 1_706_745_599}
    for extra in ({}, {"timeZoneDifferenceMinutes": 300}, {"sort": {"active_for": "desc"}},
                  {"filter": busy, "offset": 1, "limit": 1}):  # fmt: skip
        assert user_metrics(api, timeFilter=month, **extra) == user_metrics(api, **extra)


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"offset": 0, "limit": 10}, "filter"),
        ({"filter": "all", "offset": 0}, "limit"),
        ({"filter": "all", "offset": 0, "limit": 10, "sort": {"bogus": "asc"}}, "bogus"),
        ({"filter": "all", "offset": 0, "limit": 10, "sort": {"cost": "up"}}, "cost"),
        (
            {"filter": {"users_view": {"user_nope": {"gt": 1}}}, "offset": 0, "limit": 10},
            "user_nope",
        ),
        (
            {"filter": "all", "offset": 0, "limit": 10, "timeZoneDifferenceMinutes": 1.5},
            "timeZoneDifferenceMinutes",
        ),
    ],
)
def test_user_metrics_bad_bodies(api: Api, body: Any, named: str) -> None:
    assert named in api.error("/v1/user/metrics/query", body)


def test_user_metrics_overview(api: Api) -> None:
    body = {"useInterquartile": False, "pSize": "p99", "filter": "all"}
    overview = api.data("/v1/user/metrics-overview/query", body)
    assert set(overview) == {"request_count", "user_cost"}
    assert sum(r["value"] for r in overview["request_count"]) == pytest.approx(5)
    assert sum(r["value"] for r in overview["user_cost"]) == pytest.approx(5)
    assert float(overview["request_count"][-1]["range_end"]) == 4  # alice
    # p50 of (4, 2, 2, 1, 1) is 2: alice is clipped; interquartile also clips below q(0.5).
    clipped = api.data("/v1/user/metrics-overview/query", body | {"pSize": "p50"})
    assert sum(r["value"] for r in clipped["request_count"]) == pytest.approx(4)
    iqr = api.data(
        "/v1/user/metrics-overview/query", body | {"pSize": "p50", "useInterquartile": True}
    )
    assert sum(r["value"] for r in iqr["request_count"]) == pytest.approx(2)
    assert "filter" in api.error("/v1/user/metrics-overview/query", {"pSize": "p50"})


# --- properties ------------------------------------------------------------------------------


def test_property_keys(api: Api) -> None:
    keys = api.data("/v1/property/query", {})
    assert keys == [{"property": "app"}, {"property": "environment"}]  # Helicone-* excluded
    response = httpx.post(
        api.url + "/v1/property/query", headers={"authorization": "Bearer key-acme"}
    )  # no body at all
    assert response.status_code == 200 and response.json()["data"] == keys
    assert api.data("/v1/property/query", {}, key="key-globex") == [{"property": "secret_key"}]


def test_property_values(api: Api) -> None:
    values = api.data("/v1/property/values/query", {"property": "Environment"})
    assert [(v["value"], v["requests"]) for v in values] == [("prod", 4), ("staging", 2)]
    prod = values[0]
    costs = api.costs()
    assert prod["cost"] == pytest.approx(sum(costs[i] for i in ids("t1", "t2", "t4", "n1")))
    assert prod["avg_latency"] == pytest.approx((100 + 300 + 200 + 250) / 4)
    assert prod["errors"] == 0 and prod["users"] == 2
    assert prod["total_tokens"] == 15 + 150 + 50 + 15
    # Latency percentiles (exact for so few values; they were always null before).
    assert 100 <= prod["p50_latency"] <= 250 and 250 <= prod["p95_latency"] <= 300
    staging = values[1]
    assert staging["errors"] == 1 and staging["users"] == 1
    filtered = api.data(
        "/v1/property/values/query",
        {
            "property": "environment",
            "limit": 1,
            "filter": {"request_response_rmt": {"model": {"equals": "gpt-4o"}}},
        },
    )
    assert [(v["value"], v["requests"]) for v in filtered] == [("prod", 2)]
    timed = api.data(
        "/v1/property/values/query",
        {"property": "environment", "timeFilter": {"start": "2024-01-09", "end": "2024-01-11"}},
    )
    assert [(v["value"], v["requests"]) for v in timed] == [("prod", 1), ("staging", 1)]
    assert api.data("/v1/property/values/query", {"property": "nope"}) == []
    assert "property" in api.error("/v1/property/values/query", {"property": ""})


# --- evals and scores --------------------------------------------------------------------------


JANUARY = {"start": "2024-01-01T00:00:00Z", "end": "2024-02-01T00:00:00Z"}


def test_score_names(api: Api) -> None:
    assert api.data("/v1/evals/scores") == ["accuracy", "helicone-score-feedback", "latency_ok"]
    assert api.data("/v1/evals/scores", key="key-globex") == ["globex-only"]


def test_evals_query(api: Api) -> None:
    evals = api.data("/v1/evals/query", {"filter": "all", "timeFilter": JANUARY})
    assert [e["name"] for e in evals] == ["accuracy", "helicone-score-feedback", "latency_ok"]
    accuracy = evals[0]
    values = [0.9, 0.5, 0.7, 1.0, 0.2]
    assert accuracy["count"] == 5
    assert accuracy["averageScore"] == pytest.approx(sum(values) / 5)
    assert accuracy["minScore"] == 0.2 and accuracy["maxScore"] == 1.0
    # Hourly buckets with scores: Jan 8 00:00 (t1, t2), 02:00 (r1, z1), Jan 9 01:00 (n1).
    assert accuracy["overTime"] == [
        {"count": 2, "date": "2024-01-08T00:00:00.000Z"},
        {"count": 2, "date": "2024-01-08T02:00:00.000Z"},
        {"count": 1, "date": "2024-01-09T01:00:00.000Z"},
    ]
    assert [p["value"] for p in accuracy["averageOverTime"]] == pytest.approx([0.7, 0.45, 1.0])
    filtered = api.data(
        "/v1/evals/query",
        {
            "filter": {"request_response_rmt": {"model": {"equals": "gpt-4o"}}},
            "timeFilter": JANUARY,
            "limit": 1,
        },
    )
    assert [(e["name"], e["count"]) for e in filtered] == [("accuracy", 2)]
    # [start, end): a score exactly at the end is out.
    edge = api.data(
        "/v1/evals/query",
        {
            "filter": "all",
            "timeFilter": {"start": "2024-01-07T00:00:00Z", "end": "2024-01-08T00:00:00Z"},
        },
    )
    assert edge == []
    assert "timeFilter" in api.error("/v1/evals/query", {"filter": "all"})
    assert "dbIncrement" in api.error(
        "/v1/evals/query", {"filter": "all", "timeFilter": JANUARY, "dbIncrement": "fortnight"}
    )


def test_score_distributions(api: Api) -> None:
    distributions = api.data(
        "/v1/evals/score-distributions/query", {"filter": "all", "timeFilter": JANUARY}
    )
    assert [d["name"] for d in distributions] == [
        "accuracy",
        "helicone-score-feedback",
        "latency_ok",
    ]
    accuracy = distributions[0]["distribution"]
    assert sum(b["value"] for b in accuracy) == pytest.approx(5)
    assert accuracy[0]["lower"] == pytest.approx(0.2)
    assert accuracy[-1]["upper"] == pytest.approx(1.0)
    assert all(set(b) == {"value", "lower", "upper"} for b in accuracy)


def test_dashboard_scores_reference_example(api: Api) -> None:
    """Reference §8 example 10, verbatim: one row per day per score key, zero-filled."""
    body = {
        "userFilter": "all",
        "timeFilter": {"start": "2024-01-01", "end": "2024-01-31"},
        "dbIncrement": "day",
        "timeZoneDifference": 0,
    }
    rows = api.data("/v1/dashboard/scores/query", body)
    keys = ["accuracy", "helicone-score-feedback", "latency_ok"]
    assert len(rows) == 31 * len(keys)
    days = sorted({r["created_at_trunc"] for r in rows})
    assert days[0] == "2024-01-01T00:00:00.000Z" and days[-1] == "2024-01-31T00:00:00.000Z"
    sums = {(r["created_at_trunc"][:10], r["score_key"]): r["score_sum"] for r in rows}
    assert sums[("2024-01-08", "accuracy")] == pytest.approx(0.9 + 0.5 + 0.7 + 0.2)
    assert sums[("2024-01-09", "accuracy")] == pytest.approx(1.0)
    assert sums[("2024-01-08", "helicone-score-feedback")] == 1
    assert sums[("2024-01-20", "accuracy")] == 0
    assert all(set(r) == {"created_at_trunc", "score_sum", "score_key"} for r in rows)


def test_dashboard_scores_time_zone(api: Api) -> None:
    """UTC-5 (300): Jan 8 00:00-02:01 UTC falls on Jan 7 local; buckets start at local
    midnight, i.e. 05:00 UTC."""
    body = {
        "userFilter": "all",
        "timeFilter": {"start": "2024-01-07", "end": "2024-01-10"},
        "dbIncrement": "day",
        "timeZoneDifference": 300,
    }
    rows = [r for r in api.data("/v1/dashboard/scores/query", body) if r["score_key"] == "accuracy"]
    assert [(r["created_at_trunc"], r["score_sum"]) for r in rows] == [
        ("2024-01-06T05:00:00.000Z", 0.0),
        ("2024-01-07T05:00:00.000Z", pytest.approx(2.3)),
        ("2024-01-08T05:00:00.000Z", 1.0),
        ("2024-01-09T05:00:00.000Z", 0.0),
    ]
    for bad, named in (
        ({"timeZoneDifference": 2000}, "timeZoneDifference"),
        ({"dbIncrement": "decade"}, "dbIncrement"),
        ({"timeFilter": {"start": "2024-01-10", "end": "2024-01-01"}}, "start"),
        ({"timeFilter": {"start": "yesterday", "end": "2024-01-01"}}, "start"),
        (
            {"timeFilter": {"start": "2000-01-01", "end": "2024-01-01"}, "dbIncrement": "min"},
            "buckets",
        ),
    ):
        assert named in api.error("/v1/dashboard/scores/query", body | bad)


# --- dashboard series --------------------------------------------------------------------------


def series(api: Api, **body: Any) -> dict[str, Any]:
    base = {
        "timeFilter": {"start": "2024-01-08T00:00:00Z", "end": "2024-01-10T23:59:59Z"},
        "dbIncrement": "day",
    }
    return dict(api.data("/v1/dashboard/series/query", base | body))


def test_series_ungrouped(api: Api) -> None:
    result = series(api)
    days = ["2024-01-08T00:00:00.000Z", "2024-01-09T00:00:00.000Z", "2024-01-10T00:00:00.000Z"]
    assert result["buckets"] == days
    assert result["increment"] == "day" and result["groupBy"] is None
    (only,) = result["series"]
    assert only["group"] is None and only["other"] is False
    points = only["points"]
    assert [p["time"] for p in points] == days
    assert [p["requests"] for p in points] == [8, 1, 2]
    assert [p["errors"] for p in points] == [2, 0, 0]  # t3 (500) and r2 (429)
    assert points[0]["error_rate"] == 0.25
    costs = api.costs()
    day1 = ids("t1", "t2", "t3", "t4", "t5", "r1", "r2", "z1")
    assert points[0]["cost"] == pytest.approx(sum(costs[i] for i in day1))
    assert points[0]["prompt_tokens"] == 10 + 100 + 20 + 10 + 10 + 10
    assert points[0]["total_tokens"] == points[0]["prompt_tokens"] + points[0]["completion_tokens"]
    assert points[0]["users"] == 4  # alice, bob, carol, erin
    assert points[2]["cache_hits"] == 1  # n3
    latency = points[0]["latency"]
    assert latency["avg"] == pytest.approx((100 + 300 + 50 + 200 + 100 + 400 + 20 + 90) / 8)
    assert latency["p50"] is not None and latency["p99"] <= 400
    assert points[0]["ttft"]["avg"] == pytest.approx((40 + 80) / 2)  # the two streams
    assert points[1]["ttft"] == {"avg": None, "p50": None, "p90": None, "p95": None, "p99": None}
    totals = only["totals"]
    assert totals["requests"] == 11 and totals["errors"] == 2
    assert totals["cost"] == pytest.approx(sum(costs.values()))
    assert totals["latency"]["avg"] == pytest.approx(
        sum(r.latency for r in ACME_REQS) / len(ACME_REQS)
    )
    # n3 replays t1's answer: it saved t1's latency, and the cost its own row records.
    (hit,) = ids("n3")
    saved = api.get(f"/v1/request/{hit}").json()["data"]
    assert saved["cache_saved_cost"] > 0
    t1_latency = next(r.latency for r in DATA if r.name == "t1")
    assert result["cache_savings"] == {"cost": pytest.approx(saved["cache_saved_cost"]),
                                       "latency_ms": t1_latency}
    assert "cache_savings" not in series(api, groupBy="model")


def test_series_zero_fill_and_time_zone(api: Api) -> None:
    result = series(
        api, timeFilter={"start": "2024-01-05", "end": "2024-01-12"}, timeZoneDifference=300
    )
    (only,) = result["series"]
    counts = {p["time"][:10]: p["requests"] for p in only["points"]}
    # Local days (UTC-5) start at 05:00 UTC: Jan 4 21:00 local .. Jan 11 19:00 local.
    assert result["buckets"][0] == "2024-01-04T05:00:00.000Z"
    assert len(result["buckets"]) == 8
    assert counts["2024-01-07"] == 8 and counts["2024-01-08"] == 1
    assert counts["2024-01-09"] == 2
    assert sum(counts.values()) == 11
    empty = only["points"][0]
    assert empty["requests"] == 0 and empty["cost"] == 0 and empty["latency"]["avg"] is None
    hourly = series(
        api,
        dbIncrement="hour",
        timeFilter={"start": "2024-01-08T00:00:00Z", "end": "2024-01-08T03:00:00Z"},
    )
    assert [p["requests"] for p in hourly["series"][0]["points"]] == [5, 0, 3, 0]
    weekly = series(api, dbIncrement="week")
    assert weekly["buckets"] == ["2024-01-08T00:00:00.000Z"]  # a Monday
    monthly = series(api, dbIncrement="month")
    assert monthly["buckets"] == ["2024-01-01T00:00:00.000Z"]
    assert monthly["series"][0]["points"][0]["requests"] == 11


def test_series_grouped(api: Api) -> None:
    by_model = series(api, groupBy="model")
    assert [(s["group"], s["totals"]["requests"]) for s in by_model["series"]] == [
        ("gpt-4o-mini", 9),
        ("gpt-4o", 2),
    ]
    assert all(len(s["points"]) == 3 for s in by_model["series"])
    top1 = series(api, groupBy="model", groupLimit=1)
    assert [(s["group"], s["other"], s["totals"]["requests"]) for s in top1["series"]] == [
        ("gpt-4o-mini", False, 9),
        (None, True, 2),
    ]
    by_user = series(api, groupBy="user")
    assert [(s["group"], s["totals"]["requests"]) for s in by_user["series"]] == [
        ("alice", 4),
        ("carol", 2),
        ("dave", 2),
        ("", 1),
        ("bob", 1),
        ("erin", 1),
    ]
    by_env = series(api, groupBy={"property": "ENVIRONMENT"})
    assert by_env["groupBy"] == {"property": "ENVIRONMENT"}
    assert [(s["group"], s["totals"]["requests"]) for s in by_env["series"]] == [
        ("", 5),
        ("prod", 4),
        ("staging", 2),
    ]
    by_provider = series(
        api, groupBy="provider", filter={"request_response_rmt": {"status": {"gte": 400}}}
    )
    assert [(s["group"], s["totals"]["errors"]) for s in by_provider["series"]] == [("openai", 2)]
    nothing = series(
        api, groupBy="model", filter={"request_response_rmt": {"model": {"equals": "none"}}}
    )
    assert nothing["series"] == []
    assert len(nothing["buckets"]) == 3


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        ({"groupBy": "color"}, "groupBy"),
        ({"groupBy": {"property": ""}}, "groupBy"),
        ({"groupLimit": 0}, "groupLimit"),
        ({"dbIncrement": None}, "dbIncrement"),
        ({"timeFilter": {"start": "2024-01-08"}}, "timeFilter.end"),
        ({"filter": {"request_response_rmt": {"model": {"between": 1}}}}, "between"),
    ],
)
def test_series_bad_bodies(api: Api, extra: dict[str, Any], named: str) -> None:
    body = {"timeFilter": {"start": "2024-01-08", "end": "2024-01-10"}, "dbIncrement": "day"}
    assert named in api.error("/v1/dashboard/series/query", body | extra)


# --- item 7: every column filterable and sortable ----------------------------------------------


@pytest.mark.parametrize(
    ("field", "operator", "value", "names"),
    [
        ("request_path", "equals", "/v1/chat/completions", [r.name for r in ACME_REQS]),
        ("request_path", "contains", "embeddings", []),
        ("request_model", "equals", "gpt-4o", ["t2", "n1"]),
        ("response_model", "equals", "gpt-4o", ["t2", "n1"]),
        ("is_stream", "equals", True, ["t4", "r1"]),
        ("tokens_estimated", "equals", False, [r.name for r in ACME_REQS]),
        ("attempt_count", "equals", 2, ["n2"]),
        ("failover", "equals", True, ["n2"]),
        ("attempts", "contains", "azure", ["n2"]),
        ("cache_saved_latency", "gt", 0, ["n3"]),
        ("cache_saved_cost", "gt", 0, ["n3"]),
        ("cached", "equals", True, ["n3"]),
        ("session_path", "equals", "/plan/hotels", ["t4"]),
        ("session_name", "equals", "Research", ["r1", "r2"]),
        ("session_id", "equals", RESEARCH, ["r1", "r2"]),
        ("wire_format", "equals", "openai", [r.name for r in ACME_REQS]),
        ("cost_known", "equals", False, []),
        ("reasoning_tokens", "equals", 0, [r.name for r in ACME_REQS]),
        ("response_size_bytes", "gt", 0, [r.name for r in ACME_REQS]),
        ("updated_at", "gte", "2024-01-01T00:00:00Z", [r.name for r in ACME_REQS]),
    ],
)
def test_request_filters_on_every_column(
    api: Api, field: str, operator: str, value: Any, names: list[str]
) -> None:
    rows = api.rows({"filter": {"request_response_rmt": {field: {operator: value}}}})
    assert {r["request_id"] for r in rows} == ids(*names)


def test_request_sorts_on_new_columns(api: Api) -> None:
    rows = api.rows({"filter": "all", "sort": {"status": "desc"}})
    statuses = [r["response_status"] for r in rows]
    assert statuses == sorted(statuses, reverse=True) and statuses[0] == 500
    rows = api.rows({"filter": "all", "sort": {"attempt_count": "desc"}})
    assert rows[0]["request_id"] == req("n2").id
    rows = api.rows({"filter": "all", "sort": {"request_path": "asc", "created_at": "asc"}})
    assert next(r["request_id"] for r in rows) == req("t1").id


# --- auth and availability --------------------------------------------------------------------


ENDPOINTS = [
    ("POST", "/v1/session/query"),
    ("POST", "/v1/session/metrics/query"),
    ("GET", f"/v1/session/{TRIP}/trace"),
    ("POST", "/v1/user/query"),
    ("POST", "/v1/user/metrics/query"),
    ("POST", "/v1/user/metrics-overview/query"),
    ("POST", "/v1/property/query"),
    ("POST", "/v1/property/values/query"),
    ("GET", "/v1/evals/scores"),
    ("POST", "/v1/evals/query"),
    ("POST", "/v1/evals/score-distributions/query"),
    ("POST", "/v1/dashboard/scores/query"),
    ("POST", "/v1/dashboard/series/query"),
]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_unauthenticated_is_401(api: Api, method: str, path: str) -> None:
    for headers in ({}, {"authorization": "Bearer wrong"}):
        response = httpx.request(
            method, api.url + path, headers=headers, json={} if method == "POST" else None
        )
        assert response.status_code == 401, response.text
        assert response.json() == {"data": None, "error": "Unauthorized"}


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
def test_store_down_is_503(method: str, path: str, tmp_path: Path) -> None:
    """A ClickHouse server that is not there: every endpoint answers 503, not a 500."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/db"
    server = ApiServer(lambda: ClickHouseConnectTransport(url), migrated=False).start()
    try:
        bodies = {
            "/v1/session/query": sessions_body(),
            "/v1/session/metrics/query": {"nameContains": "", "timezoneDifference": 0},
            "/v1/user/metrics/query": {"filter": "all", "offset": 0, "limit": 1},
            "/v1/user/metrics-overview/query": {
                "filter": "all",
                "pSize": "p50",
                "useInterquartile": False,
            },
            "/v1/property/values/query": {"property": "x"},
            "/v1/evals/query": {"filter": "all", "timeFilter": JANUARY},
            "/v1/evals/score-distributions/query": {"filter": "all", "timeFilter": JANUARY},
            "/v1/dashboard/scores/query": {"timeFilter": JANUARY, "dbIncrement": "day"},
            "/v1/dashboard/series/query": {"timeFilter": JANUARY, "dbIncrement": "day"},
        }
        response = httpx.request(
            method,
            server.url + path,
            json=bodies.get(path, {}),
            headers={"authorization": "Bearer key-acme"},
            timeout=60,
        )
        assert response.status_code == 503, response.text
        assert response.json()["data"] is None
        assert response.headers["retry-after"]
    finally:
        server.stop()
