"""The ``gateway`` console script, run as a real subprocess on a fresh data directory."""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from gateway.cli import main, prepare_serving
from gateway.keys import KEY_PATTERN
from gateway.settings import Settings
from logging_pipeline.logformat import dict_config


def _gateway_executable() -> str:
    beside_python = Path(sys.executable).parent / "gateway"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("gateway")
    assert found, "the 'gateway' console script is not installed (pip install -e .)"
    return found


GATEWAY = _gateway_executable()


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of a fresh installation: no gateway settings except the data dir."""
    clean = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("GATEWAY_") and name != "DATABASE_URL"
    }
    clean["GATEWAY_DATA_DIR"] = str(tmp_path / "data")
    return clean


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [GATEWAY, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def assert_clean_failure(result: subprocess.CompletedProcess[str], code: int = 1) -> None:
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip()


def create_key(env: dict[str, str], *args: str) -> str:
    result = run(env, "keys", "create", *args)
    assert result.returncode == 0, result.stderr
    key = result.stdout.splitlines()[-1]
    assert KEY_PATTERN.fullmatch(key), result.stdout
    return key


def test_migrate_on_a_fresh_data_dir(env: dict[str, str]) -> None:
    first = run(env, "migrate")
    assert first.returncode == 0, first.stderr
    assert "from (empty) to 0005" in first.stdout
    assert (Path(env["GATEWAY_DATA_DIR"]) / "gateway.db").is_file()

    second = run(env, "migrate")
    assert second.returncode == 0, second.stderr
    assert "up to date (revision 0005)" in second.stdout


def test_keys_create_prints_the_key_last(env: dict[str, str]) -> None:
    result = run(env, "keys", "create", "--org", "acme", "--name", "ci")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert KEY_PATTERN.fullmatch(lines[-1])
    assert len(lines) > 1, "informational text precedes the key"
    assert "acme" in result.stdout


def test_keys_list_shows_prefixes_never_keys(env: dict[str, str]) -> None:
    assert run(env, "keys", "list").stdout.strip() == "No keys."
    key_a = create_key(env, "--name", "first")
    key_b = create_key(env, "--org", "acme")

    listing = run(env, "keys", "list")
    assert listing.returncode == 0, listing.stderr
    assert key_a[:16] in listing.stdout and key_b[:16] in listing.stdout
    assert key_a not in listing.stdout and key_b not in listing.stdout
    assert key_a[:17] not in listing.stdout
    header, *rows = listing.stdout.splitlines()
    assert header.split() == ["ID", "PREFIX", "ORG", "NAME", "SCOPES", "CREATED", "REVOKED"]
    assert len(rows) == 2 and all(row.endswith("active") for row in rows)

    only_acme = run(env, "keys", "list", "--org", "acme")
    assert key_b[:16] in only_acme.stdout and key_a[:16] not in only_acme.stdout


def test_keys_revoke(env: dict[str, str]) -> None:
    key = create_key(env)
    revoked = run(env, "keys", "revoke", key[:16])
    assert revoked.returncode == 0, revoked.stderr
    assert "revoked" in revoked.stdout

    row = run(env, "keys", "list").stdout.splitlines()[1]
    assert key[:16] in row and not row.endswith("active")

    again = run(env, "keys", "revoke", row.split()[0])
    assert again.returncode == 0, again.stderr
    assert again.stdout == revoked.stdout


@pytest.mark.parametrize("needle", ["sk-helicone-zzzz", "no-such-key", "sk-helicone-"])
def test_keys_revoke_unknown(env: dict[str, str], needle: str) -> None:
    create_key(env)
    result = run(env, "keys", "revoke", needle)
    assert_clean_failure(result)
    assert "no key matches" in result.stderr


def test_keys_revoke_ambiguous(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In-process, so that two keys can be given the same prefix."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    keys = iter(f"sk-helicone-same00{i}-0000000-0000000-0000000" for i in range(2))
    monkeypatch.setattr("gateway.store._control.generate_key", lambda: next(keys))
    assert main(["keys", "create"]) == 0
    assert main(["keys", "create"]) == 0
    capsys.readouterr()

    assert main(["keys", "revoke", "sk-helicone-same"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "matches 2 keys" in err


@pytest.mark.parametrize(
    "args",
    [
        ["keys", "create", "--org", " "],
        ["keys"],
        ["serve", "--port", "0"],
        ["serve", "--workers", "many"],
        ["frobnicate"],
    ],
)
def test_usage_errors(env: dict[str, str], args: list[str]) -> None:
    assert_clean_failure(run(env, *args), code=2)


@pytest.mark.parametrize(
    ("database_url", "message"),
    [
        ("postgresql://postgres:hunter2@127.0.0.1:1/gateway", "cannot use the database"),
        ("mysql://localhost/gateway", "unsupported database"),
        ("not a url", "invalid database URL"),
    ],
)
def test_database_errors_are_one_line(env: dict[str, str], database_url: str, message: str) -> None:
    result = run({**env, "DATABASE_URL": database_url}, "keys", "list")
    assert_clean_failure(result)
    assert len(result.stderr.strip().splitlines()) == 1
    assert message in result.stderr
    assert "hunter2" not in result.stderr


def test_invalid_settings(env: dict[str, str]) -> None:
    result = run({**env, "GATEWAY_PORT": "eighty"}, "migrate")
    assert_clean_failure(result)
    # One line naming the variable (tests/test_lifecycle.py: one line per problem).
    assert result.stderr.startswith("error: GATEWAY_PORT: Input should be a valid integer")


def test_base_url_with_credentials_is_refused_at_start(env: dict[str, str]) -> None:
    """Credentials in a provider base URL stop ``serve`` with one line, never a 500 later."""
    env = {**env, "OPENAI_BASE_URL": "https://user:hunter2@api.example/v1"}
    command = [GATEWAY, "serve", "--port", str(_free_port())]
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=20, check=False
    )
    assert_clean_failure(result)
    assert "OPENAI_BASE_URL" in result.stderr and "OPENAI_API_KEY" in result.stderr
    assert "hunter2" not in result.stderr


@pytest.mark.postgres
def test_keys_on_postgres(env: dict[str, str], postgres_database_url: str) -> None:
    pg_env = {**env, "DATABASE_URL": postgres_database_url}
    key = create_key(pg_env, "--org", "acme")
    assert key[:16] in run(pg_env, "keys", "list").stdout
    assert run(pg_env, "keys", "revoke", key).returncode == 0
    assert not Path(env["GATEWAY_DATA_DIR"]).exists(), "PostgreSQL needs no data dir"


# --- serve --------------------------------------------------------------------------------


def test_prepare_serving_bootstraps_one_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    settings = Settings(data_dir=tmp_path / "data")
    key = prepare_serving(settings)
    assert key is not None and KEY_PATTERN.fullmatch(key)
    assert prepare_serving(settings) is None

    open_settings = Settings(data_dir=tmp_path / "open", allow_anonymous=True)
    assert prepare_serving(open_settings) is None


_SERVE_WITHOUT_UVICORN = """
import dataclasses, json, pickle, sys, uvicorn
def fake_run(app, **options):
    http = pickle.loads(pickle.dumps(options["http"]))  # what --workers N sends each worker
    options["http"] = {
        "protocol": f"{http.func.__module__}.{http.func.__qualname__}",
        **{name: dataclasses.asdict(value) for name, value in http.keywords.items()},
    }
    print("UVICORN " + json.dumps({"app": app, **options}))
