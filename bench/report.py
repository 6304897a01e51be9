"""Turns raw measurements into the derived numbers and the pass/fail checks; saves the JSON.

The performance bar (from the issues) is encoded once, in :data:`BAR`, so the printed report
(:mod:`bench.render`) and ``latest.json`` always agree on what was checked. The foundation
lines apply to the gateway with logging off, the logging lines to the one with logging on,
the translation lines to the translated path (``model/anthropic``) against the OpenAI path,
the routing lines to issue 11's routed model and failover (:mod:`bench.routing`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.load import LoadResult
from bench.pairing import PairedResult
from bench.requestlog import LogAccount
from bench.routing import FailoverResult
from bench.ttfb import TtfbResult

BAR = {
    "min_rps_32": 2000.0,
    "max_added_p50_ms_1": 0.5,
    "max_added_p99_ms_1": 2.0,
    "min_logging_rps_ratio_32": 0.85,
    "target_min_forwarder_rps_fraction_32": 0.90,
    "target_max_forwarder_added_p50_multiple_1": 1.15,
    "floor_min_forwarder_rps_fraction_32": 0.75,
    "floor_max_forwarder_added_p50_multiple_1": 1.30,
    "min_translated_rps_fraction_32": 0.85,
    "max_translated_added_ttfb_p50_ms": 0.3,
    "min_ratelimit_rps_ratio_32": 0.90,
    "max_ratelimit_added_p50_ms_1": 0.3,
    "min_routed_rps_fraction_32": 0.95,
    "max_failover_added_p50_ms": 1.0,
    "min_gemini_rps_fraction_32": 0.85,
    "min_bedrock_rps_fraction_32": 0.85,
    "max_bedrock_added_ttfb_p50_ms": 0.5,
    "min_observability_rps_ratio_32": 0.95,
}
"""Foundation: no-logging gateway RPS at 32 connections, added latency over direct at 1
connection. Logging: RPS with logging as a fraction of the no-logging RPS at 32 connections
(plus zero records lost, and records written == requests sent). Reference (issue 10): each
gateway's RPS at 32 connections as a fraction of the minimal forwarder's, and its added p50 at
1 connection as a multiple of the forwarder's; the target is the whole product's, the floor
(measured 2026-12-01: 75-79% and 1.3x) what the gateway with logging must not fall below.
Translation: the translated path's RPS at 32 connections as a fraction of the OpenAI path's
(same gateway, same rounds), and its streamed TTFB p50 minus the OpenAI stream's (same gateway,
alternating rounds), both pooled over all rounds. Routing (issue 11): the routed model's RPS at
32 connections (BYOK and credits configured) as a fraction of the pinned one's (client key),
pooled over the rounds; a failover's p50 minus the directly served request's p50 minus its
failed attempt's own p50, on the pooled samples of all rounds.

Gemini and Bedrock (issue 13): each translated path's RPS at 32 connections as a fraction of
the OpenAI path's (same gateway, same rounds, pooled), and the Bedrock event stream's TTFB p50
minus the OpenAI stream's (pooled samples, same turns as the Anthropic stream's).

Rate limits (issue 12): the no-logging gateway with a global request-rate policy on Redis, RPS
at 32 connections as a fraction of the same gateway without a policy (pooled rounds), and the
p50 it adds at 1 connection.

