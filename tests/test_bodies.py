"""Body storage: one suite run against the local directory store and S3 (moto server mode)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.logconfig import log_config
from gateway.settings import Settings
from logging_pipeline.bodies import (
    _UUID,
    BodyStore,
    BodyStoreError,
    LocalBodyStore,
    S3BodyStore,
    SqliteBodyStore,
    _uuid_bytes,
    body_key,
    body_store_from_config,
    decode_bodies,
    encode_bodies,
)
from tests.s3_server import (
    ACCESS_KEY,
    SECRET_KEY,
    MotoS3Server,
    free_port,
    moto_s3_server,
    s3_client,
)

S3_ENV = ("S3_ENDPOINT", "S3_BUCKET_NAME", "S3_ACCESS_KEY", "S3_SECRET_KEY", "S3_REGION")


def new_id() -> str:
    return str(uuid.uuid4())


def document(text: str = "hello") -> dict[str, Any]:
    return {
        "request": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]},
        "response": {
            "stream": 'data: {"choices":[{"delta":{"content":"hi"}}]}\n\ndata: [DONE]\n\n',
            "reconstructed": {"choices": [{"message": {"role": "assistant", "content": "hi"}}]},
        },
    }


def s3_store(endpoint: str, bucket: str | None = None, **kwargs: Any) -> S3BodyStore:
    return S3BodyStore(
        endpoint, bucket or f"bodies-{uuid.uuid4().hex[:16]}", ACCESS_KEY, SECRET_KEY, **kwargs
    )


@pytest.fixture(scope="module")
def s3_server() -> Iterator[MotoS3Server]:
    yield from moto_s3_server()


@pytest.fixture(params=["local", "sqlite", "s3"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[BodyStore]:
    """A started store of each kind; every S3 store gets a bucket of its own."""
    body_store: BodyStore
    if request.param == "local":
        body_store = LocalBodyStore(tmp_path / "bodies")
    elif request.param == "sqlite":
        body_store = SqliteBodyStore(tmp_path / "bodies")
    else:
        server: MotoS3Server = request.getfixturevalue("s3_server")
        body_store = s3_store(server.endpoint)
    await body_store.start()
    yield body_store
    await body_store.close()


async def raw_object(store: BodyStore, org: str, request_id: str) -> tuple[bytes, dict[str, str]]:
    """The stored bytes as the backend holds them, and (S3) the object's content headers."""
    if isinstance(store, LocalBodyStore):
        return await asyncio.to_thread(store.path(org, request_id).read_bytes), {}
    if isinstance(store, SqliteBodyStore):
        return await _sqlite_object(store, org, request_id), {}
    assert isinstance(store, S3BodyStore)

    def fetch() -> tuple[bytes, dict[str, str]]:
        got = s3_client(store.endpoint).get_object(
            Bucket=store.bucket, Key=body_key(org, request_id)
        )
        headers = {"ContentType": got["ContentType"], "ContentEncoding": got["ContentEncoding"]}
        return got["Body"].read(), headers

    return await asyncio.to_thread(fetch)


async def _sqlite_keys(store: SqliteBodyStore) -> list[str]:
    """Keys read with a separate connection, as another process (the query API) would."""

    def read() -> list[str]:
        with contextlib.closing(sqlite3.connect(store.path)) as connection:
            rows = connection.execute("SELECT organization_id, request_id FROM request_bodies")
            return sorted(
                body_key(str(uuid.UUID(bytes=org)), str(uuid.UUID(bytes=request)))
                for org, request in rows
            )

    return await asyncio.to_thread(read)


async def _sqlite_object(store: SqliteBodyStore, org: str, request_id: str) -> bytes:
    def read() -> bytes:
        with contextlib.closing(sqlite3.connect(store.path)) as connection:
            row = connection.execute(
                "SELECT data FROM request_bodies WHERE organization_id = ? AND request_id = ?",
                (uuid.UUID(org).bytes, uuid.UUID(request_id).bytes),
            ).fetchone()
        assert row is not None
        return bytes(row[0])

    return await asyncio.to_thread(read)


