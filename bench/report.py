"""Turns raw measurements into the derived numbers, the pass/fail checks and the text table.

The performance bar (from the issue) is encoded once, in :data:`BAR`, so the printed report
and ``latest.json`` always agree on what was checked.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.load import LoadResult
from bench.ttfb import TtfbResult

BAR = {
    "min_rps_32": 2000.0,
    "max_added_p50_ms_1": 0.5,
    "max_added_p99_ms_1": 2.0,
}
"""Gateway RPS at 32 connections, and added latency over direct at 1 connection."""


@dataclass
class Check:
    """One line of the performance bar."""

    name: str
    measured: float
    limit: float
    passed: bool
    unit: str


@dataclass
class Results:
    """Everything one bench run measured, plus how it was run."""

    meta: dict[str, Any]
    load: dict[str, LoadResult]
    ttfb: dict[str, TtfbResult]
    rss_kib: dict[str, int]
    derived: dict[str, float] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "load": {k: v.to_json() for k, v in self.load.items()},
            "ttfb": {k: v.to_json() for k, v in self.ttfb.items()},
            "rss_kib": self.rss_kib,
            "derived": self.derived,
            "bar": BAR,
            "checks": [asdict(c) for c in self.checks],
            "passed": all(c.passed for c in self.checks),
        }

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_finite(self.to_json()), indent=2, allow_nan=False) + "\n")


def _finite(value: Any) -> Any:
    """NaN (a number that could not be measured) becomes ``null``: strict JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def evaluate(results: Results, high: int) -> None:
    """Fill in ``derived`` and ``checks`` from the raw measurements (``high`` = 32 conns)."""
    load, d = results.load, results.derived
    g1, d1 = load["gateway_c1"], load["direct_c1"]
    gh, dh = load[f"gateway_c{high}"], load[f"direct_c{high}"]
    d["rps_ratio_c1"] = g1.rps / d1.rps if d1.rps else math.nan
    d[f"rps_ratio_c{high}"] = gh.rps / dh.rps if dh.rps else math.nan
    for pct in ("p50", "p99"):
        d[f"added_{pct}_ms_c1"] = g1.latency_ms[pct] - d1.latency_ms[pct]
        d[f"added_{pct}_ms_c{high}"] = gh.latency_ms[pct] - dh.latency_ms[pct]
        d[f"added_ttfb_{pct}_ms"] = (
            results.ttfb["gateway"].ttfb_ms[pct] - results.ttfb["direct"].ttfb_ms[pct]
        )
    d["rss_growth_kib"] = results.rss_kib["after"] - results.rss_kib["before"]
    gateway_errors = g1.error_total + gh.error_total + results.ttfb["gateway"].errors
    results.checks = [
        Check(
            f"gateway RPS at {high} connections >= {BAR['min_rps_32']:,.0f}",
            gh.rps, BAR["min_rps_32"], gh.rps >= BAR["min_rps_32"], "req/s",
        ),
        Check(
            f"added p50 latency at 1 connection <= {BAR['max_added_p50_ms_1']} ms",
            d["added_p50_ms_c1"], BAR["max_added_p50_ms_1"],
            d["added_p50_ms_c1"] <= BAR["max_added_p50_ms_1"], "ms",
        ),
        Check(
            f"added p99 latency at 1 connection <= {BAR['max_added_p99_ms_1']} ms",
            d["added_p99_ms_c1"], BAR["max_added_p99_ms_1"],
            d["added_p99_ms_c1"] <= BAR["max_added_p99_ms_1"], "ms",
        ),
        Check(
            "no failed requests through the gateway",
            gateway_errors, 0, gateway_errors == 0, "errors",
        ),
    ]  # fmt: skip


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def _signed_ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:+.3f} ms"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def render(results: Results, high: int) -> str:
    """The human-readable report."""
    m, load, d = results.meta, results.load, results.derived
    out = [
        "=" * 78,
        "LLM gateway benchmark",
        f"  when:      {m['started_at']}   machine: {m['cpus']} CPUs, Python {m['python']}",
        f"  upstream:  {m['upstream']}",
        f"  load:      {m['load_tool']}; {m['duration_s']:g} s per run after a "
        f"{m['warmup_s']:g} s warm-up",
        f"  gateway:   {m['gateway_cmd']}",
        "=" * 78,
        "",
        f"Non-streaming chat completions (POST {m['chat_path']}, model {m['chat_model']})",
    ]
    rows = []
    for conns in (1, high):
        for target in ("direct", "gateway"):
            r = load[f"{target}_c{conns}"]
            rows.append(
                [
                    "direct upstream" if target == "direct" else "through gateway",
                    str(conns),
                    f"{r.rps:,.0f}",
                    _ms(r.latency_ms["p50"]),
                    _ms(r.latency_ms["p90"]),
                    _ms(r.latency_ms["p99"]),
                    _ms(r.latency_ms.get("max", math.nan)),
                    f"{r.requests:,}",
                    str(r.error_total),
                    "-" if math.isnan(r.server_cpu_pct) else f"{r.server_cpu_pct:.0f}%",
                    "-"
                    if math.isnan(r.server_cpu_us_per_request)
                    else f"{r.server_cpu_us_per_request:.0f}",
                ]
            )
    header = ["target", "conns", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms"]
    out += _table([*header, "requests", "errors", "srv CPU", "CPU us/req"], rows)
    out.append("  (srv CPU: the server's CPU time over the run, % of one core; us/req per request)")
    out += [
        "",
        "Gateway vs direct",
        f"  RPS ratio gateway/direct:  1 conn {d['rps_ratio_c1']:.3f}   "
        f"{high} conns {d[f'rps_ratio_c{high}']:.3f}",
        f"  added latency, 1 conn:     p50 {_signed_ms(d['added_p50_ms_c1'])}   "
        f"p99 {_signed_ms(d['added_p99_ms_c1'])}",
        f"  added latency, {high} conns:   p50 {_signed_ms(d[f'added_p50_ms_c{high}'])}   "
        f"p99 {_signed_ms(d[f'added_p99_ms_c{high}'])}",
        "",
        f"Streaming time to first body byte, ms (model {m['stream_model']}; "
        f"{results.ttfb['gateway'].requests} sequential requests on one keep-alive connection)",
    ]
    t_rows = []
    for target in ("direct", "gateway"):
        t = results.ttfb[target]
        t_rows.append(
            [
                "direct upstream" if target == "direct" else "through gateway",
                _ms(t.ttfb_ms["p50"]),
                _ms(t.ttfb_ms["p90"]),
                _ms(t.ttfb_ms["p99"]),
                _ms(t.total_ms["p50"]),
                _ms(t.total_ms["p99"]),
                str(t.errors),
            ]
        )
    t_rows.append(
        [
            "added by gateway",
            _ms(d["added_ttfb_p50_ms"]),
            "",
            _ms(d["added_ttfb_p99_ms"]),
            "",
            "",
            "",
        ]
    )
    out += _table(
        ["target", "TTFB p50", "TTFB p90", "TTFB p99", "full p50", "full p99", "errors"], t_rows
    )
    before, after = results.rss_kib["before"], results.rss_kib["after"]
    out += [
        "",
        "Gateway memory (VmRSS, process and children)",
        f"  before load {before / 1024:.1f} MiB   after all load {after / 1024:.1f} MiB   "
        f"growth {(after - before) / 1024:+.1f} MiB",
        "",
        "Performance bar",
    ]
    for c in results.checks:
        value = f"{c.measured:,.0f}" if c.unit in ("req/s", "errors") else f"{c.measured:.3f}"
        out.append(f"  {'PASS' if c.passed else 'FAIL'}  {c.name:<46} measured {value} {c.unit}")
    problems = m.get("gateway_log_problems") or []
    colon = ":" if problems else ""
    out += ["", f"Gateway output: {len(problems)} warning/error line(s){colon}"]
    out += [f"  {line[:160]}" for line in problems]
    verdict = "PASS" if all(c.passed for c in results.checks) else "FAIL"
    out += ["", f"Overall: {verdict}", f"Results saved to {m['json_path']}"]
    return "\n".join(out)
