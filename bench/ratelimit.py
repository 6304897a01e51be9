"""The rate-limit line of the bench: the no-logging gateway with ``REDIS_URL``, loaded once
with a global request-rate policy on every request and once without (issue 12's bar).

The same gateway process serves both, so the difference is the limiter alone: the counter's
units on Redis (leased a block at a time, this far from the limit: ratelimit/_lease.py) plus
the policy parse and the response headers. The policy's quota is far above what the bench can
send, so nothing is refused. Redis is the machine's server (``REDIS_URL``, default
127.0.0.1:6379); without one the line is reported as not measured (and fails).
``python -m bench.ratelimit`` measures this line alone (:data:`MAIN_DOC`; the runner is
:mod:`bench.ratelimit_run`).
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlsplit

from bench.load import RequestSpec

NAME = "gateway_ratelimit"
POLICY = "1000000000;w=60"
"""Global, per request, never reached by the bench: every request takes the full path."""
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_url() -> str | None:
    """``REDIS_URL`` (or the default) if a server answers ``PING`` there, else None."""
    url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1) as s:
            s.sendall(b"PING\r\n")
            answer = s.recv(64)
    except OSError:
        return None
    return url if answer.startswith(b"+PONG") else None


def limited(spec: RequestSpec) -> RequestSpec:
    """``spec`` carrying the policy."""
    return RequestSpec(spec.path, spec.body, {**spec.headers, "Helicone-RateLimit-Policy": POLICY})


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ratelimit", description=MAIN_DOC)
    parser.add_argument("--tree", type=Path, default=Path.cwd(), help="source tree (cwd)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per run")
    parser.add_argument("--c1-duration", type=float, default=5.0,
                        help="seconds of each 1-connection run (0: none)")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=6, help="interleaved runs per target")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    args.tree = args.tree.resolve()
    return args


MAIN_DOC = """``python -m bench.ratelimit``: the rate-limit line alone (issue 12's bar), faster to
repeat than the whole bench. One nginx upstream, one no-logging gateway of ``--tree`` with
``REDIS_URL``, loaded as in the full bench with and without the policy (:data:`POLICY`) in
interleaved rounds (plain, limited; limited, plain; ...), a warm-up before each run; after each
pair of ``--connections`` runs, one ``--c1-duration`` run of each at one connection for the
added p50. Reported: per round and pooled req/s and CPU µs per request, the pooled ratio
limited / plain (bar >= 90%) and the median of the rounds' added p50 (bar <= 0.3 ms)."""


def main(argv: list[str] | None = None) -> int:
    # Imported here: bench.phases imports this module for the full bench's rate-limit line.
    from bench.procs import print_report
    from bench.ratelimit_run import run

    args = parse_args(argv)
    return print_report("ratelimit", args.keep, lambda workdir: run(args, workdir), timed=True)


if __name__ == "__main__":
    sys.exit(main())
