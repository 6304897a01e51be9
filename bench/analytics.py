"""``python -m bench.analytics``: issue 15's performance bar for the analytics API.

One run: start the bench's nginx upstream and one ``gateway serve`` (logging on, the embedded
engine), after writing ``--rows`` synthetic logged requests (:mod:`bench.analytics_data`; a
million by default, 80% in the organisation whose key the bench queries with) into that
gateway's data directory; then

1. **Query latency.** Every query of :data:`bench.analytics_queries.QUERIES` (a filtered
   request query, sessions, user metrics, the 30-day dashboard series and each documented HQL
   example) once unmeasured, then ``--runs`` times, round-robin (one of each, then the next
   round) on one keep-alive connection, timed from sending to the last byte of the answer.
   Reported: p50 and p99 (nearest rank: with 30 runs the p99 is the slowest run) against the
   goals p50 ≤ 100 ms and p99 ≤ 500 ms. An endpoint this build does not have answers 404
   ("No route for …"): its line says "not available in this build", never a figure. Any other
   non-200 answer is reported as an error. A 429 (HQL's per-organisation rate limit) is waited
   out (``Retry-After``) and retried, and counted.
2. **Request path under analytics load.** The chat completion of the main bench, at
   ``--connections`` through wrk with a key of another organisation (so the load's own
   records do not change the queried data), with and without the dashboard query running every
   second (``--background-query``), in interleaved rounds (A B, B A, …; a warm-up before each
   measured run; the log writer's backlog settled after each), pooled: the ratio with/without
   (goal ≥ 90%).

Prints the report and writes ``bench/results/analytics.json``. Not part of ``make bench``
(generation and a default run take several minutes); ``--quick`` is shorter. Exit status 0
whether or not the goals are met, 1 when the bench itself could not run.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import payloads
from bench.analytics_data import Spec, generate
from bench.analytics_queries import DASHBOARD_SERIES, QUERIES, Query, by_name, placeholders, render
from bench.analytics_report import report
from bench.gateway_proc import Gateway
from bench.load import LoadGenerator, LoadResult, RequestSpec, combine, load_generator, percentile
from bench.phases import probe, progress
from bench.procs import HOST, BenchError, write_results
from bench.requestlog import RequestTally, wait_for_log
from bench.upstream import Upstream

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "analytics.json"
GOAL_P50_MS = 100.0
GOAL_P99_MS = 500.0
GOAL_RATIO = 0.9
MAIN_ORG = "bench-analytics"
LOAD_ORG = "bench-load"
MAX_RATE_LIMIT_WAIT_S = 65.0
"""The longest ``Retry-After`` honoured (HQL's limit is per minute)."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.analytics",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="logged requests generated")
    parser.add_argument("--runs", type=int, default=30, help="measured runs per query")
    parser.add_argument(
        "--rounds",
        type=int,
        default=6,
        help="interleaved throughput rounds (each: with and without)",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds between background queries (default 1)"
    )
    parser.add_argument(
        "--background-query",
        default=DASHBOARD_SERIES,
        help=f"the query run during the loaded rounds (default {DASHBOARD_SERIES})",
    )
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--skip-throughput", action="store_true", help="measure the queries only")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="10 runs, 2 rounds of 3 s with 1 s warm-ups (rows unchanged)",
    )
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    parser.add_argument("--keep-workdir", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.rounds, args.duration, args.warmup = min(args.runs, 10), 2, 3.0, 1.0
    if args.rows < 1 or args.runs < 1 or args.rounds < 1 or args.duration < 1:
        parser.error("need --rows, --runs, --rounds >= 1 and --duration >= 1")
    if args.connections < 1 or args.interval <= 0 or args.warmup < 0:
        parser.error("need --connections >= 1, --interval > 0 and --warmup >= 0")
    try:
        by_name(args.background_query)
    except KeyError as exc:
        parser.error(str(exc.args[0]))
    return args


# --- HTTP -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    elapsed_ms: float
    retry_after: float | None = None


class Client:
    """One keep-alive connection to the gateway with one key; reconnects after a failure."""

    def __init__(self, port: int, key: str, timeout: float = 60.0) -> None:
        self.port, self.key, self.timeout = port, key, timeout
        self._conn: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body: Any) -> Answer:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Bearer {self.key}", "Content-Type": "application/json"}
        for attempt in (1, 2):  # the server may have closed an idle keep-alive connection
            if self._conn is None:
                self._conn = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
            started = time.perf_counter()
            try:
                self._conn.request(method, path, data, headers)
                response = self._conn.getresponse()
                raw = response.read()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                if attempt == 2:
                    raise BenchError(f"{method} {path} failed: {exc}") from exc
                continue
            elapsed = (time.perf_counter() - started) * 1000
            retry = response.getheader("retry-after")
            return Answer(response.status, raw, elapsed, _seconds(retry))
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _seconds(value: str | None) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        return None