async def stored_keys(store: BodyStore) -> list[str]:
    """Every object (S3) or file (local) the store holds, as keys relative to its root."""
    if isinstance(store, LocalBodyStore):
        root = store.root

        def walk() -> list[str]:
            return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())

        return await asyncio.to_thread(walk)
    if isinstance(store, SqliteBodyStore):
        return await _sqlite_keys(store)
    assert isinstance(store, S3BodyStore)

    def listing() -> list[str]:
        found = s3_client(store.endpoint).list_objects_v2(Bucket=store.bucket)
        return sorted(item["Key"] for item in found.get("Contents", []))

    return await asyncio.to_thread(listing)


# --- the shared suite ---------------------------------------------------------------------


async def test_round_trip(store: BodyStore) -> None:
    org, request_id = new_id(), new_id()
    doc = document('Grüße, 你好, мир, 🚀 — "quotes" \\ and \u2028 line separators')
    await store.put(org, request_id, encode_bodies(doc))
    blob = await store.get(org, request_id)
    assert blob is not None
    assert decode_bodies(blob) == doc


async def test_round_trip_of_plain_and_missing_bodies(store: BodyStore) -> None:
    org, request_id = new_id(), new_id()
    doc: dict[str, Any] = {"request": "not json at all", "response": None}
    await store.put(org, request_id, encode_bodies(doc))
    blob = await store.get(org, request_id)
    assert blob is not None and decode_bodies(blob) == doc


async def test_large_body(store: BodyStore) -> None:
    org, request_id = new_id(), new_id()
    big = os.urandom(2_500_000).hex()  # 5 MB of text that gzip cannot shrink much
    doc = {"request": {"messages": [{"role": "user", "content": big}]}, "response": None}
    blob = encode_bodies(doc)
    assert len(blob) > 2_000_000
    await store.put(org, request_id, blob)
    assert await store.get(org, request_id) == blob


async def test_absent_is_none(store: BodyStore) -> None:
    org, request_id = new_id(), new_id()
    assert await store.get(org, request_id) is None
    await store.put(org, request_id, encode_bodies(document()))
    assert await store.get(org, new_id()) is None  # same org, other request
    assert await store.get(new_id(), request_id) is None  # other org, same request


async def test_overwrite(store: BodyStore) -> None:
    org, request_id = new_id(), new_id()
    await store.put(org, request_id, encode_bodies(document("first")))
    await store.put(org, request_id, encode_bodies(document("second")))
    blob = await store.get(org, request_id)
    assert blob is not None
    assert decode_bodies(blob) == document("second")
    assert await stored_keys(store) == [body_key(org, request_id)]  # no temp files left


async def test_same_request_id_in_two_organizations_is_two_objects(store: BodyStore) -> None:
    """A client-chosen request id (``Helicone-Request-Id``) cannot reach another org's body."""
    request_id, first, second = new_id(), new_id(), new_id()
    await store.put(first, request_id, encode_bodies(document("first org")))
    await store.put(second, request_id, encode_bodies(document("second org")))
    for org, text in ((first, "first org"), (second, "second org")):
        blob = await store.get(org, request_id)
        assert blob is not None and decode_bodies(blob) == document(text)
    assert await stored_keys(store) == sorted(
        [body_key(first, request_id), body_key(second, request_id)]
    )


async def test_put_many(store: BodyStore) -> None:
    org = new_id()
    items = [(org, new_id(), encode_bodies(document(f"item {i}"))) for i in range(50)]
    await store.put_many(items)
    for i, (_, request_id, _) in enumerate(items):
        blob = await store.get(org, request_id)
        assert blob is not None and decode_bodies(blob) == document(f"item {i}")
    assert len(await stored_keys(store)) == 50


