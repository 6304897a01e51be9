"""The reference forwarder (:mod:`bench.forwarder`) as a bench target: its own process.

Started like the gateways (a child in its own session, output to a log file in the workdir),
pointed at the same upstream, measured by the same phases. It has no key and no data dir.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.procs import (
    HOST,
    BenchError,
    cpu_seconds,
    free_port,
    own_cpu_seconds,
    problem_lines,
    process_tree,
    rss_kib,
    spawn,
    stop,
    tail,
    wait_for_port,
)

REPO = Path(__file__).resolve().parent.parent


class ForwarderProcess:
    """``python -m bench.forwarder`` on a free port, forwarding to ``upstream_base_url``."""

    name = "forwarder"
    logging = False

    def __init__(self, workdir: Path, upstream_base_url: str) -> None:
        self.upstream_base_url = upstream_base_url
        self.log = workdir / f"{self.name}.log"
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise BenchError("the forwarder is not running")
        return self._proc.pid

    def start(self) -> None:
        argv = [sys.executable, "-m", "bench.forwarder", "--host", HOST, "--port",
                str(self.port), "--upstream", self.upstream_base_url]  # fmt: skip
        self._proc = spawn(argv, self.log, cwd=REPO)
        wait_for_port(self.port, self._proc, "the reference forwarder", self.log)

    def check_alive(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            raise BenchError(
                f"the reference forwarder died (status {self._proc.returncode}).\n"
                f"--- last lines of its output ({self.log}) ---\n{tail(self.log)}"
            )

    def rss_kib(self) -> int:
        return sum(rss_kib(pid) for pid in process_tree(self.pid))

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def main_cpu_seconds(self) -> float:
        return own_cpu_seconds(self.pid)

    def log_problems(self, limit: int = 10) -> list[str]:
        return problem_lines(self.log, limit)

    def stop(self) -> None:
        stop(self._proc)
        self._proc = None