uvicorn.run = fake_run
from gateway.cli import main
sys.exit(main(sys.argv[1:]))
"""


def serve(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _SERVE_WITHOUT_UVICORN, "serve", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def uvicorn_options(stdout: str) -> dict[str, object]:
    line = next(line for line in stdout.splitlines() if line.startswith("UVICORN "))
    options: dict[str, object] = json.loads(line.removeprefix("UVICORN "))
    return options


def test_serve_prints_a_bootstrap_key_once(env: dict[str, str]) -> None:
    first = serve(
        {**env, "GATEWAY_PORT": "9001", "CLICKHOUSE_URL": "http://clickhouse:8123"},
        "--host", "0.0.0.0", "--workers", "2",
    )
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    banner = lines.index("Created a gateway key for org 'default' (shown only once):")
    assert KEY_PATTERN.fullmatch(lines[banner + 1])
    options = uvicorn_options(first.stdout)
    assert options == {
        "app": "gateway.app:create_app_from_env",
        "factory": True,
        "host": "0.0.0.0",
        "port": 9001,
        "workers": 2,
        "loop": "uvloop",
        "http": {
            "protocol": "gateway.protocol.GatewayHttpProtocol",
            "limits": {"header_timeout": 10.0, "body_timeout": 60.0, "max_connections": 2048},
        },
        "log_level": "info",
        "log_config": dict_config("info", "json"),  # every line JSON: logging_pipeline/logformat.py
        "access_log": False,
        "proxy_headers": False,  # applied by the app, in front of the control plane only
        "lifespan": "on",
        "timeout_graceful_shutdown": 30,  # GATEWAY_SHUTDOWN_GRACE_SECONDS
    }

    second = serve(env, "--port", "9002")
    assert second.returncode == 0, second.stderr
    assert "sk-helicone-" not in second.stdout
    assert uvicorn_options(second.stdout)["port"] == 9002
    assert uvicorn_options(second.stdout)["host"] == "127.0.0.1"


def test_serve_refuses_several_workers_on_embedded_log_store(env: dict[str, str]) -> None:
    result = serve(env, "--workers", "2")
    assert result.returncode == 1
    assert "CLICKHOUSE_URL" in result.stderr
    assert "Traceback" not in result.stderr
    assert "UVICORN" not in result.stdout
    disabled = serve({**env, "GATEWAY_LOGGING_ENABLED": "false"}, "--workers", "2")
    assert disabled.returncode == 0, disabled.stderr
    assert uvicorn_options(disabled.stdout)["workers"] == 2


def test_serve_warns_when_the_open_file_limit_cannot_hold_the_connection_limit(
    env: dict[str, str],
) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        pytest.skip("no hard open-file limit to exceed")
    result = serve({**env, "GATEWAY_MAX_CONNECTIONS": str(hard)})
    assert result.returncode == 0, result.stderr
    assert "open-file limit" in result.stderr and "GATEWAY_MAX_CONNECTIONS" in result.stderr
    if hard >= 2048 + 1000 + 256:
        assert "warning" not in serve(env).stderr  # the defaults fit


def test_serve_with_anonymous_access_creates_no_key(env: dict[str, str]) -> None:
    result = serve({**env, "GATEWAY_ALLOW_ANONYMOUS": "true"})
    assert result.returncode == 0, result.stderr
    assert "sk-helicone-" not in result.stdout
    assert run(env, "keys", "list").stdout.strip() == "No keys."


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_serve_starts_the_real_server(env: dict[str, str]) -> None:
    port = _free_port()
    process = subprocess.Popen(
        [GATEWAY, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not _healthy(f"http://127.0.0.1:{port}/healthz"):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "gateway did not become healthy"
            time.sleep(0.1)
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=30)
    assert "Traceback" not in stderr
    lines = stdout.splitlines()
    banner = lines.index("Created a gateway key for org 'default' (shown only once):")
    assert KEY_PATTERN.fullmatch(lines[banner + 1])


def test_bench_writer_measures_real_writes() -> None:
    """``python -m bench.writer`` runs end to end and checks every row and body landed."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.writer", "--batches", "2", "--batch", "50",
         "--stream-every", "3", "--settle", "0"],
        cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True,
        timeout=300, check=False,
    )
    assert done.returncode == 0, done.stderr
    stages = dict(line.rsplit(None, 1) for line in done.stdout.splitlines()[1:])
    assert set(stages) >= {"build_record", "gzip", "body store", "clickhouse insert", "total"}
    assert float(stages["total"]) > 0
