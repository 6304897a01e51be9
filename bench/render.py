"""The human-readable report of one bench run (stdout); the same numbers go to the JSON."""

from __future__ import annotations

import math

from bench import requestlog
from bench.load import LoadResult
from bench.report import GATEWAYS, NATIVE, PAIRED, PROXIES, ROUTING, TARGETS, Check, Results


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def _signed_ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:+.3f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = (c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True))
        return "  ".join([first, *rest]).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


def _cpu(r: LoadResult) -> tuple[str, str]:
    pct, per = r.server_cpu_pct, r.server_cpu_us_per_request
    return ("-" if math.isnan(pct) else f"{pct:.0f}%", "-" if math.isnan(per) else f"{per:.0f}")


def _header(results: Results) -> list[str]:
    m = results.meta
    soak = f"; soak {m['soak_s']:g} s" if m["soak_s"] else ""
    return [
        "=" * 78,
        "LLM gateway benchmark",
        f"  when:      {m['started_at']}   machine: {m['cpus']} CPUs, Python {m['python']}",
        f"  upstream:  {m['upstream']}",
        f"  load:      {m['load_tool']}; {m['duration_s']:g} s per run after a "
        f"{m['warmup_s']:g} s warm-up{soak}",
        f"  gateway:   {m['gateway_cmd']}",
        "             two of them, each with a fresh data dir, loaded one at a time: no logging",
        "             (GATEWAY_LOGGING_ENABLED=false) and logging (the default)",
        f"  reference: {m['forwarder_cmd']}",
        f"  translated: model {m['translated_model']} (the upstream answers as Anthropic)",
        "             via the no-logging gateway; its stream via a third gateway (no logging),",
        "             in turn with the OpenAI stream after each round",
        f"  issue 13:  models {m.get('gemini_model')} and {m.get('bedrock_model')} (the "
        "upstream answers as",
        "             Gemini, and as Bedrock Converse with a binary event stream; SigV4 with a "
        "made-up key)",
        "             via the no-logging gateway, half-length runs; their streams in the turns "
        "on the third",
        f"  routing:   model {m.get('routed_model')} (org BYOK key + managed key) vs "
        f"{m.get('pinned_model')} (client key)",
        "             via a fourth gateway (no logging), half-length runs; after each round,",
        f"             failover turns: {m.get('failover_model')}",
        f"  at {m['connections']} conns: {m['rounds']} interleaved rounds of the "
        f"{m.get('round_targets', 'targets')} targets (A B C ..., ... C B A, ...), totals below",
        "=" * 78,
        "",
    ]


def _load(results: Results, high: int) -> list[str]:
    m, load = results.meta, results.load
    rows = []
    for conns in (1, high):
        for target, name in TARGETS.items():
            r = load[f"{target}_c{conns}"]
            lat = r.latency_ms
            rows.append([
                name, str(conns), f"{r.rps:,.0f}", _ms(lat["p50"]), _ms(lat["p90"]),
                _ms(lat["p99"]), _ms(lat.get("max", math.nan)), f"{r.requests:,}",
                str(r.error_total), *_cpu(r),
            ])  # fmt: skip
    header = ["target", "conns", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "requests"]
    out = [f"Non-streaming chat completions (POST {m['chat_path']}, model {m['chat_model']})"]
    out += _table([*header, "errors", "srv CPU", "CPU us/req"], rows)
    out.append("  (srv CPU: the server's CPU time over the run, % of one core; us/req per request)")
    soak = load.get("gateway_logging_soak")
    if soak is not None:
        cpu, per = _cpu(soak)
        out.append(
            f"Soak, gateway, logging, {soak.connections} conns, {soak.duration_s:g} s: "
            f"{soak.rps:,.0f} req/s  p50 {_ms(soak.latency_ms['p50'])} ms  "
            f"p99 {_ms(soak.latency_ms['p99'])} ms  ({soak.requests:,} requests, "
            f"{soak.error_total} errors, srv CPU {cpu}, {per} us/req)"
        )
    return out


