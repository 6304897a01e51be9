"""``gateway doctor``: the configuration with secrets masked, each store asked once, exit 1
when one does not answer; and ``gateway serve`` refusing, in one clear line, a request log
with no store (no CLICKHOUSE_URL and no chdb, as in the image).

Stores are real: SQLite and PostgreSQL, the chdb-served ClickHouse HTTP endpoint
(tests/clickhouse_http.py), the moto S3 server, the machine's Redis; the ones that do not
answer are URLs at a port nothing listens on.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import logconfig
from gateway.cli import main
from gateway.doctor import setting_variables
from gateway.store import generate_key
from logging_pipeline.clickhouse import ChdbTransport, LogStoreError
from logging_pipeline.clickhouse.chdb_transport import EMBEDDED_MISSING
from tests.clickhouse_http import ChdbHttpServer
from tests.s3_server import ACCESS_KEY, MotoS3Server, free_port, moto_s3_server
from tests.test_readiness import redis_url  # noqa: F401  (the fixture)

PROVIDER_KEY = "sk-provider-secret-0123456789"


@pytest.fixture(scope="module")
def s3_server() -> Iterator[MotoS3Server]:
    yield from moto_s3_server()


@pytest.fixture
def environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No gateway setting from the machine; a fresh data directory."""
    for variable in setting_variables():
        monkeypatch.delenv(variable, raising=False)
    for variable in list(os.environ):
        if variable.startswith("GATEWAY_"):
            monkeypatch.delenv(variable)
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path / "data"))
    return monkeypatch


def _doctor(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["doctor"])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def _line(output: str, store: str) -> str:
    stores = output.split("\nStores:\n", 1)[1]
    lines = [line for line in stores.splitlines() if line[6:].startswith(f"  {store}:")]
    assert len(lines) == 1, output
    return lines[0]


def test_every_store_answers(
    environ: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    s3_server: MotoS3Server,
    redis_url: str,  # noqa: F811
) -> None:
    clickhouse = ChdbHttpServer(tmp_path / "clickhouse").start()
    try:
        s3_server.client().create_bucket(Bucket="doctor-bodies")
        database = tmp_path / "gateway.db"
        key = generate_key()
        environ.setenv("GATEWAY_ENCRYPTION_KEY", key)
        environ.setenv("DATABASE_URL", f"sqlite:///{database}")
        environ.setenv("CLICKHOUSE_URL", clickhouse.url)
        environ.setenv("S3_ENDPOINT", s3_server.endpoint)
        environ.setenv("S3_BUCKET_NAME", "doctor-bodies")
        environ.setenv("S3_ACCESS_KEY", ACCESS_KEY)
        environ.setenv("S3_SECRET_KEY", "testing-secret-key")
        environ.setenv("REDIS_URL", redis_url)
        environ.setenv("OPENAI_API_KEY", PROVIDER_KEY)
        environ.setenv("GATEWAY_LOG_LEVEL", "debug")
        assert main(["migrate"]) == 0
        capsys.readouterr()
        # moto accepts any secret; the bucket answers with the configured one.
        code, output = _doctor(capsys)
    finally:
        clickhouse.stop()
    assert code == 0, output
    assert "ok    control store:" in output and "schema at head" in output
    assert "ok    log store: ClickHouse server" in output
    assert "ok    body store: S3 bucket doctor-bodies" in output
    assert "ok    redis:" in output and "answers PING" in output
    assert "All 4 stores answer." in output
    # Configuration: every variable, the changed ones marked, secrets masked.
    assert "* GATEWAY_LOG_LEVEL" in output and "debug" in output
    assert "  GATEWAY_WORKERS " in output  # at its default, unmarked
    for secret in (key, PROVIDER_KEY, "testing-secret-key", clickhouse.password, "s3cret"):
        assert secret not in output
    assert "OPENAI_API_KEY" in output and "***" in output


