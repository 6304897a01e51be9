"""The fake LLM provider: a fixed-response HTTP server the gateway forwards to.

It speaks OpenAI (``/v1/chat/completions``; its SSE variant under ``/stream``), Anthropic
(``/v1/messages``; its event stream under ``/anthropic-stream``), Gemini
(``/v1beta/models/gemini-2.5-flash:generateContent`` and ``:streamGenerateContent``, SSE) and
Bedrock (``/model/us.amazon.nova-lite-v1:0/converse`` and ``/converse-stream``, a binary AWS
event stream): one fixed answer per path.
For issue 11's routing lines it is also an organisation's own OpenAI endpoint (``/byok/v1``:
the same answer, and the model list that storing a key checks) and a provider that fails
(anything under ``/failing/`` is a 503 at once).

nginx answers from memory in a few microseconds, so whatever the bench measures above the
direct-upstream baseline is the gateway's own cost. nginx is installed with apt-get when it is
missing; only when that is impossible does the bench fall back to :mod:`bench.pyupstream`,
which is much slower and makes the baseline (and the RPS bar) less meaningful.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import payloads
from bench.procs import (
    HOST,
    BenchError,
    cpu_seconds,
    ensure_tool,
    free_port,
    own_cpu_seconds,
    spawn,
    stop,
    wait_for_port,
)

_TEMP_PATH_MODULES = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
"""Modules whose temp path defaults to /var/lib/nginx; each gets one in the bench's dir."""

_STATIC_PREFIX = "/bench-static/"


def static_files() -> dict[str, bytes]:
    """Binary answers, by file name: an nginx ``return`` string cannot hold NUL bytes, which
    every event-stream prelude has, so nginx serves them from files."""
    return {"converse-stream": payloads.bedrock_event_stream()}


def write_static_files() -> Path:
    """A new world-readable directory holding :func:`static_files`. Not in the bench's
    workdir: that one is private (``mkdtemp``, mode 0700), and nginx's workers, which run as
    an unprivileged user when the bench runs as root, could not read a file in it."""
    folder = Path(tempfile.mkdtemp(prefix="gateway-bench-static-"))
    folder.chmod(0o755)
    for name, data in static_files().items():
        (folder / name).write_bytes(data)
        (folder / name).chmod(0o644)
    return folder


def _nginx_string(text: str) -> str:
    """``text`` as a single-quoted nginx config string (``$`` would start a variable)."""
    if "$" in text:
        raise ValueError("nginx 'return' text cannot contain '$'")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def nginx_config(
    workdir: Path, port: int, disabled_modules: set[str], static_dir: Path | None = None
) -> str:
    """A self-contained config: every path in ``workdir`` (the binary answers in
    ``static_dir``, :func:`write_static_files`), one worker, no access log."""
    static_dir = static_dir if static_dir is not None else workdir / "static"
    temp_paths = "\n".join(
        f"    {module}_temp_path {workdir / (module + '_temp')};"
        for module in _TEMP_PATH_MODULES
        if module not in disabled_modules
    )
    return f"""\
worker_processes 1;
daemon off;
pid {workdir / "nginx.pid"};
error_log {workdir / "nginx-error.log"} warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    server_tokens off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_buffer_size 64k;
{temp_paths}

    server {{
        listen {HOST}:{port} backlog=4096;

        location = {payloads.CHAT_PATH} {{
            default_type application/json;
            add_header x-request-id req_bench_fixed;
            add_header openai-processing-ms 312;
            return 200 {_nginx_string(payloads.chat_completion())};
        }}

        location = {payloads.STREAM_UPSTREAM_PATH} {{
            default_type text/event-stream;
            add_header cache-control no-cache;
            add_header x-request-id req_bench_fixed;
            return 200 {_nginx_string(payloads.sse_stream())};
        }}

        location = {payloads.MESSAGES_PATH} {{
            default_type application/json;
            add_header request-id req_bench_fixed;
            return 200 {_nginx_string(payloads.anthropic_message())};
        }}

        location = {payloads.ANTHROPIC_STREAM_PATH} {{
            default_type text/event-stream;
            add_header cache-control no-cache;
            add_header request-id req_bench_fixed;
            return 200 {_nginx_string(payloads.anthropic_sse_stream())};
        }}

        location = {payloads.GEMINI_PATH} {{
            default_type application/json;
            return 200 {_nginx_string(payloads.gemini_response())};
        }}

        location = {payloads.GEMINI_STREAM_PATH} {{
            default_type text/event-stream;
            add_header cache-control no-cache;
            return 200 {_nginx_string(payloads.gemini_sse_stream())};
        }}

        location = {payloads.BEDROCK_PATH} {{
            default_type application/json;
            add_header x-amzn-requestid req_bench_fixed;
            return 200 {_nginx_string(payloads.converse_response())};
        }}

        # The binary event stream is a file: the static module answers GET only, so the
        # POST is turned into an internal GET of the file (error_page changes the method).
        location = {payloads.BEDROCK_STREAM_PATH} {{
            error_page 405 =200 {_STATIC_PREFIX}converse-stream;
            return 405;
        }}

        location {_STATIC_PREFIX} {{
            internal;
            alias {static_dir}/;
            default_type {payloads.BEDROCK_CONTENT_TYPE};
            add_header x-amzn-requestid req_bench_fixed;
        }}

        location = {payloads.BYOK_PATH} {{
            default_type application/json;
            add_header x-request-id {payloads.BYOK_REQUEST_ID};
            add_header openai-processing-ms 312;
            return 200 {_nginx_string(payloads.chat_completion())};
        }}

        location = {payloads.BYOK_MODELS_PATH} {{
            default_type application/json;
            return 200 {_nginx_string(payloads.model_list())};
        }}

        location {payloads.FAILING_PREFIX}/ {{
            default_type application/json;
            return 503 {_nginx_string(payloads.overloaded_error())};
        }}
    }}
}}
"""