async def test_put_many_reports_failures_after_writing_the_rest(store: BodyStore) -> None:
    org = new_id()
    good = [(org, new_id(), encode_bodies(document(str(i)))) for i in range(5)]
    with pytest.raises(BodyStoreError, match=r"1 of 6 body writes failed.*invalid request id"):
        await store.put_many([*good[:2], (org, "../../escape", b"x"), *good[2:]])
    assert await stored_keys(store) == sorted(body_key(o, r) for o, r, _ in good)


async def test_put_many_of_nothing(store: BodyStore) -> None:
    await store.put_many([])
    assert await stored_keys(store) == []


async def test_key_layout(store: BodyStore) -> None:
    org, request_id = new_id(), new_id()
    expected = f"organizations/{org}/requests/{request_id}/request_response_body"
    assert body_key(org, request_id) == expected
    await store.put(org, request_id, encode_bodies(document()))
    assert await stored_keys(store) == [expected]
    if isinstance(store, LocalBodyStore):
        path = store.root / "organizations" / org / "requests" / request_id
        assert await asyncio.to_thread((path / "request_response_body").is_file)


async def test_ids_are_case_insensitive(store: BodyStore) -> None:
    org, request_id = new_id(), new_id()
    await store.put(org.upper(), request_id.upper(), encode_bodies(document()))
    assert await stored_keys(store) == [body_key(org, request_id)]
    assert await store.get(org, request_id) is not None


async def test_stored_object_is_gzip_json(store: BodyStore) -> None:
    org, request_id = new_id(), new_id()
    await store.put(org, request_id, encode_bodies(document()))
    raw, headers = await raw_object(store, org, request_id)
    assert raw[:2] == b"\x1f\x8b"  # the gzip magic number
    assert orjson.loads(gzip.decompress(raw)) == document()
    if isinstance(store, S3BodyStore):
        assert headers == {"ContentType": "application/json", "ContentEncoding": "gzip"}


INVALID_IDS = [
    "",
    "..",
    "../../etc/passwd",
    "a/b",
    "not-a-uuid",
    "/" + str(uuid.UUID(int=1)),
    str(uuid.UUID(int=1)) + "\n",
    str(uuid.UUID(int=1)) + "/..",
    str(uuid.UUID(int=1)).replace("-", ""),
    str(uuid.UUID(int=1))[:-1] + "g",
    "0123abcd-4567-89ef-abcd-0123456789 f",  # 36 characters, whitespace among the digits
    "0123abcd-4567-89ef-abcd-0123-456789f",  # a fifth dash
]


@pytest.mark.parametrize("bad", INVALID_IDS)
async def test_invalid_ids_are_rejected(store: BodyStore, bad: str) -> None:
    good = new_id()
    for org, request_id in ((bad, good), (good, bad)):
        with pytest.raises(BodyStoreError, match="expected a UUID"):
            await store.put(org, request_id, b"x")
        with pytest.raises(BodyStoreError, match="expected a UUID"):
            await store.get(org, request_id)
        with pytest.raises(BodyStoreError):
            body_key(org, request_id)
    assert await stored_keys(store) == []


def test_the_fast_id_check_accepts_exactly_canonical_uuids() -> None:
    """The SQLite store's id check (no regular expression) against the rule as written:
    every one-character change of a canonical id, and ids in both cases."""
    base = "0123abcd-4567-89ef-ABCD-0123456789ef"
    candidates = [base, base.lower(), str(uuid.uuid4()), str(uuid.uuid4()).upper()]
    candidates.append(base[:32] + "  " + base[34:])  # two spaces: 30 digits, 15 bytes
    for index in range(len(base)):
        for char in " \t\n-+gG0\u0660":
            candidates.append(base[:index] + char + base[index + 1 :])
    accepted = 0
    for value in candidates:
        try:
            raw: bytes | None = _uuid_bytes("request id", value)
        except BodyStoreError:
            raw = None
        canonical = _UUID.fullmatch(value) is not None
        assert raw == (uuid.UUID(value).bytes if canonical else None), value
        accepted += canonical
    assert accepted == 4 + 32 + 4  # the four ids, a "0" for each digit, a "-" for each dash


