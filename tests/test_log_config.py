"""What the log writer child is given: its own configuration, never the gateway's secrets.

The writer child (``GATEWAY_LOG_WRITER_PROCESS``, the default) is started with ``spawn``: its
arguments are pickled and handed to a new interpreter. It needs the log and body stores'
credentials (``CLICKHOUSE_URL`` with its password, the S3 secret key) and nothing else — not
the operator's provider keys, not the control-plane ``DATABASE_URL`` and its password.
"""

from __future__ import annotations

import pickle
import pkgutil
import subprocess
import sys
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any

import pytest

import logging_pipeline
from gateway.logconfig import log_config
from gateway.runtime import Runtime
from gateway.store import ControlStore
from tests.harness import make_settings

PROVIDER_KEY = "sk-provider-secret-0f9e8d7c6b5a"
DB_PASSWORD = "db-password-5a6b7c8d9e0f"


async def test_writer_child_receives_no_provider_key_nor_database_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    handed: list[Any] = []  # what each spawned child is given (``start`` then drops it)
    start = SpawnProcess.start

    def recording_start(process: SpawnProcess) -> None:
        # Everything pickled for the child but its end of the pipe (a file descriptor).
        handed.extend(a for a in process._args if not isinstance(a, Connection))  # type: ignore[attr-defined]
        start(process)

    monkeypatch.setattr(SpawnProcess, "start", recording_start)
    settings = make_settings(
        tmp_path,
        logging_enabled=True,
        provider_api_keys={"openai": PROVIDER_KEY, "groq": PROVIDER_KEY + "-groq"},
        database_url=f"postgresql://gateway:{DB_PASSWORD}@127.0.0.1:5432/gateway",
    )
    # The control plane itself runs on SQLite here: the URL above is only a value to look for.
    store = ControlStore.from_settings(make_settings(tmp_path))
    runtime = Runtime(settings, store=store)
    await runtime.start()
    try:
        assert runtime.writer is not None
        assert runtime.writer.transport.name == "chdb"  # the child started and answered
        assert handed
        payload = pickle.dumps(handed)
        assert PROVIDER_KEY.encode() not in payload
        assert DB_PASSWORD.encode() not in payload
        assert b"provider_api_keys" not in payload and b"database_url" not in payload
    finally:
        await runtime.close()


def test_log_config_carries_only_the_stores_credentials(tmp_path: Path) -> None:
    """The two secrets the child needs to write are in the config, by design; ``repr`` (what a
    log line or traceback would show) hides them."""
    settings = make_settings(
        tmp_path,
        provider_api_keys={"openai": PROVIDER_KEY},
        database_url=f"postgresql://gateway:{DB_PASSWORD}@127.0.0.1:5432/gateway",
        clickhouse_url="http://writer:ch-password@127.0.0.1:8123/gateway",
        s3_endpoint="http://127.0.0.1:9000",
        s3_bucket_name="bodies",
        s3_access_key="access",
        s3_secret_key="s3-secret",
        log_writer_nice=3,
        log_journal_fsync_ms=25,
    )
    config = log_config(settings)
    assert config.log_store.clickhouse_url == "http://writer:ch-password@127.0.0.1:8123/gateway"
    assert config.body_store.s3 is not None and config.body_store.s3.secret_key == "s3-secret"
    assert (config.writer_nice, config.journal_fsync_ms, config.flush_ms) == (3, 25, 50)
    assert config.journal_root == tmp_path / "journal"
    payload = pickle.dumps(config)
    assert PROVIDER_KEY.encode() not in payload and DB_PASSWORD.encode() not in payload
    shown = repr(config)
    assert "ch-password" not in shown and "s3-secret" not in shown
    assert "bodies" in shown  # the rest is shown


def test_logging_pipeline_imports_no_gateway_module() -> None:
    """The dependency points one way: the gateway configures the pipeline, never the reverse
    (a fresh interpreter, since this one has the gateway loaded)."""
    modules = sorted(
        info.name
        for info in pkgutil.walk_packages(logging_pipeline.__path__, "logging_pipeline.")
    )
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in sys.modules if m == 'gateway' or m.startswith('gateway.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert len(modules) > 20
    assert result.stdout.strip() == "[]"