def _versus(results: Results, high: int) -> list[str]:
    d = results.derived
    rows = [
        [
            TARGETS[g], f"{d[f'{g}_rps_ratio_c1']:.3f}", f"{d[f'{g}_rps_ratio_c{high}']:.3f}",
            _signed_ms(d[f"{g}_added_p50_ms_c1"]), _signed_ms(d[f"{g}_added_p99_ms_c1"]),
            _signed_ms(d[f"{g}_added_p50_ms_c{high}"]), _signed_ms(d[f"{g}_added_p99_ms_c{high}"]),
        ]
        for g in PROXIES
    ]  # fmt: skip
    header = ["vs direct upstream", "RPS ratio 1c", f"RPS ratio {high}c", "added p50 1c"]
    header += ["added p99 1c", f"added p50 {high}c", f"added p99 {high}c"]
    return [
        "Gateways and the minimal forwarder vs direct (added latency in ms)",
        *_table(header, rows),
        f"  RPS with logging / without: 1 conn {d['logging_rps_ratio_c1']:.3f}   "
        f"{high} conns {d[f'logging_rps_ratio_c{high}']:.3f} (all rounds)",
        *_rounds(results, high),
    ]


def _rounds(results: Results, high: int) -> list[str]:
    """One line per interleaved round: both gateways' RPS and their ratio, and CPU per request.

    CPU is split into the gateway's own process and its children (the log writer): a round in
    which both gateway processes cost more per request caught a slow phase of the machine.
    """
    plain, logged = results.rounds.get("gateway", []), results.rounds.get("gateway_logging", [])
    lines = [
        f"    round {n}: no logging {a.rps:>8,.0f} req/s   logging {b.rps:>8,.0f} req/s   "
        f"ratio {results.derived[f'logging_rps_ratio_c{high}_round{n}']:.3f}   "
        f"CPU us/req: gateway {_us(a.server_main_cpu_us_per_request)} vs "
        f"{_us(b.server_main_cpu_us_per_request)}, "
        f"log writer {_us(b.server_children_cpu_us_per_request)}"
        for n, (a, b) in enumerate(zip(plain, logged, strict=False), 1)
    ]
    if lines:
        lines.append(
            "    (CPU us/req: the gateway process without / with logging, and the logging "
            "gateway's child processes)"
        )
    return lines


def _us(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.0f}"


def _ttfb(results: Results) -> list[str]:
    m, d, ttfb = results.meta, results.derived, results.ttfb
    rows = []
    for target, name in TARGETS.items():
        t = ttfb[target]
        rows.append([
            name, _ms(t.ttfb_ms["p50"]), _ms(t.ttfb_ms["p90"]), _ms(t.ttfb_ms["p99"]),
            _ms(t.total_ms["p50"]), _ms(t.total_ms["p99"]), str(t.errors),
        ])  # fmt: skip
        if target == "translated" and PAIRED in ttfb:
            paired = [("its OpenAI pair", PAIRED)]
            paired += [(f"{name}, translated", name) for name in NATIVE if name in ttfb]
            for label, key in paired:
                t = ttfb[key]
                rows.append([
                    label, _ms(t.ttfb_ms["p50"]), _ms(t.ttfb_ms["p90"]),
                    _ms(t.ttfb_ms["p99"]), _ms(t.total_ms["p50"]), _ms(t.total_ms["p99"]),
                    str(t.errors),
                ])  # fmt: skip
    for g in PROXIES:
        p50, p99 = d[f"{g}_added_ttfb_p50_ms"], d[f"{g}_added_ttfb_p99_ms"]
        rows.append([f"added, {TARGETS[g]}", _ms(p50), "", _ms(p99), "", "", ""])
    p50 = d.get("translated_added_ttfb_p50_over_openai_ms", math.nan)
    p99 = d.get("translated_added_ttfb_p99_over_openai_ms", math.nan)
    rows.append(["translated over its pair", _ms(p50), "", _ms(p99), "", "", ""])
    for name in NATIVE:
        p50 = d.get(f"{name}_added_ttfb_p50_over_openai_ms", math.nan)
        p99 = d.get(f"{name}_added_ttfb_p99_over_openai_ms", math.nan)
        rows.append([f"{name} over the pair", _ms(p50), "", _ms(p99), "", "", ""])
    rounds = len(results.ttfb_rounds.get("translated", []))
    return [
        f"Streaming time to first body byte, ms (model {m['stream_model']}; translated: "
        f"{m['translated_model']})",
        f"  {m['ttfb_requests']} sequential requests per target on one keep-alive connection; "
        "the translated streams",
        f"  (Anthropic, Gemini, Bedrock) and their OpenAI pair on the third gateway: "
        f"{m['ttfb_requests']} each after each of the {rounds} rounds, pooled",
        *_table(
            ["target", "TTFB p50", "TTFB p90", "TTFB p99", "full p50", "full p99", "errors"], rows
        ),
    ]


