"""The request-log transports: one storage suite run through both of them.

``chdb`` is the embedded engine directly; ``clickhouse`` is clickhouse-connect's async client
talking HTTP to :class:`tests.clickhouse_http.ChdbHttpServer`, which runs every statement on the
same engine. Both must give the same answers, values included.
"""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateway.logconfig import log_config
from gateway.settings import Settings
from logging_pipeline.clickhouse import (
    ChdbTransport,
    ClickHouseConnectTransport,
    LogStoreError,
    LogTransport,
    migrate,
    transport_from_config,
)
from logging_pipeline.clickhouse.connect_transport import ServerAddress
from logging_pipeline.clickhouse.values import bind_text, parse_type
from logging_pipeline.schema import INSERT_COLUMNS, MIGRATIONS, MIGRATIONS_TABLE, REQUEST_TABLE
from tests.clickhouse_http import ChdbHttpServer

HOSTILE = "x'; DROP TABLE request_response_rmt; --\\' \\\" \"q\" `b` \t\n\r\\N é😀 {p:String}"
"""Quotes, backslashes, an escape-looking \\N, a placeholder and a statement: all just data."""

COLUMNS = (*INSERT_COLUMNS, "assets", "scores")
"""Every column the writer fills, plus the Array and the Float64 map."""


@dataclass
class Backend:
    transport: LogTransport
    server: ChdbHttpServer | None = None


async def _open(kind: str, tmp_path: Path) -> Backend:
    if kind == "chdb":
        return Backend(ChdbTransport(tmp_path / "clickhouse"))
    server = ChdbHttpServer(tmp_path / "server").start()
    return Backend(ClickHouseConnectTransport(server.url), server)


async def _shut(backend: Backend) -> None:
    try:
        await backend.transport.close()
    finally:
        if backend.server is not None:
            backend.server.stop()