# --- encoding -----------------------------------------------------------------------------


def test_encoding_is_gzip_of_json_and_deterministic() -> None:
    doc = document("same")
    assert encode_bodies(doc) == encode_bodies(dict(doc))
    assert gzip.decompress(encode_bodies(doc)) == orjson.dumps(doc)


@pytest.mark.parametrize(
    # mtime=0: the same bytes (and test ids) in every process, as pytest-xdist's workers must
    # collect the same tests; gzip's default stamps the current second into the header.
    "blob",
    [b"", b"not gzip", gzip.compress(b"{not json", mtime=0), gzip.compress(b"[1, 2]", mtime=0)],
)
def test_decoding_a_corrupt_object_fails_clearly(blob: bytes) -> None:
    with pytest.raises(BodyStoreError, match="stored body object"):
        decode_bodies(blob)


async def test_close_leaves_no_store_thread_running(store: BodyStore) -> None:
    """A closed store owns no thread any more: close() joins its workers, so a gateway that
    stops (or a test) does not leave them running behind it."""
    before = set(threading.enumerate())
    org = new_id()
    await asyncio.gather(*(store.put(org, new_id(), b"blob") for _ in range(8)))
    # The loop's own default-executor threads (asyncio.to_thread) belong to the loop.
    started = {t for t in set(threading.enumerate()) - before if not t.name.startswith("asyncio")}
    await store.close()
    assert [t.name for t in started if t.is_alive()] == []


# --- local store --------------------------------------------------------------------------


async def test_local_store_works_without_start(tmp_path: Path) -> None:
    store = LocalBodyStore(tmp_path / "deep" / "bodies")
    org, request_id = new_id(), new_id()
    await store.put(org, request_id, b"blob")
    assert await store.get(org, request_id) == b"blob"


async def test_local_root_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    store = LocalBodyStore(blocker / "bodies")  # under a regular file: fails even for root
    with pytest.raises(BodyStoreError, match="cannot create body directory"):
        await store.start()
    with pytest.raises(BodyStoreError, match="cannot write body file"):
        await store.put(new_id(), new_id(), b"x")
    with pytest.raises(BodyStoreError, match="1 of 1 body writes failed"):
        await store.put_many([(new_id(), new_id(), b"x")])


@pytest.mark.skipif(os.geteuid() == 0, reason="permissions do not stop root")
async def test_local_root_without_write_permission(tmp_path: Path) -> None:
    root = tmp_path / "bodies"
    root.mkdir(mode=0o500)
    try:
        with pytest.raises(BodyStoreError, match="cannot write body file"):
            await LocalBodyStore(root).put(new_id(), new_id(), b"x")
    finally:
        root.chmod(0o700)


