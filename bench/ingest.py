"""``python -m bench.ingest``: manual-logger ingestion against the proxy path, one gateway.

Issue 16's bar: at 32 connections the manual logger (``POST /oai/v1/log``, the body
``helicone-helpers`` posts for a chat completion: the request, the provider's answer with its
usage, the timing) must accept at least as many records per second as the gateway's proxy
path (``POST /v1/chat/completions`` through the bench's instant nginx upstream) records
requests in the same run: it does less work (no upstream call), and both end in one journal
append. Records accepted must all be written: after the run the writer's counters must say
``enqueued == written == requests sent`` and ``lost == 0``.

One gateway (``gateway serve``, logging on: embedded ClickHouse and local body store, as the
main bench's logging gateway), the two targets in interleaved rounds (A B, B A, …), each a
warm-up then a measured run, pooled per target (:func:`bench.load.combine`); the writer's
backlog is settled after every run so it never runs during the other target's turn.

Not part of ``make test``; ``make bench`` runs it after the main bench.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import payloads
from bench.gateway_proc import Gateway
from bench.load import LoadResult, RequestSpec, combine, load_generator
from bench.phases import probe, progress
from bench.procs import BenchError
from bench.requestlog import LogAccount, RequestTally, wait_for_log
from bench.upstream import Upstream

BAR_RATIO = 1.0
"""Accepted ingestion req/s over the proxy path's, pooled, at the throughput connections."""
LOG_PATH = "/oai/v1/log"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ingest", description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4, help="interleaved runs per target")
    parser.add_argument("--quick", action="store_true", help="3 s runs, 1 s warm-ups, 2 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.rounds = 3.0, 1.0, 2
    return args


def log_body() -> str:
    """What ``HeliconeManualLogger.send_log(provider="openai", …)`` posts for the chat the
    proxy target sends (the same request, the upstream's answer, a timing)."""
    now = time.time()
    answer: dict[str, Any] = json.loads(payloads.chat_completion())
    body = {
        "providerRequest": {
            "url": "custom-model-nopath",
            "json": json.loads(payloads.request_body(payloads.CHAT_MODEL)),
            "meta": {},
        },
        "providerResponse": {"headers": {}, "status": 200, "json": answer, "textBody": None},
        "timing": {
            "startTime": {"seconds": int(now), "milliseconds": 0},
            "endTime": {"seconds": int(now), "milliseconds": 350},
            "timeToFirstToken": None,
        },
    }
    return json.dumps(body, separators=(",", ":"))


def _measure(
    args: argparse.Namespace, workdir: Path
) -> tuple[dict[str, LoadResult], LogAccount, RequestTally]:
    upstream = Upstream(workdir)
    gateway: Gateway | None = None
    tally = RequestTally()
    try:
        progress("starting the upstream ...")
        upstream.start()
        tool = load_generator(workdir)
        gateway = Gateway(workdir, upstream.base_url, name="gateway_ingest", logging=True)
        gateway.create_key()
        progress("starting the gateway (logging on) ...")
        gateway.start()
        auth = {"Authorization": f"Bearer {gateway.key}"}
        specs = {
            "proxy": RequestSpec(
                payloads.CHAT_PATH, payloads.request_body(payloads.CHAT_MODEL), auth
            ),
            "ingest": RequestSpec(LOG_PATH, log_body(), auth),
        }
        probe(gateway.port, specs["proxy"], b'"chat.completion"', "a chat via the gateway")
        probe(gateway.port, specs["ingest"], b'"request_id"', "a manual log")
        tally.probes += 2
        rounds: dict[str, list[LoadResult]] = {name: [] for name in specs}
        order = list(specs.items())
        for number in range(1, args.rounds + 1):
            for name, spec in order if number % 2 else order[::-1]:
                label = f"{name}_c{args.connections}"
                progress(f"{label} round {number}/{args.rounds} ...")
                warm = tool.run(label, gateway.base_url, spec, args.connections, args.warmup, True)
                tally.add_load(warm)
                wait_for_log(gateway, tally)
                cpu = gateway.cpu_seconds()
                result = tool.run(
                    label, gateway.base_url, spec, args.connections, args.duration, True
                )
                result.server_cpu_s = gateway.cpu_seconds() - cpu
                tally.add_load(result)
                rounds[name].append(result)
                gateway.check_alive()
                wait_for_log(gateway, tally)  # its backlog stays out of the next run
        pooled = {
            name: combine(f"{name}_c{args.connections}", runs) for name, runs in rounds.items()
        }
        return pooled, wait_for_log(gateway, tally), tally
    finally:
        if gateway is not None:
            gateway.stop()
        upstream.stop()


def report(
    pooled: dict[str, LoadResult], account: LogAccount, tally: RequestTally, connections: int
) -> tuple[str, bool]:
    ingest, proxy = pooled["ingest"], pooled["proxy"]
    ratio = ingest.rps / proxy.rps if proxy.rps else 0.0
    errors = ingest.error_total + proxy.error_total
    enqueued, written = account.count("enqueued"), account.count("written")
    lost, failed = account.count("lost"), account.count("failed")
    first_writes = written - account.count("replayed")
    complete = account.settled and enqueued == first_writes == tally.sent and lost == 0
    passed = ratio >= BAR_RATIO and errors == 0 and complete
    lines = [
        "manual-logger ingestion (POST /oai/v1/log) vs the proxy path (POST /v1/chat/completions),"
        " one gateway with logging on",
        f"  {'target':<8} {'req/s c' + str(connections):>12} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'cpu us/req':>11} {'errors':>7}",
    ]
    for name in ("proxy", "ingest"):
        run = pooled[name]
        lines.append(
            f"  {name:<8} {run.rps:>12.0f} {run.latency_ms['p50']:>8.2f} "
            f"{run.latency_ms['p99']:>8.2f} {run.server_cpu_us_per_request:>11.0f} "
            f"{run.error_total:>7}"
        )
    lines.append(
        f"  records: sent {tally.sent:,} (warm-ups and probes included), enqueued {enqueued:,},"
        f" written {written:,}, lost {lost:,}, failed {failed:,}"
        + ("" if account.settled else " (the writer had not caught up)")
    )
    verdict = "PASS" if passed else "FAIL"
    lines.append(
        f"  [{verdict}] accepted ingestion req/s at c{connections} = {100 * ratio:.1f}% of the "
        f"proxy path (bar >= {100 * BAR_RATIO:.0f}%), errors {errors}, written == accepted: "
        f"{'yes' if complete else 'NO'}"
    )
    return "\n".join(lines), passed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-ingest-"))
    try:
        pooled, account, tally = _measure(args, workdir)
    except BenchError as exc:
        print(f"bench.ingest: error: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    text, _ = report(pooled, account, tally, args.connections)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