def _memory(results: Results) -> list[str]:
    out = ["Memory (VmRSS, process and children), MiB"]
    names = {**TARGETS, PAIRED: "gateway, stream pair", "gateway_routing": "gateway, routing"}
    for g in (*GATEWAYS, "forwarder", PAIRED, "gateway_routing"):
        if g not in results.rss_kib:
            continue
        rss = {k: v / 1024 for k, v in results.rss_kib[g].items()}
        line = (
            f"  {names[g]:<20} before load {rss['before']:6.1f}   after all load "
            f"{rss['after']:6.1f}   growth {rss['after'] - rss['before']:+6.1f}"
        )
        if "after_soak" in rss:
            line += f"   after soak {rss['after_soak']:.1f}"
        out.append(line)
    return out


def _check_line(c: Check) -> str:
    if c.unit in ("req/s", "errors"):
        value = f"{c.measured:,.0f} {c.unit}"
    elif c.unit == "records":
        value = "-" if math.isnan(c.measured) else f"{c.measured:,.0f} {c.unit}"
        if c.name.endswith("requests sent") and not math.isnan(c.limit):
            value += f" (requests sent {c.limit:,.0f})"
    elif c.unit == "%":
        value = "-" if math.isnan(c.measured) else f"{c.measured:.1f}%"
    elif c.unit == "x":
        value = "-" if math.isnan(c.measured) else f"{c.measured:.2f}x"
    else:
        value = f"{c.measured:.3f} {c.unit}"
    width = {"reference": 64, "translation": 62, "routing": 62, "native": 70}.get(c.group, 46)
    return f"  {'PASS' if c.passed else 'FAIL'}  {c.name:<{width}} measured {value}"


def _bar(results: Results) -> list[str]:
    out: list[str] = []
    for group, title in (
        ("foundation", "Performance bar: foundation (gateway, no logging)"),
        ("logging", "Performance bar: request logging (gateway, logging)"),
        ("translation", "Performance bar: translation (model/anthropic vs the OpenAI path)"),
        ("native", "Performance bar: Gemini and Bedrock (issue 13; translated vs the OpenAI "
                   "path)"),
        ("ratelimit", "Performance bar: rate limits (gateway, no logging, global request "
                      "policy on Redis vs none)"),
        ("routing", "Performance bar: routing and failover (issue 11)"),
        ("observability", "Performance bar: /metrics and the request line on vs both off "
                          "(gateway, no logging; issue 14)"),
    ):
        out += ["", title] if out else [title]
        out += [_check_line(c) for c in results.checks if c.group == group]
        if group == "ratelimit":
            out += _ratelimit_figures(results)
        elif group == "observability":
            out += _observability_figures(results)
    return out


def _observability_figures(results: Results) -> list[str]:
    """The observability line's figures: pooled RPS, CPU per request, the ratio per round."""
    high = results.meta["connections"]
    on, off = results.load.get(f"gateway_c{high}"), results.load.get(f"gateway_quiet_c{high}")
    if on is None or off is None:
        return []
    d = results.derived
    rounds = "  ".join(
        f"{d[f'observability_rps_ratio_c{high}_round{n}']:.3f}"
        for n in range(1, len(results.rounds.get("gateway_quiet", [])) + 1)
    )
    return [
        f"    {high} conns, all rounds: both on {on.rps:,.0f} req/s "
        f"({_us(on.server_cpu_us_per_request)} CPU us/req), both off {off.rps:,.0f} req/s "
        f"({_us(off.server_cpu_us_per_request)} CPU us/req); per round: {rounds}",
    ]


