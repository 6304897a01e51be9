"""ClickHouse's HTTP interface served by the embedded engine, for testing the server transport.

No ClickHouse server can be installed here, so :class:`ChdbHttpServer` puts the HTTP protocol
in front of chdb on a real socket. Only the HTTP framing is test code; every statement, format
and parameter is executed by the engine itself:

* the SQL is the ``query`` field (URL or form) followed by the body, or the body alone. An
  ``INSERT ... FORMAT X`` arrives with its data (clickhouse-connect sends the statement and a
  binary Native block together, lz4-compressed); the server takes them apart where ClickHouse's
  parser does (:func:`split_insert`) and streams the data into the engine's insert
  (``send_insert``) in format X. Not through ``query()``: chdb runs a statement the way
  clickhouse-local's multi-query mode does, which ends the inline data of a non-``Values``
  INSERT at the first empty line — two ``\n`` bytes in a row — and drops the rest, and binary
  data has them by chance (a ``UInt8`` 10 twice, a UUID, a length byte before a newline): the
  insert then fails with code 33 or 117, or, unluckily, stores fewer rows;
* ``param_<name>`` fields are handed to chdb's server-side binding unchanged;
* other URL fields are settings, applied with ``SET`` for the request and reset after;
  ``database`` becomes ``USE``; ``default_format`` is the output format;
* request bodies in ``Content-Encoding`` lz4 / zstd / gzip / deflate are decoded (framing);
* errors answer status 500 with ``Code: N. DB::Exception: ...`` and
  ``X-ClickHouse-Exception-Code``, like the server; results carry ``X-ClickHouse-Summary``,
  ``-Format``, ``-Timezone`` and ``-Query-Id``.

The server runs its own event loop in a background thread, and executes requests one at a time
on it (the engine serialises them anyway), so per-request settings cannot leak into another.
Every request is recorded in :attr:`ChdbHttpServer.requests` so tests can look at what the
client really sent.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import re
import threading
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast
from urllib.parse import quote

import lz4.frame
from aiohttp import web
from backports import zstd

# HTTP interface fields that are not settings (ClickHouse's HTTPHandler reserves these).
RESERVED_FIELDS = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "quota_key",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "close_session",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "role",
        "stacktrace",
    }
)
_FORMAT_AT_END = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_ERROR_CODE = re.compile(r"Code: (\d+)\.")
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _lz4_frames(data: bytes) -> bytes:
    """Every concatenated lz4 frame (``lz4.frame.decompress`` silently stops after one)."""
    out: list[bytes] = []
    while data:
        decompressor = lz4.frame.LZ4FrameDecompressor()
        out.append(decompressor.decompress(data))
        data = decompressor.unused_data
    return b"".join(out)


_DECODERS: dict[str, Callable[[bytes], bytes]] = {
    "lz4": _lz4_frames,
    "zstd": zstd.decompress,
    "gzip": gzip.decompress,
    "deflate": zlib.decompress,
}


class _Result(Protocol):
    def bytes(self) -> bytes: ...
    def rows_read(self) -> int: ...
    def bytes_read(self) -> int: ...
    def rows_written(self) -> int: ...
    def bytes_written(self) -> int: ...
    def elapsed(self) -> float: ...


class _InsertResult(Protocol):
    rows_written: int
    bytes_written: int
    elapsed: float


class _Inserter(Protocol):
    def append(self, data: bytes) -> None: ...
    def finish(self) -> _InsertResult: ...
    def cancel(self) -> None: ...


class _Session(Protocol):
    def query(
        self, sql: str | bytes, fmt: str = ..., params: dict[str, str] | None = ...
    ) -> _Result: ...
    def send_insert(self, query: str, fmt: str = ...) -> _Inserter: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class InlineInsert:
    """An ``INSERT ... FORMAT <format>`` request taken apart: statement, format, data."""

    statement: str
    """The INSERT without its FORMAT clause (``INSERT INTO t (a, b) SETTINGS ...``)."""
    format: str
    data: memoryview


@dataclass(slots=True)
class SeenRequest:
    """What the client sent (after decompression), for assertions."""

    method: str
    fields: dict[str, str]
    headers: dict[str, str]
    sql_text: str
    """The statement without binary insert data (decoded leniently)."""
    status: int = 0


@dataclass(slots=True)
class _Request:
    fields: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


class ChdbHttpServer:
    """``ChdbHttpServer(path).start()`` → ``.url`` (with credentials and database); ``.stop()``."""

    def __init__(
        self,
        path: Path,
        *,
        user: str = "gateway",
        password: str = "s3cret p@ss",
        database: str = "gateway_logs",
        record_requests: bool = True,
    ) -> None:
        self.path = Path(path)
        self.record_requests = record_requests
        """Off for a long-running server (the bench's), whose list would only grow."""
        self.user = user
        self.password = password
        self.database = database
        self.requests: list[SeenRequest] = []
        self._session: _Session | None = None
        self._timezone = "UTC"
        self._version = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._port = 0

    @property
    def url(self) -> str:
        credentials = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        return f"http://{credentials}@127.0.0.1:{self._port}/{self.database}"

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self) -> ChdbHttpServer:
        from chdb import session as chdb_session

        self.path.mkdir(parents=True, exist_ok=True)
        session = cast(Callable[[str], _Session], chdb_session.Session)(str(self.path.resolve()))
        self._session = session
        self._version, self._timezone = (
            session.query("SELECT version(), timezone()", "TabSeparated")
            .bytes()
            .decode()
            .strip()
            .split("\t")
        )
        session.query(f"CREATE DATABASE IF NOT EXISTS `{self.database}`", "TabSeparated")
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._serve, args=(ready, failure), name="chdb-http", daemon=True
        )
        self._thread.start()
        ready.wait(10)
        if failure:
            self.stop()
            raise RuntimeError("the test HTTP server did not start") from failure[0]
        return self

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
        self._loop = self._thread = None
        if self._session is not None:
            self._session.close()
            self._session = None

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            app = web.Application(client_max_size=1 << 30)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = web.AppRunner(app, auto_decompress=False, access_log=None)
            loop.run_until_complete(runner.setup())
            site = web.TCPSite(runner, "127.0.0.1", 0)
            loop.run_until_complete(site.start())
            self._port = runner.addresses[0][1]
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(runner.cleanup())
            loop.close()

    # -- one request --------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path == "/ping":
            return web.Response(text="Ok.\n")
        try:
            parsed = await self._read(request)
        except ValueError as exc:
            return self._error(f"Code: 27. DB::Exception: {exc}. (CANNOT_PARSE_INPUT)")
        fields = parsed.fields
        sql = fields.get("query", "").encode()
        if parsed.body:
            sql = sql + b"\n" + parsed.body if sql else parsed.body
        insert = split_insert(sql)
        seen = SeenRequest(
            method=request.method,
            fields=fields,
            headers=dict(request.headers),
            sql_text=_statement_text(sql, insert),
        )
        if self.record_requests:
            self.requests.append(seen)
        if not self._authorised(request, fields):
            seen.status = 516
            return self._error(
                f"Code: 516. DB::Exception: {self._user_of(request, fields)}: Authentication "
                "failed: password is incorrect, or there is no user with such name. "
                "(AUTHENTICATION_FAILED)",
                status=403,
            )
        response = self._execute(sql, insert, fields)
        seen.status = response.status
        return response

    async def _read(self, request: web.Request) -> _Request:
        parsed = _Request(fields=dict(request.query))
        content_type = request.content_type
        if content_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            form = await request.post()
            for name, value in form.items():
                if not isinstance(value, str):
                    raise ValueError("external tables are not supported by the test server")
                parsed.fields[name] = value
            return parsed
        body = await request.read()
        encoding = request.headers.get("Content-Encoding", "").lower()
        if encoding and encoding != "identity":
            decode = _DECODERS.get(encoding)
            if decode is None:
                raise ValueError(f"unknown Content-Encoding {encoding}")
            body = decode(body)
        parsed.body = body
        return parsed

    def _execute(
        self, sql: bytes, insert: InlineInsert | None, fields: Mapping[str, str]
    ) -> web.Response:
        session = self._session
        assert session is not None
        settings = {
            k: v
            for k, v in fields.items()
            if k not in RESERVED_FIELDS and not k.startswith("param_")
        }
        params = {k[len("param_") :]: v for k, v in fields.items() if k.startswith("param_")}
        output_format = fields.get("default_format") or "TabSeparated"
        readonly = settings.pop("readonly", None)
        if readonly is not None:
            # The server applies URL settings to the one query; SET readonly could not be
            # undone on this shared session, so it becomes the statement's SETTINGS clause.
            sql = _with_settings_clause(sql, f"readonly = {_quote(readonly)}")
        applied: list[str] = []
        try:
            session.query(f"USE `{fields.get('database') or 'default'}`", "TabSeparated")
            for name, value in settings.items():
                if not _SETTING_NAME.match(name):
                    raise ValueError(
                        f"Code: 115. DB::Exception: Unknown setting '{name}'. (UNKNOWN_SETTING)"
                    )
                session.query(f"SET {name} = {_quote(value)}", "TabSeparated")
                applied.append(name)
            if insert is None:
                result = session.query(sql, output_format, params=params or None)
                body = result.bytes()
                summary = _summary(
                    result.rows_read(), result.bytes_read(), result.rows_written(),
                    result.bytes_written(), result.elapsed(),
                )  # fmt: skip
            else:
                if params:
                    raise ValueError(
                        "Code: 48. DB::Exception: query parameters with inline INSERT data are "
                        "not supported by the test server. (NOT_IMPLEMENTED)"
                    )
                written = _insert(session, insert)
                body = b""
                summary = _summary(
                    0, 0, written.rows_written, written.bytes_written, written.elapsed
                )
        except Exception as exc:
            # chdb 4.4 prepends a failed query's partial output to the next result: drain it
            with contextlib.suppress(Exception):
                session.query("SELECT 1", "TabSeparated")
            return self._error(str(exc))
        finally:
            for name in applied:
                session.query(f"SET {name} = DEFAULT", "TabSeparated")
        if insert is None and not sql.lstrip()[:6].upper() == b"INSERT":
            match = _FORMAT_AT_END.search(_statement_text(sql, None))
            if match:
                output_format = match.group(1)
        return web.Response(
            body=body,
            content_type="application/octet-stream",
            headers=self._headers(fields)
            | {
                "X-ClickHouse-Format": output_format,
                "X-ClickHouse-Summary": json.dumps(summary, separators=(",", ":")),
            },
        )

    def _headers(self, fields: Mapping[str, str]) -> dict[str, str]:
        return {
            "X-ClickHouse-Server-Display-Name": "chdb-http",
            "X-ClickHouse-Query-Id": fields.get("query_id") or str(uuid.uuid4()),
            "X-ClickHouse-Timezone": self._timezone,
        }

    def _error(self, message: str, status: int = 500) -> web.Response:
        start = message.find("Code: ")
        text = message[start:] if start > 0 else message
        code = _ERROR_CODE.search(text)
        if not code:
            text = f"Code: 1000. DB::Exception: {text}"
        text = f"{text.strip()} (version {self._version})\n"
        return web.Response(
            status=status,
            text=text,
            headers=self._headers({})
            | {"X-ClickHouse-Exception-Code": code.group(1) if code else "1000"},
        )

    # -- auth ---------------------------------------------------------------------------------

    def _credentials(self, request: web.Request, fields: Mapping[str, str]) -> tuple[str, str]:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return user, password
        if "X-ClickHouse-User" in request.headers:
            return (
                request.headers["X-ClickHouse-User"],
                request.headers.get("X-ClickHouse-Key", ""),
            )
        return fields.get("user", "default"), fields.get("password", "")

    def _user_of(self, request: web.Request, fields: Mapping[str, str]) -> str:
        return self._credentials(request, fields)[0]

    def _authorised(self, request: web.Request, fields: Mapping[str, str]) -> bool:
        return self._credentials(request, fields) == (self.user, self.password)


