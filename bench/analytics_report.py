"""The text report of ``python -m bench.analytics``, from its JSON results (so a saved
``analytics.json`` renders the same way)."""

from __future__ import annotations

from typing import Any

NOT_AVAILABLE = "not available in this build"


def _verdict(passed: bool | None) -> str:
    return "-" if passed is None else ("PASS" if passed else "FAIL")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def query_lines(results: dict[str, Any]) -> list[str]:
    meta, goals = results["meta"], results["goals"]
    lines = [
        f"Analytics queries over {meta['rows']:,} logged requests "
        f"({meta['organisations']} organisations, {100 * meta['main_share']:.0f}% in the "
        f"queried one; {meta['days']} days; {meta['users']:,} users; "
        f"~{meta['sessions']:,} sessions; generated in {meta['generate_s']} s)",
        f"  {meta['runs']} measured runs per query after one warm-up, round-robin, one "
        "keep-alive connection; goals: p50 <= "
        f"{goals['p50_ms']:.0f} ms, p99 <= {goals['p99_ms']:.0f} ms",
        f"  {'query':<26} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'rows':>6}  verdict",
    ]
    for q in results["queries"]:
        name = q["name"]
        if q["state"] == "not_available":
            lines.append(f"  {name:<26} {NOT_AVAILABLE} ({q['error']})")
            continue
        if q["state"] == "error":
            lines.append(f"  {name:<26} ERROR {q['error']}")
            continue
        rows = "-" if q["rows"] is None else str(q["rows"])
        extra = (
            f"  ({q['rate_limited']} rate-limited calls waited out)" if q["rate_limited"] else ""
        )
        lines.append(
            f"  {name:<26} {_ms(q['p50_ms']):>8} {_ms(q['p99_ms']):>8} {_ms(q['max_ms']):>8} "
            f"{rows:>6}  {_verdict(q['passed'])}{extra}"
        )
    return lines


def throughput_lines(results: dict[str, Any]) -> list[str]:
    t = results["throughput"]
    if t is None:
        return ["Request path under analytics load: skipped (--skip-throughput)"]
    meta = results["meta"]
    head = (
        f"Request path under analytics load: chat at {meta['connections']} connections, "
        f"with {t['background_query']} every {meta['interval_s']:g} s vs without "
        f"(goal >= {100 * t['goal_ratio']:.0f}%)"
    )
    if t["state"] == "not_available":
        return [head, f"  {NOT_AVAILABLE} ({t['error']})"]
    if t["state"] != "ok":
        return [head, f"  ERROR {t['error']}"]
    lines = [head]
    for r in t["rounds"]:
        ratio = "-" if r["ratio"] is None else f"{100 * r['ratio']:.1f}%"
        lines.append(
            f"  round {r['round']}: without {r['without_rps']:.0f} req/s, with "
            f"{r['with_rps']:.0f} req/s ({ratio}), {r['background_runs']} background queries"
        )
    without, with_ = t["without"], t["with"]
    bg = t["background_ms"]
    ratio = "-" if t["ratio"] is None else f"{100 * t['ratio']:.1f}%"
    errors = without["error_total"] + with_["error_total"]
    lines += [
        f"  pooled: without {without['rps']:.0f} req/s (p99 {without['latency_ms']['p99']:.1f} "
        f"ms), with {with_['rps']:.0f} req/s (p99 {with_['latency_ms']['p99']:.1f} ms)",
        f"  background query under load: {bg['runs']} runs, p50 {_ms(bg['p50'])} ms, "
        f"p99 {_ms(bg['p99'])} ms",
        f"  [{_verdict(t['passed'])}] throughput with / without = {ratio} "
        f"(goal >= {100 * t['goal_ratio']:.0f}%), failed requests {errors}, "
        f"background errors {len(t['background_errors'])}",
    ]
    return lines


def report(results: dict[str, Any]) -> str:
    meta = results["meta"]
    start, end = meta["load_average_start"], meta["load_average_end"]
    lines = [
        f"bench.analytics — {meta['started_at']}, {meta['cpus']} CPUs, load average "
        f"{start[0]:.2f} at start, {end[0]:.2f} at end; upstream {meta['upstream']}, "
        f"load {meta['load_tool']}",
        "",
        *query_lines(results),
        "",
        *throughput_lines(results),
    ]
    if meta["gateway_problems"]:
        lines += ["", "Gateway warnings/errors:", *(f"  {p}" for p in meta["gateway_problems"])]
    return "\n".join(lines)
