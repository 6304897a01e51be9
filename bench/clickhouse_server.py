"""A ClickHouse HTTP endpoint for the capacity bench's logging-on gateways.

With ``--workers 2`` and logging on, the gateway needs a ClickHouse server (the embedded engine,
chdb, is one per process and refuses a second opener: README, "Why the embedded mode is
single-process"). No server can be installed on the development machines, so the bench serves
ClickHouse's HTTP protocol in front of chdb with the logging tests' stand-in
(``tests/clickhouse_http.py``: every statement runs on the real engine, only the HTTP framing
is test code) in a process of its own, and points ``CLICKHOUSE_URL`` at it — for both worker
counts, so that the logging-on figures compare like with like, and match the image, which
logs to a ClickHouse server. It shares the machine's two cores with everything else (a real
deployment runs ClickHouse elsewhere), and its memory is not the gateway's.

``python -m bench.clickhouse_server DATA_DIR URL_FILE``: writes the URL (with credentials) to
``URL_FILE`` once it answers, then serves until terminated.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.procs import BenchError, rss_kib, spawn, stop, tail

REPO = Path(__file__).resolve().parent.parent


class ClickHouseServer:
    """The stand-in in a child process (own session, so :func:`bench.procs.stop` reaps it)."""

    def __init__(self, workdir: Path, name: str) -> None:
        self.data_dir = workdir / f"{name}-clickhouse"
        self.url_file = workdir / f"{name}-clickhouse.url"
        self.log = workdir / f"{name}-clickhouse.log"
        self.url = ""
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> str:
        argv = [
            sys.executable,
            "-m",
            "bench.clickhouse_server",
            str(self.data_dir),
            str(self.url_file),
        ]
        self._proc = spawn(argv, self.log, cwd=REPO)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise BenchError(
                    f"the ClickHouse stand-in exited with status {self._proc.returncode}.\n"
                    f"--- last lines of {self.log} ---\n{tail(self.log)}"
                )
            if self.url_file.exists() and (url := self.url_file.read_text().strip()):
                self.url = url
                return url
            time.sleep(0.1)
        raise BenchError(f"the ClickHouse stand-in did not start within {timeout:.0f} s")

    def rss_kib(self) -> int:
        return rss_kib(self._proc.pid) if self._proc is not None else 0

    def stop(self) -> None:
        stop(self._proc)
        self._proc = None


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    data_dir, url_file = Path(args[0]), Path(args[1])
    sys.path.insert(0, str(REPO))
    from tests.clickhouse_http import ChdbHttpServer

    server = ChdbHttpServer(data_dir, record_requests=False).start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    url_file.write_text(server.url + "\n")
    try:
        stopped.wait()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