async def test_local_failed_write_keeps_the_old_body(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalBodyStore(tmp_path / "bodies")
    org, request_id = new_id(), new_id()
    await store.put(org, request_id, b"old")

    def failing_replace(*_: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(BodyStoreError, match="No space left"):
        await store.put(org, request_id, b"new")
    monkeypatch.undo()
    assert await store.get(org, request_id) == b"old"
    assert await stored_keys(store) == [body_key(org, request_id)]  # temp file cleaned up


async def test_local_file_io_runs_off_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[threading.Thread] = []
    real_replace = os.replace

    def recording_replace(src: Any, dst: Any) -> None:
        threads.append(threading.current_thread())
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", recording_replace)
    await LocalBodyStore(tmp_path).put(new_id(), new_id(), b"x")
    assert threads and threading.main_thread() not in threads


# --- S3 store -----------------------------------------------------------------------------


async def test_s3_bucket_is_created_when_missing(s3_server: MotoS3Server) -> None:
    bucket = f"fresh-{uuid.uuid4().hex[:16]}"
    client = s3_server.client()

    def buckets() -> set[str]:
        return {b["Name"] for b in client.list_buckets()["Buckets"]}

    assert bucket not in await asyncio.to_thread(buckets)
    store = s3_store(s3_server.endpoint, bucket)
    await store.start()
    await store.start()  # idempotent
    assert bucket in await asyncio.to_thread(buckets)
    again = s3_store(s3_server.endpoint, bucket)  # the bucket exists now: still fine
    await again.start()
    await store.put(new_id(), new_id(), b"x")
    await store.close()
    await again.close()


async def test_s3_bucket_in_another_region(s3_server: MotoS3Server) -> None:
    store = s3_store(s3_server.endpoint, region="eu-west-1")
    await store.start()
    org, request_id = new_id(), new_id()
    await store.put(org, request_id, b"x")
    assert await store.get(org, request_id) == b"x"
    await store.close()


async def test_s3_calls_run_on_the_store_pool(s3_server: MotoS3Server) -> None:
    store = s3_store(s3_server.endpoint)
    threads: list[str] = []
    real_put = store._put_object

    def recording_put(key: str, blob: bytes) -> None:
        threads.append(threading.current_thread().name)
        real_put(key, blob)

    store._put_object = recording_put  # type: ignore[method-assign]
    await store.put_many([(new_id(), new_id(), b"x") for _ in range(20)])
    await store.close()
    assert len(threads) == 20
    assert all(name.startswith("s3-bodies") for name in threads)


async def test_s3_endpoint_down_fails_fast_and_clearly() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    store = s3_store(endpoint)
    began = time.monotonic()
    with pytest.raises(BodyStoreError, match="Could not connect") as caught:
        await asyncio.wait_for(store.start(), timeout=15)
    assert endpoint in str(caught.value)
    with pytest.raises(BodyStoreError):
        await asyncio.wait_for(store.put(new_id(), new_id(), b"x"), timeout=15)
    with pytest.raises(BodyStoreError):
        await asyncio.wait_for(store.get(new_id(), new_id()), timeout=15)
    with pytest.raises(BodyStoreError):
        await asyncio.wait_for(store.put_many([(new_id(), new_id(), b"x")]), timeout=15)
    assert time.monotonic() - began < 10
    await store.close()


async def test_s3_outage_and_recovery() -> None:
    """Down at start, then up (the first put connects and creates the bucket), then down."""
    port = free_port()
    store = s3_store(f"http://127.0.0.1:{port}")
    with pytest.raises(BodyStoreError):
        await store.start()
    server = MotoS3Server(port).start()
    try:
        org, request_id = new_id(), new_id()
        await store.put(org, request_id, b"stored once it is back")
        assert await store.get(org, request_id) == b"stored once it is back"
    finally:
        server.stop()
    began = time.monotonic()
    with pytest.raises(BodyStoreError, match="Could not connect"):
        await asyncio.wait_for(store.put(new_id(), new_id(), b"x"), timeout=15)
    assert time.monotonic() - began < 5
    await store.close()


async def test_s3_closed_store_refuses_calls(s3_server: MotoS3Server) -> None:
    store = s3_store(s3_server.endpoint)
    await store.start()
    await store.close()
    await store.close()  # idempotent
    with pytest.raises(BodyStoreError, match="closed"):
        await store.put(new_id(), new_id(), b"x")


async def test_sqlite_reads_bodies_written_in_the_path_keyed_layout(tmp_path: Path) -> None:
    """Data directories from before the 16-byte-id layout keep their bodies readable."""
    org, old_id, new_request = new_id(), new_id(), new_id()
    root = tmp_path / "bodies"
    root.mkdir()
    old_blob = encode_bodies(document("written by an older version"))
    with contextlib.closing(sqlite3.connect(root / "bodies.sqlite3")) as connection:
        connection.execute("CREATE TABLE objects (key TEXT PRIMARY KEY, data BLOB NOT NULL)")
        connection.execute(
            "INSERT INTO objects (key, data) VALUES (?, ?)", (body_key(org, old_id), old_blob)
        )
        connection.commit()
    store = SqliteBodyStore(root)
    await store.start()
    try:
        await store.put(org, new_request, encode_bodies(document("new")))
        assert await store.get(org, old_id) == old_blob
        assert await store.get(new_id(), old_id) is None
        blob = await store.get(org, new_request)
        assert blob is not None and decode_bodies(blob) == document("new")
        assert await store.keys() == sorted([body_key(org, old_id), body_key(org, new_request)])
    finally:
        await store.close()


# --- configuration ------------------------------------------------------------------------


def body_store_from_settings(settings: Settings) -> BodyStore:
    """The body store the gateway opens for ``settings``."""
    return body_store_from_config(log_config(settings).body_store)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*S3_ENV, "GATEWAY_CONFIG_FILE"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_settings_default_to_local(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    store = body_store_from_settings(Settings(data_dir=tmp_path))
    assert isinstance(store, SqliteBodyStore)
    assert store.location == "local"
    assert store.path == tmp_path / "bodies" / "bodies.sqlite3"
    files = body_store_from_settings(Settings(data_dir=tmp_path, body_store="files"))
    assert isinstance(files, LocalBodyStore)
    assert files.root == tmp_path / "bodies"


def test_settings_select_s3(clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean_env.setenv("S3_ENDPOINT", "http://minio:9000")
    clean_env.setenv("S3_BUCKET_NAME", "bodies")
    clean_env.setenv("S3_ACCESS_KEY", "key")
    clean_env.setenv("S3_SECRET_KEY", "secret")
    clean_env.setenv("S3_REGION", "eu-central-1")
    store = body_store_from_settings(Settings(data_dir=tmp_path))
    assert isinstance(store, S3BodyStore)
    assert store.location == "s3"
    assert (store.endpoint, store.bucket, store.region) == (
        "http://minio:9000",
        "bodies",
        "eu-central-1",
    )


@pytest.mark.parametrize(
    ("given", "missing"),
    [
        ({"s3_endpoint": "http://minio:9000"}, "S3_BUCKET_NAME, S3_ACCESS_KEY, S3_SECRET_KEY"),
        (
            {"s3_endpoint": "http://minio:9000", "s3_bucket_name": "b", "s3_access_key": "k"},
            "S3_SECRET_KEY",
        ),
        ({"s3_secret_key": "s", "s3_access_key": "k"}, "S3_ENDPOINT, S3_BUCKET_NAME"),
    ],
)
def test_settings_partial_s3_config_is_an_error(
    clean_env: pytest.MonkeyPatch, tmp_path: Path, given: dict[str, str], missing: str
) -> None:
    settings = Settings(data_dir=tmp_path, **given)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=f"missing {missing} "):
        body_store_from_settings(settings)


async def test_local_stores_are_owner_only_even_where_a_looser_directory_existed(
    tmp_path: Path,
) -> None:
    """Bodies are request data: 0700 directories and 0600 files, whatever the umask, and an
    existing world-readable directory is tightened."""
    old_umask = os.umask(0o022)
    try:
        loose = tmp_path / "sqlite"
        loose.mkdir(mode=0o755)
        sqlite_store = SqliteBodyStore(loose)
        await sqlite_store.put(new_id(), new_id(), b"x")
        await sqlite_store.close()
        files_store = LocalBodyStore(tmp_path / "files")
        await files_store.start()
        await files_store.put(new_id(), new_id(), b"x")
    finally:
        os.umask(old_umask)
    for path in [tmp_path / "sqlite", *(tmp_path / "sqlite").iterdir(),
                 *(tmp_path / "files").rglob("*"), tmp_path / "files"]:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