def test_stores_that_do_not_answer_fail_the_command(
    environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = free_port()
    environ.setenv("DATABASE_URL", f"postgresql://gateway:pg-pass-123@127.0.0.1:{dead}/gateway")
    environ.setenv("GATEWAY_ENCRYPTION_KEY", generate_key())
    environ.setenv("CLICKHOUSE_URL", f"http://gateway:ch-pass-456@127.0.0.1:{dead}/default")
    environ.setenv("S3_ENDPOINT", f"http://127.0.0.1:{dead}")
    environ.setenv("S3_BUCKET_NAME", "bodies")
    environ.setenv("S3_ACCESS_KEY", "access-id-789")
    environ.setenv("S3_SECRET_KEY", "s3-secret-000")
    environ.setenv("REDIS_URL", f"redis://:redis-pass-111@127.0.0.1:{dead}/0")
    code, output = _doctor(capsys)
    assert code == 1
    for store in ("control store", "log store", "body store", "redis"):
        assert _line(output, store).startswith("  FAIL"), output
    assert "4 of 4 stores did not answer" in output
    for secret in ("pg-pass-123", "ch-pass-456", "access-id-789", "s3-secret-000",
                   "redis-pass-111"):  # fmt: skip
        assert secret not in output
    # The URLs themselves are shown (the operator needs to see where), passwords masked.
    assert f"postgresql://gateway:***@127.0.0.1:{dead}/gateway" in output


def test_one_store_down_is_enough_to_fail(
    environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The embedded defaults answer (chdb installed, local bodies); a dead Redis alone fails."""
    environ.setenv("REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    code, output = _doctor(capsys)
    assert code == 1
    assert _line(output, "control store").startswith("  ok")  # not created yet: fine
    assert "does not exist yet" in output
    assert _line(output, "log store").startswith("  ok") and "chdb" in output
    assert _line(output, "body store").startswith("  ok")
    assert _line(output, "redis").startswith("  FAIL")
    assert not (tmp_path / "data" / "gateway.db").exists()  # doctor created nothing


def test_missing_encryption_key_and_pending_migrations(
    environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], postgres_database_url: str
) -> None:
    environ.setenv("DATABASE_URL", postgres_database_url)
    code, output = _doctor(capsys)
    assert code == 1 and "GATEWAY_ENCRYPTION_KEY is not set" in _line(output, "control store")
    environ.setenv("GATEWAY_ENCRYPTION_KEY", generate_key())
    code, output = _doctor(capsys)
    # An empty database answers: not a failure, but the advice says what to run.
    assert code == 0, output
    assert "schema at (empty)" in output and "gateway migrate" in output


def test_without_chdb_or_clickhouse_url_doctor_and_serve_say_so(
    environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    environ.setattr(logconfig, "embedded_available", lambda: False)
    code, output = _doctor(capsys)
    assert code == 1 and EMBEDDED_MISSING in _line(output, "log store")

    assert main(["serve"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and error.startswith("error: ")
    for remedy in ("CLICKHOUSE_URL", "llm-gateway[embedded]", "GATEWAY_LOGGING_ENABLED=false"):
        assert remedy in error
    assert not (tmp_path / "data" / "gateway.db").exists()  # refused before anything else

    environ.setenv("GATEWAY_LOGGING_ENABLED", "false")
    code, output = _doctor(capsys)
    assert code == 0 and "request logging is off" in output


async def test_the_embedded_transport_names_the_ways_out_when_chdb_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "chdb", None)  # import chdb now raises ImportError
    transport = ChdbTransport(tmp_path / "clickhouse")
    try:
        with pytest.raises(LogStoreError) as caught:
            await transport.query("SELECT 1")
    finally:
        await transport.close()
    assert str(caught.value) == EMBEDDED_MISSING



def test_configuration_problems_are_listed_and_fail_the_command(
    environ: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What `gateway serve` would refuse (here: traces on without an endpoint, a header
    secret set) is listed, one line each, secrets masked; the stores are still asked."""
    environ.setenv("GATEWAY_TRACES_ENABLED", "true")
    environ.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=otel-secret-222")
    code, output = _doctor(capsys)
    assert code == 1
    problems = output.split("Configuration problems ('gateway serve' refuses to start):\n")[1]
    first = problems.splitlines()[0]
    assert first.startswith("  FAIL  GATEWAY_TRACES_ENABLED=true needs an OTLP endpoint")
    assert "All 3 stores answer." in output and "1 configuration problem(s)" in output
    assert "otel-secret-222" not in output
    environ.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    code, output = _doctor(capsys)
    assert code == 0 and "Configuration problems" not in output, output
