"""ClickHouse's HTTP interface served by the embedded engine, for testing the server transport.

No ClickHouse server can be installed here, so :class:`ChdbHttpServer` puts the HTTP protocol
in front of chdb on a real socket. Only the HTTP framing is test code; every statement, format
and parameter is executed by the engine itself:

* the SQL is the ``query`` field (URL or form) followed by the body, or the body alone — an
  ``INSERT ... FORMAT Native`` arrives with its binary data and the engine parses it;
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
RESERVED_FIELDS = frozenset({
    "query", "database", "default_format", "user", "password", "quota_key", "query_id",
    "session_id", "session_timeout", "session_check", "close_session", "compress", "decompress",
    "buffer_size", "wait_end_of_query", "client_protocol_version", "role", "stacktrace",
})
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


class _Session(Protocol):
    def query(
        self, sql: str | bytes, fmt: str = ..., params: dict[str, str] | None = ...
    ) -> _Result: ...
    def close(self) -> None: ...


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
    ) -> None:
        self.path = Path(path)
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
            .bytes().decode().strip().split("\t")
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
        seen = SeenRequest(
            method=request.method,
            fields=fields,
            headers=dict(request.headers),
            sql_text=_statement_text(sql),
        )
        self.requests.append(seen)
        if not self._authorised(request, fields):
            seen.status = 516
            return self._error(
                f"Code: 516. DB::Exception: {self._user_of(request, fields)}: Authentication "
                "failed: password is incorrect, or there is no user with such name. "
                "(AUTHENTICATION_FAILED)",
                status=403,
            )
        response = self._execute(sql, fields)
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

    def _execute(self, sql: bytes, fields: Mapping[str, str]) -> web.Response:
        session = self._session
        assert session is not None
        settings = {k: v for k, v in fields.items()
                    if k not in RESERVED_FIELDS and not k.startswith("param_")}
        params = {k[len("param_"):]: v for k, v in fields.items() if k.startswith("param_")}
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
                    raise ValueError(f"Code: 115. DB::Exception: Unknown setting '{name}'. "
                                     "(UNKNOWN_SETTING)")
                session.query(f"SET {name} = {_quote(value)}", "TabSeparated")
                applied.append(name)
            result = session.query(sql, output_format, params=params or None)
        except Exception as exc:
            # chdb 4.4 prepends a failed query's partial output to the next result: drain it
            with contextlib.suppress(Exception):
                session.query("SELECT 1", "TabSeparated")
            return self._error(str(exc))
        finally:
            for name in applied:
                session.query(f"SET {name} = DEFAULT", "TabSeparated")
        match = _FORMAT_AT_END.search(_statement_text(sql))
        if match and not _statement_text(sql).lstrip().upper().startswith("INSERT"):
            output_format = match.group(1)
        summary = {
            "read_rows": str(result.rows_read()),
            "read_bytes": str(result.bytes_read()),
            "written_rows": str(result.rows_written()),
            "written_bytes": str(result.bytes_written()),
            "total_rows_to_read": "0",
            "result_rows": "0",
            "result_bytes": "0",
            "elapsed_ns": str(int(result.elapsed() * 1e9)),
        }
        return web.Response(
            body=result.bytes(),
            content_type="application/octet-stream",
            headers=self._headers(fields) | {
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
            headers=self._headers({}) | {
                "X-ClickHouse-Exception-Code": code.group(1) if code else "1000"
            },
        )

    # -- auth ---------------------------------------------------------------------------------

    def _credentials(self, request: web.Request, fields: Mapping[str, str]) -> tuple[str, str]:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return user, password
        if "X-ClickHouse-User" in request.headers:
            return (request.headers["X-ClickHouse-User"],
                    request.headers.get("X-ClickHouse-Key", ""))
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
    head, tail = (text[: match.start()], text[match.start():]) if match else (text, "")
    return f"{head.rstrip().rstrip(';')} SETTINGS {clause} {tail}".encode()


def _statement_text(sql: bytes) -> str:
    """The statement part of a request: for ``INSERT ... FORMAT X`` the text before the data."""
    head = sql[:65536]
    match = re.search(rb"\bFORMAT\s+\w+[ \t]*\r?\n?", head, re.IGNORECASE)
    if match and head.lstrip()[:6].upper() == b"INSERT":
        head = head[: match.end()]
    return head.decode("utf-8", "replace")
