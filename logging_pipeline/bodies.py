"""Request/response body storage: one gzip-compressed JSON object per request.

Bodies are too large and too rarely read to live in the log table, so each request's bodies go
to an object at ``organizations/{org_id}/requests/{request_id}/request_response_body`` — in a
local directory by default, or in S3 (or any S3-compatible store) when configured. The log row
records which (``location``) so a reader knows where to look.

Both stores keep blocking work off the event loop: local file I/O runs in ``asyncio.to_thread``;
boto3 runs in a small thread pool owned by the S3 store, so a slow or hung S3 endpoint can at
worst occupy those threads, never the gateway's loop. Every backend failure surfaces as
:class:`BodyStoreError`, which the batch writer catches to spill the batch and retry later.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import re
import sqlite3
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
from botocore.exceptions import BotoCoreError, ClientError
from isal import isal_zlib

from logging_pipeline.config import BodyStoreConfig
from logging_pipeline.private import private_dir, private_file

T = TypeVar("T")

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_OBJECT_NAME = "request_response_body"
# ISA-L level 1 (of 0-3): see compress_json for the trade-off against level 3 and zlib.
_GZIP_LEVEL = 1
_GZIP_WBITS = 31  # 16 + 15: a gzip container, 32 KiB window
_SQLITE_CACHE_KIB = 16 * 1024
_SQLITE_CHECKPOINT_PAGES = 10_000


class BodyStoreError(Exception):
    """A body could not be stored or read (backend down, not writable, corrupt, bad id)."""


def _checked_id(kind: str, value: str) -> str:
    """The id lower-cased, if it is a canonical UUID string.

    Ids become path segments (local) and key segments (S3), so anything else — ``..``, a slash,
    a trailing newline — is refused instead of escaping the store's root. Lower-casing makes the
    key independent of how a caller spelled the id (ClickHouse hands UUIDs back lower-case).
    """
    if not isinstance(value, str) or _UUID.fullmatch(value) is None:
        raise BodyStoreError(f"invalid {kind} {value!r}: expected a UUID string")
    return value.lower()


def body_key(org_id: str, request_id: str) -> str:
    """The object key of one request's bodies (also its path under a local store's root)."""
    org = _checked_id("organization id", org_id)
    request = _checked_id("request id", request_id)
    return f"organizations/{org}/requests/{request}/{_OBJECT_NAME}"


def encode_bodies(document: Mapping[str, Any]) -> bytes:
    """``gzip(orjson.dumps(document))``; ``mtime=0`` so equal documents give equal bytes."""
    payload = document if isinstance(document, dict) else dict(document)
    return compress_json(orjson.dumps(payload))


def compress_json(data: bytes) -> bytes:
    """An already-serialised document, gzipped: what :func:`encode_bodies` stores.

    ISA-L's deflate (``isal``) at level 1 rather than zlib, because this runs once per logged
    request. Measured against zlib's default level 6: a typical 774-byte chat document
    compresses to 444 instead of 440 bytes for ~60% of the CPU (6.4 vs 10.5 µs); a 1 MB text
    document to ~14% more bytes for a tenth of the CPU (2.8 vs 28 ms). (ISA-L level 3 saves
    another 1% on the typical document and 10% on the large one for ~16% and ~27% more CPU.)
    Its gzip header carries mtime 0, so equal documents give equal bytes.
    """
    return isal_zlib.compress(data, _GZIP_LEVEL, _GZIP_WBITS)


def decode_bodies(blob: bytes) -> dict[str, Any]:
    """The document :func:`encode_bodies` encoded; :class:`BodyStoreError` if it is corrupt."""
    try:
        document = orjson.loads(gzip.decompress(blob))
    except (OSError, EOFError, orjson.JSONDecodeError) as exc:  # BadGzipFile is an OSError
        raise BodyStoreError(f"stored body object is not gzip-compressed JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise BodyStoreError(f"stored body object is a {type(document).__name__}, not an object")
    return document


class BodyStore(Protocol):
    """Where bodies live. ``location`` ("local" / "s3") is recorded on each log row."""

    location: str

    async def start(self) -> None: ...

    async def put(self, org_id: str, request_id: str, blob: bytes) -> None: ...

    async def put_many(self, items: Sequence[tuple[str, str, bytes]]) -> None: ...

    async def get(self, org_id: str, request_id: str) -> bytes | None: ...

    async def ping(self) -> None:
        """Raise :class:`BodyStoreError` unless the store answers now (readiness, doctor)."""
        ...

    async def close(self) -> None: ...


async def _put_all(
    put: Callable[[str, str, bytes], Awaitable[None]],
    items: Sequence[tuple[str, str, bytes]],
    limit: int,
) -> None:
    """Run ``put`` for every item, at most ``limit`` at once; then fail if any failed.

    Every put is allowed to finish first, so a retry of the batch rewrites (idempotently) only
    what a partial failure left behind rather than racing with puts still in flight.
    """
    gate = asyncio.Semaphore(limit)

    async def one(org_id: str, request_id: str, blob: bytes) -> None:
        async with gate:
            await put(org_id, request_id, blob)

    results = await asyncio.gather(*(one(*item) for item in items), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    for failure in failures:
        if not isinstance(failure, Exception):  # cancellation and the like: not ours to wrap
            raise failure
    if failures:
        first = failures[0]
        raise BodyStoreError(
            f"{len(failures)} of {len(items)} body writes failed; first: {first}"
        ) from first


class LocalBodyStore:
    """Bodies as files under ``root``, one per request, at the path given by :func:`body_key`."""

    location: str = "local"

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, org_id: str, request_id: str) -> Path:
        """The file holding one request's bodies (validates the ids)."""
        return self.root / body_key(org_id, request_id)

    async def start(self) -> None:
        await asyncio.to_thread(self._make_root)

    def _make_root(self) -> None:
        try:
            private_dir(self.root)
        except OSError as exc:
            raise BodyStoreError(f"cannot create body directory {self.root}: {exc}") from exc

    async def put(self, org_id: str, request_id: str, blob: bytes) -> None:
        await asyncio.to_thread(self._write, self.path(org_id, request_id), blob)

    async def put_many(self, items: Sequence[tuple[str, str, bytes]]) -> None:
        """Write a whole batch in one worker-thread call.

        One thread hop per batch instead of one per body: under load, per-body hops cost more
        in handoffs of the interpreter lock than the writes themselves.
        """
        await asyncio.to_thread(self._write_batch, items)

    def _write_batch(self, items: Sequence[tuple[str, str, bytes]]) -> None:
        failures: list[str] = []
        for org_id, request_id, blob in items:
            try:
                self._write(self.path(org_id, request_id), blob)
            except BodyStoreError as exc:
                failures.append(str(exc))
        if failures:
            raise BodyStoreError(
                f"{len(failures)} of {len(items)} body writes failed; first: {failures[0]}"
            )

    async def get(self, org_id: str, request_id: str) -> bytes | None:
        return await asyncio.to_thread(self._read, self.path(org_id, request_id))

    async def ping(self) -> None:
        await asyncio.to_thread(self._check_root)

    def _check_root(self) -> None:
        if not self.root.is_dir() or not os.access(self.root, os.W_OK | os.X_OK):
            raise BodyStoreError(f"body directory {self.root} is missing or not writable")

    async def close(self) -> None:
        """Nothing to release: every call opens and closes its own file."""

    @staticmethod
    def _write(path: Path, blob: bytes) -> None:
        """Write via a unique temp file + ``os.replace``: readers never see a partial body.

        Bodies survive a crash of the process (the data is in the OS page cache once written)
        but are not fsynced one by one: on a loaded gateway a sync per request costs more than
        the request. This matches the embedded log store, whose inserts are not fsynced either
        (ClickHouse's default); a power loss can lose the last seconds of both. Concurrent
        writers of one key each use their own temp file, and the last rename wins.
        """
        temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            if not path.parent.is_dir():
                private_dir(path.parent)
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with open(fd, "wb") as handle:
                handle.write(blob)
            os.replace(temp, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                temp.unlink(missing_ok=True)
            raise BodyStoreError(f"cannot write body file {path}: {exc}") from exc

    @staticmethod
    def _read(path: Path) -> bytes | None:
        try:
            return path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise BodyStoreError(f"cannot read body file {path}: {exc}") from exc


class S3BodyStore:
    """Bodies as objects in an S3 (or MinIO, R2, …) bucket, created on start if missing.

    One boto3 client (thread-safe) is shared by a bounded thread pool; the pool bounds the
    concurrent requests, and its size matches the client's connection pool. If the endpoint is
    down at :meth:`start`, the first later call connects again, so the gateway can start while
    S3 is away and catch up (from the spill file) once it is back.
    """

    location: str = "s3"

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_workers: int = 8,
    ) -> None:
        self.endpoint = endpoint
        self.bucket = bucket
        self.region = region
        self._access_key = access_key
        self._secret_key = secret_key
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._max_workers = max_workers
        # No threads exist until the first task is submitted, so constructing a store is free.
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="s3-bodies")
        self._client: Any = None
        self._client_lock = threading.Lock()  # pool threads (start, ping) create it once
        self._ready = False
        self._closed = False
        self._start_lock = asyncio.Lock()

    async def start(self) -> None:
        """Create the client and make sure the bucket exists (creating it if missing)."""
        async with self._start_lock:
            if self._ready:
                return
            await self._run(self._connect)
            self._ready = True

    async def put(self, org_id: str, request_id: str, blob: bytes) -> None:
        key = body_key(org_id, request_id)
        await self._ensure_started()
        await self._run(self._put_object, key, blob)

    async def put_many(self, items: Sequence[tuple[str, str, bytes]]) -> None:
        await self._ensure_started()
        await _put_all(self.put, items, self._max_workers)

    async def get(self, org_id: str, request_id: str) -> bytes | None:
        key = body_key(org_id, request_id)
        await self._ensure_started()
        return await self._run(self._get_object, key)

    async def put_file(self, key: str, blob: bytes, content_type: str) -> None:
        """Store an object that is not a request's bodies (an HQL CSV export) at ``key``."""
        await self._ensure_started()
        await self._run(self._put_file, key, blob, content_type)

    async def presigned_url(self, key: str, expires_seconds: int) -> str:
        """A presigned GET of ``key``, valid ``expires_seconds`` (signing is local: no call)."""
        await self._ensure_started()
        return await self._run(self._presign, key, expires_seconds)

    async def ping(self) -> None:
        """One ``HEAD`` of the bucket: the endpoint answers, the credentials are good and the
        bucket exists (a probe creates nothing, unlike :meth:`start`)."""
        await self._run(self._head_bucket)

    async def close(self) -> None:
        """Wait for in-flight requests (off the loop), then release threads and connections."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, True)
        if self._client is not None:
            await asyncio.to_thread(self._client.close)
            self._client = None

    async def _ensure_started(self) -> None:
        if not self._ready:
            await self.start()

    async def _run(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` on the store's pool, its failures raised as BodyStoreError."""
        if self._closed:
            raise BodyStoreError("S3 body store is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, function, *args)
        except BodyStoreError:
            raise
        except (BotoCoreError, ClientError, OSError) as exc:
            raise BodyStoreError(
                f"S3 {function.__name__.strip('_')} failed (endpoint {self.endpoint}, "
                f"bucket {self.bucket}): {exc}"
            ) from exc

    # --- blocking parts, run on the pool only ---------------------------------------------

    def _connect(self) -> None:
        self._open_client()
        self._ensure_bucket()

    def _open_client(self) -> None:
        with self._client_lock:
            self._create_client()

    def _create_client(self) -> None:
        if self._client is None:
            # boto3 is imported here, in a worker thread, so a gateway that stores bodies
            # locally never pays for importing it, and the loop never waits for it.
            import boto3
            from botocore.config import Config

            config = Config(
                region_name=self.region,
                connect_timeout=self._connect_timeout,
                read_timeout=self._read_timeout,
                retries={"max_attempts": 2, "mode": "standard"},
                max_pool_connections=self._max_workers,
                # Path-style (endpoint/bucket/key) is what MinIO and most S3-compatibles need.
                s3={"addressing_style": "path"},
                # SigV4 (also for presigned URLs: HQL exports), which every S3-compatible
                # store accepts and AWS requires in newer regions.
                signature_version="s3v4",
                # Checksums only where the API demands them: S3-compatibles disagree on the
                # newer trailing-checksum protocol, and CRC-ing every multi-MB body costs CPU.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
            # Own session: boto3's default session is shared module state, not thread-safe.
            session = boto3.session.Session(
                aws_access_key_id=self._access_key,
                aws_secret_access_key=self._secret_key,
                region_name=self.region,
            )
            self._client = session.client("s3", endpoint_url=self.endpoint, config=config)

    def _ensure_bucket(self) -> None:
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as exc:
            if _error_code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                raise
        create: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":  # us-east-1 refuses an explicit location constraint
            create["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._client.create_bucket(**create)
        except ClientError as exc:  # created concurrently, e.g. by another worker process
            if _error_code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise

    def _head_bucket(self) -> None:
        self._open_client()
        self._client.head_bucket(Bucket=self.bucket)

    def _put_object(self, key: str, blob: bytes) -> None:
        self._client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=blob,
            ContentType="application/json",
            ContentEncoding="gzip",
        )

    def _put_file(self, key: str, blob: bytes, content_type: str) -> None:
        self._client.put_object(Bucket=self.bucket, Key=key, Body=blob, ContentType=content_type)

    def _presign(self, key: str, expires_seconds: int) -> str:
        url: str = self._client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_seconds
        )
        return url

    def _get_object(self, key: str) -> bytes | None:
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in {"NoSuchKey", "404", "NotFound"}:
                return None
            raise
        body = response["Body"]
        try:
            data: bytes = body.read()  # botocore does not undo Content-Encoding: still gzip
        finally:
            body.close()
        return data


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class SqliteBodyStore:
    """The default local store: every request's bodies as one row of one SQLite file in ``root``.

    Same objects as the other stores (one gzip JSON object per request), but one row per
    object instead of one file and directory per object: on this class of machine creating a
    file and its directory costs ~125 µs of CPU, nearly as much as proxying the request, while
    a batch of rows in one transaction costs a few µs each. :class:`LocalBodyStore` (plain
    files) remains available with ``GATEWAY_BODY_STORE=files``.

    Rows are keyed by the 16-byte request and organization ids rather than the object path:
    request ids are random, so every insert lands on a random page of the key index, and a
    ~110-byte text key made that index (and the pages each checkpoint rewrites) over three
    times larger — measured at 300k rows (with the cache and checkpoint settings below),
    12-15 µs per row against 21-32 µs. The organization is part of the key so one
    organization's request id can never overwrite another's body. Databases written before
    this layout keep their ``objects`` table (keyed by path), read as a fallback.

    sqlite3 connections belong to the thread that made them, so one dedicated thread owns
    the connection and runs every call; WAL lets readers (the query API) run beside writes.
    """

    location: str = "local"

    def __init__(self, root: Path) -> None:
        self.root = root
        self.path = root / "bodies.sqlite3"
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="body-sqlite")
        self._connection: sqlite3.Connection | None = None
        self._legacy = False

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            try:
                private_file(self.path)  # SQLite's -wal and -shm files copy its mode
                connection = sqlite3.connect(self.path, isolation_level=None)
                connection.execute("PRAGMA busy_timeout=5000")
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
                # A 16 MB page cache and a ~40 MB WAL between checkpoints: random key inserts
                # touch many index pages, and each checkpoint writes every page dirtied since
                # the last one, so fewer, larger checkpoints write each hot page fewer times.
                connection.execute(f"PRAGMA cache_size=-{_SQLITE_CACHE_KIB}")
                connection.execute(f"PRAGMA wal_autocheckpoint={_SQLITE_CHECKPOINT_PAGES}")
                connection.execute(
                    "CREATE TABLE IF NOT EXISTS request_bodies ("
                    "request_id BLOB NOT NULL, organization_id BLOB NOT NULL, "
                    "data BLOB NOT NULL, PRIMARY KEY (request_id, organization_id))"
                )
                self._legacy = (
                    connection.execute(
                        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'objects'"
                    ).fetchone()
                    is not None
                )
            except (OSError, sqlite3.Error) as exc:
                raise BodyStoreError(f"cannot open body database {self.path}: {exc}") from exc
            self._connection = connection
        return self._connection

    async def _run(self, function: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, function)
        except RuntimeError as exc:  # executor shut down
            raise BodyStoreError("body store is closed") from exc

    async def start(self) -> None:
        await self._run(self._connect)

    async def put(self, org_id: str, request_id: str, blob: bytes) -> None:
        await self.put_many([(org_id, request_id, blob)])

    async def put_many(self, items: Sequence[tuple[str, str, bytes]]) -> None:
        rows: list[tuple[bytes, bytes, bytes]] = []
        failures: list[str] = []
        orgs: dict[str, bytes] = {}  # a batch is mostly one organization's
        for org_id, request_id, blob in items:
            try:
                org = orgs.get(org_id) if isinstance(org_id, str) else None
                if org is None:
                    org = orgs[org_id] = _uuid_bytes("organization id", org_id)
                rows.append((org, _uuid_bytes("request id", request_id), blob))
            except BodyStoreError as exc:
                failures.append(str(exc))

        def write() -> None:
            connection = self._connect()
            try:
                connection.execute("BEGIN IMMEDIATE")
                connection.executemany(
                    "INSERT OR REPLACE INTO request_bodies (organization_id, request_id, data)"
                    " VALUES (?, ?, ?)",
                    rows,
                )
                connection.execute("COMMIT")
            except sqlite3.Error as exc:
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
                raise BodyStoreError(f"cannot write bodies to {self.path}: {exc}") from exc

        if rows:
            await self._run(write)
        if failures:
            raise BodyStoreError(
                f"{len(failures)} of {len(items)} body writes failed; first: {failures[0]}"
            )

    async def get(self, org_id: str, request_id: str) -> bytes | None:
        org, request = _id_bytes(org_id, request_id)

        def read() -> bytes | None:
            try:
                connection = self._connect()
                found = connection.execute(
                    "SELECT data FROM request_bodies WHERE request_id = ? AND organization_id = ?",
                    (request, org),
                ).fetchone()
                if found is None and self._legacy:
                    found = connection.execute(
                        "SELECT data FROM objects WHERE key = ?", (body_key(org_id, request_id),)
                    ).fetchone()
            except sqlite3.Error as exc:
                raise BodyStoreError(f"cannot read bodies from {self.path}: {exc}") from exc
            return None if found is None else bytes(found[0])

        return await self._run(read)

    async def keys(self) -> list[str]:
        """Every stored object's key (:func:`body_key`), sorted: for inspection and tests."""

        def read() -> list[str]:
            try:
                connection = self._connect()
                found = [
                    body_key(str(uuid.UUID(bytes=org)), str(uuid.UUID(bytes=request)))
                    for org, request in connection.execute(
                        "SELECT organization_id, request_id FROM request_bodies"
                    )
                ]
                if self._legacy:
                    found.extend(row[0] for row in connection.execute("SELECT key FROM objects"))
            except sqlite3.Error as exc:
                raise BodyStoreError(f"cannot read bodies from {self.path}: {exc}") from exc
            return sorted(set(found))

        return await self._run(read)

    async def ping(self) -> None:
        def probe() -> None:
            try:
                self._connect().execute("SELECT 1").fetchone()
            except sqlite3.Error as exc:
                raise BodyStoreError(f"body database {self.path} does not answer: {exc}") from exc

        await self._run(probe)

    async def close(self) -> None:
        def shut() -> None:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

        with contextlib.suppress(BodyStoreError):
            await self._run(shut)
        # Joined (off the loop), not abandoned: the store owns its thread until it has ended.
        await asyncio.to_thread(self._executor.shutdown, True)


