"""The analytics bench (issue 15's performance bar): its data generator and its harness.

The generator writes a small log (2,000 rows) into a real embedded engine; the tests check
the columns and the distributions it promises, then read the rows back through a real
gateway's ``/v1/request/query``. The harness runs end to end in a tiny mode (real nginx
upstream, real ``gateway serve``, wrk) and the report's structure is checked, never its
timings.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench import analytics, analytics_queries
from bench.analytics_data import (
    MODELS,
    SESSION_NAMES,
    SESSION_PATHS,
    STATUSES,
    Spec,
    generate,
    write,
)
from bench.analytics_report import NOT_AVAILABLE, report, throughput_lines
from gateway.store import ControlStore
from logging_pipeline.clickhouse.chdb_transport import ChdbTransport
from logging_pipeline.clickhouse.connect_transport import ClickHouseConnectTransport
from tests.clickhouse_http import ChdbHttpServer
from tests.harness import GatewayServer, make_settings

pytest.importorskip("chdb")

ROWS = 2_000
MAIN = "6f1c1d0e-0000-4000-8000-000000000001"
OTHERS = (
    "6f1c1d0e-0000-4000-8000-000000000002",
    "6f1c1d0e-0000-4000-8000-000000000003",
)
NOW_MS = 1_764_000_000_000


def _query(path: Path, sql: str) -> list[dict[str, Any]]:
    """``sql`` on the engine under ``path`` (opened and closed here)."""

    async def run() -> list[dict[str, Any]]:
        transport = ChdbTransport(path)
        try:
            return await transport.query(sql)
        finally:
            await transport.close()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data_dir = tmp_path_factory.mktemp("analytics-data")
    generate(data_dir, Spec(ROWS, (MAIN, *OTHERS), now_ms=NOW_MS))
    return data_dir / "clickhouse"


def test_rows_and_organisations(generated: Path) -> None:
    rows = _query(
        generated,
        "SELECT toString(organization_id) AS org, count() AS n "
        "FROM request_response_rmt FINAL GROUP BY org",
    )
    counts = {r["org"]: r["n"] for r in rows}
    assert sum(counts.values()) == ROWS
    assert set(counts) == {MAIN, *OTHERS}
    assert 0.75 < counts[MAIN] / ROWS < 0.85  # main_share 0.8
    assert all(counts[o] > 100 for o in OTHERS)


def test_time_models_statuses_and_costs(generated: Path) -> None:
    [row] = _query(
        generated,
        "SELECT min(toUnixTimestamp64Milli(request_created_at)) AS first, "
        "max(toUnixTimestamp64Milli(request_created_at)) AS last, "
        "uniqExact(toDate(request_created_at)) AS days, "
        "groupUniqArray(model) AS models, groupUniqArray(provider) AS providers, "
        "groupUniqArray(status) AS statuses, countIf(status >= 400) AS errors, "
        "countIf(status >= 400 AND (prompt_tokens IS NOT NULL OR ifNull(cost, 0) != 0)) "
        "  AS errors_with_usage, "
        "countIf(model = 'my-finetune' AND (cost IS NOT NULL OR cost_known)) AS priced_unknown, "
        "countIf(status = 200 AND cache_reference_id IS NULL AND cost_known "
        "  AND (prompt_tokens IS NULL OR cost = 0)) AS ok_without_cost, "
        "countIf(cache_reference_id IS NOT NULL AND cost_known "
        "  AND (cost != 0 OR cache_saved_cost = 0)) "
        "  AS bad_hits, "
        "countIf(time_to_first_token IS NOT NULL AND NOT is_stream) AS ttft_unstreamed, "
        "countIf(latency IS NULL OR latency < 0) AS bad_latency "
        "FROM request_response_rmt",
    )
    assert NOW_MS - 30 * 86_400_000 <= row["first"] and row["last"] <= NOW_MS
    assert row["days"] >= 28  # ~30 days, every one of them with traffic
    assert set(row["models"]) == {m.name for m in MODELS}
    assert set(row["providers"]) == {m.provider for m in MODELS}
    assert set(row["statuses"]) <= {s for s, _ in STATUSES} and 200 in row["statuses"]
    assert 0.02 < row["errors"] / ROWS < 0.08  # 4.5% expected
    assert row["errors_with_usage"] == 0 and row["priced_unknown"] == 0
    assert row["ok_without_cost"] == 0 and row["bad_hits"] == 0
    assert row["ttft_unstreamed"] == 0 and row["bad_latency"] == 0
    # cost = tokens x the model's price, in nano-USD
    model = MODELS[0]
    [priced] = _query(
        generated,
        f"SELECT countIf(cost != prompt_tokens * {model.prompt_price} "
        f"+ completion_tokens * {model.completion_price}) AS wrong, count() AS n "
        f"FROM request_response_rmt WHERE model = '{model.name}' AND status = 200 "
        "AND cache_reference_id IS NULL",
    )
    assert priced["n"] > 100 and priced["wrong"] == 0


def test_users_sessions_properties_and_scores(generated: Path) -> None:
    [row] = _query(
        generated,
        "SELECT uniqExact(user_id) AS users, countIf(user_id = '') AS anonymous, "
        "uniqExact(session_id) - 1 AS sessions, countIf(session_id != '') AS in_sessions, "
        "groupUniqArrayIf(session_path, session_id != '') AS paths, "
        "groupUniqArrayIf(session_name, session_id != '') AS names, "
        "countIf(has(mapKeys(properties), 'Environment')) AS with_env, "
        "groupUniqArrayArray(mapKeys(properties)) AS keys, "
        "countIf(has(mapKeys(scores), 'accuracy')) AS scored, "
        "countIf(has(mapKeys(scores), 'helicone-score-feedback')) AS rated, "
        "countIf(properties['Helicone-Rate-Limit-Status'] = 'rate_limited' AND status != 429) "
        "  AS misplaced_rate_limit "
        "FROM request_response_rmt",
    )
    assert 15 <= row["users"] <= 21 and 0.03 < row["anonymous"] / ROWS < 0.15
    assert 0.25 < row["in_sessions"] / ROWS < 0.35 and row["sessions"] > 40
    assert set(row["paths"]) == {p for p, _ in SESSION_PATHS}
    assert set(row["names"]) == set(SESSION_NAMES)
    assert 0.8 < row["with_env"] / ROWS < 0.9
    assert {"Environment", "App", "Customer-Tier", "Helicone-Session-Id"} <= set(row["keys"])
    assert 0.04 < row["scored"] / ROWS < 0.12 and row["rated"] > 10
    assert row["misplaced_rate_limit"] == 0
    # a session is one organisation, one user, one name, its requests within 20 minutes
    [session] = _query(
        generated,
        "SELECT max(orgs) AS orgs, max(users) AS users, max(names) AS names, "
        "max(span_s) AS span_s, max(n) AS largest FROM (SELECT session_id, "
        "uniqExact(organization_id) AS orgs, uniqExact(user_id) AS users, "
        "uniqExact(session_name) AS names, count() AS n, "
        "dateDiff('second', min(request_created_at), max(request_created_at)) AS span_s "
        "FROM request_response_rmt WHERE session_id != '' GROUP BY session_id)",
    )
    assert session["orgs"] == session["users"] == session["names"] == 1
    assert session["span_s"] <= 1200 and session["largest"] >= 5


def test_generation_is_reproducible(tmp_path: Path) -> None:
    generate(tmp_path, Spec(200, (MAIN,), now_ms=NOW_MS), optimize=False)
    sql = (
        "SELECT model, status, user_id, toString(request_created_at) AS at, "
        "toString(properties) AS props FROM request_response_rmt "
        "ORDER BY request_created_at, model, user_id LIMIT 200"
    )
    first = _query(tmp_path / "clickhouse", sql)
    again = tmp_path / "again"
    generate(again, Spec(200, (MAIN,), now_ms=NOW_MS), optimize=False)
    assert _query(again / "clickhouse", sql) == first


async def test_writes_through_the_server_transport_too(tmp_path: Path) -> None:
    """:func:`write` takes any transport: here clickhouse-connect, to a ClickHouse HTTP
    endpoint (the chdb stand-in), in several statements."""
    server = ChdbHttpServer(tmp_path / "server").start()
    transport = ClickHouseConnectTransport(server.url)
    try:
        await write(transport, Spec(300, (MAIN, *OTHERS), now_ms=NOW_MS), batch_rows=128)
        rows = await transport.query(
            "SELECT count() AS n, countIf(organization_id = toUUID({org:String})) AS main "
            "FROM request_response_rmt",
            {"org": MAIN},
        )
        assert rows[0]["n"] == 300 and 0.7 < rows[0]["main"] / 300 < 0.9
    finally:
        await transport.close()
        server.stop()


def test_spec_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        Spec(10, ("not-a-uuid",))
    with pytest.raises(ValueError):
        Spec(0, (MAIN,))
    with pytest.raises(ValueError):
        Spec(10, (MAIN,), main_share=0)


# --- the gateway reads what was generated ------------------------------------------------------


@pytest.fixture()
def gateway_on_generated(tmp_path: Path) -> Iterator[tuple[GatewayServer, str, str]]:
    settings = make_settings(tmp_path, logging_enabled=True, log_flush_ms=20)

    async def keys() -> tuple[str, str, str]:
        store = ControlStore.from_settings(settings)
        try:
            await store.migrate()
            key, record = await store.create_key("acme")
            other, _ = await store.create_key("globex")
            return key, other, record.org_id
        finally:
            await store.close()

    key, other_key, org_id = asyncio.run(keys())
    generate(tmp_path, Spec(ROWS, (org_id, *OTHERS)))
    with GatewayServer(settings) as server:
        yield server, key, other_key


def test_the_gateway_reads_the_generated_rows(
    gateway_on_generated: tuple[GatewayServer, str, str],
) -> None:
    server, key, other_key = gateway_on_generated

    def query(key: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        response = httpx.post(
            server.url + "/v1/request/query",
            json=body,
            headers={"authorization": f"Bearer {key}"},
            timeout=30,
        )
        assert response.status_code == 200, response.text
        assert response.json()["error"] is None
        return list(response.json()["data"])

    rows = query(key, {"filter": "all", "limit": 1000})
    assert len(rows) == 1000
    assert {r["model"] for r in rows} <= {m.name for m in MODELS}
    stamps = [r["request_created_at"] for r in rows]
    assert stamps == sorted(stamps, reverse=True)  # newest first, as the API sorts
    production = query(
        key,
        {
            "filter": {
                "request_response_rmt": {"properties": {"Environment": {"equals": "production"}}}
            },
            "limit": 1000,
        },
    )
    assert production and all(
        r["properties"].get("Environment") == "production" for r in production
    )
    # the bench's own filtered request query answers, with the bench's placeholders
    now = datetime.now(UTC)
    body = analytics_queries.render(
        analytics_queries.by_name("request_query").body, analytics_queries.placeholders(now)
    )
    assert all(r["model"] == "gpt-4o" for r in query(key, body))
    # another organisation sees none of it
    assert query(other_key, {"filter": "all", "limit": 10}) == []


# --- the harness -------------------------------------------------------------------------------


def test_placeholders_are_replaced_everywhere() -> None:
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    values = analytics_queries.placeholders(now)
    assert set(values) == set(analytics_queries.PLACEHOLDERS)
    for query in analytics_queries.QUERIES:
        rendered = json.dumps(analytics_queries.render(query.body, values))
        assert '"$' not in rendered, query.name
    assert values["$days_ago_30_ms"] == int(now.timestamp() * 1000) - 30 * 86_400_000
    assert values["$days_ago_7_iso"] == "2026-11-25T12:00:00.000Z"
    assert values["$now_s"] > int(now.timestamp())  # a minute of slack past the newest row
    names = [q.name for q in analytics_queries.QUERIES]
    assert len(names) == len(set(names))
    assert sum(q.path == "/v1/helicone-sql/execute" for q in analytics_queries.QUERIES) == 8


def test_missing_routes_are_told_from_endpoint_errors() -> None:
    assert analytics.missing_route(analytics.Answer(404, b'{"error":"No route for POST /x"}', 1))
    assert not analytics.missing_route(analytics.Answer(404, b'{"error":"not found"}', 1))
    assert not analytics.missing_route(analytics.Answer(400, b"No route for", 1))


def test_analytics_smoke_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The whole harness, tiny: 2,000 rows, two runs per query, one short throughput round.

    The filtered request query is the background query here: it exists in every build, so
    the throughput path runs whatever else this build has.
    """
    out = tmp_path / "analytics.json"
    status = analytics.main(
        [
            "--rows", "2000", "--runs", "2", "--rounds", "1", "--duration", "1",
            "--warmup", "1", "--connections", "4", "--interval", "0.5",
            "--background-query", "request_query", "--output", str(out),
        ]
    )  # fmt: skip
    assert status == 0
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["meta"]["rows"] == 2000 and data["meta"]["runs"] == 2
    assert data["goals"] == {"p50_ms": 100.0, "p99_ms": 500.0, "ratio": 0.9}
    queries = {q["name"]: q for q in data["queries"]}
    assert list(queries) == [q.name for q in analytics_queries.QUERIES]
    for name, q in queries.items():
        # "error" means a body of bench/analytics_queries.py no longer fits its endpoint
        assert q["state"] in ("ok", "not_available"), (name, q["error"])
        if q["state"] == "ok":
            assert q["runs"] == 2 and q["p50_ms"] > 0 and q["p99_ms"] >= q["p50_ms"]
            assert isinstance(q["passed"], bool)
            assert f"  {name}" in printed
        else:
            assert q["runs"] == 0 and q["p50_ms"] is None and q["passed"] is None
            assert f"{name:<26} {NOT_AVAILABLE}" in printed
    assert queries["request_query"]["state"] == "ok"
    throughput = data["throughput"]
    assert throughput["state"] == "ok" and throughput["background_query"] == "request_query"
    assert len(throughput["rounds"]) == 1 and throughput["ratio"] > 0
    assert throughput["without"]["requests"] > 0 and throughput["with"]["requests"] > 0
    assert throughput["background_ms"]["runs"] >= 1
    assert "throughput with / without" in printed
    assert report(data) in printed


def test_a_missing_background_endpoint_is_not_a_figure() -> None:
    missing = analytics.Throughput(
        "dashboard_series", "not_available", "POST /v1/dashboard/series/query answered 404"
    )
    results = {"meta": {"connections": 32, "interval_s": 1.0}, "throughput": missing.to_json()}
    lines = throughput_lines(results)
    assert NOT_AVAILABLE in lines[1] and "%" not in lines[1]
