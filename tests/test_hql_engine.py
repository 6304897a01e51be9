"""HQL against the real engine: chdb embedded, and clickhouse-connect over HTTP.

Two organizations' rows are written into ``request_response_rmt`` (the gateway's schema);
every documented example runs unchanged for each, the accepted regression cases run, and
cross-organization attempts return nothing of the other organization.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from logging_pipeline.clickhouse import (
    ChdbTransport,
    ClickHouseConnectTransport,
    LogTransport,
    migrate,
)
from logging_pipeline.hql import (
    DOWNLOAD_MAX_ROWS,
    EXECUTE_MAX_ROWS,
    HqlEngine,
    HqlError,
    hql_settings,
    prepare,
)
from logging_pipeline.hql.policy import row_policy_statements
from logging_pipeline.schema import REQUEST_TABLE
from tests.clickhouse_http import ChdbHttpServer
from tests.hql_cases import ACCEPTED, EXAMPLES

ORG_A = "aaaaaaaa-0000-4000-8000-000000000001"
ORG_B = "bbbbbbbb-0000-4000-8000-000000000002"
NOW = datetime.now(UTC).replace(microsecond=0)


def _row(org: str, n: int, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "organization_id": org,
        "request_id": str(uuid.UUID(int=(0 if org == ORG_A else 1 << 64) + n)),
        "request_created_at": NOW - timedelta(hours=n),
        "status": 200,
        "model": "gpt-4o",
        "request_model": "gpt-4o",
        "provider": "openai",
        "user_id": f"user-{n % 3}",
        "prompt_tokens": 10 * n,
        "completion_tokens": n,
        "cost": 1_000_000 * n,
        "properties": {},
        "updated_at": NOW,
    }
    row.update(values)
    return row


ROWS_A = [
    _row(ORG_A, 1, properties={"Helicone-Session-Id": "sa", "env": "prod"}),
    _row(ORG_A, 2, properties={"Helicone-Session-Id": "sa"}, status=500),
    _row(ORG_A, 3, request_model="gpt-4o-mini", model="gpt-4o-mini", status=429),
    _row(ORG_A, 30, request_model="claude", model="claude"),
    _row(ORG_A, 24 * 40, request_model="old", model="old"),  # older than every example
]
ROWS_B = [
    _row(
        ORG_B,
        n,
        request_model="b-secret-model",
        model="b-secret-model",
        user_id="b-secret-user",
        cost=999_000_000_000,
        properties={"Helicone-Session-Id": "b-secret-session"},
    )
    for n in range(1, 6)
]
B_MARKERS = ("b-secret", ORG_B, "bbbbbbbb")


@dataclass
class Store:
    transport: LogTransport
    engine: HqlEngine
    server: ChdbHttpServer | None


async def _seed(transport: LogTransport) -> None:
    await migrate(transport)
    rows = ROWS_A + ROWS_B
    columns = list(rows[0])
    await transport.insert(REQUEST_TABLE, columns, [[r[c] for c in columns] for r in rows])
    # Another table in the same database: HQL must never reach it.
    await transport.command(
        "CREATE TABLE IF NOT EXISTS secrets (a Int64, s String) ENGINE = MergeTree ORDER BY a"
    )
    await transport.command("INSERT INTO secrets VALUES (1, 'TOPSECRET')")
    # An older version of A's first row: FINAL must hide it.
    old = dict(ROWS_A[0], request_model="stale", updated_at=NOW - timedelta(days=1))
    await transport.insert(REQUEST_TABLE, columns, [[old[c] for c in columns]])


@pytest.fixture(params=["chdb", "clickhouse"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    server: ChdbHttpServer | None = None
    transport: LogTransport
    if request.param == "chdb":
        transport = ChdbTransport(tmp_path / "clickhouse")
    else:
        server = ChdbHttpServer(tmp_path / "server").start()
        transport = ClickHouseConnectTransport(server.url)

    async def run(
        sql: str, params: Mapping[str, Any], settings: Mapping[str, Any] | None
    ) -> list[dict[str, Any]]:
        return await transport.query(sql, params, settings)

    try:
        await _seed(transport)
        yield Store(transport, HqlEngine(run), server)
    finally:
        await transport.close()
        if server is not None:
            server.stop()


def _leaks(rows: list[dict[str, Any]]) -> list[str]:
    text = repr(rows)
    return [marker for marker in B_MARKERS if marker in text]


async def test_documented_examples_run_unchanged(store: Store) -> None:
    results = {
        name: await store.engine.run(sql, ORG_A, EXECUTE_MAX_ROWS) for name, sql in EXAMPLES.items()
    }
    top = results["top_costly"].rows
    assert [r["request_model"] for r in top] == ["claude", "gpt-4o-mini", "gpt-4o", "gpt-4o"]
    assert [r["provider_total_cost"] for r in top] == [30_000_000, 3_000_000, 2_000_000, 1_000_000]
    assert set(top[0]) == {
        "request_created_at",
        "request_model",
        "response_body",
        "provider_total_cost",
    }
    assert results["error_rate"].rows == [
        {"error_count": 2, "total_requests": 3, "error_rate": 0.6667}
    ]
    assert sum(r["dau"] for r in results["dau"].rows) >= 3
    sessions = {r["session_id"]: r for r in results["sessions"].rows}
    # properties['X'] is '' for a missing key, so IS NOT NULL keeps the '' group (README).
    assert sessions["sa"]["requests"] == 2 and sessions["sa"]["total_cost"] == 3_000_000
    assert sessions[""]["requests"] == 2
    by_model = {r["request_model"]: r for r in results["cost_by_model"].rows}
    assert by_model["claude"] == {
        "request_model": "claude",
        "total_cost": 30_000_000,
        "request_count": 1,
    }
    assert "old" not in by_model and "stale" not in by_model
    assert {r["request_model"]: r["count"] for r in results["rest"].rows} == {
        "gpt-4o": 2,
        "gpt-4o-mini": 1,
        "claude": 1,
    }
    download = results["download"].rows
    assert len(download) == 3 and "organization_id" not in download[0]
    assert {"request_model", "provider_total_cost", "total_tokens", "session_id"} <= set(
        download[0]
    )
    usd = {r["request_model"]: r["total_cost_usd"] for r in results["cost_usd"].rows}
    assert usd["claude"] == pytest.approx(0.03)
    for name, result in results.items():
        assert not _leaks(result.rows), name
        assert result.size > 0 and result.as_dict()["rowCount"] == len(result.rows)


async def test_accepted_regression_cases_run(store: Store) -> None:
    for name, sql in ACCEPTED.items():
        result = await store.engine.run(sql, ORG_A, EXECUTE_MAX_ROWS)
        assert not _leaks(result.rows), name
    count = await store.engine.run(ACCEPTED["final"], ORG_A, EXECUTE_MAX_ROWS)
    assert count.rows == [{"count()": len(ROWS_A)}]
    page = await store.engine.run(
        "SELECT request_id FROM request_response_rmt ORDER BY request_id LIMIT 1, 2",
        ORG_A,
        EXECUTE_MAX_ROWS,
    )
    assert [r["request_id"] for r in page.rows] == sorted(r["request_id"] for r in ROWS_A)[1:3]


CROSS_ORG = (
    "SELECT * FROM request_response_rmt",
    "SELECT * FROM request_response_rmt FINAL",
    "SELECT * FROM request_response_rmt WHERE 1 = 1 OR 1 = 1",
    "SELECT * FROM request_response_rmt AS r WHERE r.user_id = 'b-secret-user'",
    "SELECT * FROM request_response_rmt WHERE model = 'b-secret-model'",
    "SELECT count() AS n FROM request_response_rmt WHERE user_id LIKE 'b-secret%'",
    "SELECT a.model, b.model FROM request_response_rmt a "
    "FULL OUTER JOIN request_response_rmt b ON a.user_id = b.user_id",
    "SELECT * FROM (SELECT * FROM request_response_rmt) WHERE model LIKE 'b-%'",
    "SELECT * FROM request_response_rmt WHERE request_id IN "
    "(SELECT request_id FROM request_response_rmt WHERE model = 'b-secret-model')",
    "SELECT * FROM request_response_rmt CROSS JOIN (SELECT max(cost) AS m "
    "FROM request_response_rmt) AS x",
    "SELECT * FROM (SELECT model FROM request_response_rmt UNION ALL "
    "SELECT model FROM request_response_rmt)",
    "SELECT request_response_rmt.* FROM request_response_rmt",
    "SELECT groupArray(model) AS models FROM request_response_rmt",
    "SELECT * FROM request_response_rmt ARRAY JOIN mapValues(properties) AS v",
)


async def test_cross_organization_attempts_return_nothing_of_the_other(store: Store) -> None:
    for sql in CROSS_ORG:
        result = await store.engine.run(sql, ORG_A, EXECUTE_MAX_ROWS)
        assert not _leaks(result.rows), sql
    for sql in (
        "SELECT organization_id FROM request_response_rmt",
        "SELECT * FROM request_response_rmt WHERE organization_id != toUUID("
        "'00000000-0000-0000-0000-000000000000')",
    ):
        with pytest.raises(HqlError) as info:
            await store.engine.run(sql, ORG_A, EXECUTE_MAX_ROWS)
        assert info.value.code == "HQL_SYNTAX_ERROR" and info.value.status == 400
    # And the other way round: B sees its own rows only.
    rows = (
        await store.engine.run(
            "SELECT DISTINCT user_id FROM request_response_rmt", ORG_B, EXECUTE_MAX_ROWS
        )
    ).rows
    assert rows == [{"user_id": "b-secret-user"}]
    unknown = str(uuid.uuid4())
    assert (
        await store.engine.run("SELECT * FROM request_response_rmt", unknown, EXECUTE_MAX_ROWS)
    ).rows == []


async def test_limit_injected_and_clamped(store: Store) -> None:
    many = "SELECT number FROM (SELECT arrayJoin(range(20000)) AS number)"
    assert len((await store.engine.run(many, ORG_A, EXECUTE_MAX_ROWS)).rows) == 100
    clamped = await store.engine.run(many + " LIMIT 50000", ORG_A, EXECUTE_MAX_ROWS)
    assert len(clamped.rows) == EXECUTE_MAX_ROWS
    download = await store.engine.run(many, ORG_A, DOWNLOAD_MAX_ROWS, DOWNLOAD_MAX_ROWS)
    assert len(download.rows) == 20000


async def test_read_only_settings_reach_the_engine(store: Store) -> None:
    # The engine runs the query under max_result_rows: WITH TIES past the LIMIT trips it.
    sql = "SELECT 1 AS x FROM (SELECT arrayJoin(range(50)) AS n) ORDER BY x LIMIT 3 WITH TIES"
    with pytest.raises(HqlError) as info:
        await store.engine.run(sql, ORG_A, 10)
    assert info.value.code == "HQL_RESULT_LIMIT_EXCEEDED" and info.value.status == 503
    # readonly=1 is in force for the statement: the engine refuses to change a setting.
    rows = await store.transport.query(
        "SELECT getSetting('readonly') AS r, getSetting('max_execution_time') AS t",
        {},
        hql_settings(10),
    )
    assert rows[0]["r"] == 1 and float(rows[0]["t"]) == 30
    if store.server is not None:  # over HTTP they are the request's settings
        seen = store.server.requests[-1]
        assert seen.fields["max_result_rows"] == "10" and seen.fields["readonly"] == "1"


async def test_wide_integers_and_decimals_are_json(store: Store) -> None:
    rows = (
        await store.engine.run(
            "SELECT toUInt128('1267650600228229401496703205376') AS big, "
            "toUInt64(18446744073709551615) AS u64, toDecimal64(1.25, 2) AS d, "
            "[toInt128(1), toInt128('-1267650600228229401496703205376')] AS arr",
            ORG_A,
            EXECUTE_MAX_ROWS,
        )
    ).rows
    assert rows == [
        {
            "big": "1267650600228229401496703205376",
            "u64": 18446744073709551615,
            "d": 1.25,
            "arr": [1, "-1267650600228229401496703205376"],
        }
    ]


async def test_engine_errors_are_mapped(store: Store) -> None:
    for sql, code in (
        ("SELECT no_such_column FROM request_response_rmt", "HQL_SYNTAX_ERROR"),
        ("SELECT nosuchfunction(1)", "HQL_SYNTAX_ERROR"),
        ("SELECT 1 +", "HQL_SYNTAX_ERROR"),
    ):
        with pytest.raises(HqlError) as info:
            await store.engine.run(sql, ORG_A, EXECUTE_MAX_ROWS)
        assert info.value.code == code, sql
        assert "organization" not in info.value.details.lower() or "organization_id" in sql


async def test_schema_hides_the_organization(store: Store) -> None:
    schema = await store.engine.schema()
    assert [table["table_name"] for table in schema] == ["request_response_rmt"]
    names = [column["name"] for column in schema[0]["columns"]]
    assert "organization_id" not in names
    for documented in (
        "request_created_at",
        "request_model",
        "status",
        "user_id",
        "cost",
        "provider_total_cost",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "properties",
        "response_body",
    ):
        assert documented in names
    assert {"name", "type", "default_type", "default_expression"} <= set(schema[0]["columns"][0])


OTHER_TABLE_ATTACKS = (
    "SELECT * FROM secrets",
    "SELECT * FROM request_response_rmt a JOIN request_response_rmt b "
    "ON a.request_id = b.request_id, secrets",
    "SELECT * FROM request_response_rmt a JOIN request_response_rmt b USING (request_id), secrets",
    "SELECT * FROM request_response_rmt, secrets",
    "SELECT (SELECT s FROM secrets)",
    "SELECT 1 IN secrets",
    "SELECT 1 IN (secrets)",
    "SELECT in(1, secrets)",
    "SELECT notIn(1, secrets)",
    "SELECT * FROM request_response_rmt WHERE 1 IN (SELECT a FROM secrets)",
    "SELECT * FROM merge(currentDatabase(), 'secrets')",
    "SELECT * FROM merge('secrets')",
    "SELECT * FROM (SELECT * FROM secrets)",
    "SELECT * FROM request_response_rmt JOIN secrets ON 1 = 1",
    "SELECT * FROM request_response_rmt AS r JOIN ((SELECT * FROM secrets)) s ON 1 = 1",
    "SELECT joinGet('secrets', 's', 1)",
    "SELECT hasColumnInTable(currentDatabase(), 'secrets', 's')",
    "SELECT * FROM default.secrets",
    "SELECT * FROM /* x */ secrets",
    "SELECT * FROM `secrets`",
    'SELECT * FROM "secrets"',
    "SELECT * FROM request_response_rmt ARRAY JOIN [1] AS x, secrets",
    "SELECT * FROM view(SELECT * FROM secrets)",
    "SELECT * FROM request_response_rmt WHERE exists(SELECT * FROM secrets)",
    "SELECT * FROM request_response_rmt WHERE 1 = ANY (SELECT a FROM secrets)",
    "SELECT * FROM request_response_rmt UNION ALL SELECT * FROM secrets",
    "SELECT * FROM (SELECT model FROM request_response_rmt UNION ALL SELECT s FROM secrets)",
)


async def test_other_tables_are_out_of_reach(store: Store) -> None:
    for sql in OTHER_TABLE_ATTACKS:
        if "ARRAY JOIN" not in sql:  # there `secrets` is an expression: the engine refuses
            with pytest.raises(HqlError):  # the validator refuses the others...
                prepare(sql, ORG_A, ["model"], 10)
        # ...and, run anyway, none returns the other table's data.
        try:
            result = await store.engine.run(sql, ORG_A, EXECUTE_MAX_ROWS)
        except HqlError as exc:
            assert exc.status == 400, (sql, exc)
            continue
        assert "TOPSECRET" not in repr(result.rows), sql


def test_rewrite_binds_the_org_and_renders_no_comment() -> None:
    prepared = prepare("SELECT 1 -- trailing comment", ORG_A, ["model"], 10)
    assert prepared.sql == "SELECT 1 LIMIT 10"
    prepared = prepare("SELECT model FROM request_response_rmt r -- x", ORG_A, ["model"], 10)
    assert "{hql_org:UUID}" in prepared.sql and ORG_A not in prepared.sql
    assert prepared.params == {"hql_org": ORG_A}
    assert "--" not in prepared.sql


async def test_row_policy_mode_sends_the_org_setting(tmp_path: Path) -> None:
    """With a row-policy user (server only), every HQL query carries the org as the setting
    the policy reads. The test server (chdb) has no custom settings, so it refuses the query;
    what is checked is what the gateway sent."""
    server = ChdbHttpServer(tmp_path / "server").start()
    transport = ClickHouseConnectTransport(server.url)
    try:
        await migrate(transport)
        engine = HqlEngine(transport.query, row_policy=True)
        with pytest.raises(HqlError):
            await engine.run("SELECT count() FROM request_response_rmt", ORG_A, 10)
        sent = server.requests[-1].fields
        assert sent["SQL_helicone_organization_id"] == ORG_A
        assert sent["readonly"] == "1" and sent["max_execution_time"] == "30"
        assert "organization_id = {hql_org:UUID}" in server.requests[-1].sql_text
    finally:
        await transport.close()
        server.stop()


def test_row_policy_statements() -> None:
    statements = row_policy_statements("gateway_logs", "hql_user", "p'w")
    policy = statements[-1]
    assert policy.startswith(
        "CREATE ROW POLICY IF NOT EXISTS hql_org_isolation ON gateway_logs.request_response_rmt"
    )
    assert "getSetting('SQL_helicone_organization_id')" in policy and "TO hql_user" in policy
    assert "BY 'p\\'w'" in statements[0]
    assert "GRANT SELECT ON gateway_logs.request_response_rmt TO hql_user" in statements
    with pytest.raises(ValueError):
        row_policy_statements("db; DROP", "u", "p")
