"""``python -m bench.capacity``: the published gateway capacity methodology (issue 14).

What an operator needs to size a deployment, measured against a provider that takes time
(:mod:`bench.delayed_upstream`: a fixed 20 ms delay; streams of 64 chunks 20 ms apart), for
each configuration: logging off and on, ``--workers 1`` and ``--workers 2``:

1. *throughput at p99 bounds*: one wrk sweep over increasing connections (1, 8, 32, 64, 128,
   256); for each bound on the added p99 (1, 5, 10, 50 ms) the highest req/s that stayed
   within it (:func:`bench.capacity_report.throughput_at_bounds`);
2. *sustained streams* at increasing concurrency (:mod:`bench.streams`): time to first token
   added over the direct upstream's, the gap between chunks at the client (p50/p99), and the
   most concurrent streams with no stall; a configuration stops at its first stalled level;
3. *memory*: RSS of the gateway's process tree idle (started, one request of each kind
   served), at its peak during 1 and 2 and the leak run (sampled every 0.25 s), and after
   load (the log writer caught up, 2 s later); then the *leak run*: ``--leak-requests``
   (200,000 by default; ``--leak-requests 1000000`` for the full figure) at
   ``--leak-connections``, in segments with the RSS read after each, the first segment a
   warm-up; the leak rate is the slope, per 1M requests (extrapolated, and labelled so, when
   fewer were sent).

The direct upstream gets 1 and 2 too, once, as the baseline. Logging on means the request log
(rows to ClickHouse, bodies in the local SQLite store) and the request line; off means both
off. Where the rows go (``--clickhouse``): ``embedded`` (default) is chdb inside the gateway,
as ``make run`` has it, which is single-process, so ``--workers 2`` with logging on is reported
as not applicable; ``--clickhouse-url URL`` (a ClickHouse server) serves every logging-on
configuration; ``--clickhouse stand-in`` uses :mod:`bench.clickhouse_server` (the logging
tests' chdb-behind-HTTP stand-in) where no server can be installed, to run the path, not to
publish figures (:data:`STAND_IN_NOTE`). With rows in a server (either), the bench checks that
every request answered was logged once (:mod:`bench.logcheck`).
Configurations run one after another, each on a fresh gateway. The report goes to stdout,
JSON to ``bench/results/capacity.json``. ``--quick`` is a shorter version (2 s steps, three
stream levels, 30,000 leak requests).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import payloads
from bench.capacity_report import CapacityRun, ConfigResult, LeakRun, render
from bench.clickhouse_server import ClickHouseServer
from bench.delayed_upstream import DelayedUpstream
from bench.gateway_proc import Gateway
from bench.load import LoadGenerator, LoadResult, RequestSpec, load_generator
from bench.logcheck import count_logged
from bench.phases import probe, progress
from bench.procs import in_workdir
from bench.streams import StreamLevel, run_streams

RESULTS = Path(__file__).resolve().parent / "results" / "capacity.json"
QUIET = {"GATEWAY_LOG_REQUESTS": "false"}
"""With logging off the request line is off too (the request log itself:
``GATEWAY_LOGGING_ENABLED``, set by :class:`bench.gateway_proc.Gateway`)."""
SETTLE_S = 30.0
STAND_IN_NOTE = (
    "the ClickHouse stand-in (tests/clickhouse_http.py: the embedded engine behind ClickHouse's "
    "HTTP interface, in its own process) stores every row with the real engine, but it is not a "
    "server build and shares these cores with the gateway: logging-on figures with it show "
    "that the path works, they are not ClickHouse-server figures"
)
NO_EMBEDDED_WORKERS = (
    "the embedded log engine (chdb) is one per process and refuses a second opener; "
    "several workers need a ClickHouse server (--clickhouse-url)"
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.capacity",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ints = lambda text: [int(x) for x in text.split(",") if x]  # noqa: E731
    parser.add_argument("--quick", action="store_true", help="a ~3-minute run")
    parser.add_argument(
        "--connections",
        type=ints,
        default=[1, 8, 32, 64, 128, 256],
        help="the sweep's connection counts (comma-separated)",
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per sweep step")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up before the sweep")
    parser.add_argument(
        "--stream-levels",
        type=ints,
        default=[16, 64, 256, 512, 1024],
        help="concurrent streams to try, increasing",
    )
    parser.add_argument(
        "--stream-duration",
        type=float,
        default=4.0,
        help="seconds each level keeps starting streams",
    )
    parser.add_argument("--leak-requests", type=int, default=200_000)
    parser.add_argument("--leak-connections", type=int, default=128)
    parser.add_argument(
        "--configs", default="off:1,on:1,off:2,on:2", help="logging:workers pairs, e.g. off:1,on:2"
    )
    parser.add_argument(
        "--clickhouse",
        choices=("embedded", "stand-in"),
        default="embedded",
        help="where logging-on gateways write rows without --clickhouse-url",
    )
    parser.add_argument("--clickhouse-url", help="a ClickHouse server for the request log")
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--chunks", type=int, default=64)
    parser.add_argument("--interval-ms", type=float, default=20.0)
    parser.add_argument("--json", type=Path, default=RESULTS, help="where the JSON goes")
    parser.add_argument("--keep-workdir", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 2.0, 1.0
        args.stream_levels, args.stream_duration = [16, 128, 512], 2.0
        args.leak_requests = min(args.leak_requests, 30_000)
    args.configs = parse_configs(args.configs)
    return args


def parse_configs(text: str) -> list[tuple[bool, int]]:
    """``"off:1,on:2"`` → ``[(False, 1), (True, 2)]``."""
    out = []
    for item in text.split(","):
        mode, _, workers = item.strip().partition(":")
        if mode not in ("on", "off") or not workers.isdigit() or int(workers) < 1:
            raise SystemExit(f"--configs: {item!r} is not logging:workers (e.g. on:2)")
        out.append((mode == "on", int(workers)))
    return out


class PeakRss:
    """Samples a process tree's RSS in a thread while load runs; keeps the peak."""

    def __init__(self, read: Callable[[], int], every_s: float = 0.25) -> None:
        self.read, self.every_s = read, every_s
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.read())
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.read())


