"""The gateway under test, run exactly as an operator would: ``gateway serve`` in a child.

It gets a fresh data directory (SQLite; with logging on also the embedded ClickHouse log and
the SQLite body store) and a key made with ``gateway keys create``, and its provider base URLs
point at the fake upstream: OpenAI's at its JSON location, Groq's at its SSE one, Anthropic's
at its Messages JSON location or, for a gateway made with ``anthropic_stream``, at its Messages
event-stream location (the upstream tells the two apart by path only); Gemini's and Bedrock's
at its root (their adapters' paths differ streamed or not, so one base URL serves both).
Bedrock's managed key is a made-up AWS access key and secret (``BEDROCK_API_KEY``, the
``ACCESS:SECRET`` form), so every Bedrock request is SigV4-signed as in production; the
upstream does not check the signature. Inherited ``GATEWAY_*``, ``DATABASE_URL``,
``CLICKHOUSE_URL``, ``S3_*``, ``REDIS_URL`` and ``AWS_*`` variables are dropped so that a
developer's shell settings (or real AWS credentials) cannot change what is measured; request
logging is switched explicitly with ``GATEWAY_LOGGING_ENABLED``, Redis (rate-limit counters)
with ``REDIS_URL``.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.payloads import ANTHROPIC_STREAM_PREFIX
from bench.procs import (
    HOST,
    BenchError,
    ServedProcess,
    free_port,
    spawn,
    tail,
)

REPO = Path(__file__).resolve().parent.parent
_DROPPED_ENV = ("GATEWAY_", "DATABASE_URL", "CLICKHOUSE_URL", "S3_", "REDIS_URL", "AWS_")
BEDROCK_KEY = "AKIABENCHMARK0000001:bench/secret+access/key0000000000000000"
"""A made-up AWS access key id and secret (``ACCESS:SECRET``): signed with, never checked."""
BEDROCK_REGION = "us-east-1"
_ORG_ID = re.compile(r"\(id ([0-9a-fA-F-]{36})\)")


def gateway_binary() -> str:
    """The ``gateway`` console script of the interpreter running the bench (the venv's)."""
    beside = Path(sys.executable).parent / "gateway"
    if beside.exists():
        return str(beside)
    found = shutil.which("gateway")
    if found is None:
        raise BenchError("the 'gateway' command is not installed: run `make install` first")
    return found


class Gateway(ServedProcess):
    """One gateway process with its own data dir, port and key.

    ``name`` keeps the data dir and output log of several gateways in one workdir apart;
    ``extra_env`` adds or overrides variables (the routing gateway's failing provider and its
    health cool-down, :mod:`bench.routing`).
    """

    label = "the gateway"

    def __init__(
        self,
        workdir: Path,
        upstream_base_url: str,
        *,
        name: str = "gateway",
        logging: bool = True,
        workers: int = 1,
        anthropic_stream: bool = False,
        redis_url: str | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.logging = logging
        self.data_dir = workdir / f"{name}-data"
        self.data_dir.mkdir()
        self.log = workdir / f"{name}.log"
        self.port = free_port()
        self.workers = workers
        self.key = ""
        self.org_id = ""
        """The key's organisation (from ``keys create``): whose rows are this gateway's."""
        self.binary = gateway_binary()
        self.serve_command = [self.binary]
        """What ``serve`` runs under: the ``gateway`` command, or a wrapper taking the same
        arguments (:mod:`bench.profiled_gateway`)."""
        self._proc: subprocess.Popen[bytes] | None = None
        env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_ENV)}
        env.update(
            GATEWAY_DATA_DIR=str(self.data_dir),
            GATEWAY_LOGGING_ENABLED="true" if logging else "false",
            OPENAI_API_KEY="bench",
            OPENAI_BASE_URL=f"{upstream_base_url}/v1",
            GROQ_API_KEY="bench",
            GROQ_BASE_URL=f"{upstream_base_url}/stream/v1",
            ANTHROPIC_API_KEY="bench",
            ANTHROPIC_BASE_URL=upstream_base_url
            + (ANTHROPIC_STREAM_PREFIX if anthropic_stream else ""),
            GEMINI_API_KEY="bench",
            GEMINI_BASE_URL=upstream_base_url,
            BEDROCK_API_KEY=BEDROCK_KEY,
            BEDROCK_BASE_URL=upstream_base_url,
            GATEWAY_BEDROCK_REGION=BEDROCK_REGION,
        )
        if redis_url is not None:  # rate-limit counters on Redis, under this run's own prefix
            env.update(REDIS_URL=redis_url, GATEWAY_REDIS_KEY_PREFIX=f"bench:{uuid.uuid4().hex}:")
        env.update(extra_env or {})
        self.env = env

    def new_key(self, org: str | None = None) -> tuple[str, str]:
        """``gateway keys create [--org ORG]``: (the key, the last line it prints; the
        organisation id it names, or "" when it names none)."""
        argv = [self.binary, "keys", "create", *(("--org", org) if org else ()), "--name", "bench"]
        done = subprocess.run(
            argv,
            env=self.env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            command = "gateway keys create" + (f" --org {org}" if org else "")
            raise BenchError(
                f"`{command}` failed (status {done.returncode}):\n"
                f"{done.stderr.strip() or done.stdout.strip()}"
            )
        found = _ORG_ID.search(done.stdout)
        return lines[-1].strip(), found.group(1) if found else ""

    def create_key(self) -> str:
        """A key of the default organisation, kept as this gateway's ``key``/``org_id``."""
        self.key, self.org_id = self.new_key()
        return self.key

    def start(self, timeout: float = 60.0) -> None:
        """Start ``gateway serve`` and wait until ``GET /healthz`` answers 200."""
        argv = [
            *self.serve_command, "serve", "--host", HOST, "--port", str(self.port),
            "--workers", str(self.workers),
        ]  # fmt: skip
        self._proc = spawn(argv, self.log, env=self.env, cwd=REPO)
        deadline = time.monotonic() + timeout
        last_error = "no answer"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BenchError(
                    f"the gateway exited with status {self._proc.returncode} during startup.\n"
                    f"--- last lines of its output ({self.log}) ---\n{tail(self.log)}"
                )
            status = self._healthz()
            if status == 200:
                return
            last_error = f"/healthz answered {status}" if status else "port not open yet"
            time.sleep(0.1)
        raise BenchError(
            f"the gateway did not come up on port {self.port} within {timeout:.0f} s "
            f"({last_error}).\n--- last lines of its output ({self.log}) ---\n{tail(self.log)}"
        )

    def _healthz(self) -> int | None:
        conn = http.client.HTTPConnection(HOST, self.port, timeout=2)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status
        except OSError:
            return None
        finally:
            conn.close()

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        """One control-plane request with the gateway key: (status, decoded JSON body)."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        try:
            conn.request(method, path, json.dumps(body) if body is not None else None, headers)
            response = conn.getresponse()
            raw = response.read()
        except OSError as exc:
            raise BenchError(f"{method} {path} failed: {exc}") from exc
        finally:
            conn.close()
        try:
            return response.status, json.loads(raw) if raw else None
        except ValueError:
            return response.status, raw[:300]

    def health(self) -> dict[str, Any]:
        """The decoded ``GET /healthz`` body (with logging on it holds the writer's counters)."""
        conn = http.client.HTTPConnection(HOST, self.port, timeout=5)
        try:
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            body = response.read()
        except OSError as exc:
            raise BenchError(f"GET /healthz failed: {exc}") from exc
        finally:
            conn.close()
        if response.status != 200:
            raise BenchError(f"GET /healthz answered {response.status}: {body[:300]!r}")
        data: dict[str, Any] = json.loads(body)
        return data