def _translation(results: Results, high: int) -> list[str]:
    """The translated path next to the OpenAI path: throughput, added latency, streamed TTFB.

    Both non-streamed paths run on the no-logging gateway in the same rounds; both streams on
    the third gateway, in turn after each round. The per-round lines show how far a single
    round strays from the pooled figure the bar judges.
    """
    d, load, m = results.derived, results.load, results.meta
    if "translated_c1" not in load:
        return []
    openai, translated = load[f"gateway_c{high}"], load[f"translated_c{high}"]
    out = [
        f"Translated path (model {m['translated_model']}: the gateway sends Anthropic Messages "
        "and translates the answer back)",
        f"  RPS at {high} conns (all rounds): OpenAI path {openai.rps:,.0f}, translated "
        f"{translated.rps:,.0f} = {_pct(d[f'translated_rps_fraction_of_openai_c{high}'])}",
        f"  added at 1 conn over direct, p50: OpenAI path "
        f"{_signed_ms(d['gateway_added_p50_ms_c1'])} ms, translated "
        f"{_signed_ms(d['translated_added_p50_ms_c1'])} ms "
        f"(translation {_signed_ms(d['translated_added_p50_over_openai_ms_c1'])} ms; p99 "
        f"{_signed_ms(d['translated_added_p99_over_openai_ms_c1'])} ms)",
        f"  streamed TTFB added over the OpenAI path (pooled): p50 "
        f"{_signed_ms(d['translated_added_ttfb_p50_over_openai_ms'])} ms, p99 "
        f"{_signed_ms(d['translated_added_ttfb_p99_over_openai_ms'])} ms",
    ]
    pairs = results.rounds.get("gateway", []), results.rounds.get("translated", [])
    for n, (o, t) in enumerate(zip(*pairs, strict=False), 1):
        fraction = d.get(f"translated_rps_fraction_of_openai_c{high}_round{n}", math.nan)
        ttfb = d.get(f"translated_added_ttfb_p50_over_openai_ms_round{n}", math.nan)
        out.append(
            f"    round {n}: OpenAI {o.rps:>8,.0f} req/s   translated {t.rps:>8,.0f} req/s   "
            f"{_pct(fraction):>6}   CPU us/req {_us(o.server_main_cpu_us_per_request)} vs "
            f"{_us(t.server_main_cpu_us_per_request)}   TTFB p50 added {_signed_ms(ttfb)} ms"
        )
    return out


def _native(results: Results, high: int) -> list[str]:
    """Issue 13's translated paths next to the OpenAI path: pooled throughput and streamed
    TTFB, and per round (with the gateway's CPU us per request for each path)."""
    d, load, m = results.derived, results.load, results.meta
    openai = load.get(f"gateway_c{high}")
    runs = {name: load.get(f"{name}_c{high}") for name in NATIVE}
    if openai is None or not any(runs.values()):
        return []
    pooled = ", ".join(
        f"{name} {run.rps:,.0f} = {_pct(d[f'{name}_rps_fraction_of_openai_c{high}'])}"
        for name, run in runs.items()
        if run is not None
    )
    ttfb = ", ".join(
        f"{name} p50 {_signed_ms(d[f'{name}_added_ttfb_p50_over_openai_ms'])} ms, p99 "
        f"{_signed_ms(d[f'{name}_added_ttfb_p99_over_openai_ms'])} ms"
        for name in NATIVE
    )
    out = [
        f"Gemini and Bedrock (issue 13; models {m.get('gemini_model')}, "
        f"{m.get('bedrock_model')}: the gateway translates to generateContent / Converse)",
        f"  RPS at {high} conns (all rounds, half-length runs): OpenAI path {openai.rps:,.0f}, "
        f"{pooled}",
        f"  streamed TTFB added over the OpenAI path (pooled): {ttfb}",
    ]
    openai_rounds = results.rounds.get("gateway", [])
    for n, o in enumerate(openai_rounds, 1):
        cells, cpu, added = [], [_us(o.server_main_cpu_us_per_request)], []
        for name in NATIVE:
            rounds = results.rounds.get(name, [])
            if n > len(rounds):
                continue
            r = rounds[n - 1]
            fraction = d.get(f"{name}_rps_fraction_of_openai_c{high}_round{n}", math.nan)
            cells.append(f"{name} {r.rps:>7,.0f} {_pct(fraction):>6}")
            cpu.append(_us(r.server_main_cpu_us_per_request))
            ttfb_added = d.get(f"{name}_added_ttfb_p50_over_openai_ms_round{n}", math.nan)
            added.append(f"{name} {_signed_ms(ttfb_added)}")
        out.append(
            f"    round {n}: OpenAI {o.rps:>7,.0f}   {'   '.join(cells)}   CPU us/req "
            f"{' vs '.join(cpu)}   TTFB p50 added ms {', '.join(added)}"
        )
    return out


