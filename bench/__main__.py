"""``python -m bench``: one run, upstream and gateways started and stopped here.

Order of work (:mod:`bench.phases`): start nginx; measure it directly; then start the gateway
with logging off, the gateway with logging on (the default), the reference forwarder
(:mod:`bench.forwarder`), a second no-logging gateway for the translated path's stream and a
third for issue 11's routing lines (:mod:`bench.routing`; its organisation's BYOK key stored
through the provider-keys API), measure each at one connection (the translated path,
``model/anthropic``, on the no-logging gateway right after its OpenAI path), then every
target at N connections in interleaved rounds (the routed and the pinned model, and issue
13's Gemini and Bedrock paths on the no-logging gateway, at half length), each round followed
by the TTFB turns of the OpenAI stream and the translated ones (Anthropic, Gemini, Bedrock)
and the failover turns; run the optional soak against the logging gateway and wait for its request
log to settle. Only one target is under load at any
time. Then print the report and save ``bench/results/latest.json``. Exit status is 0 whether
or not the performance bar is met; 1 only when the bench itself could not run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench import payloads
from bench.load import load_generator
from bench.phases import Phases, Plan, TargetRun, progress
from bench.procs import BenchError
from bench.render import render
from bench.report import Results, evaluate
from bench.routing import pool_failover
from bench.ttfb import TtfbResult
from bench.upstream import Upstream

UNSTREAMED = ("routed", "pinned", "gateway_routing", "gateway_quiet")
"""Runs without a TTFB measurement: the routing lines measure throughput and failover only,
the observability line (bench/observability.py) throughput only."""
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "latest.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure the gateway's overhead (logging off, then on) against a "
        "fixed-response nginx upstream and a minimal reference forwarder.",
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per measured wrk run (default 10)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="3 s runs, 1 s warm-ups, 100 TTFB requests"
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of unmeasured warm-up before each run"
    )
    parser.add_argument(
        "--connections", type=int, default=32, help="connections for the throughput runs"
    )
    parser.add_argument(
        "--ttfb-requests", type=int, default=200, help="sequential streaming requests per target"
    )
    parser.add_argument(
        "--soak",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="extra run of this many seconds at --connections against the logging gateway "
        "(default 0 = none)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=10,
        help="interleaved runs per target (both gateways, the translated paths, the "
        "forwarder, the routed and the pinned model) at --connections (default 10; --quick: 2)",
    )
    parser.add_argument(
        "--failover-requests",
        type=int,
        default=200,
        help="turns of the failover measurement (chain, direct, failed attempt) after each "
        "round (default 200; --quick: 100)",
    )
    parser.add_argument(
        "--paired-turns",
        type=int,
        default=10000,
        help="turns of the paired 1-connection measurement (direct, forwarder, both gateways: "
        "one request each per turn, bench/pairing.py) after the rounds; the gateways' added "
        "p50 against the forwarder's is judged on it (default 10000; --quick: 500)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    parser.add_argument(
        "--keep-workdir", action="store_true", help="keep configs and logs in the temp dir"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.ttfb_requests = 3.0, 1.0, 100
        args.failover_requests = min(args.failover_requests, 100)
        args.rounds = min(args.rounds, 2)
        args.paired_turns = min(args.paired_turns, 500)
    if (
        args.duration < 1
        or args.connections < 2
        or args.ttfb_requests < 1
        or args.rounds < 1
        or args.failover_requests < 1
        or args.paired_turns < 100
    ):
        parser.error(
            "need --duration >= 1, --connections >= 2, --ttfb-requests >= 1, --rounds >= 1, "
            "--failover-requests >= 1, --paired-turns >= 100"
        )
    if args.soak != 0 and args.soak < 1:
        parser.error("need --soak 0 (none) or >= 1")
    return args


def run(args: argparse.Namespace, workdir: Path) -> Results:
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    plan = Plan(
        args.duration,
        args.warmup,
        args.connections,
        args.ttfb_requests,
        args.soak,
        args.rounds,
        args.failover_requests,
        args.paired_turns,
    )
    upstream = Upstream(workdir)
    try:
        progress("starting the upstream ...")
        upstream.start()
        tool = load_generator(workdir)
        phases = Phases(plan, tool, upstream, workdir)
        runs = [phases.direct(), *phases.gateways()]
    finally:
        upstream.stop()
    meta = {
        "started_at": started_at,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "upstream": upstream.kind,
        "load_tool": f"{tool.tool} {tool.version()}",
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "connections": args.connections,
        "ttfb_requests": args.ttfb_requests,
        "soak_s": args.soak,
        "rounds": args.rounds,
        "gateway_cmd": "gateway serve --workers 1 (SQLite in a temp dir)",
        "gateways": {
            "gateway": "GATEWAY_LOGGING_ENABLED=false",
            "gateway_logging": "logging on (default): embedded ClickHouse (chdb) + SQLite bodies",
            "gateway_stream": "GATEWAY_LOGGING_ENABLED=false, ANTHROPIC_BASE_URL at the "
            "upstream's event-stream location (the translated streams and their OpenAI pair)",
            "gateway_ratelimit": "the no-logging gateway (REDIS_URL set), each request with "
            "Helicone-RateLimit-Policy: 1000000000;w=60",
            "gateway_quiet": "GATEWAY_LOGGING_ENABLED=false, GATEWAY_METRICS_ENABLED=false, "
            "GATEWAY_LOG_REQUESTS=false (the other gateways: both on, the default)",
        },
        "chat_path": payloads.CHAT_PATH,
        "chat_model": payloads.CHAT_MODEL,
        "stream_model": payloads.STREAM_MODEL,
        "translated_model": payloads.TRANSLATED_MODEL,
        "translated_upstream": f"POST {payloads.MESSAGES_PATH} (stream: "
        f"{payloads.ANTHROPIC_STREAM_PATH}), Anthropic Messages",
        "gemini_model": payloads.GEMINI_MODEL,
        "gemini_upstream": f"POST {payloads.GEMINI_PATH} (stream: "
        f"{payloads.GEMINI_STREAM_PATH}?alt=sse)",
        "bedrock_model": payloads.BEDROCK_MODEL,
        "bedrock_upstream": f"POST {payloads.BEDROCK_PATH} (stream: "
        f"{payloads.BEDROCK_STREAM_PATH}, {payloads.BEDROCK_CONTENT_TYPE}), SigV4-signed",
        "round_targets": sum(1 for r in runs if r.rounds),
        "routed_model": payloads.ROUTED_MODEL,
        "pinned_model": payloads.PINNED_MODEL,
        "failover_model": payloads.FAILOVER_MODEL,
        "failover_requests": args.failover_requests,
        "paired_turns": args.paired_turns,
        "routing_gateway": "GATEWAY_LOGGING_ENABLED=false, GATEWAY_PROVIDER_COOLDOWN_SECONDS=0; "
        f"org BYOK OpenAI key at {payloads.BYOK_PREFIX}/v1 (stored through the provider-keys "
        f"API), managed OpenAI key, {payloads.FAILING_PROVIDER} at {payloads.FAILING_PREFIX}/v1 "
        "(503)",
        "json_path": str(args.output),
        "forwarder_cmd": "python -m bench.forwarder (uvicorn + uvloop/httptools, aiohttp pool)",
        "gateway_log_problems": {r.name: r.log_problems for r in runs[1:]},
    }
    by_name = {r.name: r for r in runs}
    results = Results(
        meta=meta,
        load={f"{r.name}_{k}": v for r in runs for k, v in r.load.items()},
        ttfb={r.name: _ttfb(r) for r in runs if r.name not in UNSTREAMED},
        rss_kib={r.name: r.rss_kib for r in runs[1:] if r.rss_kib},
        rounds={r.name: r.rounds for r in runs[1:] if r.rounds},
        ttfb_rounds={r.name: r.ttfb_rounds for r in runs if r.ttfb_rounds},
        request_log=by_name["gateway_logging"].request_log,
        failover=pool_failover(phases.failover_rounds),
        failover_rounds=phases.failover_rounds,
        paired=phases.paired,
    )
    evaluate(results, args.connections)
    return results


def _ttfb(run: TargetRun) -> TtfbResult:
    if run.ttfb is None:
        raise BenchError(f"{run.name}: no TTFB measurement")
    return run.ttfb


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    ok = False
    try:
        results = run(args, workdir)
        results.save(args.output)
        print(render(results, args.connections))
        ok = True
        return 0
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        if ok and not args.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"bench: configs and logs kept in {workdir}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
