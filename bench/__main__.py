"""``python -m bench``: one run, upstream and gateway started and stopped here.

Order of work: start nginx and the gateway, check one request of each kind end to end (so a
broken gateway fails fast with its output, instead of producing a table of errors), take the
RSS baseline, run wrk at 1 and at N connections against the direct upstream and the gateway
(each measured run preceded by an unmeasured warm-up), measure streaming TTFB, take RSS again,
then print the report and save ``bench/results/latest.json``. Exit status is 0 whether or not
the performance bar is met; 1 only when the bench itself could not run.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import payloads
from bench.gateway_proc import Gateway
from bench.load import LoadGenerator, LoadResult, RequestSpec, load_generator
from bench.procs import BenchError
from bench.report import Results, evaluate, render
from bench.ttfb import RawHttpClient, TtfbResult, measure_ttfb, raw_request
from bench.upstream import Upstream

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "latest.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure the gateway's overhead against a fixed-response nginx upstream.",
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
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    parser.add_argument(
        "--keep-workdir", action="store_true", help="keep configs and logs in the temp dir"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.ttfb_requests = 3.0, 1.0, 100
    if args.duration < 1 or args.connections < 2 or args.ttfb_requests < 1:
        parser.error("need --duration >= 1, --connections >= 2, --ttfb-requests >= 1")
    return args


def progress(message: str) -> None:
    """Progress goes to stderr so stdout is the report alone."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def probe(port: int, spec: RequestSpec, expect: bytes, what: str) -> None:
    """One request end to end; a clear error if it is not a 200 with the expected body."""
    client = RawHttpClient(port)
    try:
        exchange = client.request(raw_request(port, spec))
    except OSError as exc:
        raise BenchError(f"{what}: request failed: {exc}") from exc
    finally:
        client.close()
    if exchange.status != 200 or expect not in exchange.body:
        raise BenchError(
            f"{what}: expected a 200 containing {expect!r}, got {exchange.status}: "
            f"{exchange.body[:500]!r}"
        )


def run(args: argparse.Namespace, workdir: Path) -> Results:
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    upstream = Upstream(workdir)
    gateway: Gateway | None = None
    try:
        progress("starting the upstream ...")
        upstream.start()
        gateway = Gateway(workdir, upstream.base_url)
        progress("creating a gateway key ...")
        gateway.create_key()
        progress(f"starting the gateway on port {gateway.port} ...")
        gateway.start()
        tool: LoadGenerator = load_generator(workdir)

        auth = {"Authorization": f"Bearer {gateway.key}"}
        direct_auth = {"Authorization": "Bearer bench"}
        sse = {"Accept": "text/event-stream"}
        chat_body = payloads.request_body(payloads.CHAT_MODEL)
        stream_body = payloads.request_body(payloads.STREAM_MODEL, stream=True)
        chat: dict[str, tuple[Upstream | Gateway, RequestSpec]] = {
            "direct": (upstream, RequestSpec(payloads.CHAT_PATH, chat_body, direct_auth)),
            "gateway": (gateway, RequestSpec(payloads.CHAT_PATH, chat_body, auth)),
        }
        stream: dict[str, tuple[Upstream | Gateway, RequestSpec]] = {
            "direct": (
                upstream,
                RequestSpec(payloads.STREAM_UPSTREAM_PATH, stream_body, {**direct_auth, **sse}),
            ),
            "gateway": (gateway, RequestSpec(payloads.CHAT_PATH, stream_body, {**auth, **sse})),
        }
        for target, (server, spec) in chat.items():
            probe(server.port, spec, b'"chat.completion"', f"non-streaming via {target}")
        for target, (server, spec) in stream.items():
            probe(server.port, spec, b"data: [DONE]", f"streaming via {target}")

        rss_before = gateway.rss_kib()
        load: dict[str, LoadResult] = {}
        for conns in (1, args.connections):
            for target, (server, spec) in chat.items():
                label = f"{target}_c{conns}"
                progress(f"{label}: {args.warmup:g} s warm-up, then {args.duration:g} s ...")
                tool.run(label, server.base_url, spec, conns, args.warmup)
                cpu_before = server.cpu_seconds()
                result = tool.run(label, server.base_url, spec, conns, args.duration)
                result.server_cpu_s = server.cpu_seconds() - cpu_before
                load[label] = result
                upstream.check_alive()
                gateway.check_alive()

        ttfb: dict[str, TtfbResult] = {}
        for target, (server, spec) in stream.items():
            progress(f"streaming TTFB via {target}: {args.ttfb_requests} requests ...")
            ttfb[target] = measure_ttfb(target, server.port, spec, args.ttfb_requests)
        gateway.check_alive()
        time.sleep(0.5)  # let in-flight background work (e.g. logging) settle before sampling
        rss_after = gateway.rss_kib()

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
            "gateway_cmd": f"gateway serve --workers {gateway.workers} (SQLite in a temp dir)",
            "chat_path": payloads.CHAT_PATH,
            "chat_model": payloads.CHAT_MODEL,
            "stream_model": payloads.STREAM_MODEL,
            "json_path": str(args.output),
        }
        results = Results(
            meta=meta,
            load=load,
            ttfb=ttfb,
            rss_kib={"before": rss_before, "after": rss_after},
        )
        evaluate(results, args.connections)
        results.meta["gateway_log_problems"] = gateway.log_problems()
        return results
    finally:
        if gateway is not None:
            gateway.stop()
        upstream.stop()


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