def _quote(value: str) -> str:
    """A setting value as a SQL string literal (the engine converts it to the setting's type)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _with_settings_clause(sql: bytes, clause: str) -> bytes:
    """``sql`` with ``SETTINGS clause`` before its trailing ``FORMAT x`` (if any)."""
    text = sql.decode()
    match = _FORMAT_AT_END.search(text)
    head, tail = (text[: match.start()], text[match.start() :]) if match else (text, "")
    return f"{head.rstrip().rstrip(';')} SETTINGS {clause} {tail}".encode()


def _statement_text(sql: bytes, insert: InlineInsert | None) -> str:
    """The statement part of a request, for :class:`SeenRequest`: no inline insert data."""
    if insert is not None:
        return f"{insert.statement} FORMAT {insert.format}"
    return sql[:65536].decode("utf-8", "replace")


def _summary(
    read_rows: int, read_bytes: int, written_rows: int, written_bytes: int, elapsed: float
) -> dict[str, str]:
    """The ``X-ClickHouse-Summary`` fields (all strings, as the server sends them)."""
    return {
        "read_rows": str(read_rows),
        "read_bytes": str(read_bytes),
        "written_rows": str(written_rows),
        "written_bytes": str(written_bytes),
        "total_rows_to_read": "0",
        "result_rows": "0",
        "result_bytes": "0",
        "elapsed_ns": str(int(elapsed * 1e9)),
    }


def _insert(session: _Session, insert: InlineInsert) -> _InsertResult:
    """The data through the engine's streaming insert, as the server's format parser reads a
    request body: every byte, whatever it contains. Cancelled (nothing committed) on error."""
    inserter = session.send_insert(insert.statement, insert.format)
    try:
        inserter.append(bytes(insert.data))
        return inserter.finish()
    except BaseException:
        with contextlib.suppress(Exception):
            inserter.cancel()
        raise


# -- where an INSERT's inline data starts -------------------------------------------------------

_QUOTES = frozenset(b"'\"`")
_IDENTIFIER = re.compile(rb"[A-Za-z_][A-Za-z0-9_]*")
_NOT_INLINE = frozenset({b"VALUES", b"SELECT", b"WITH", b"WATCH", b"INFILE"})
"""Keywords that, met before FORMAT, mean the data is not inline and raw: ``VALUES`` is SQL
text the engine parses itself, the others read from elsewhere."""


def split_insert(sql: bytes) -> InlineInsert | None:
    """``INSERT ... FORMAT X <data>`` as statement, format and data; None for anything else.

    The statement is scanned token by token (quoted strings and identifiers, comments and
    parentheses skipped, so a ``FORMAT`` inside them does not count) up to the first top-level
    ``FORMAT <name>``; the data starts where ClickHouse's ``ParserInsertQuery`` starts it:
    after the spaces and tabs that follow the name and one line break (``\\r\\n`` or ``\\n``), if
    there is one. Only the statement is scanned, never the data.
    """
    at = _skip_blank(sql, 0)
    if sql[at : at + 6].upper() != b"INSERT":
        return None
    depth = 0
    while at < len(sql):
        char = sql[at]
        if char in _QUOTES:
            at = _skip_quoted(sql, at)
        elif sql.startswith((b"--", b"/*"), at) or char in b" \t\r\n\f":
            at = _skip_blank(sql, at)
        elif char == ord("("):
            depth, at = depth + 1, at + 1
        elif char == ord(")"):
            depth, at = depth - 1, at + 1
        elif (word := _IDENTIFIER.match(sql, at)) is None:
            at += 1
        elif depth > 0:
            at = word.end()
        elif word.group().upper() in _NOT_INLINE:
            return None
        elif word.group().upper() == b"FORMAT" and (name := _format_name(sql, word.end())):
            return InlineInsert(
                statement=sql[: word.start()].decode("utf-8", "replace").strip(),
                format=name[0],
                data=memoryview(sql)[_data_start(sql, name[1]) :],
            )
        else:
            at = word.end()
    return None


def _format_name(sql: bytes, at: int) -> tuple[str, int] | None:
    """The format name after ``FORMAT`` (plain or back-quoted) and where it ends."""
    at = _skip_blank(sql, at)
    if at < len(sql) and sql[at] == ord("`"):
        end = _skip_quoted(sql, at)
        return sql[at + 1 : end - 1].decode("utf-8", "replace"), end
    name = _IDENTIFIER.match(sql, at)
    return (name.group().decode(), name.end()) if name else None


def _data_start(sql: bytes, at: int) -> int:
    while at < len(sql) and sql[at] in b" \t\f":
        at += 1
    if sql.startswith(b"\r", at):
        at += 1
    if sql.startswith(b"\n", at):
        at += 1
    return at


def _skip_blank(sql: bytes, at: int) -> int:
    """Past whitespace and comments (``-- ...`` to the end of the line, ``/* ... */``)."""
    while at < len(sql):
        if sql[at] in b" \t\r\n\f":
            at += 1
        elif sql.startswith(b"--", at):
            end = sql.find(b"\n", at)
            at = len(sql) if end < 0 else end + 1
        elif sql.startswith(b"/*", at):
            end = sql.find(b"*/", at + 2)
            at = len(sql) if end < 0 else end + 2
        else:
            break
    return at


def _skip_quoted(sql: bytes, at: int) -> int:
    """Past the quoted string or identifier opening at ``at`` (backslash escapes and doubled
    quotes inside), or to the end when it is not closed."""
    quote = sql[at]
    at += 1
    while at < len(sql):
        if sql[at] == ord("\\"):
            at += 2
        elif sql[at] != quote:
            at += 1
        elif sql.startswith(bytes((quote, quote)), at):
            at += 2
        else:
            return at + 1
    return len(sql)