def missing_route(answer: Answer) -> bool:
    """The gateway's answer for a path it has no route for (not a 404 of an endpoint)."""
    return answer.status in (404, 405) and (
        b"No route for" in answer.body or b"Method Not Allowed" in answer.body
    )


# --- query latency ------------------------------------------------------------------------------


@dataclass
class Timing:
    """One query's measured runs, or why it has none."""

    query: Query
    samples_ms: list[float] = field(default_factory=list)
    state: str = "ok"
    """``ok``, ``not_available`` (the build has no such endpoint) or ``error``."""
    error: str = ""
    rate_limited: int = 0
    rows: int | None = None

    def pct(self, p: float) -> float | None:
        return percentile(sorted(self.samples_ms), p) if self.samples_ms else None

    @property
    def passed(self) -> bool | None:
        p50, p99 = self.pct(50), self.pct(99)
        if self.state != "ok" or p50 is None or p99 is None:
            return None
        return p50 <= GOAL_P50_MS and p99 <= GOAL_P99_MS

    def to_json(self) -> dict[str, Any]:
        samples = self.samples_ms
        return {
            "name": self.query.name,
            "method": self.query.method,
            "path": self.query.path,
            "what": self.query.what,
            "state": self.state,
            "error": self.error or None,
            "runs": len(samples),
            "p50_ms": self.pct(50),
            "p99_ms": self.pct(99),
            "mean_ms": sum(samples) / len(samples) if samples else None,
            "max_ms": max(samples) if samples else None,
            "rows": self.rows,
            "rate_limited": self.rate_limited,
            "goal_p50_ms": GOAL_P50_MS,
            "goal_p99_ms": GOAL_P99_MS,
            "passed": self.passed,
        }


def _rows_of(body: bytes) -> int | None:
    """How many rows an envelope's ``data`` holds (a list, HQL's ``rows``, or users)."""
    try:
        data = json.loads(body).get("data")
    except (ValueError, AttributeError):
        return None
    if isinstance(data, list):
        return len(data)
    if isinstance(data, dict):
        for key in ("rows", "users", "series", "data"):
            if isinstance(data.get(key), list):
                return len(data[key])
    return None


def _once(client: Client, timing: Timing, values: dict[str, Any]) -> Answer:
    """One call of ``timing``'s query; a 429 is waited out and retried (and counted)."""
    query = timing.query
    body = render(query.body, values)
    while True:
        answer = client.call(query.method, query.path, body)
        if answer.status != 429:
            return answer
        timing.rate_limited += 1
        wait = min(answer.retry_after or 5.0, MAX_RATE_LIMIT_WAIT_S)
        progress(f"{query.name}: rate-limited (429), waiting {wait:.0f} s ...")
        time.sleep(wait)


def _record(timing: Timing, answer: Answer, measured: bool) -> None:
    if missing_route(answer):
        timing.state = "not_available"
        timing.error = f"{timing.query.method} {timing.query.path} answered {answer.status}"
    elif answer.status != 200:
        timing.state = "error"
        timing.error = f"status {answer.status}: {answer.body[:300].decode(errors='replace')}"
    elif measured:
        timing.samples_ms.append(answer.elapsed_ms)
    else:
        timing.rows = _rows_of(answer.body)


def measure_queries(
    client: Client, queries: tuple[Query, ...], values: dict[str, Any], runs: int
) -> list[Timing]:
    """One unmeasured call of each query, then ``runs`` rounds of one call each."""
    timings = [Timing(query) for query in queries]
    for timing in timings:
        progress(f"warm-up: {timing.query.name} ...")
        _record(timing, _once(client, timing, values), measured=False)
    for number in range(1, runs + 1):
        if number == 1 or number % 10 == 0:
            progress(f"query round {number}/{runs} ...")
        for timing in timings:
            if timing.state == "ok":
                _record(timing, _once(client, timing, values), measured=True)
    return timings