Observability (issue 14): the no-logging gateway (``/metrics`` and the request line on, the
default) against the same build with both off (``gateway_quiet``), RPS at 32 connections,
pooled rounds."""

TARGETS = {
    "direct": "direct upstream",
    "forwarder": "minimal forwarder",
    "gateway": "gateway, no logging",
    "gateway_logging": "gateway, logging",
    "translated": "gateway, translated",
}
"""Target keys (prefixes of the ``load`` keys) and how the report names them."""

ROUTING = {
    "routed": "routed (gpt-4o-mini: BYOK, credits)",
    "pinned": "pinned (gpt-4o-mini/openai, client key)",
}
"""The routing gateway's two throughput targets (``load`` keys ``routed_c<N>``,
``pinned_c<N>``); they have no 1-connection run and no TTFB."""

NATIVE = {
    "gemini": "Gemini (model/google-ai-studio)",
    "bedrock": "Bedrock (model/bedrock, Converse)",
}
"""Issue 13's translated paths (``load`` keys ``<name>_c<N>``, ``ttfb`` keys ``<name>``):
throughput in the rounds, streams in the TTFB turns; no 1-connection run."""

PAIRED = "gateway_stream"
"""The ``ttfb`` key of the OpenAI stream the translated stream is compared with: measured on
the second no-logging gateway, in turn with the translated one after each round."""

GATEWAYS = ("gateway", "gateway_logging")
PROXIES = ("forwarder", *GATEWAYS, "translated")
"""Everything measured against the direct upstream."""


@dataclass
class Check:
    """One line of the performance bar."""

    name: str
    measured: float
    limit: float
    passed: bool
    unit: str
    group: str = "foundation"
    informational: bool = False
    """Printed and saved, but not part of the overall verdict (the reference lines)."""


@dataclass
class Results:
    """Everything one bench run measured, plus how it was run.

    ``load`` is keyed ``<target>_c<connections>`` (and ``gateway_logging_soak``), ``ttfb`` and
    ``rss_kib`` by gateway/target name. ``rounds`` holds each gateway's interleaved
    N-connection runs, which its ``load[...c<N>]`` entry combines; ``ttfb_rounds`` the paired
    streams' per-round measurements (``translated`` and :data:`PAIRED`), which their ``ttfb``
    entries pool.
    """

    meta: dict[str, Any]
    load: dict[str, LoadResult]
    ttfb: dict[str, TtfbResult]
    rss_kib: dict[str, dict[str, int]]
    request_log: LogAccount | None = None
    rounds: dict[str, list[LoadResult]] = field(default_factory=dict)
    ttfb_rounds: dict[str, list[TtfbResult]] = field(default_factory=dict)
    failover: FailoverResult | None = None
    """The failover measurement, pooled over the rounds (:mod:`bench.routing`)."""
    failover_rounds: list[FailoverResult] = field(default_factory=list)
    paired: dict[str, PairedResult] = field(default_factory=dict)
    """The paired 1-connection measurement by target (:mod:`bench.pairing`); when present, the
    gateways' added p50 against the forwarder's is judged on it."""
    derived: dict[str, float] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "meta": self.meta,
            "load": {k: v.to_json() for k, v in self.load.items()},
            "ttfb": {k: v.to_json() for k, v in self.ttfb.items()},
            "rss_kib": self.rss_kib,
            "request_log": self.request_log.to_json() if self.request_log else None,
            "rounds": {k: [r.to_json() for r in v] for k, v in self.rounds.items()},
            "ttfb_rounds": {k: [r.to_json() for r in v] for k, v in self.ttfb_rounds.items()},
            "failover": self.failover.to_json() if self.failover else None,
            "failover_rounds": [r.to_json() for r in self.failover_rounds],
            "paired": {k: v.to_json() for k, v in self.paired.items()},
            "derived": self.derived,
            "bar": BAR,
            "checks": [asdict(c) for c in self.checks],
            "passed": self.passed,
        }

    @property
    def passed(self) -> bool:
        """The verdict: every check that is not informational passed."""
        return all(c.passed for c in self.checks if not c.informational)

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


def _ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def gateway_errors(results: Results, gateway: str) -> int:
    """Failed requests through one gateway: every wrk run (soak included) plus TTFB.

    The N-connection entry already adds up that gateway's rounds.
    """
    runs = [v for k, v in results.load.items() if k.rsplit("_", 1)[0] == gateway]
    return sum(r.error_total for r in runs) + results.ttfb[gateway].errors


def _derive(results: Results, high: int) -> None:
    load, d = results.load, results.derived
    d1, dh = load["direct_c1"], load[f"direct_c{high}"]
    for g in PROXIES:
        g1, gh = load[f"{g}_c1"], load[f"{g}_c{high}"]
        d[f"{g}_rps_ratio_c1"] = _ratio(g1.rps, d1.rps)
        d[f"{g}_rps_ratio_c{high}"] = _ratio(gh.rps, dh.rps)
        for pct in ("p50", "p99"):
            d[f"{g}_added_{pct}_ms_c1"] = g1.latency_ms[pct] - d1.latency_ms[pct]
            d[f"{g}_added_{pct}_ms_c{high}"] = gh.latency_ms[pct] - dh.latency_ms[pct]
            d[f"{g}_added_ttfb_{pct}_ms"] = (
                results.ttfb[g].ttfb_ms[pct] - results.ttfb["direct"].ttfb_ms[pct]
            )
        rss = results.rss_kib.get(g)
        if rss:
            d[f"{g}_rss_growth_kib"] = rss["after"] - rss["before"]
    for conns in (1, high):
        d[f"logging_rps_ratio_c{conns}"] = _ratio(
            load[f"gateway_logging_c{conns}"].rps, load[f"gateway_c{conns}"].rps
        )
    plain, logged = results.rounds.get("gateway", []), results.rounds.get("gateway_logging", [])
    pairs = zip(plain, logged, strict=True)
    for number, (a, b) in enumerate(pairs, 1):
        d[f"logging_rps_ratio_c{high}_round{number}"] = _ratio(b.rps, a.rps)
    _derive_reference(results, high)
    _derive_translated(results, high)
    _derive_native(results, high)
    _derive_routing(results, high)


def _derive_native(results: Results, high: int) -> None:
    """Issue 13's paths against the OpenAI path, as the Anthropic-translated one: pooled RPS
    fraction (and per round), streamed TTFB added over the OpenAI stream (pooled samples, and
    the p50 per round). A path that was not measured gets NaN, and its lines fail."""
    load, ttfb, d = results.load, results.ttfb, results.derived
    openai = load.get(f"gateway_c{high}")
    for name in NATIVE:
        run = load.get(f"{name}_c{high}")
        d[f"{name}_rps_fraction_of_openai_c{high}"] = (
            _ratio(run.rps, openai.rps) if run and openai else math.nan
        )
        rounds = results.rounds.get(name, []), results.rounds.get("gateway", [])
        for number, (t, o) in enumerate(zip(*rounds, strict=False), 1):
            d[f"{name}_rps_fraction_of_openai_c{high}_round{number}"] = _ratio(t.rps, o.rps)
        stream, pair = ttfb.get(name), ttfb.get(PAIRED)
        for pct in ("p50", "p99"):
            d[f"{name}_added_ttfb_{pct}_over_openai_ms"] = (
                stream.ttfb_ms[pct] - pair.ttfb_ms[pct] if stream and pair else math.nan
            )
        pairs = results.ttfb_rounds.get(name, []), results.ttfb_rounds.get(PAIRED, [])
        for number, (ts, os) in enumerate(zip(*pairs, strict=False), 1):
            d[f"{name}_added_ttfb_p50_over_openai_ms_round{number}"] = (
                ts.ttfb_ms["p50"] - os.ttfb_ms["p50"]
            )


def _derive_routing(results: Results, high: int) -> None:
    """The routed model against the pinned one (pooled RPS, and per round) and the failover
    figures (pooled samples, and the added p50 per round). Missing measurements are NaN, and
    their lines fail."""
    load, d = results.load, results.derived
    routed, pinned = load.get(f"routed_c{high}"), load.get(f"pinned_c{high}")
    d[f"routed_rps_fraction_of_pinned_c{high}"] = (
        _ratio(routed.rps, pinned.rps) if routed and pinned else math.nan
    )
    rounds = results.rounds.get("routed", []), results.rounds.get("pinned", [])
    for number, (r, p) in enumerate(zip(*rounds, strict=True), 1):
        d[f"routed_rps_fraction_of_pinned_c{high}_round{number}"] = _ratio(r.rps, p.rps)
    failover = results.failover
    for pct in ("p50", "p99"):
        for kind in ("failover", "direct", "failed"):
            d[f"failover_{kind}_{pct}_ms"] = failover.ms[kind][pct] if failover else math.nan
        d[f"failover_added_{pct}_ms"] = failover.added_ms(pct) if failover else math.nan
    for number, one in enumerate(results.failover_rounds, 1):
        d[f"failover_added_p50_ms_round{number}"] = one.added_p50_ms


def _derive_translated(results: Results, high: int) -> None:
    """The translated path against the OpenAI path: RPS fraction, added latency and TTFB.

    Throughput: pooled over the rounds (and per round), both runs on the no-logging gateway.
    TTFB: percentiles of all rounds' samples pooled, both streams on :data:`PAIRED`.
    """
    load, ttfb, d = results.load, results.ttfb, results.derived
    d[f"translated_rps_fraction_of_openai_c{high}"] = _ratio(
        load[f"translated_c{high}"].rps, load[f"gateway_c{high}"].rps
    )
    rounds = results.rounds.get("translated", []), results.rounds.get("gateway", [])
    for number, (t, o) in enumerate(zip(*rounds, strict=True), 1):
        d[f"translated_rps_fraction_of_openai_c{high}_round{number}"] = _ratio(t.rps, o.rps)
    for pct in ("p50", "p99"):
        d[f"translated_added_{pct}_over_openai_ms_c1"] = (
            load["translated_c1"].latency_ms[pct] - load["gateway_c1"].latency_ms[pct]
        )
        d[f"translated_added_ttfb_{pct}_over_openai_ms"] = (
            ttfb["translated"].ttfb_ms[pct] - ttfb[PAIRED].ttfb_ms[pct]
        )
    pairs = results.ttfb_rounds.get("translated", []), results.ttfb_rounds.get(PAIRED, [])
    for number, (ts, os) in enumerate(zip(*pairs, strict=True), 1):
        d[f"translated_added_ttfb_p50_over_openai_ms_round{number}"] = (
            ts.ttfb_ms["p50"] - os.ttfb_ms["p50"]
        )


def _derive_reference(results: Results, high: int) -> None:
    """Each gateway against the minimal forwarder: RPS fraction, added-latency multiples.

    A multiple of the forwarder's added latency means nothing when that is not above zero
    (noise on a fast machine): it is then NaN (``null`` in the JSON) and its lines fail. The
    added p50 is the paired measurement's when the run made one (every target asked in turn:
    :mod:`bench.pairing`), else the separate 1-connection wrk runs' (``..._wrk_c1``, always
    derived): those ran minutes apart, each against the direct run of the start, and one
    machine phase between them moves a ~0.1 ms figure by half.
    """
    load, d, paired = results.load, results.derived, results.paired
    fwd_rps = load[f"forwarder_c{high}"].rps
    fwd_wrk = d["forwarder_added_p50_ms_c1"]
    fwd_ttfb = d["forwarder_added_ttfb_p50_ms"]
    if paired:
        d["forwarder_added_p50_ms_paired"] = paired["forwarder"].added_p50_ms
    for g in GATEWAYS:
        d[f"{g}_rps_fraction_of_forwarder_c{high}"] = _ratio(load[f"{g}_c{high}"].rps, fwd_rps)
        wrk = _multiple(d[f"{g}_added_p50_ms_c1"], fwd_wrk)
        d[f"{g}_added_p50_multiple_of_forwarder_wrk_c1"] = wrk
        if paired:
            d[f"{g}_added_p50_ms_paired"] = paired[g].added_p50_ms
            d[f"{g}_added_p50_multiple_of_forwarder_c1"] = _multiple(
                paired[g].added_p50_ms, paired["forwarder"].added_p50_ms
            )
        else:
            d[f"{g}_added_p50_multiple_of_forwarder_c1"] = wrk
        d[f"{g}_added_ttfb_p50_multiple_of_forwarder"] = _multiple(
            d[f"{g}_added_ttfb_p50_ms"], fwd_ttfb
        )
        rounds = zip(results.rounds.get(g, []), results.rounds.get("forwarder", []), strict=True)
        for number, (a, f) in enumerate(rounds, 1):
            d[f"{g}_rps_fraction_of_forwarder_c{high}_round{number}"] = _ratio(a.rps, f.rps)


def _multiple(added: float, reference: float) -> float:
    return added / reference if reference > 0 else math.nan


def evaluate(results: Results, high: int) -> None:
    """Fill in ``derived`` and ``checks`` from the raw measurements (``high`` = 32 conns)."""
    _derive(results, high)
    d = results.derived
    rps = results.load[f"gateway_c{high}"].rps
    errors = gateway_errors(results, "gateway")
    results.checks = [
        Check(
            f"gateway RPS at {high} connections >= {BAR['min_rps_32']:,.0f}",
            rps, BAR["min_rps_32"], rps >= BAR["min_rps_32"], "req/s",
        ),
        Check(
            f"added p50 latency at 1 connection <= {BAR['max_added_p50_ms_1']} ms",
            d["gateway_added_p50_ms_c1"], BAR["max_added_p50_ms_1"],
            d["gateway_added_p50_ms_c1"] <= BAR["max_added_p50_ms_1"], "ms",
        ),
        Check(
            f"added p99 latency at 1 connection <= {BAR['max_added_p99_ms_1']} ms",
            d["gateway_added_p99_ms_c1"], BAR["max_added_p99_ms_1"],
            d["gateway_added_p99_ms_c1"] <= BAR["max_added_p99_ms_1"], "ms",
        ),
        Check("no failed requests through the gateway", errors, 0, errors == 0, "errors"),
        *_logging_checks(results, high),
        *_translation_checks(results, high),
        *_native_checks(results, high),
        *_ratelimit_checks(results, high),
        *_routing_checks(results, high),
        *_observability_checks(results, high),
        *_reference_checks(results, high),
    ]  # fmt: skip


def _routing_checks(results: Results, high: int) -> list[Check]:
    """Issue 11's bar: routed RPS >= 95% of pinned, failover adds <= 1 ms beyond its failed
    attempt, and no failed requests on either target or in the failover turns (a failover
    turn that was not served by the second attempt counts as failed)."""
    d = results.derived
    fraction = 100 * d[f"routed_rps_fraction_of_pinned_c{high}"]
    floor = 100 * BAR["min_routed_rps_fraction_32"]
    added = d["failover_added_p50_ms"]
    most = BAR["max_failover_added_p50_ms"]
    runs = [v for k, v in results.load.items() if k in (f"routed_c{high}", f"pinned_c{high}")]
    failover = results.failover
    errors = sum(r.error_total for r in runs) + (failover.errors if failover else 0)
    measured = len(runs) == 2 and failover is not None
    return [
        Check(
            f"routed RPS at {high} connections >= {floor:.0f}% of the pinned model's",
            fraction, floor, fraction >= floor, "%", "routing",
        ),
        Check(
            f"failover p50 added beyond its failed attempt <= {most:g} ms",
            added, most, added <= most, "ms", "routing",
        ),
        Check(
            "no failed requests (routed, pinned, failover)",
            errors, 0, measured and errors == 0, "errors", "routing",
        ),
    ]  # fmt: skip


def _translation_checks(results: Results, high: int) -> list[Check]:
    """The translated path's bar: RPS fraction and added TTFB (pooled), no failures.

    Failures of the paired OpenAI stream count too: without it there is no comparison.
    """
    d = results.derived
    fraction = 100 * d[f"translated_rps_fraction_of_openai_c{high}"]
    floor = 100 * BAR["min_translated_rps_fraction_32"]
    added = d["translated_added_ttfb_p50_over_openai_ms"]
    most = BAR["max_translated_added_ttfb_p50_ms"]
    errors = gateway_errors(results, "translated") + results.ttfb[PAIRED].errors
    return [
        Check(
            f"translated RPS at {high} connections >= {floor:.0f}% of the OpenAI path's",
            fraction, floor, fraction >= floor, "%", "translation",
        ),
        Check(
            f"streamed TTFB p50 added over the OpenAI path <= {most} ms",
            added, most, added <= most, "ms", "translation",
        ),
        Check(
            "no failed requests (translated path, paired stream)",
            errors, 0, errors == 0, "errors", "translation",
        ),
    ]


def _native_checks(results: Results, high: int) -> list[Check]:
    """Issue 13's bar: Gemini's and Bedrock's RPS >= 85% of the OpenAI path's, the Bedrock
    event stream's added TTFB p50 <= 0.5 ms; no failed requests on either path (streams
    included) or on the OpenAI stream they are compared with. Gemini's stream is measured
    and reported too, without a line of its own."""
    d = results.derived
    checks = []
    for name in NATIVE:
        fraction = 100 * d[f"{name}_rps_fraction_of_openai_c{high}"]
        floor = 100 * BAR[f"min_{name}_rps_fraction_32"]
        what = f"{name.capitalize()} RPS at {high} connections >= {floor:.0f}% of the OpenAI path's"
        checks.append(Check(what, fraction, floor, fraction >= floor, "%", "native"))
    added = d["bedrock_added_ttfb_p50_over_openai_ms"]
    most = BAR["max_bedrock_added_ttfb_p50_ms"]
    what = f"Bedrock event stream TTFB p50 added over the OpenAI path <= {most} ms"
    checks.append(Check(what, added, most, added <= most, "ms", "native"))
    measured = all(f"{n}_c{high}" in results.load and n in results.ttfb for n in NATIVE)
    errors = (
        sum(gateway_errors(results, name) for name in NATIVE) + results.ttfb[PAIRED].errors
        if measured
        else math.nan
    )
    what = "no failed requests (Gemini, Bedrock, their streams, the paired stream)"
    checks.append(Check(what, errors, 0, errors == 0, "errors", "native"))
    return checks
QUIET = "gateway_quiet"


def _observability_checks(results: Results, high: int) -> list[Check]:
    """Metrics and the request line on (the no-logging gateway) vs both off (``QUIET``)."""
    load, d = results.load, results.derived
    if f"{QUIET}_c{high}" not in load:
        return []
    on, off = load[f"gateway_c{high}"], load[f"{QUIET}_c{high}"]
    d[f"observability_rps_ratio_c{high}"] = _ratio(on.rps, off.rps)
    rounds = zip(results.rounds.get("gateway", []), results.rounds.get(QUIET, []), strict=True)
    for number, (a, b) in enumerate(rounds, 1):
        d[f"observability_rps_ratio_c{high}_round{number}"] = _ratio(a.rps, b.rps)
    ratio = 100 * d[f"observability_rps_ratio_c{high}"]
    floor = 100 * BAR["min_observability_rps_ratio_32"]
    errors = sum(v.error_total for k, v in load.items() if k.rsplit("_", 1)[0] == QUIET)
    return [
        Check(f"RPS at {high} connections >= {floor:.0f}% of both off",
              ratio, floor, ratio >= floor, "%", "observability"),
        Check("no failed requests with both off", errors, 0, errors == 0, "errors",
              "observability"),
    ]  # fmt: skip


RATELIMIT = "gateway_ratelimit"


def _ratelimit_checks(results: Results, high: int) -> list[Check]:
    """The gateway with a global request-rate policy on Redis vs the same gateway without.

    Not measured (no Redis server answered): one failing line saying so.
    """
    load, d = results.load, results.derived
    if f"{RATELIMIT}_c{high}" not in load:
        return [Check("not measured: no Redis server answered (REDIS_URL)", 0, 1, False, "errors",
                      "ratelimit")]  # fmt: skip
    plain, limited = load[f"gateway_c{high}"], load[f"{RATELIMIT}_c{high}"]
    d[f"ratelimit_rps_ratio_c{high}"] = _ratio(limited.rps, plain.rps)
    d["ratelimit_added_p50_ms_c1"] = (
        load[f"{RATELIMIT}_c1"].latency_ms["p50"] - load["gateway_c1"].latency_ms["p50"]
    )
    rounds = zip(results.rounds.get("gateway", []), results.rounds.get(RATELIMIT, []), strict=True)
    for number, (a, b) in enumerate(rounds, 1):
        d[f"ratelimit_rps_ratio_c{high}_round{number}"] = _ratio(b.rps, a.rps)
    ratio = 100 * d[f"ratelimit_rps_ratio_c{high}"]
    floor = 100 * BAR["min_ratelimit_rps_ratio_32"]
    added, ceiling = d["ratelimit_added_p50_ms_c1"], BAR["max_ratelimit_added_p50_ms_1"]
    errors = gateway_errors(results, RATELIMIT)
    return [
        Check(f"RPS at {high} connections >= {floor:.0f}% of no policy",
              ratio, floor, ratio >= floor, "%", "ratelimit"),
        Check(f"added p50 latency at 1 connection <= {ceiling} ms",
              added, ceiling, added <= ceiling, "ms", "ratelimit"),
        Check("no failed requests with the policy", errors, 0, errors == 0, "errors",
              "ratelimit"),
    ]  # fmt: skip


def _logging_checks(results: Results, high: int) -> list[Check]:
    ratio = 100 * results.derived[f"logging_rps_ratio_c{high}"]
    floor = 100 * BAR["min_logging_rps_ratio_32"]
    account = results.request_log
    if account is None:
        lost, written, sent = math.nan, math.nan, math.nan
    else:
        lost = account.count("lost")
        written, sent = account.count("written"), account.tally.sent
    errors = gateway_errors(results, "gateway_logging")
    return [
        Check(
            f"RPS at {high} connections >= {floor:.0f}% of no-logging",
            ratio, floor, ratio >= floor, "%", "logging",
        ),
        Check(
            "records lost == 0",
            lost, 0, lost == 0, "records", "logging",
        ),
        Check(
            "records written == requests sent",
            written, sent, account is not None and account.matches, "records", "logging",
        ),
        Check(
            "no failed requests through the gateway",
            errors, 0, errors == 0, "errors", "logging",
        ),
    ]  # fmt: skip


def _reference_checks(results: Results, high: int) -> list[Check]:
    """Issue 10's bar against the minimal forwarder: informational, outside the verdict.

    Both gateways are held to the product's target; the logging gateway also to the floor.
    """
    d, checks = results.derived, []
    for g in GATEWAYS:
        bars = [("target", BAR["target_min_forwarder_rps_fraction_32"],
                 BAR["target_max_forwarder_added_p50_multiple_1"])]  # fmt: skip
        if g == "gateway_logging":
            bars.append(("floor", BAR["floor_min_forwarder_rps_fraction_32"],
                         BAR["floor_max_forwarder_added_p50_multiple_1"]))  # fmt: skip
        name = TARGETS[g]
        fraction = 100 * d[f"{g}_rps_fraction_of_forwarder_c{high}"]
        multiple = d[f"{g}_added_p50_multiple_of_forwarder_c1"]
        for kind, min_fraction, max_multiple in bars:
            checks += [
                Check(
                    f"{name}: RPS {high}c >= {100 * min_fraction:.0f}% of forwarder's ({kind})",
                    fraction, 100 * min_fraction, fraction >= 100 * min_fraction, "%",
                    "reference", informational=True,
                ),
                Check(
                    f"{name}: added p50 1c <= {max_multiple:.2f}x forwarder's ({kind})",
                    multiple, max_multiple, multiple <= max_multiple, "x",
                    "reference", informational=True,
                ),
            ]  # fmt: skip
    errors = gateway_errors(results, "forwarder")
    ok = errors == 0
    name = "no failed requests through the forwarder"
    checks.append(Check(name, errors, 0, ok, "errors", "reference", informational=True))
    return checks
