"""The capacity methodology's arithmetic and its report: pure functions over measured runs.

Kept apart from the runner (:mod:`bench.capacity`) so that every figure the report states —
throughput at a p99 bound, the most streams without a stall, the leak rate — is computed by a
function the unit tests call with made-up runs (``tests/test_bench_capacity.py``).

Definitions (also in ``bench/README.md``):

* *added p99* of a sweep step = its p99 latency minus the upstream's fixed delay (20 ms): what
  a client waits beyond the provider, the mock upstream's own queueing included (the *direct*
  rows show that part);
* *throughput at a p99 bound* = the highest req/s of a sweep step whose added p99 stayed within
  the bound and which had no failed request (``None`` when no step did);
* *most streams without a stall* = the highest concurrency of the stream levels, tried in
  increasing order, up to which no level had a stalled stream (:mod:`bench.streams`);
* *leak rate* = the least-squares slope of RSS over requests served during the leak run, after
  its warm-up segment, scaled to KiB per 1M requests (an extrapolation when fewer requests
  were sent, and the report says so).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.load import LoadResult
from bench.logcheck import LogCount
from bench.streams import StreamLevel

P99_BOUNDS_MS = (1.0, 5.0, 10.0, 50.0)


@dataclass(frozen=True)
class Bounded:
    """The best sweep step within one p99 bound."""

    bound_ms: float
    rps: float
    connections: int
    p99_ms: float


def added_p99(run: LoadResult, delay_ms: float) -> float:
    return run.latency_ms.get("p99", math.nan) - delay_ms


def throughput_at_bounds(
    sweep: Sequence[LoadResult], delay_ms: float, bounds: Sequence[float] = P99_BOUNDS_MS
) -> dict[float, Bounded | None]:
    """For each bound, the sweep step with the highest req/s whose added p99 is within it."""
    out: dict[float, Bounded | None] = {}
    for bound in bounds:
        fitting = [
            run for run in sweep if run.error_total == 0 and added_p99(run, delay_ms) <= bound
        ]
        best = max(fitting, key=lambda run: run.rps, default=None)
        out[bound] = (
            None
            if best is None
            else Bounded(bound, best.rps, best.connections, best.latency_ms["p99"])
        )
    return out


def most_streams_without_stall(levels: Sequence[StreamLevel]) -> int | None:
    """The highest concurrency reached, in increasing order, before the first stalled level
    (``None``: even the lowest stalled)."""
    best: int | None = None
    for level in sorted(levels, key=lambda lv: lv.concurrency):
        if level.stalled or level.streams == 0:
            break
        best = level.concurrency
    return best


@dataclass
class LeakRun:
    """RSS (KiB) of the gateway's process tree after each segment of the leak run, with the
    requests served so far (the first point: the end of the warm-up segment)."""

    requests: list[int] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    warmup_requests: int = 0
    errors: int = 0

    def add(self, requests: int, rss_kib: int) -> None:
        self.requests.append(requests)
        self.rss_kib.append(rss_kib)

    @property
    def measured_requests(self) -> int:
        return self.requests[-1] - self.requests[0] if self.requests else 0

    @property
    def kib_per_million(self) -> float:
        return leak_slope(self.requests, self.rss_kib) * 1e6

    @property
    def growth_kib(self) -> int:
        return self.rss_kib[-1] - self.rss_kib[0] if self.rss_kib else 0

    def to_json(self) -> dict[str, Any]:
        return {
            "warmup_requests": self.warmup_requests,
            "measured_requests": self.measured_requests,
            "points": [
                {"requests": r, "rss_kib": k}
                for r, k in zip(self.requests, self.rss_kib, strict=True)
            ],
            "growth_kib": self.growth_kib,
            "kib_per_1m_requests": _finite(self.kib_per_million),
            "extrapolated": self.measured_requests < 1_000_000,
            "errors": self.errors,
        }


def leak_slope(requests: Sequence[int], rss_kib: Sequence[int]) -> float:
    """Least-squares slope of RSS over requests (KiB per request; NaN with < 2 points)."""
    n = len(requests)
    if n < 2 or n != len(rss_kib):
        return math.nan
    mean_x, mean_y = sum(requests) / n, sum(rss_kib) / n
    var = sum((x - mean_x) ** 2 for x in requests)
    if var == 0:
        return math.nan
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(requests, rss_kib, strict=True)) / var


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass
class ConfigResult:
    """Everything measured for one gateway configuration (logging on/off, workers)."""

    name: str
    logging: bool
    workers: int
    sweep: list[LoadResult] = field(default_factory=list)
    streams: list[StreamLevel] = field(default_factory=list)
    rss_idle_kib: int = 0
    rss_peak_kib: int = 0
    rss_after_kib: int = 0
    leak: LeakRun = field(default_factory=LeakRun)
    log_settled: bool | None = None
    log_count: LogCount | None = None
    """Answered vs logged (:mod:`bench.logcheck`); None when the rows are not countable."""
    not_applicable: str = ""
    problems: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"logging {'on' if self.logging else 'off'}, --workers {self.workers}"


@dataclass
class CapacityRun:
    """The whole run: the direct baseline, each configuration, and how it was made."""

    delay_ms: float
    chunks: int
    interval_ms: float
    leak_requests: int
    direct_sweep: list[LoadResult] = field(default_factory=list)
    direct_streams: list[StreamLevel] = field(default_factory=list)
    configs: list[ConfigResult] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        def bounds(sweep: list[LoadResult]) -> dict[str, Any]:
            found = throughput_at_bounds(sweep, self.delay_ms)
            return {
                f"{b:g}ms": None
                if v is None
                else {"rps": v.rps, "connections": v.connections, "p99_ms": v.p99_ms}
                for b, v in found.items()
            }

        return {
            "meta": self.meta,
            "upstream": {
                "delay_ms": self.delay_ms,
                "chunks": self.chunks,
                "interval_ms": self.interval_ms,
            },
            "direct": {
                "sweep": [r.to_json() for r in self.direct_sweep],
                "throughput_at_p99": bounds(self.direct_sweep),
                "streams": [s.to_json() for s in self.direct_streams],
            },
            "configs": {
                c.name: {
                    "logging": c.logging,
                    "workers": c.workers,
                    "not_applicable": c.not_applicable or None,
                    "sweep": [r.to_json() for r in c.sweep],
                    "throughput_at_p99": bounds(c.sweep),
                    "streams": [s.to_json() for s in c.streams],
                    "added_ttft_p50_ms": {
                        str(s.concurrency): _finite(added_ttft(s, self.direct_streams))
                        for s in c.streams
                    },
                    "most_streams_without_stall": most_streams_without_stall(c.streams)
                    if c.streams
                    else None,
                    "memory_kib": {
                        "idle": c.rss_idle_kib,
                        "peak": c.rss_peak_kib,
                        "after": c.rss_after_kib,
                    },
                    "leak": c.leak.to_json(),
                    "log_settled": c.log_settled,
                    "request_log": c.log_count.to_json() if c.log_count else None,
                    "problems": c.problems,
                }
                for c in self.configs
            },
        }


def added_ttft(level: StreamLevel, direct: Sequence[StreamLevel], pct: str = "p50") -> float:
    """TTFT percentile through the gateway minus the direct one at the same concurrency."""
    for base in direct:
        if base.concurrency == level.concurrency:
            return level.ttft_ms[pct] - base.ttft_ms[pct]
    return math.nan


def _num(value: float, fmt: str = ".2f") -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, fmt)


def _mib(kib: int) -> str:
    return f"{kib / 1024:.0f}" if kib else "-"


def render(run: CapacityRun) -> str:
    """The printed report."""
    d = run.delay_ms
    meta = run.meta
    lines = [
        "Gateway capacity (issue 14 methodology)",
        f"  upstream: fixed {d:g} ms delay (Python/uvloop mock, bench/delayed_upstream.py); "
        f"streams: {run.chunks} chunks {run.interval_ms:g} ms apart",
        f"  machine: {meta.get('cpus', '?')} cores, load average {meta.get('loadavg_start', '?')}"
        f" at start, {meta.get('loadavg_end', '?')} at end; load generator {meta.get('tool', '?')}"
        f"; {meta.get('mode', '')}",
        f"  logging on = request log (rows to ClickHouse: {meta.get('clickhouse', '?')}; bodies "
        "in local SQLite) and the request line; off = both off. /metrics on in both.",
        *([f"  note: {meta['clickhouse_note']}"] if meta.get("clickhouse_note") else []),
        "",
        f"Throughput at p99 bounds (added p99 = p99 - {d:g} ms; one sweep of "
        f"{', '.join(str(r.connections) for r in run.direct_sweep) or '-'} connections; "
        "req/s (connections))",
        f"  {'config':<28}" + "".join(f"{f'<= {b:g} ms':>16}" for b in P99_BOUNDS_MS),
    ]
    rows = [("direct upstream", run.direct_sweep)] + [
        (c.label, c.sweep) for c in run.configs if not c.not_applicable
    ]
    for label, sweep in rows:
        found = throughput_at_bounds(sweep, d)
        cells = "".join(
            f"{'-' if v is None else f'{v.rps:,.0f} (c{v.connections})':>16}"
            for v in found.values()
        )
        lines.append(f"  {label:<28}{cells}")
    lines += [
        "",
        "Sweep",
        f"  {'config':<28}{'conns':>6}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'added p99':>10}{'cpu us/req':>11}{'errors':>7}",
    ]
    for label, sweep in rows:
        for r in sweep:
            p50, p99 = r.latency_ms.get("p50", math.nan), r.latency_ms.get("p99", math.nan)
            lines.append(
                f"  {label:<28}{r.connections:>6}{r.rps:>9,.0f}{_num(p50):>9}"
                f"{_num(p99):>9}{_num(added_p99(r, d)):>10}"
                f"{_num(r.server_cpu_us_per_request, '.0f'):>11}{r.error_total:>7}"
            )
    lines += [
        "",
        f"Sustained streams ({run.chunks} chunks, {run.interval_ms:g} ms apart; stall = a gap "
        f"between chunks > 100 ms, a first chunk > 100 ms later than the upstream's {d:g} ms, or "
        "a stream that failed or did not end)",
        f"  {'config':<28}{'streams':>8}{'done':>7}{'TTFT p50':>9}{'added':>7}{'p99':>8}"
        f"{'gap p50':>8}{'gap p99':>8}{'gap max':>8}{'stalled':>8}",
    ]
    stream_rows = [("direct upstream", run.direct_streams)] + [
        (c.label, c.streams) for c in run.configs if not c.not_applicable
    ]
    for label, levels in stream_rows:
        for s in levels:
            added = "" if label == "direct upstream" else _num(added_ttft(s, run.direct_streams))
            lines.append(
                f"  {label:<28}{s.concurrency:>8}{s.complete:>7}{_num(s.ttft_ms['p50']):>9}"
                f"{added:>7}{_num(s.ttft_ms['p99']):>8}{_num(s.gap_ms['p50']):>8}"
                f"{_num(s.gap_ms['p99']):>8}{_num(s.gap_ms['max']):>8}{s.stalled:>8}"
            )
    lines.append("  most concurrent streams with no stall (of the levels tried):")
    for label, levels in stream_rows:
        best = most_streams_without_stall(levels) if levels else None
        tried = max((lv.concurrency for lv in levels), default=0)
        note = " (every level tried)" if best is not None and best == tried else ""
        lines.append(f"    {label:<28}{'-' if best is None else best}{note}")
    lines += [
        "",
        "Memory (RSS of the gateway's process tree: server, workers, log writers; MiB)",
        f"  {'config':<28}{'idle':>6}{'peak':>6}{'after':>7}   leak (RSS slope after warm-up)",
    ]
    for c in run.configs:
        if c.not_applicable:
            continue
        leak = c.leak
        per_m = leak.kib_per_million
        scope = (
            f"over {leak.measured_requests:,} requests, extrapolated to 1M"
            if leak.measured_requests < 1_000_000
            else f"over {leak.measured_requests:,} requests"
        )
        lines.append(
            f"  {c.label:<28}{_mib(c.rss_idle_kib):>6}{_mib(c.rss_peak_kib):>6}"
            f"{_mib(c.rss_after_kib):>7}   {_num(per_m / 1024, '+.1f')} MiB per 1M requests "
            f"({scope}; growth {leak.growth_kib / 1024:+.1f} MiB)"
        )
    for c in run.configs:
        if c.not_applicable:
            lines.append(f"  {c.label}: not applicable: {c.not_applicable}")
        if c.log_settled is False:
            lines.append(f"  {c.label}: the log writer had not caught up within 30 s")
        if c.log_count is not None:
            lines.append(f"  {c.label}: {c.log_count.describe()}")
        for problem in c.problems:
            lines.append(f"  {c.label}: printed: {problem[:200]}")
    return "\n".join(lines)