# --- throughput under a background query --------------------------------------------------------


class Background(threading.Thread):
    """Runs one query every ``interval`` seconds (at once when one took longer) until stopped."""

    def __init__(
        self, client: Client, query: Query, values: dict[str, Any], interval: float
    ) -> None:
        super().__init__(name="bench-background-query", daemon=True)
        self.client, self.query, self.interval = client, query, interval
        self.body = render(query.body, values)
        self.samples_ms: list[float] = []
        self.errors: list[str] = []
        self._done = threading.Event()

    def run(self) -> None:
        next_at = time.monotonic()
        while not self._done.is_set():
            try:
                answer = self.client.call(self.query.method, self.query.path, self.body)
            except BenchError as exc:
                self.errors.append(str(exc))
            else:
                if answer.status == 200:
                    self.samples_ms.append(answer.elapsed_ms)
                else:
                    self.errors.append(f"status {answer.status}")
            next_at += self.interval
            self._done.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._done.set()
        self.join()
        self.client.close()


@dataclass
class Throughput:
    """The paired rounds of the request-path measurement."""

    background: str
    state: str = "ok"
    error: str = ""
    without: list[LoadResult] = field(default_factory=list)
    with_query: list[LoadResult] = field(default_factory=list)
    background_ms: list[list[float]] = field(default_factory=list)
    background_errors: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float | None:
        if not self.without or not self.with_query:
            return None
        base = combine("without", self.without).rps
        return combine("with", self.with_query).rps / base if base else None

    @property
    def passed(self) -> bool | None:
        ratio = self.ratio
        if ratio is None:
            return None
        errors = sum(r.error_total for r in (*self.without, *self.with_query))
        return ratio >= GOAL_RATIO and errors == 0 and not self.background_errors

    def to_json(self) -> dict[str, Any]:
        pooled = [s for samples in self.background_ms for s in sorted(samples)]
        pooled.sort()
        rounds = [
            {
                "round": i + 1,
                "without_rps": a.rps,
                "with_rps": b.rps,
                "ratio": b.rps / a.rps if a.rps else None,
                "background_runs": len(samples),
            }
            for i, (a, b, samples) in enumerate(
                zip(self.without, self.with_query, self.background_ms, strict=False)
            )
        ]
        return {
            "background_query": self.background,
            "state": self.state,
            "error": self.error or None,
            "without": combine("without", self.without).to_json() if self.without else None,
            "with": combine("with", self.with_query).to_json() if self.with_query else None,
            "rounds": rounds,
            "ratio": self.ratio,
            "goal_ratio": GOAL_RATIO,
            "passed": self.passed,
            "background_ms": {
                "runs": len(pooled),
                "p50": percentile(pooled, 50) if pooled else None,
                "p99": percentile(pooled, 99) if pooled else None,
            },
            "background_errors": self.background_errors[:10],
        }


def measure_throughput(
    args: argparse.Namespace,
    tool: LoadGenerator,
    gateway: Gateway,
    keys: dict[str, str],
    values: dict[str, Any],
) -> Throughput:
    """Rounds of the chat completion at ``--connections``, with and without the background
    query, in alternating order; the writer's backlog is settled after every run."""
    query = by_name(args.background_query)
    result = Throughput(query.name)
    check = Client(gateway.port, keys[MAIN_ORG])
    try:
        answer = check.call(query.method, query.path, render(query.body, values))
    finally:
        check.close()
    if missing_route(answer) or answer.status != 200:
        result.state = "not_available" if missing_route(answer) else "error"
        result.error = f"{query.method} {query.path} answered {answer.status}"
        return result
    auth = {"Authorization": f"Bearer {keys[LOAD_ORG]}"}
    spec = RequestSpec(payloads.CHAT_PATH, payloads.request_body(payloads.CHAT_MODEL), auth)
    probe(gateway.port, spec, b'"chat.completion"', "chat via the analytics gateway")
    label = f"chat_c{args.connections}"
    for number in range(1, args.rounds + 1):
        order = (False, True) if number % 2 else (True, False)
        for with_query in order:
            name = "with" if with_query else "without"
            progress(f"throughput round {number}/{args.rounds}: {name} {query.name} ...")
            tool.run(label, gateway.base_url, spec, args.connections, args.warmup)
            background = None
            if with_query:
                background = Background(
                    Client(gateway.port, keys[MAIN_ORG]), query, values, args.interval
                )
                background.start()
            cpu = gateway.cpu_seconds()
            run = tool.run(
                label, gateway.base_url, spec, args.connections, args.duration, count_sent=True
            )
            run.server_cpu_s = gateway.cpu_seconds() - cpu
            if background is not None:
                background.stop()
                result.background_ms.append(background.samples_ms)
                result.background_errors.extend(background.errors)
                result.with_query.append(run)
            else:
                result.without.append(run)
            gateway.check_alive()
            wait_for_log(gateway, RequestTally())  # its backlog stays out of the next run
    return result