def _ratelimit_figures(results: Results) -> list[str]:
    """The rate-limit line's figures: pooled RPS, CPU per request, the ratio per round."""
    high = results.meta["connections"]
    plain = results.load.get(f"gateway_c{high}")
    limited = results.load.get(f"gateway_ratelimit_c{high}")
    if plain is None or limited is None:
        return []
    d = results.derived
    rounds = "  ".join(
        f"{d[f'ratelimit_rps_ratio_c{high}_round{n}']:.3f}"
        for n in range(1, len(results.rounds.get("gateway_ratelimit", [])) + 1)
    )
    return [
        f"    {high} conns, all rounds: no policy {plain.rps:,.0f} req/s "
        f"({_us(plain.server_cpu_us_per_request)} CPU us/req), policy {limited.rps:,.0f} req/s "
        f"({_us(limited.server_cpu_us_per_request)} CPU us/req); ratio per round: {rounds}"
    ]


def _routing(results: Results, high: int) -> list[str]:
    """The routed model next to the pinned one (same gateway, same rounds) and failover.

    Failover: full-response p50/p99 of the chain, of the same request served directly, and of
    the failed attempt's own request to the failing location; added = chain - direct - failed.
    """
    d, load, m = results.derived, results.load, results.meta
    routed, pinned = load.get(f"routed_c{high}"), load.get(f"pinned_c{high}")
    if routed is None or pinned is None:
        return []
    out = [
        f"Routing (issue 11): {ROUTING['routed']} vs {ROUTING['pinned']}",
        f"  RPS at {high} conns (all rounds, half-length runs): pinned {pinned.rps:,.0f}, routed "
        f"{routed.rps:,.0f} = {_pct(d[f'routed_rps_fraction_of_pinned_c{high}'])}   "
        f"({routed.error_total + pinned.error_total} errors)",
    ]
    pairs = results.rounds.get("pinned", []), results.rounds.get("routed", [])
    for n, (p, r) in enumerate(zip(*pairs, strict=False), 1):
        fraction = d.get(f"routed_rps_fraction_of_pinned_c{high}_round{n}", math.nan)
        added = d.get(f"failover_added_p50_ms_round{n}", math.nan)
        out.append(
            f"    round {n}: pinned {p.rps:>8,.0f} req/s   routed {r.rps:>8,.0f} req/s   "
            f"{_pct(fraction):>6}   CPU us/req {_us(p.server_main_cpu_us_per_request)} vs "
            f"{_us(r.server_main_cpu_us_per_request)}   failover added p50 {_signed_ms(added)} ms"
        )
    failover = results.failover
    if failover is not None:
        names = {
            "failover": f"chain {m.get('failover_model')}",
            "direct": f"direct {m.get('pinned_model')}",
            "failed": "failed attempt alone (upstream 503)",
        }
        out.append(
            f"  failover, 1 connection, full response ms ({failover.requests:,} turns of the "
            f"three, pooled; {failover.errors} errors):"
        )
        for kind, name in names.items():
            ms = failover.ms[kind]
            out.append(
                f"    {name:<58} p50 {_ms(ms['p50'])}  p90 {_ms(ms['p90'])}  p99 {_ms(ms['p99'])}"
            )
        out.append(
            f"    added beyond the failed attempt (chain - direct - failed): p50 "
            f"{_signed_ms(d['failover_added_p50_ms'])} ms, p99 "
            f"{_signed_ms(d['failover_added_p99_ms'])} ms"
        )
        out += [f"    error: {e[:150]}" for e in failover.error_samples]
    return out