def settle_log(gateway: Gateway, timeout_s: float = SETTLE_S) -> bool:
    """Wait until the writer has written (or lost) everything it was handed. With several
    workers each ``/healthz`` answer is one worker's: three clean answers in a row."""
    deadline = time.monotonic() + timeout_s
    clean = 0
    while time.monotonic() < deadline:
        counters = gateway.health().get("logging")
        if not isinstance(counters, dict):
            return False
        backlog = counters["enqueued"] - counters["written"] - counters["lost"]
        clean = clean + 1 if backlog <= 0 else 0
        if clean >= 3 * gateway.workers:
            return True
        time.sleep(0.2)
    return False


def quiesce(gateway: Gateway) -> None:
    """Between phases: let the requests wrk abandoned at its last step finish and the log
    writer catch up, so one phase's backlog is not measured in the next."""
    gateway.check_alive()
    if gateway.logging:
        settle_log(gateway)
    time.sleep(2.0)


def sweep(
    tool: LoadGenerator,
    base_url: str,
    spec: RequestSpec,
    args: argparse.Namespace,
    label: str,
    cpu: Callable[[], float] | None = None,
) -> list[LoadResult]:
    """One warm-up at the first step's connections, then every step in increasing order."""
    tool.run(f"{label}_warmup", base_url, spec, args.connections[0], args.warmup)
    runs = []
    for conns in args.connections:
        progress(f"{label}: {conns} connections ...")
        before = cpu() if cpu else 0.0
        result = tool.run(f"{label}_c{conns}", base_url, spec, conns, args.duration)
        if cpu:
            result.server_cpu_s = cpu() - before
        runs.append(result)
    return runs


def stream_levels(
    port: int, spec: RequestSpec, args: argparse.Namespace, label: str, stop_at_stall: bool
) -> list[StreamLevel]:
    spread = min(args.stream_duration, args.chunks * args.interval_ms / 1000)
    levels = []
    for concurrency in args.stream_levels:
        progress(f"{label}: {concurrency} concurrent streams ...")
        level = run_streams(
            f"{label}_s{concurrency}",
            port,
            spec,
            concurrency,
            args.stream_duration,
            delay_ms=args.delay_ms,
            spread_s=spread,
        )
        levels.append(level)
        if stop_at_stall and level.stalled:
            break
    return levels