# --- the run ------------------------------------------------------------------------------------


def create_org_key(gateway: Gateway, org: str) -> tuple[str, str]:
    """``gateway keys create --org ORG``: (key, organisation id)."""
    key, org_id = gateway.new_key(org)
    if not org_id:
        raise BenchError(f"`gateway keys create --org {org}` printed no organisation id")
    return key, org_id


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Generate, start, measure, stop; the results as JSON-ready data."""
    load_start = os.getloadavg()
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    upstream = Upstream(workdir)
    gateway: Gateway | None = None
    try:
        progress("starting the upstream ...")
        upstream.start()
        tool = load_generator(workdir)
        gateway = Gateway(workdir, upstream.base_url, name="gateway_analytics", logging=True)
        keys, org_ids = {}, {}
        for org in (MAIN_ORG, LOAD_ORG):
            keys[org], org_ids[org] = create_org_key(gateway, org)
        spec = Spec(args.rows, (org_ids[MAIN_ORG], *_other_orgs(args.seed)), seed=args.seed)
        progress(f"generating {args.rows:,} logged requests ...")
        generate_s = generate(gateway.data_dir, spec)
        progress(f"generated in {generate_s:.1f} s; starting the gateway ...")
        gateway.start()
        values = placeholders(datetime.fromtimestamp(spec.now_ms / 1000, UTC))
        client = Client(gateway.port, keys[MAIN_ORG])
        try:
            timings = measure_queries(client, QUERIES, values, args.runs)
        finally:
            client.close()
        throughput = None
        if not args.skip_throughput:
            throughput = measure_throughput(args, tool, gateway, keys, values)
        problems = gateway.log_problems()
        tool_name = f"{tool.tool} {tool.version()}"
    finally:
        if gateway is not None:
            gateway.stop()
        upstream.stop()
    return {
        "meta": {
            "started_at": started_at,
            "cpus": os.cpu_count(),
            "load_average_start": load_start,
            "load_average_end": os.getloadavg(),
            "rows": spec.rows,
            "organisations": len(spec.org_ids),
            "main_share": spec.main_share,
            "days": spec.days,
            "users": spec.user_count,
            "sessions": spec.session_count,
            "generate_s": round(generate_s, 2),
            "runs": args.runs,
            "rounds": args.rounds,
            "duration_s": args.duration,
            "connections": args.connections,
            "interval_s": args.interval,
            "upstream": upstream.kind,
            "load_tool": tool_name,
            "gateway_problems": problems,
        },
        "queries": [t.to_json() for t in timings],
        "throughput": throughput.to_json() if throughput is not None else None,
        "goals": {"p50_ms": GOAL_P50_MS, "p99_ms": GOAL_P99_MS, "ratio": GOAL_RATIO},
    }


def _other_orgs(seed: int) -> tuple[str, ...]:
    """Four more organisations, fixed per seed, holding the other 20% of the rows."""
    return tuple(f"00000000-0000-4000-8000-{seed % 1_000_000:06d}{i:06d}" for i in range(1, 5))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return write_results(
        "analytics", args.keep_workdir, lambda workdir: run(args, workdir), args.output, report
    )


if __name__ == "__main__":
    sys.exit(main())