@pytest.fixture(params=["chdb", "clickhouse"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    opened = await _open(request.param, tmp_path)
    try:
        yield opened
    finally:
        await _shut(opened)


@pytest.fixture
async def store(backend: Backend) -> LogTransport:
    await migrate(backend.transport)
    return backend.transport


# -- rows ----------------------------------------------------------------------------------------


def make_row(org: str, n: int, **overrides: Any) -> dict[str, Any]:
    created = datetime(2025, 3, 4, 5, 6, 7, 123000, tzinfo=UTC) + timedelta(seconds=n)
    row: dict[str, Any] = {
        "organization_id": org,
        "request_id": str(uuid.uuid4()),
        "request_created_at": created,
        "response_created_at": created + timedelta(milliseconds=1500) if n % 2 == 0 else None,
        "latency": 1500 if n % 2 == 0 else None,
        "time_to_first_token": 40 if n % 2 == 0 else None,
        "status": 200 + n,
        "model": "gpt-4o-mini",
        "request_model": "gpt-4o-mini",
        "response_model": "gpt-4o-mini-2024-07-18",
        "model_override": "",
        "provider": "openai",
        "target_url": "https://api.openai.com/v1/chat/completions",
        "request_path": "/v1/chat/completions",
        "user_id": f"user-{n}",
        "api_key_id": "key-1",
        "country_code": "FR" if n % 2 == 0 else None,
        "prompt_tokens": 10 * n if n % 2 == 0 else None,
        "completion_tokens": 5 if n % 2 == 0 else None,
        "prompt_cache_write_tokens": 1,
        "prompt_cache_read_tokens": 2,
        "prompt_audio_tokens": 0,
        "completion_audio_tokens": 0,
        "reasoning_tokens": 2**40,  # beyond 32 bits
        "tokens_estimated": n % 2 == 1,
        "cost": 18_000_000_000_000_000_000 if n == 0 else None,  # UInt64 beyond Int64
        "cost_known": n % 2 == 0,
        "properties": {
            "Helicone-Session-Id": f"s-{n}",
            "clé": "valeur — ünïcødé 😀",
            "quote'\"\\": "back\\slash\nnew line",
        },
        "cache_enabled": n == 0,
        "cache_reference_id": str(uuid.uuid4()) if n == 0 else None,
        "is_stream": n % 2 == 1,
        "storage_location": "local",
        "request_size_bytes": 1234,
        "response_size_bytes": 0,
        "updated_at": created + timedelta(seconds=2),
        "body_token": 2**64 - 1 - n,
        "wire_format": "anthropic" if n == 0 else "openai",
        "attempts": '[{"source": "gpt-4o-mini/openai/credits", "status": 429}]' if n == 0 else "",
        "cache_saved_cost": 1_500 if n == 0 else 0,
        "cache_saved_latency": 830 if n == 0 else 0,
        "assets": ["a.png", "ü/b.jpg", ""] if n == 0 else [],
        "scores": {"quality": 0.75, "élan": -1.5} if n == 0 else {},
        "prompt_id": "welcome-bot" if n == 0 else "",
        "prompt_version": "0190a000-0000-7000-8000-0000000000cc" if n == 0 else "",
        "prompt_inputs": '{"name": "Zoë", "n": 3}' if n == 0 else "",
        "prompt_environment": "production" if n == 0 else "",
    }
    row.update(overrides)
    return row


def as_tuple(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[c] for c in COLUMNS)


def select_all(where: str = "organization_id = {org:UUID}") -> str:
    return (
        f"SELECT {', '.join(COLUMNS)}, total_tokens, provider_total_cost, session_id "
        f"FROM {REQUEST_TABLE} FINAL WHERE {where} ORDER BY request_created_at"
    )


# -- the shared storage suite --------------------------------------------------------------------


async def test_migrate_twice_applies_once(backend: Backend) -> None:
    transport = backend.transport
    assert await migrate(transport) == [version for version, _ in MIGRATIONS]
    assert await migrate(transport) == []
    tables = await transport.query(
        "SELECT name FROM system.tables WHERE database = currentDatabase() "
        "AND name IN {names:Array(String)} ORDER BY name",
        {"names": [REQUEST_TABLE, MIGRATIONS_TABLE]},
    )
    assert [t["name"] for t in tables] == sorted([REQUEST_TABLE, MIGRATIONS_TABLE])
    recorded = await transport.query(
        f"SELECT version, applied_at FROM {MIGRATIONS_TABLE} FINAL ORDER BY version"
    )
    assert [r["version"] for r in recorded] == [version for version, _ in MIGRATIONS]
    assert recorded[0]["applied_at"].tzinfo is UTC


async def test_a_migration_another_process_went_past_is_skipped(backend: Backend) -> None:
    """Two workers migrating one server at once: the slower one read the versions before the
    other recorded any, and its backfills of old versions now meet a table that later
    migrations changed (0010 drops the columns 0008's backfill names). Each such failure
    finds its version recorded and is skipped; the later versions run (idempotently) again."""
    transport = backend.transport
    assert await migrate(transport) == [version for version, _ in MIGRATIONS]  # the faster one

    class Behind:
        """The slower process: its first read of the recorded versions is from before."""

        def __init__(self) -> None:
            self.reads = 0

        async def query(self, sql: str, params: Any = None) -> Any:
            if sql.startswith(f"SELECT version FROM {MIGRATIONS_TABLE}"):
                self.reads += 1
                if self.reads == 1:
                    return [{"version": v} for v, _ in MIGRATIONS[:7]]  # up to 0007
            return await transport.query(sql, params)

        async def command(self, sql: str, params: Any = None) -> None:
            await transport.command(sql, params)

    behind = Behind()
    applied = await migrate(behind)  # type: ignore[arg-type]
    assert behind.reads > 1, "a backfill failed and the records were read again"
    assert "0008_hourly_rollups" not in applied and applied[-1] == MIGRATIONS[-1][0]
    recorded = await transport.query(f"SELECT version FROM {MIGRATIONS_TABLE} FINAL")
    assert sorted(r["version"] for r in recorded) == sorted(v for v, _ in MIGRATIONS)

    class Fresh(Behind):
        """A failure of a version nobody recorded is still an error."""

        async def query(self, sql: str, params: Any = None) -> Any:
            if sql.startswith(f"SELECT version FROM {MIGRATIONS_TABLE}"):
                return [{"version": v} for v, _ in MIGRATIONS[:7]]
            return await transport.query(sql, params)

    with pytest.raises(LogStoreError):
        await migrate(Fresh())  # type: ignore[arg-type]


async def test_insert_every_column_type_and_query_back(store: LogTransport) -> None:
    org = str(uuid.uuid4())
    rows = [make_row(org, n) for n in range(3)]
    await store.insert(REQUEST_TABLE, COLUMNS, [as_tuple(r) for r in rows])

    found = await store.query(select_all(), {"org": org})

    assert len(found) == 3
    for got, want in zip(found, rows, strict=True):
        derived = {k: got.pop(k) for k in ("total_tokens", "provider_total_cost", "session_id")}
        assert got == want
        assert derived == {
            "total_tokens": (want["prompt_tokens"] or 0) + (want["completion_tokens"] or 0),
            "provider_total_cost": want["cost"] or 0,
            "session_id": want["properties"]["Helicone-Session-Id"],
        }
    first = found[0]
    assert isinstance(first["tokens_estimated"], bool)
    assert isinstance(first["status"], int) and not isinstance(first["status"], bool)
    assert first["request_created_at"].tzinfo is UTC
    assert isinstance(first["organization_id"], str)


async def test_parameters_bind_every_type(store: LogTransport) -> None:
    moment = datetime(2025, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    uid = uuid.uuid4()
    params: dict[str, Any] = {
        "s": HOSTILE,
        "u": uid,
        "us": str(uid),
        "t": moment,
        "naive": moment.replace(tzinfo=None),
        "i": -(2**62),
        "big": 2**64 - 1,
        "f": 0.1,
        "b": True,
        "n": None,
        "arr": ["a'b", "c\\d", HOSTILE],
        "m": {"k'ey": "v\\al", "ü": HOSTILE},
        "d": date(2025, 1, 2),
        "dec": Decimal("12.345"),
    }
    got = await store.query(
        "SELECT {s:String} AS s, {u:UUID} AS u, {us:UUID} AS us, "
        "{t:DateTime64(3, 'UTC')} AS t, {naive:DateTime64(3, 'UTC')} AS naive, "
        "{i:Int64} AS i, {big:UInt64} AS big, {f:Float64} AS f, {b:Bool} AS b, "
        "{n:Nullable(String)} AS n, {arr:Array(String)} AS arr, "
        "{m:Map(String, String)} AS m, {d:Date} AS d, {dec:Decimal(10, 3)} AS dec",
        params,
    )
    assert got == [{
        **params,
        "u": str(uid),
        "naive": moment,
    }]


async def test_final_keeps_the_newest_version_of_a_reinserted_row(store: LogTransport) -> None:
    org = str(uuid.uuid4())
    row = make_row(org, 0)
    await store.insert(REQUEST_TABLE, COLUMNS, [as_tuple(row)])
    newer = {**row, "status": 499, "updated_at": row["updated_at"] + timedelta(seconds=5)}
    older = {**row, "status": 100, "updated_at": row["updated_at"] - timedelta(seconds=5)}
    await store.insert(REQUEST_TABLE, COLUMNS, [as_tuple(newer)])
    await store.insert(REQUEST_TABLE, COLUMNS, [as_tuple(older)])

    found = await store.query(
        f"SELECT request_id, status, updated_at FROM {REQUEST_TABLE} FINAL "
        "WHERE organization_id = {org:UUID} AND request_id = {id:UUID}",
        {"org": org, "id": row["request_id"]},
    )
    assert found == [
        {"request_id": row["request_id"], "status": 499, "updated_at": newer["updated_at"]}
    ]


async def test_hostile_values_are_data(backend: Backend, store: LogTransport) -> None:
    org = str(uuid.uuid4())
    row = make_row(org, 1, user_id=HOSTILE, properties={HOSTILE: HOSTILE})
    await store.insert(REQUEST_TABLE, COLUMNS, [as_tuple(row)])

    found = await store.query(
        f"SELECT user_id, properties FROM {REQUEST_TABLE} FINAL "
        "WHERE organization_id = {org:UUID} AND user_id = {user:String} "
        "AND properties[{key:String}] = {user:String}",
        {"org": org, "user": HOSTILE, "key": HOSTILE},
    )
    assert found == [{"user_id": HOSTILE, "properties": {HOSTILE: HOSTILE}}]
    assert await store.query(
        "SELECT count() AS n FROM system.tables WHERE name = {t:String}", {"t": REQUEST_TABLE}
    ) == [{"n": 1}]
    if backend.server is not None:  # the value travelled as a parameter, never as SQL
        statements = [r.sql_text for r in backend.server.requests]
        assert statements and not any("DROP TABLE" in sql for sql in statements)
        assert any(
            r.fields.get("param_user") == bind_text(HOSTILE) for r in backend.server.requests
        )


@pytest.mark.parametrize(
    ("sql", "params", "code", "text"),
    [
        ("SELEC 1", None, 62, "Syntax error"),
        ("SELECT * FROM no_such_table_here", None, 60, "no_such_table_here"),
        ("SELECT {n:UInt8} AS n", {"n": "not a number"}, None, "query parameter 'n'"),
        ("SELECT {missing:String} AS m", {"other": 1}, None, "missing"),
        ("SELECT throwIf(1, 'boom from the engine')", None, 395, "boom from the engine"),
        (  # fails after whole blocks were formatted: none of them may leak into the next result
            "SELECT number, throwIf(number = 5000, 'late boom') FROM numbers(10000) "
            "SETTINGS max_block_size = 1000, max_threads = 1",
            None, 395, "late boom",
        ),
    ],
)
async def test_errors_raise_log_store_error_with_the_engine_message(
    store: LogTransport, sql: str, params: dict[str, Any] | None, code: int | None, text: str
) -> None:
    with pytest.raises(LogStoreError) as caught:
        await store.query(sql, params)
    message = str(caught.value)
    assert text in message
    assert "DB::Exception" in message
    if code is not None:
        assert f"Code: {code}." in message
    assert await store.query("SELECT 1 AS ok") == [{"ok": 1}]  # still usable


async def test_failed_insert_and_command_raise_log_store_error(store: LogTransport) -> None:
    with pytest.raises(LogStoreError, match="no_such_table"):
        await store.insert("no_such_table", ("a",), [(1,)])
    with pytest.raises(LogStoreError, match="Syntax error"):
        await store.command("CREATE TABEL nope (a Int8) ENGINE = Memory")
    with pytest.raises(LogStoreError, match="cannot bind"):
        await store.query("SELECT {x:String}", {"x": object()})


async def test_commands_take_parameters(store: LogTransport) -> None:
    await store.command(
        "CREATE TABLE IF NOT EXISTS notes (id UInt32, body String) ENGINE = MergeTree ORDER BY id"
    )
    await store.command("INSERT INTO notes SELECT 1, {body:String}", {"body": HOSTILE})
    await store.command("INSERT INTO notes SELECT 2, {body:String}", {"body": "second"})
    await store.command(
        "ALTER TABLE notes DELETE WHERE body = {b:String} SETTINGS mutations_sync = 1",
        {"b": "second"},
    )
    assert await store.query("SELECT id, body FROM notes ORDER BY id") == [
        {"id": 1, "body": HOSTILE}
    ]


async def test_empty_insert_and_empty_result(store: LogTransport) -> None:
    await store.insert(REQUEST_TABLE, COLUMNS, [])
    assert await store.query(select_all(), {"org": str(uuid.uuid4())}) == []


async def test_concurrent_calls(store: LogTransport) -> None:
    org = str(uuid.uuid4())

    async def write(n: int) -> None:
        await store.insert(REQUEST_TABLE, COLUMNS, [as_tuple(make_row(org, n))])

    async def read(n: int) -> list[dict[str, Any]]:
        return await store.query("SELECT {n:Int64} AS n", {"n": n})

    results = await asyncio.gather(*(write(n) for n in range(10)), *(read(n) for n in range(20)))
    assert results[10:] == [[{"n": n}] for n in range(20)]
    count = await store.query(
        f"SELECT count() AS c FROM {REQUEST_TABLE} FINAL WHERE organization_id = {{org:UUID}}",
        {"org": org},
    )
    assert count == [{"c": 10}]


async def test_close_is_clean_and_idempotent(backend: Backend, store: LogTransport) -> None:
    await store.query("SELECT 1")
    await store.close()
    await store.close()
    with pytest.raises(LogStoreError, match="closed"):
        await store.query("SELECT 1")
    with pytest.raises(LogStoreError, match="closed"):
        await store.insert(REQUEST_TABLE, COLUMNS, [as_tuple(make_row(str(uuid.uuid4()), 0))])


# -- both transports agree -----------------------------------------------------------------------


async def _script(transport: LogTransport) -> list[Any]:
    """Inserts and queries whose results must be identical, value for value, on both."""
    org = "0b0e7d4c-9a51-4b43-8a3b-1f2e3d4c5b6a"
    fixed = [
        make_row(org, n, request_id=f"00000000-0000-4000-8000-00000000000{n}",
                 cache_reference_id=None)
        for n in range(3)
    ]
    fixed[1]["request_created_at"] = datetime(2025, 3, 4, 5, 6, 9, 123456, tzinfo=UTC)
    results: list[Any] = [await migrate(transport)]
    await transport.insert(REQUEST_TABLE, COLUMNS, [as_tuple(r) for r in fixed])
    results.append(await transport.query(select_all(), {"org": org}))
    results.append(await transport.query(
        "SELECT 0.1::Float32 AS f32, 1::Float64 AS one, nan AS nan, -inf AS ninf, "
        "toDecimal64(1.5, 3) AS dec, toDate('2025-01-02') AS d, "
        "toDateTime('2025-01-02 03:04:05', 'Europe/Paris') AS paris, "
        "toDateTime64('2025-01-02 03:04:05.678', 3, 'Asia/Tokyo') AS tokyo, "
        "toUUID('61f0c404-5cb3-11e7-907b-a6006ad3dba0') AS u, "
        "CAST(NULL, 'Nullable(UUID)') AS nu, [1, 2, 3]::Array(UInt8) AS small, "
        "map('a', [1.5, 2.5]) AS nested, tuple(1, 'x') AS tup, toInt128(2) AS i128, "
        "toLowCardinality('lc') AS lc, true AS yes, "
        "CAST('b', 'Enum8(\\'a\\' = 1, \\'b\\' = 2)') AS e, "
        "toIPv4('10.0.0.1') AS ip4"
    ))
    results.append(await transport.query(
        f"SELECT user_id, status FROM {REQUEST_TABLE} FINAL "
        "WHERE organization_id = {org:UUID} AND request_created_at >= {since:DateTime64(3, 'UTC')} "
        "AND status IN {statuses:Array(Int64)} ORDER BY user_id",
        {"org": org, "since": fixed[1]["request_created_at"], "statuses": [201, 202]},
    ))
    results.append(await transport.query(
        f"SELECT properties, scores, assets FROM {REQUEST_TABLE} FINAL "
        "WHERE request_id = {id:UUID}", {"id": fixed[0]["request_id"]}
    ))
    return results


async def test_both_transports_return_identical_values(tmp_path: Path) -> None:
    outcomes = []
    for kind in ("chdb", "clickhouse"):
        opened = await _open(kind, tmp_path / kind)
        try:
            outcomes.append(await _script(opened.transport))
        finally:
            await _shut(opened)
    embedded, server = outcomes
    assert repr(embedded) == repr(server)  # repr: types (bool/int, Decimal scale) and nan too
    probe = embedded[2][0]
    assert math.isnan(probe.pop("nan"))
    assert probe == {
        "f32": 0.10000000149011612,
        "one": 1.0,
        "ninf": -math.inf,
        "dec": Decimal("1.500"),
        "d": date(2025, 1, 2),
        "paris": datetime(2025, 1, 2, 2, 4, 5, tzinfo=UTC),
        "tokyo": datetime(2025, 1, 1, 18, 4, 5, 678000, tzinfo=UTC),
        "u": "61f0c404-5cb3-11e7-907b-a6006ad3dba0",
        "nu": None,
        "small": [1, 2, 3],
        "nested": {"a": [1.5, 2.5]},
        "tup": [1, "x"],
        "i128": 2,
        "lc": "lc",
        "yes": True,
        "e": "b",
        "ip4": "10.0.0.1",
    }
    assert embedded[1][1]["request_created_at"] == datetime(2025, 3, 4, 5, 6, 9, 123000, tzinfo=UTC)


# -- chdb specifics ------------------------------------------------------------------------------


async def test_chdb_batch_in_one_array_stores_what_one_line_per_row_stored(
    tmp_path: Path,
) -> None:
    """``json_rows`` writes the batch as one JSON array cut open (rows between commas): each
    row's text is what one ``orjson.dumps`` per row gave, and the engine stores exactly what it
    stored from those rows one per line (the form before)."""
    import orjson

    from logging_pipeline.clickhouse.values import _JSON_OPTIONS, _json_default, json_rows

    transport = ChdbTransport(tmp_path / "clickhouse")
    try:
        await migrate(transport)
        batched, lined = str(uuid.uuid4()), str(uuid.uuid4())
        wanted = [
            make_row(batched, n, user_id=HOSTILE, properties={HOSTILE: HOSTILE, "k": "v"})
            if n == 3 else make_row(batched, n)
            for n in range(4)
        ]  # fmt: skip
        rows = [as_tuple(row) for row in wanted]
        text = json_rows(COLUMNS, rows)
        each = [orjson.dumps(list(r), default=_json_default, option=_JSON_OPTIONS) for r in rows]
        assert text == b",".join(each) + b"\n"
        await transport.insert(REQUEST_TABLE, COLUMNS, rows)
        # The same rows (another organization), one per line, straight into the engine.
        old = [as_tuple({**row, "organization_id": lined}) for row in wanted]
        lines = b"".join(
            orjson.dumps(list(r), default=_json_default, option=_JSON_OPTIONS) + b"\n"
            for r in old
        )
        statement = f"INSERT INTO {REQUEST_TABLE} ({', '.join(COLUMNS)})"

        def insert_lines(session: Any) -> None:
            with session.send_insert(statement, "JSONCompactEachRow") as inserter:
                inserter.append(lines)
                inserter.finish()

        await transport._call(insert_lines)
        got_batched = await transport.query(select_all(), {"org": batched})
        got_lined = await transport.query(select_all(), {"org": lined})
        assert len(got_batched) == 4
        for row in got_lined:
            row["organization_id"] = batched
        assert repr(got_batched) == repr(got_lined)
    finally:
        await transport.close()


async def test_chdb_does_not_block_the_event_loop(tmp_path: Path) -> None:
    transport = ChdbTransport(tmp_path / "clickhouse")
    try:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        started = time.monotonic()
        await transport.query("SELECT sleepEachRow(0.1) FROM numbers(5)")
        elapsed = time.monotonic() - started
        ticker.cancel()
        assert elapsed >= 0.4
        assert ticks >= 10  # the loop kept running while the engine slept
    finally:
        await transport.close()


async def test_chdb_second_path_fails_clearly_then_works_after_close(tmp_path: Path) -> None:
    first = ChdbTransport(tmp_path / "one")
    second = ChdbTransport(tmp_path / "two")
    try:
        await first.query("SELECT 1")
        with pytest.raises(LogStoreError, match="one engine per process"):
            await second.query("SELECT 1")
        same_path = ChdbTransport(tmp_path / "one")
        assert await same_path.query("SELECT 2 AS x") == [{"x": 2}]
        await same_path.close()
    finally:
        await first.close()
    try:
        assert await second.query("SELECT 3 AS x") == [{"x": 3}]
    finally:
        await second.close()


async def test_chdb_data_survives_reopening(tmp_path: Path) -> None:
    org = str(uuid.uuid4())
    transport = ChdbTransport(tmp_path / "clickhouse")
    await migrate(transport)
    await transport.insert(REQUEST_TABLE, COLUMNS, [as_tuple(make_row(org, 0))])
    await transport.close()
    reopened = ChdbTransport(tmp_path / "clickhouse")
    try:
        assert await migrate(reopened) == []
        rows = await reopened.query(select_all(), {"org": org})
        assert len(rows) == 1
    finally:
        await reopened.close()


async def test_chdb_close_joins_its_thread(tmp_path: Path) -> None:
    """close() returns only once the engine's worker thread has ended: nothing keeps running
    (or holding the data directory) after the transport is closed."""
    before = set(threading.enumerate())
    transport = ChdbTransport(tmp_path / "clickhouse")
    await transport.query("SELECT 1")
    started = set(threading.enumerate()) - before
    assert started
    await transport.close()
    assert [t.name for t in started if t.is_alive()] == []


async def test_chdb_close_without_use(tmp_path: Path) -> None:
    transport = ChdbTransport(tmp_path / "never-opened")
    await transport.close()
    assert not (tmp_path / "never-opened").exists()


# -- clickhouse-connect specifics ----------------------------------------------------------------


def test_server_address_parsing() -> None:
    a = ServerAddress.parse("http://us%40er:p%3Ass%2Fw@db.example:9000/logs%5Fdb")
    assert (a.interface, a.host, a.port, a.username, a.password, a.database) == (
        "http", "db.example", 9000, "us@er", "p:ss/w", "logs_db"
    )
    b = ServerAddress.parse("https://ch.example")
    assert (b.port, b.username, b.password, b.database) == (8443, "default", "", None)
    assert ServerAddress.parse("http://h/").database is None
    assert ServerAddress.parse("http://h").port == 8123
    for bad in ("clickhouse://h:9000", "http:///db", "http://h/a/b"):
        with pytest.raises(ValueError):
            ServerAddress.parse(bad)
    assert "p:ss" not in repr(ClickHouseConnectTransport("http://u:p:ss@h:1/d"))


async def test_clickhouse_wrong_password(tmp_path: Path) -> None:
    server = ChdbHttpServer(tmp_path / "server").start()
    transport = ClickHouseConnectTransport(server.url.replace("s3cret", "wrong"))
    try:
        with pytest.raises(LogStoreError, match="AUTHENTICATION_FAILED"):
            await transport.query("SELECT 1")
    finally:
        await transport.close()
        server.stop()


async def test_clickhouse_describes_a_table_once(tmp_path: Path) -> None:
    server = ChdbHttpServer(tmp_path / "server").start()
    transport = ClickHouseConnectTransport(server.url)
    try:
        await migrate(transport)
        org = str(uuid.uuid4())
        for n in range(3):
            await transport.insert(REQUEST_TABLE, COLUMNS, [as_tuple(make_row(org, n))])
        describes = [r for r in server.requests if r.sql_text.startswith("DESCRIBE")]
        assert len(describes) == 1
        assert len(await transport.query(select_all(), {"org": org})) == 3
    finally:
        await transport.close()
        server.stop()


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_clickhouse_unreachable_raises_log_store_error(tmp_path: Path) -> None:
    port = _unused_port()
    transport = ClickHouseConnectTransport(f"http://gateway:s3cret%20p%40ss@127.0.0.1:{port}/gateway_logs")
    try:
        with pytest.raises(LogStoreError):
            await migrate(transport)  # the writer spills on this
    finally:
        await transport.close()


# -- settings ------------------------------------------------------------------------------------


def transport_from_settings(settings: Settings) -> LogTransport:
    """The log transport the gateway opens for ``settings``."""
    return transport_from_config(log_config(settings).log_store)


def test_transport_from_settings(tmp_path: Path) -> None:
    embedded = transport_from_settings(Settings(data_dir=tmp_path, clickhouse_url=None))
    assert isinstance(embedded, ChdbTransport) and embedded.name == "chdb"
    assert embedded.path == tmp_path / "clickhouse"
    server = transport_from_settings(
        Settings(data_dir=tmp_path, clickhouse_url="http://u:p@ch:8123/gw")
    )
    assert isinstance(server, ClickHouseConnectTransport) and server.name == "clickhouse"
    assert server.address.database == "gw"
    assert isinstance(embedded, LogTransport) and isinstance(server, LogTransport)


def test_parse_type() -> None:
    nested = "Array(Tuple(a String, b DateTime64(3, 'UTC')))"
    assert parse_type(f"Map(LowCardinality(String), {nested})") == (
        "Map", ["LowCardinality(String)", nested]
    )
    assert parse_type("Enum8('a,b' = 1, 'c)' = 2)") == ("Enum8", ["'a,b' = 1", "'c)' = 2"])

