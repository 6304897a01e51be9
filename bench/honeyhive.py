"""``python -m bench.honeyhive``: issue 16's HoneyHive line — a 100-event batch's p50.

One ``gateway serve`` (logging on, the embedded engine, as an operator runs it; no provider is
called) and one client on a keep-alive connection posting the same ``POST /events/model/batch``
body: ``--events`` model events (default 100) shaped like HoneyHive's documented example, each
with its own messages and usage, no ``event_id`` (the gateway assigns them). ``--warmup``
unmeasured batches, then ``--batches`` measured ones, one at a time, each timed from sending to
the last byte of the answer. Reported: p50/p90/p99 and max per batch, events accepted per
second at that pace, and — once the log writer has settled (``/healthz`` counters) — records
written == events accepted (every accepted event of every batch, warm-ups included), none lost.

The answer does not wait for storage (the route journals the records), so the p50 is the
parse, validation, mapping and journaling of 100 events plus the HTTP round trip. Exit status
0 whether or not anything is slow; 1 when the bench itself could not run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.gateway_proc import Gateway
from bench.load import percentile
from bench.procs import HOST, BenchError, in_workdir
from bench.requestlog import RequestTally, wait_for_log

PATH = "/events/model/batch"
NO_UPSTREAM = "http://127.0.0.1:9"
"""Provider base URLs point nowhere: ingestion calls no provider."""


def batch_body(events: int) -> bytes:
    """A legacy batch of ``events`` model events (JSON), in one session."""
    model_events: list[dict[str, Any]] = []
    for i in range(events):
        model_events.append({
            "project": "Bench Project", "model": "gpt-4o-mini", "provider": "openai",
            "messages": [{"role": "system", "content": "You are a helpful assistant."},
                         {"role": "user", "content": f"Question number {i}: what is {i} + {i}?"}],
            "response": {"role": "assistant", "content": f"{i} + {i} is {2 * i}."},
            "duration": 120 + i, "usage": {"prompt_tokens": 30 + i, "completion_tokens": 8,
                                           "total_tokens": 38 + i},
            "cost": 0.00001, "source": "bench", "event_name": "answer",
            "hyperparameters": {"temperature": 0, "max_tokens": 64},
            "metadata": {"bench": "honeyhive", "index": i},
            "user_properties": {"user": f"user-{i % 10}"},
        })  # fmt: skip
    body = {"model_events": model_events, "is_single_session": True,
            "session_properties": {"session_name": "bench", "source": "bench"}}  # fmt: skip
    return json.dumps(body).encode()


def post_batches(port: int, key: str, body: bytes, count: int) -> tuple[list[float], int]:
    """``count`` batches, one at a time on one keep-alive connection: the seconds each took
    and the events the gateway accepted (``len(event_ids)`` of every 200)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=60)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    timings: list[float] = []
    accepted = 0
    try:
        for _ in range(count):
            started = time.perf_counter()
            conn.request("POST", PATH, body, headers)
            response = conn.getresponse()
            raw = response.read()
            timings.append(time.perf_counter() - started)
            if response.status != 200:
                raise BenchError(f"POST {PATH} answered {response.status}: {raw[:300]!r}")
            accepted += len(json.loads(raw)["event_ids"])
    except OSError as exc:
        raise BenchError(f"POST {PATH} failed: {exc}") from exc
    finally:
        conn.close()
    return timings, accepted


def run(workdir: Path, args: argparse.Namespace) -> dict[str, Any]:
    gateway = Gateway(workdir, NO_UPSTREAM, name="gateway", logging=True)
    gateway.create_key()
    gateway.start()
    try:
        body = batch_body(args.events)
        _, warm = post_batches(gateway.port, gateway.key, body, args.warmup)
        timings, measured = post_batches(gateway.port, gateway.key, body, args.batches)
        accepted = warm + measured
        account = wait_for_log(gateway, RequestTally(probes=accepted))
        problems = gateway.log_problems()
    finally:
        gateway.stop()
    ordered = sorted(timings)
    p50 = percentile(ordered, 50)
    return {
        "events_per_batch": args.events,
        "batch_bytes": len(body),
        "batches": args.batches,
        "warmup_batches": args.warmup,
        "p50_ms": round(p50 * 1000, 2),
        "p90_ms": round(percentile(ordered, 90) * 1000, 2),
        "p99_ms": round(percentile(ordered, 99) * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
        "events_per_second_at_p50": round(args.events / p50) if p50 else None,
        "accepted": accepted,
        "written": account.count("written"),
        "lost": account.count("lost"),
        "settled": account.settled,
        "written_equals_accepted": account.count("written") == accepted
        and account.count("lost") == 0,
        "gateway_log_problems": problems,
    }


def render(result: dict[str, Any]) -> list[str]:
    r = result
    return [
        f"HoneyHive batch ingestion (POST {PATH}, {r['events_per_batch']} model events, "
        f"{r['batch_bytes']:,} bytes, one connection, {r['batches']} batches after "
        f"{r['warmup_batches']} warm-up)",
        f"  per batch          p50 {r['p50_ms']:.2f} ms  p90 {r['p90_ms']:.2f} ms  "
        f"p99 {r['p99_ms']:.2f} ms  max {r['max_ms']:.2f} ms",
        f"  events/s at p50    {r['events_per_second_at_p50']:,}",
        f"  records written    {r['written']:,} of {r['accepted']:,} events accepted, "
        f"lost {r['lost']:,}: " + ("written == accepted" if r["written_equals_accepted"]
                                  else "MISMATCH" + ("" if r["settled"] else " (not settled)")),
        *(f"  gateway log: {line}" for line in r["gateway_log_problems"]),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.honeyhive", description=__doc__)
    parser.add_argument("--events", type=int, default=100, help="model events per batch")
    parser.add_argument("--batches", type=int, default=200, help="measured batches")
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured batches first")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", type=Path, default=None, help="also write the result here")
    args = parser.parse_args(argv)
    done = in_workdir("honeyhive", args.keep, lambda workdir: run(workdir, args))
    if done is None:
        return 1
    result, seconds = done
    print("\n".join(render(result)) + f"\n  (bench wall time {seconds} s)")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