def _reference(results: Results, high: int) -> list[str]:
    """Issue 10's bar: each gateway against the minimal forwarder, measured in the same run.

    The forwarder (``bench.forwarder``) parses, forwards and relays on the gateway's server and
    upstream client and does nothing else: the speed limit of Python on this machine.
    """
    d, load = results.derived, results.load
    fwd = load[f"forwarder_c{high}"]
    out = [
        "Reference (minimal forwarder; informational, not part of the overall verdict)",
        f"  forwarder: {fwd.rps:,.0f} req/s at {high} conns (all rounds); added over direct at "
        f"1 conn p50 {_signed_ms(d['forwarder_added_p50_ms_c1'])} ms, streamed TTFB p50 "
        f"{_signed_ms(d['forwarder_added_ttfb_p50_ms'])} ms",
    ]
    if results.paired:
        turns = results.paired["forwarder"].turns
        out.append(
            f"  paired at 1 conn ({turns} turns, one request per target per turn): added p50 "
            + ", ".join(
                f"{TARGETS.get(r.name, r.name)} {_signed_ms(r.added_p50_ms)} ms"
                for r in results.paired.values() if r.name != "direct"
            )
        )  # fmt: skip
    for g in GATEWAYS:
        wrk = _times(d[f"{g}_added_p50_multiple_of_forwarder_wrk_c1"])
        how = f" (paired; separate wrk runs {wrk})" if results.paired else ""
        out.append(
            f"  {TARGETS[g] + ':':<20} RPS {high}c "
            f"{_pct(d[f'{g}_rps_fraction_of_forwarder_c{high}'])} of the forwarder's; added "
            f"p50 1c {_times(d[f'{g}_added_p50_multiple_of_forwarder_c1'])}{how}, added TTFB "
            f"p50 {_times(d[f'{g}_added_ttfb_p50_multiple_of_forwarder'])} the forwarder's"
        )
    for n, f in enumerate(results.rounds.get("forwarder", []), 1):
        plain = d.get(f"gateway_rps_fraction_of_forwarder_c{high}_round{n}", math.nan)
        logged = d.get(f"gateway_logging_rps_fraction_of_forwarder_c{high}_round{n}", math.nan)
        out.append(
            f"    round {n}: forwarder {f.rps:>8,.0f} req/s   no logging {_pct(plain)}   "
            f"logging {_pct(logged)}   "
            f"forwarder CPU us/req {_us(f.server_main_cpu_us_per_request)}"
        )
    out += [_check_line(c) for c in results.checks if c.group == "reference"]
    return out


def _pct(fraction: float) -> str:
    return "-" if math.isnan(fraction) else f"{100 * fraction:.1f}%"


def _times(multiple: float) -> str:
    return "-" if math.isnan(multiple) else f"{multiple:.2f}x"


def render(results: Results, high: int) -> str:
    """The whole report."""
    m = results.meta
    out = _header(results)
    for section in (
        _load(results, high),
        _versus(results, high),
        _translation(results, high),
        _native(results, high),
        _routing(results, high),
        _ttfb(results),
        _memory(results),
        requestlog.render(results.request_log),
        _bar(results),
        _reference(results, high),
    ):
        if section:
            out += [*section, ""]
    problems: dict[str, list[str]] = m.get("gateway_log_problems") or {}
    total = sum(len(v) for v in problems.values())
    out.append(f"Gateway and forwarder output: {total} warning/error line(s){':' if total else ''}")
    for g, lines in problems.items():
        out += [f"  [{TARGETS.get(g, g)}] {line[:150]}" for line in lines]
    verdict = "PASS" if results.passed else "FAIL"
    out += ["", f"Overall: {verdict}", f"Results saved to {m['json_path']}"]
    return "\n".join(out)
