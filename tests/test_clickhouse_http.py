"""The ClickHouse HTTP stand-in (:mod:`tests.clickhouse_http`) takes inserts apart correctly.

The regression these guard: the stand-in used to hand ``INSERT ... FORMAT Native`` and its
binary data to chdb as one SQL text, and chdb ends a non-``Values`` INSERT's inline data at the
first empty line (two ``\\n`` bytes in a row). Native data holds that pair by chance (a UUID
byte, a length byte followed by a newline, a number), so under the log writer's batches the
stand-in rejected inserts with code 33 or 117, and the writer retried them forever.
"""

from __future__ import annotations

import asyncio
import struct
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from logging_pipeline.clickhouse import ClickHouseConnectTransport, LogStoreError, migrate
from logging_pipeline.schema import REQUEST_TABLE
from tests.clickhouse_http import ChdbHttpServer, split_insert
from tests.test_clickhouse import COLUMNS, as_tuple, make_row

# -- where the data starts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "statement", "fmt", "data"),
    [
        (b"INSERT INTO t (a, b) FORMAT Native\n\n\nrest", "INSERT INTO t (a, b)", "Native",
         b"\n\nrest"),
        (b"INSERT INTO t FORMAT RowBinary\r\n\x0a\x0a", "INSERT INTO t", "RowBinary", b"\n\n"),
        (b"insert into t format TSV  \t1\t2\n", "insert into t", "TSV", b"1\t2\n"),
        (b"INSERT INTO t FORMAT `Native` \n", "INSERT INTO t", "Native", b""),
        (b"INSERT INTO t FORMAT CSV", "INSERT INTO t", "CSV", b""),
        # FORMAT inside strings, identifiers, comments and parentheses is not the clause
        (b"INSERT INTO `format` (`a FORMAT b`, \"FORMAT\") SETTINGS s = 'FORMAT x\\' FORMAT y' "
         b"/* FORMAT z */ -- FORMAT w\nFORMAT JSONEachRow\n{}",
         "INSERT INTO `format` (`a FORMAT b`, \"FORMAT\") SETTINGS s = 'FORMAT x\\' FORMAT y' "
         "/* FORMAT z */ -- FORMAT w", "JSONEachRow", b"{}"),
        (b"INSERT INTO FUNCTION file('x', 'FORMAT', 'a UInt8') FORMAT TSV\n1\n",
         "INSERT INTO FUNCTION file('x', 'FORMAT', 'a UInt8')", "TSV", b"1\n"),
    ],
)  # fmt: skip
def test_split_insert_finds_the_statement_format_and_data(
    sql: bytes, statement: str, fmt: str, data: bytes
) -> None:
    insert = split_insert(sql)
    assert insert is not None
    assert (insert.statement, insert.format, bytes(insert.data)) == (statement, fmt, data)


@pytest.mark.parametrize(
    "sql",
    [
        b"SELECT 1 FORMAT JSON",
        b"INSERT INTO t VALUES (1, 'FORMAT Native\n\n')",
        b"INSERT INTO t SELECT * FROM u FORMAT Native",
        b"INSERT INTO t WITH 1 AS x SELECT x",
        b"INSERT INTO t FROM INFILE 'f' FORMAT CSV",
        b"INSERT INTO t (a) FORMAT",
        b"CREATE TABLE insert_format (a UInt8) ENGINE = Memory",
    ],
)
def test_split_insert_leaves_other_statements_alone(sql: bytes) -> None:
    assert split_insert(sql) is None


# -- through clickhouse-connect ------------------------------------------------------------------


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ChdbHttpServer]:
    started = ChdbHttpServer(tmp_path / "server").start()
    try:
        transport = ClickHouseConnectTransport(started.url)
        try:
            await migrate(transport)
            # ReplacingMergeTree: a merge would fold a duplicate away and hide it.
            await transport.command(f"SYSTEM STOP MERGES {REQUEST_TABLE}")
        finally:
            await transport.close()
        yield started
    finally:
        started.stop()