def leak_run(
    tool: LoadGenerator,
    gateway: Gateway,
    spec: RequestSpec,
    args: argparse.Namespace,
    rate_hint: float,
) -> LeakRun:
    """``--leak-requests`` in about ten segments, RSS after each; the first is the warm-up."""
    leak = LeakRun()
    segment = max(1, args.leak_requests // 10)
    rate = max(rate_hint, 1.0)
    served = 0
    first = True
    while first or served < args.leak_requests:
        seconds = max(1.0, min(30.0, round(segment / rate)))
        result = tool.run(
            f"{gateway.name}_leak", gateway.base_url, spec, args.leak_connections, seconds
        )
        gateway.check_alive()
        leak.errors += result.error_total
        rate = max(result.rps, 1.0)
        if first:
            leak.warmup_requests = result.requests
            leak.add(0, gateway.rss_kib())
            first = False
            continue
        served += result.requests
        leak.add(served, gateway.rss_kib())
        progress(f"{gateway.name}: leak run {served:,}/{args.leak_requests:,} requests ...")
    return leak


def measure_config(
    tool: LoadGenerator,
    upstream: DelayedUpstream,
    workdir: Path,
    logging: bool,
    workers: int,
    args: argparse.Namespace,
) -> ConfigResult:
    name = f"logging_{'on' if logging else 'off'}_w{workers}"
    result = ConfigResult(name, logging, workers)
    if logging and args.clickhouse_url is None:
        if importlib.util.find_spec("chdb") is None:
            result.not_applicable = "no ClickHouse: chdb (the `embedded` extra) is not installed"
            return result
        if args.clickhouse == "embedded" and workers > 1:
            result.not_applicable = NO_EMBEDDED_WORKERS
            return result
    clickhouse: ClickHouseServer | None = None
    gateway: Gateway | None = None
    try:
        extra: dict[str, str] = {} if logging else dict(QUIET)
        if logging and args.clickhouse_url is not None:
            extra["CLICKHOUSE_URL"] = args.clickhouse_url
        elif logging and args.clickhouse == "stand-in":
            progress(f"{name}: starting the ClickHouse stand-in ...")
            clickhouse = ClickHouseServer(workdir, name)
            extra["CLICKHOUSE_URL"] = clickhouse.start()
        gateway = Gateway(
            workdir, upstream.base_url, name=name, logging=logging, workers=workers, extra_env=extra
        )
        gateway.create_key()
        progress(f"{name}: starting the gateway ...")
        gateway.start()
        auth = {"Authorization": f"Bearer {gateway.key}"}
        chat = RequestSpec(payloads.CHAT_PATH, payloads.request_body(payloads.CHAT_MODEL), auth)
        stream = RequestSpec(
            payloads.CHAT_PATH, payloads.request_body(payloads.STREAM_MODEL, stream=True), auth
        )
        probe(gateway.port, chat, b'"chat.completion"', f"{name}: chat")
        probe(gateway.port, stream, b"data: [DONE]", f"{name}: stream")
        time.sleep(1.0)
        result.rss_idle_kib = gateway.rss_kib()
        with PeakRss(gateway.rss_kib) as peak:
            result.sweep = sweep(tool, gateway.base_url, chat, args, name, gateway.cpu_seconds)
            quiesce(gateway)
            result.streams = stream_levels(gateway.port, stream, args, name, stop_at_stall=True)
            quiesce(gateway)
            at_conns = [r for r in result.sweep if r.connections == args.leak_connections]
            hint = at_conns[0].rps if at_conns else max(r.rps for r in result.sweep)
            result.leak = leak_run(tool, gateway, chat, args, hint)
        result.rss_peak_kib = peak.peak
        if logging:
            result.log_settled = settle_log(gateway)
            if "CLICKHOUSE_URL" in extra:
                result.log_count = count_logged(gateway, extra["CLICKHOUSE_URL"])
        time.sleep(2.0)
        result.rss_after_kib = gateway.rss_kib()
        result.problems += gateway.log_problems()
        return result
    finally:
        if gateway is not None:
            gateway.stop()
        if clickhouse is not None:
            clickhouse.stop()


def measure(args: argparse.Namespace, workdir: Path) -> CapacityRun:
    run = CapacityRun(args.delay_ms, args.chunks, args.interval_ms, args.leak_requests)
    run.meta = {
        "cpus": os.cpu_count(),
        "loadavg_start": _loadavg(),
        "mode": "--quick" if args.quick else "default",
        "clickhouse": "server (--clickhouse-url)"
        if args.clickhouse_url
        else {"embedded": "embedded (chdb in the gateway)", "stand-in": "chdb behind HTTP"}[
            args.clickhouse
        ],
        "clickhouse_note": STAND_IN_NOTE
        if args.clickhouse == "stand-in" and not args.clickhouse_url
        else None,
        "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    upstream = DelayedUpstream(workdir, args.delay_ms, args.chunks, args.interval_ms)
    progress("starting the delayed upstream ...")
    upstream.start()
    try:
        tool = load_generator(workdir)
        run.meta["tool"] = f"{tool.tool} {tool.version()}"
        direct_chat = RequestSpec(payloads.CHAT_PATH, payloads.request_body(payloads.CHAT_MODEL))
        direct_stream = RequestSpec(
            payloads.STREAM_UPSTREAM_PATH, payloads.request_body(payloads.STREAM_MODEL, stream=True)
        )
        run.direct_sweep = sweep(tool, upstream.base_url, direct_chat, args, "direct")
        run.direct_streams = stream_levels(
            upstream.port, direct_stream, args, "direct", stop_at_stall=False
        )
        for logging, workers in args.configs:
            run.configs.append(measure_config(tool, upstream, workdir, logging, workers, args))
            upstream.check_alive()
    finally:
        upstream.stop()
    run.meta["loadavg_end"] = _loadavg()
    return run


def _loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    done = in_workdir("capacity", args.keep_workdir, lambda workdir: measure(args, workdir))
    if done is None:
        return 1
    run, wall_s = done
    run.meta["wall_s"] = wall_s
    print(render(run))
    print(f"\n(wall time {run.meta['wall_s']:.0f} s)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(finite(run.to_json()), indent=2, allow_nan=False))
    print(f"JSON: {args.json}", file=sys.stderr)
    return 0


def finite(value: Any) -> Any:
    """``value`` with every NaN or infinity (a figure that was not measured) as ``None``."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


if __name__ == "__main__":
    sys.exit(main())