def _id_bytes(org_id: str, request_id: str) -> tuple[bytes, bytes]:
    """The two ids as 16-byte values (validated like :func:`body_key`)."""
    return _uuid_bytes("organization id", org_id), _uuid_bytes("request id", request_id)


def _uuid_bytes(kind: str, value: str) -> bytes:
    """The 16 bytes of ``value`` when it is a canonical UUID string (any case, the ids
    :func:`_checked_id` accepts), else :class:`BodyStoreError`.

    Without the regular expression, for the SQLite store's once-per-record call (~0.3 against
    ~0.75 µs): dashes where the canonical form has them, and 32 hex digits between them, which
    ``bytes.fromhex`` checks (it skips whitespace, so it must also give 16 bytes).
    ``uuid.UUID()`` would parse the string again in Python, several times slower.
    """
    if (
        isinstance(value, str)
        and len(value) == 36
        and value[8] == value[13] == value[18] == value[23] == "-"
    ):
        try:
            raw = bytes.fromhex(value.replace("-", ""))
        except ValueError:
            pass
        else:
            if len(raw) == 16:
                return raw
    raise BodyStoreError(f"invalid {kind} {value!r}: expected a UUID string")


def body_store_from_config(config: BodyStoreConfig) -> BodyStore:
    """The S3 store when ``config.s3`` is set, else the local store of ``config.kind``.

    Nothing is opened here (``start`` does that).
    """
    if config.s3 is not None:
        s3 = config.s3
        return S3BodyStore(s3.endpoint, s3.bucket, s3.access_key, s3.secret_key, s3.region)
    if config.kind == "files":
        return LocalBodyStore(config.directory)
    return SqliteBodyStore(config.directory)
