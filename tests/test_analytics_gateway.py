"""The aggregate endpoints in the real gateway: keys from the control store, records through
the log writer (journal, writer child, embedded chdb), answers over HTTP.

The dataset of tests/analytics_data.py is submitted to the running gateway's writer as the
data plane submits captures; then each endpoint family is asked once, with the org's real
key, and must see exactly what the writer wrote.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.analytics_data import ACME, DATA, GLOBEX, TRIP, Req, capture_of
from tests.harness import GatewayServer, create_key, make_settings


@dataclass
class Served:
    server: GatewayServer
    keys: dict[str, str]
    """"acme"/"globex" -> API key."""
    ids: dict[str, str]
    """Request name -> request id."""

    def post(self, org: str, path: str, body: Any) -> Any:
        response = httpx.post(self.server.url + path, json=body, timeout=60,
                              headers={"authorization": f"Bearer {self.keys[org]}"})  # fmt: skip
        assert response.status_code == 200, response.text
        return response.json()["data"]

    def get(self, org: str, path: str) -> httpx.Response:
        return httpx.get(self.server.url + path, timeout=60,
                         headers={"authorization": f"Bearer {self.keys[org]}"})  # fmt: skip


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    settings = make_settings(tmp_path_factory.mktemp("analytics-gw"), logging_enabled=True,
                             log_flush_ms=20)  # fmt: skip
    keys = {org: create_key(settings, org=org) for org in ("acme", "globex")}
    with GatewayServer(settings) as server:
        runtime = server.runtime
        orgs = {
            name: server.call(runtime.authenticate_org({"authorization": f"Bearer {key}"}))
            for name, key in keys.items()
        }
        mapping = {ACME: orgs["acme"], GLOBEX: orgs["globex"]}
        requests: list[Req] = [replace(r, org=mapping[r.org]) for r in DATA]
        writer = runtime.writer
        assert writer is not None

        async def submit() -> None:
            for req in requests:
                writer.submit(capture_of(req))

        server.call(submit())
        served = Served(server, keys, {r.name: r.id for r in requests})
        _wait(served, len([r for r in DATA if r.org == ACME]))
        yield served


def _wait(served: Served, count: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        rows = served.post("acme", "/v1/request/query", {"filter": "all", "limit": 1000})
        if len(rows) == count:
            return
        assert time.monotonic() < deadline, f"{len(rows)} of {count} records written"
        time.sleep(0.05)


def test_sessions_through_the_gateway(served: Served) -> None:
    window = {"startTimeUnixMs": 1_704_067_200_000, "endTimeUnixMs": 1_706_745_600_000}
    body = {"search": "", "timeFilter": window, "timezoneDifference": 0, "filter": "all"}
    sessions = served.post("acme", "/v1/session/query", body)
    trip = next(s for s in sessions if s["session_id"] == TRIP)
    assert trip["total_requests"] == 5 and trip["user_ids"] == ["alice", "bob"]
    assert trip["total_cost"] > 0
    theirs = served.post("globex", "/v1/session/query", body)
    assert [(s["session_id"], s["total_requests"]) for s in theirs] == [(TRIP, 1)]
    trace = served.get("acme", f"/v1/session/{TRIP}/trace")
    assert trace.status_code == 200, trace.text
    document = trace.json()["data"]
    assert [r["path"] for r in document["requests"]] == [
        "/plan", "/plan/flights", "/plan/flights", "/plan/hotels", "/summary"]  # fmt: skip
    assert document["tree"]["totals"]["requests"] == 5
    assert served.get("acme", "/v1/session/none/trace").status_code == 404


def test_users_properties_and_series_through_the_gateway(served: Served) -> None:
    metrics = served.post("acme", "/v1/user/metrics/query",
                          {"filter": "all", "offset": 0, "limit": 10})  # fmt: skip
    assert metrics["count"] == 5 and metrics["hasUsers"] is True
    keys = served.post("acme", "/v1/property/query", {})
    assert keys == [{"property": "app"}, {"property": "environment"}]
    series = served.post("acme", "/v1/dashboard/series/query", {
        "timeFilter": {"start": "2024-01-08", "end": "2024-01-10T23:59:59Z"},
        "dbIncrement": "day", "groupBy": "model"})  # fmt: skip
    assert [(s["group"], [p["requests"] for p in s["points"]]) for s in series["series"]] == [
        ("gpt-4o-mini", [7, 0, 2]), ("gpt-4o", [1, 1, 0])]  # fmt: skip
    ttft = series["series"][0]["points"][0]["ttft"]
    assert ttft["avg"] == pytest.approx(60)  # the streams' first bytes (40 and 80 ms)


def test_aggregate_endpoints_without_logging(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, logging_enabled=False)
    key = create_key(settings, org="acme")
    with GatewayServer(settings) as server:
        response = httpx.post(server.url + "/v1/dashboard/series/query", json={
            "timeFilter": {"start": "2024-01-01", "end": "2024-01-02"}, "dbIncrement": "day"},
            headers={"authorization": f"Bearer {key}"})  # fmt: skip
        assert response.status_code == 503
        assert "logging is disabled" in response.json()["error"].lower()
        response = httpx.get(server.url + "/v1/evals/scores")
        assert response.status_code == 401
