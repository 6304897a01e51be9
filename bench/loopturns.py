"""``python -m bench.loopturns``: event-loop turns per request at one connection (issue 10).

At one connection a request's latency is its sequential work plus every event-loop iteration
it waits for: each await that really suspends (a future, a lock, a queue, a task started and
awaited, a ``call_soon``/``call_later`` hand-off, a thread hand-off) costs one more trip
through the loop (a ``select`` and the callbacks before it). This counts them: one nginx
upstream (:mod:`bench.upstream`), then each target in turn — the reference forwarder
(``--forwarder``, :mod:`bench.forwarder`) and the gateway of ``--tree`` with logging off
and/or on (``--logging``) — started through :mod:`bench.turns_server` (asyncio's loop with
its iterations and callbacks counted, switched on by signals), a warm-up, then one counted
run of ``--duration`` seconds of the main bench's unified chat completion (``gpt-4o-mini``,
gateway key) at one connection. Printed per target: loop iterations and callbacks run per
request, then every callback kind at ``--min`` per request or more: a task resumed (where it
was suspended: its coroutines' frames and what the innermost one awaited — the awaits that
yield) or a plain callback (I/O readiness, timers, futures' done callbacks).

Counts, not times: they do not depend on the machine's load, so this may run beside
anything. Timers that run every few milliseconds (the request lines' and metrics' flush, the
journal's) show as fractions of a callback per request.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from bench import payloads
from bench.ab import MODELS
from bench.forwarder_proc import REPO, ForwarderProcess
from bench.gateway_proc import Gateway
from bench.load import RequestSpec, load_generator
from bench.phases import probe, progress
from bench.procs import BenchError, print_report
from bench.upstream import Upstream

WRAPPER = Path(__file__).with_name("turns_server.py")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.loopturns", description=__doc__)
    parser.add_argument("--tree", type=Path, default=Path.cwd(), help="source tree (cwd)")
    parser.add_argument("--logging", choices=("off", "on", "both"), default="both")
    parser.add_argument(
        "--forwarder", action="store_true", help="count the reference forwarder too"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="counted seconds")
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument(
        "--min", type=float, default=0.05, help="list callback kinds at this many per request"
    )
    parser.add_argument("--json", type=Path, default=None, help="write every count here")
    args = parser.parse_args(argv)
    args.tree = args.tree.resolve()
    return args


def table(name: str, found: dict[str, Any], least: float) -> str:
    """One target's counts per request, and its timed run's spans."""
    requests = found["requests"]
    per = 1.0 / requests if requests else float("nan")
    spans = found["moments"]["median_us"]
    lines = [
        f"{name}: {requests} requests, {found['iterations'] * per:.2f} loop iterations and "
        f"{found['handles'] * per:.2f} callbacks per request",
        "  timed run, median us: "
        + ", ".join(f"{k.replace('_', ' ')} {v:.1f}" if v is not None else f"{k} -"
                    for k, v in spans.items()),
        "  its usual socket events, median us after the request read: "
        + ", ".join(f"{kind} {at:.1f}" for kind, at in found["moments"]["sequence"]),
        f"{'per req':>8}  callback",
    ]
    for where, calls in found["callbacks"].items():
        if calls * per >= least:
            lines.append(f"{calls * per:>8.2f}  {where}")
    return "\n".join(lines)


def measure(
    server: Gateway | ForwarderProcess, key: str, out: Path, args: argparse.Namespace,
    workdir: Path,
) -> dict[str, Any]:  # fmt: skip
    """Start ``server``, warm it up, then one counted run and one timed run at one connection:
    ``{"requests", counts..., "moments": {...}}``."""
    tool = load_generator(workdir)
    spec = RequestSpec(
        payloads.CHAT_PATH,
        payloads.request_body(MODELS["openai"]),
        {"Authorization": f"Bearer {key}"},
    )
    progress(f"starting {server.label} on the counted asyncio loop ...")
    server.start()
    try:
        probe(server.port, spec, b'"chat.completion"', server.label)
        tool.run("warm-up", server.base_url, spec, 1, args.warmup)
        found: dict[str, Any] = {}
        for mode in ("count", "time"):
            Path(str(out) + ".mode").write_text(mode)
            out.unlink(missing_ok=True)
            os.kill(server.pid, signal.SIGUSR1)
            result = tool.run(mode, server.base_url, spec, 1, args.duration)
            os.kill(server.pid, signal.SIGUSR2)
            deadline = time.monotonic() + 30
            while not out.exists():
                if time.monotonic() > deadline:
                    raise BenchError(f"{server.label} did not write its counts")
                time.sleep(0.1)
            if mode == "count":
                found.update(requests=result.requests, **json.loads(out.read_text()))
            else:
                found["moments"] = json.loads(out.read_text())
        return found
    finally:
        server.stop()


def run(args: argparse.Namespace, workdir: Path) -> str:
    upstream = Upstream(workdir)
    command = [sys.executable, "-P", str(WRAPPER)]
    reports: list[str] = []
    every: dict[str, Any] = {}
    try:
        progress("starting the upstream ...")
        upstream.start()
        targets: list[tuple[str, Gateway | ForwarderProcess, str, Path]] = []
        if args.forwarder:
            forwarder = ForwarderProcess(workdir, upstream.base_url)
            forwarder.command = command
            out = workdir / "forwarder.turns.json"
            forwarder.env = {**os.environ, "BENCH_TURNS_FORWARDER": "1",
                             "PYTHONPATH": str(REPO), "BENCH_TURNS_OUT": str(out)}  # fmt: skip
            targets.append(("forwarder", forwarder, "bench", out))
        for logging in ("off", "on") if args.logging == "both" else (args.logging,):
            name = f"gateway_logging_{logging}"
            out = workdir / f"{name}.turns.json"
            gateway = Gateway(
                workdir,
                upstream.base_url,
                name=name,
                logging=logging == "on",
                extra_env={"PYTHONPATH": str(args.tree), "BENCH_TURNS_OUT": str(out)},
            )
            gateway.serve_command = command
            targets.append((f"gateway, logging {logging}", gateway, gateway.create_key(), out))
        for name, server, key, out in targets:
            found = every[name] = measure(server, key, out, args, workdir)
            reports.append(table(name, found, args.min))
    finally:
        upstream.stop()
    if args.json is not None:
        args.json.write_text(json.dumps(every, indent=1))
    return "\n\n".join(reports)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return print_report("loopturns", False, lambda workdir: run(args, workdir))


if __name__ == "__main__":
    sys.exit(main())