def _blank_line_row(org: str, n: int) -> tuple[object, ...]:
    """A row whose Native encoding holds ``\\n\\n`` in several columns: a UUID, a String and a
    UInt16 (2570 = 0x0A0A)."""
    request_id = uuid.UUID(bytes=b"\n\n" + uuid.uuid4().bytes[2:])
    return as_tuple(make_row(org, n, request_id=str(request_id), user_id="a\n\nb", status=0x0A0A))


async def test_concurrent_inserts_land_every_row_exactly_once(server: ChdbHttpServer) -> None:
    """Three writers (as several gateway workers' log writers), each sending batches of the
    sizes the writer flushes under load, at once, while readers query: every insert is
    accepted and every row is stored once."""
    org = str(uuid.uuid4())
    sizes = (1_500, 296, 2_200)
    writers = [ClickHouseConnectTransport(server.url) for _ in range(3)]
    sent: list[str] = []

    async def write(transport: ClickHouseConnectTransport, writer: int) -> None:
        for batch, size in enumerate(sizes):
            first = (writer * 10 + batch) * 10_000
            rows = [_blank_line_row(org, first)]
            rows += [as_tuple(make_row(org, first + n)) for n in range(1, size)]
            await transport.insert(REQUEST_TABLE, COLUMNS, rows)
            sent.extend(str(row[COLUMNS.index("request_id")]) for row in rows)

    async def read(transport: ClickHouseConnectTransport) -> None:
        for _ in range(10):
            assert await transport.query("SELECT 1 AS one") == [{"one": 1}]
            await asyncio.sleep(0)

    try:
        await asyncio.gather(
            *(write(t, i) for i, t in enumerate(writers)), *(read(t) for t in writers)
        )
        counts = await writers[0].query(
            f"SELECT toString(request_id) AS id, count() AS n FROM {REQUEST_TABLE} "
            "WHERE organization_id = {org:UUID} GROUP BY request_id",
            {"org": org},
        )
        blank = await writers[0].query(
            f"SELECT count() AS n FROM {REQUEST_TABLE} "
            "WHERE organization_id = {org:UUID} AND user_id = {u:String} AND status = 2570",
            {"org": org, "u": "a\n\nb"},
        )
    finally:
        for transport in writers:
            await transport.close()
    assert len(sent) == 3 * sum(sizes)
    assert {row["id"]: row["n"] for row in counts} == dict.fromkeys(sent, 1)
    assert blank == [{"n": 9}]  # the values themselves arrived intact


async def test_a_rejected_insert_stores_nothing_and_the_server_goes_on(
    server: ChdbHttpServer,
) -> None:
    """Truncated Native data is the engine's error 33, as from a server, and commits nothing;
    the next insert, through the same connection pool, works."""
    table = "stand_in_numbers"
    transport = ClickHouseConnectTransport(server.url)
    try:
        await transport.command(f"CREATE TABLE {table} (a UInt16) ENGINE = MergeTree ORDER BY a")
        # One Native block: 1 column, 3 rows, "a" UInt16, then the values (the last cut short).
        block = b"\x01\x03\x01a\x06UInt16" + struct.pack("<HH", 10, 0x0A0A) + b"\x0a"
        async with aiohttp.ClientSession() as http:
            url = server.url.rsplit("@", 1)[1].split("/", 1)[0]
            async with http.post(
                f"http://{url}/",
                params={"database": server.database},
                data=f"INSERT INTO {table} FORMAT Native\n".encode() + block,
                headers={"X-ClickHouse-User": server.user, "X-ClickHouse-Key": server.password},
            ) as response:
                text = await response.text()
                assert response.status == 500
                assert response.headers["X-ClickHouse-Exception-Code"] == "33"
                assert "Code: 33." in text
        assert await transport.query(f"SELECT count() AS n FROM {table}") == [{"n": 0}]
        await transport.insert(table, ("a",), [(10,), (0x0A0A,), (0x0A,)])
        assert await transport.query(f"SELECT a FROM {table} ORDER BY a") == [
            {"a": 10}, {"a": 10}, {"a": 0x0A0A}
        ]  # fmt: skip
        with pytest.raises(LogStoreError, match="UNKNOWN_TABLE"):
            await transport.insert("no_such_table", ("a",), [(1,)])
    finally:
        await transport.close()
