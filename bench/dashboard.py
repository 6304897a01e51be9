"""``python -m bench.dashboard``: issue 18's performance bar for the web dashboard.

One run: write ``--rows`` synthetic logged requests (:mod:`bench.analytics_data`, a million by
default, 80% in the organisation whose key signs in) into a fresh gateway's data directory,
start ``gateway serve`` on it (logging on, the embedded engine), sign in once over HTTP, then,
``--loads`` times, each in a fresh Chromium context (Debian's ``/usr/bin/chromium``, no cache,
only the session cookie):

* **overview**: from navigation to the overview's cards and charts shown (its four API calls
  answered and drawn), default range (last 24 hours);
* **overview, 30 days**: the range picker moved to 30 days, until redrawn;
* **requests**: from navigation to the requests table shown (the last 7 days, 25 rows);
* **filter change**: a condition (model = the most common model) entered, until the table
  shows its rows;
* **first-load transfer**: the bytes the page itself took (document, script, stylesheet; the
  API answers excluded), as Chromium's resource timing reports them (compressed).

Reported: p50 (nearest rank) and the slowest of the loads, against the goals: interactive
within 1.5 s, a filter change within 0.5 s, first load within 500 KB. Timings are wall time
in this process around Playwright's calls (a few ms of driver overhead included). Prints the
report and writes ``bench/results/dashboard.json``. Not part of ``make bench``. Exit status 0
whether or not the goals are met, 1 when the bench could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.analytics_data import Spec, generate
from bench.gateway_proc import Gateway
from bench.load import percentile
from bench.phases import progress
from bench.procs import HOST, BenchError, write_results

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "dashboard.json"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
GOAL_LOAD_MS = 1500.0
GOAL_FILTER_MS = 500.0
GOAL_TRANSFER_BYTES = 500_000
ORG = "bench-dashboard"
READY = ".overview-body:not([aria-busy]) .chart .uplot"
TABLE_READY = ".results:not([aria-busy]) table.requests tbody tr"
TIMEOUT_MS = 60_000
PAGE_TRANSFER = """() => performance.getEntries()
  .filter(e => e.entryType === 'navigation' || ['script', 'link', 'css'].includes(e.initiatorType))
  .reduce((sum, e) => sum + (e.transferSize || 0), 0)"""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dashboard",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="logged requests generated")
    parser.add_argument("--loads", type=int, default=5, help="measured loads of each page")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="JSON results file")
    parser.add_argument("--keep-workdir", action="store_true")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.loads < 1:
        parser.error("need --rows >= 1 and --loads >= 1")
    if not Path(CHROMIUM).exists():
        parser.error(f"needs Debian's chromium at {CHROMIUM} (apt-get install chromium)")
    return args


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 1)


def sign_in(gateway: Gateway, key: str) -> dict[str, Any]:
    """``POST /dashboard/api/session``: the session cookie, as Playwright adds cookies."""
    import http.client

    conn = http.client.HTTPConnection(HOST, gateway.port, timeout=30)
    try:
        conn.request("POST", "/dashboard/api/session", json.dumps({"key": key}),
                     {"Content-Type": "application/json"})  # fmt: skip
        response = conn.getresponse()
        response.read()
        cookie = response.getheader("set-cookie") or ""
    finally:
        conn.close()
    name, _, value = cookie.split(";", 1)[0].partition("=")
    if response.status != 200 or not value:
        raise BenchError(f"signing in answered {response.status}")
    return {"name": name, "value": value, "domain": HOST, "path": "/", "httpOnly": True,
            "sameSite": "Strict"}  # fmt: skip


def top_model(gateway: Gateway) -> str:
    status, body = gateway.call("POST", "/v1/dashboard/series/query", {
        "timeFilter": {"start": "1970-01-01", "end": datetime.now(UTC).isoformat()},
        "dbIncrement": "year", "groupBy": "model", "groupLimit": 1,
    })  # fmt: skip
    if status != 200:
        raise BenchError(f"the series query answered {status}: {body}")
    model: str = body["data"]["series"][0]["group"]
    return model


def measure(gateway: Gateway, key: str, loads: int) -> dict[str, list[float]]:
    """Every measurement, ``loads`` times, each load in a fresh browser context."""
    from playwright.sync_api import sync_playwright

    cookie = sign_in(gateway, key)
    model = top_model(gateway)
    base = f"http://{HOST}:{gateway.port}/dashboard/"
    out: dict[str, list[float]] = {
        "overview_ms": [], "overview_30d_ms": [], "requests_ms": [], "filter_ms": [],
        "transfer_bytes": [],
    }  # fmt: skip
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:

            def fresh() -> tuple[Any, Any]:
                """A new context (empty cache) holding only the session cookie, and a page."""
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                context.add_cookies([cookie])
                page = context.new_page()
                page.set_default_timeout(TIMEOUT_MS)
                return context, page

            for i in range(loads):
                progress(f"load {i + 1} of {loads} ...")
                context, page = fresh()
                started = time.perf_counter()
                page.goto(base + "#/overview")
                page.wait_for_selector(READY)
                out["overview_ms"].append(_ms(started))
                out["transfer_bytes"].append(float(page.evaluate(PAGE_TRANSFER)))
                started = time.perf_counter()
                page.select_option("#range", "30d")
                page.wait_for_selector(READY)
                out["overview_30d_ms"].append(_ms(started))
                context.close()

                context, page = fresh()
                started = time.perf_counter()
                page.goto(base + "#/requests")
                page.wait_for_selector(TABLE_READY)
                out["requests_ms"].append(_ms(started))
                page.click("#add-condition")
                page.fill(".condition input.value", model)
                started = time.perf_counter()
                page.press(".condition input.value", "Enter")
                page.wait_for_selector(TABLE_READY)
                out["filter_ms"].append(_ms(started))
                context.close()
        finally:
            browser.close()
    return out


def summarise(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"p50": percentile(ordered, 50), "max": ordered[-1]}


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    load_start = os.getloadavg()
    gateway = Gateway(workdir, "http://127.0.0.1:9", name="gateway_dashboard", logging=True)
    try:
        key, org_id = gateway.new_key(ORG)
        gateway.key = key
        others = tuple(f"00000000-0000-4000-8000-{args.seed:06d}{i:06d}" for i in range(1, 5))
        spec = Spec(args.rows, (org_id, *others), seed=args.seed)
        progress(f"generating {args.rows:,} logged requests ...")
        generate_s = generate(gateway.data_dir, spec)
        progress(f"generated in {generate_s:.1f} s; starting the gateway ...")
        gateway.start()
        samples = measure(gateway, key, args.loads)
        problems = gateway.log_problems()
    finally:
        gateway.stop()
    return {
        "meta": {
            "started_at": started_at,
            "cpus": os.cpu_count(),
            "load_average_start": load_start,
            "load_average_end": os.getloadavg(),
            "rows": spec.rows,
            "main_share": spec.main_share,
            "days": spec.days,
            "generate_s": round(generate_s, 2),
            "loads": args.loads,
            "gateway_problems": problems,
        },
        "samples": samples,
        "summary": {name: summarise(values) for name, values in samples.items()},
        "goals": {
            "load_ms": GOAL_LOAD_MS,
            "filter_ms": GOAL_FILTER_MS,
            "transfer_bytes": GOAL_TRANSFER_BYTES,
        },
    }


def report(results: dict[str, Any]) -> str:
    meta, summary = results["meta"], results["summary"]
    lines = [
        f"Dashboard, {meta['rows']:,} logged requests ({meta['main_share']:.0%} in the "
        f"signed-in organisation, {meta['days']} days), {meta['loads']} loads each, "
        f"{meta['cpus']} CPUs",
        f"{'measure':<28}{'p50':>10}{'slowest':>10}   goal",
    ]
    rows = (
        ("overview (24 h), load", "overview_ms", GOAL_LOAD_MS, "ms"),
        ("overview, range to 30 days", "overview_30d_ms", GOAL_LOAD_MS, "ms"),
        ("requests, load", "requests_ms", GOAL_LOAD_MS, "ms"),
        ("filter change", "filter_ms", GOAL_FILTER_MS, "ms"),
        ("first-load transfer", "transfer_bytes", GOAL_TRANSFER_BYTES, "B"),
    )
    for label, name, goal, unit in rows:
        s = summary[name]
        verdict = "met" if s["p50"] <= goal else "NOT met"
        lines.append(f"{label:<28}{s['p50']:>8.0f}{unit:>2}{s['max']:>8.0f}{unit:>2}   "
                     f"<= {goal:.0f} {unit}: {verdict}")  # fmt: skip
    if meta["gateway_problems"]:
        lines.append(f"gateway log problems: {meta['gateway_problems']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return write_results(
        "dashboard", args.keep_workdir, lambda workdir: run(args, workdir), args.output, report
    )


if __name__ == "__main__":
    sys.exit(main())
