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
    ServedProcess,
    free_port,
    spawn,
    wait_for_port,
)

REPO = Path(__file__).resolve().parent.parent


class ForwarderProcess(ServedProcess):
    """``python -m bench.forwarder`` on a free port, forwarding to ``upstream_base_url``."""

    name = "forwarder"
    label = "the reference forwarder"
    logging = False

    def __init__(self, workdir: Path, upstream_base_url: str) -> None:
        self.upstream_base_url = upstream_base_url
        self.log = workdir / f"{self.name}.log"
        self.port = free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self.command = [sys.executable, "-m", "bench.forwarder"]
        """What runs it (:mod:`bench.profile` puts it under the profiler's wrapper)."""
        self.env: dict[str, str] | None = None
        """Its environment (None: the bench's own)."""

    def start(self) -> None:
        argv = [*self.command, "--host", HOST, "--port",
                str(self.port), "--upstream", self.upstream_base_url]  # fmt: skip
        self._proc = spawn(argv, self.log, env=self.env, cwd=REPO)
        wait_for_port(self.port, self._proc, self.label, self.log)