class Upstream:
    """The running fake provider: ``port`` and a ``kind`` string for the report."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.kind = ""
        self.log = workdir / "upstream.log"
        self._proc: subprocess.Popen[bytes] | None = None
        self._static_dir: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self) -> None:
        nginx = ensure_tool("nginx", ("nginx-light", "nginx"))
        if nginx is not None:
            self._start_nginx(nginx)
        else:
            print("[bench] nginx unavailable: using the Python fallback upstream", file=sys.stderr)
            self._start_python()

    def _start_nginx(self, nginx: str) -> None:
        info = subprocess.run([nginx, "-V"], capture_output=True, text=True, check=False).stderr
        version = re.search(r"nginx/(\S+)", info)
        disabled = set(re.findall(r"--without-http_(\w+?)_module", info))
        self._static_dir = write_static_files()
        conf = self.workdir / "nginx.conf"
        conf.write_text(nginx_config(self.workdir, self.port, disabled, self._static_dir))
        self.log = self.workdir / "nginx-error.log"
        argv = [nginx, "-p", str(self.workdir), "-c", str(conf), "-e", str(self.log)]
        self._proc = spawn(argv, self.workdir / "nginx-stdout.log")
        wait_for_port(self.port, self._proc, "nginx", self.log)
        self.kind = f"nginx {version.group(1) if version else '?'} (1 worker)"

    def _start_python(self) -> None:
        argv = [sys.executable, "-m", "bench.pyupstream", str(self.port)]
        self._proc = spawn(argv, self.log, cwd=Path(__file__).resolve().parent.parent)
        wait_for_port(self.port, self._proc, "Python fallback upstream", self.log)
        self.kind = "Python asyncio fallback (nginx could not be installed; baseline is slow)"

    def cpu_seconds(self) -> float:
        """CPU time used so far by the upstream (nginx master and worker)."""
        if self._proc is None:
            raise BenchError("the upstream is not running")
        return cpu_seconds(self._proc.pid)

    def main_cpu_seconds(self) -> float:
        """CPU time used so far by nginx's master process alone."""
        if self._proc is None:
            raise BenchError("the upstream is not running")
        return own_cpu_seconds(self._proc.pid)

    def check_alive(self) -> None:
        """Raise if the upstream died during the run (its numbers would be garbage)."""
        if self._proc is not None and self._proc.poll() is not None:
            raise BenchError(f"the upstream exited with status {self._proc.returncode}")

    def stop(self) -> None:
        stop(self._proc)
        self._proc = None
        if self._static_dir is not None:
            shutil.rmtree(self._static_dir, ignore_errors=True)
            self._static_dir = None
