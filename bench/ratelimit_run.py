"""The runner of ``python -m bench.ratelimit`` (:data:`bench.ratelimit.MAIN_DOC`).

Kept apart from :mod:`bench.ratelimit`, which the full bench imports for its policy: this one
imports the A/B machinery (:mod:`bench.ab`), which imports the full bench's phases.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from bench import payloads
from bench import ratelimit as rl
from bench.ab import Target, measure, ratios, spread
from bench.gateway_proc import Gateway
from bench.load import LoadResult, RequestSpec, load_generator
from bench.phases import probe, progress
from bench.procs import BenchError
from bench.upstream import Upstream


def _row(label: str, name: str, run: LoadResult) -> str:
    return (
        f"  {label:<6} {name:<8} {run.connections:>5} {run.rps:>9.0f} "
        f"{run.latency_ms.get('p50', 0):>7.3f} {run.server_cpu_us_per_request:>11.0f}"
    )


def report(wide: list[Target], narrow: list[Target], args: argparse.Namespace) -> str:
    """Per round and pooled runs, the throughput ratio and the added p50 at one connection."""
    lines = [
        f"rate-limit line: {args.rounds} rounds of {args.duration:g} s at {args.connections} "
        f"connections (1 connection: {args.c1_duration:g} s), tree {args.tree}",
        f"  {'round':<6} {'target':<8} {'conns':>5} {'req/s':>9} {'p50 ms':>7} {'CPU us/req':>11}",
    ]
    for number in range(args.rounds):
        for target in [*wide, *narrow]:
            lines.append(_row(str(number + 1), target.name, target.runs[number]))
    for target in wide:
        lines.append(_row("pooled", target.name, target.pooled()))
    plain, limited = wide
    rps, rps_rounds = ratios(limited, plain, "rps")
    cpu_plain = plain.pooled().server_cpu_us_per_request
    cpu_limited = limited.pooled().server_cpu_us_per_request
    verdict = "PASS" if rps >= 0.90 else "FAIL"
    lines.append(
        f"  limited/plain req/s: {100 * rps:.1f}% pooled ({spread(rps_rounds)}) "
        f"[bar >= 90%: {verdict}]"
    )
    lines.append(
        f"  CPU us/req: {cpu_limited:.0f} vs {cpu_plain:.0f} pooled "
        f"(+{cpu_limited - cpu_plain:.1f} us per request with the policy)"
    )
    if narrow:
        added = [
            lim.latency_ms["p50"] - pl.latency_ms["p50"]
            for pl, lim in zip(narrow[0].runs, narrow[1].runs, strict=True)
        ]
        mid = statistics.median(added)
        verdict = "PASS" if mid <= 0.3 else "FAIL"
        lines.append(
            f"  added p50 at 1 connection: {mid:+.3f} ms median of rounds "
            f"({', '.join(f'{a:+.3f}' for a in added)}) [bar <= 0.3 ms: {verdict}]"
        )
    errors = sum(t.pooled().error_total for t in [*wide, *narrow])
    if errors:
        lines.append(f"  WARNING: {errors} failed requests")
    return "\n".join(lines)


def run(args: argparse.Namespace, workdir: Path) -> str:
    url = rl.redis_url()
    if url is None:
        raise BenchError("no Redis server answers (REDIS_URL): the rate-limit line needs one")
    upstream = Upstream(workdir)
    gateway: Gateway | None = None
    try:
        progress("starting the upstream ...")
        upstream.start()
        tool = load_generator(workdir)
        gateway = Gateway(
            workdir, upstream.base_url, name="gateway", logging=False, redis_url=url,
            extra_env={"PYTHONPATH": str(args.tree)},
        )  # fmt: skip
        gateway.create_key()
        progress(f"starting the gateway ({args.tree}) ...")
        gateway.start()
        body = payloads.request_body(payloads.CHAT_MODEL)
        spec = RequestSpec(payloads.CHAT_PATH, body, {"Authorization": f"Bearer {gateway.key}"})
        wide = [Target("plain", gateway, spec), Target("limited", gateway, rl.limited(spec))]
        narrow = [Target("plain", gateway, spec), Target("limited", gateway, rl.limited(spec))]
        probe(gateway.port, spec, b'"chat.completion"', "plain")
        # The limited requests must really go through the limiter: its headers in the answer.
        probe(gateway.port, rl.limited(spec), b'"chat.completion"', "limited",
              {"helicone-ratelimit-policy": rl.POLICY})  # fmt: skip
        c1 = argparse.Namespace(**{**vars(args), "connections": 1, "duration": args.c1_duration})
        for number in range(1, args.rounds + 1):
            forward = number % 2 == 1
            for target in wide if forward else wide[::-1]:
                progress(f"round {number}/{args.rounds}: {target.name} ...")
                measure(tool, target, args, f"{target.name}_c{args.connections}")
            if args.c1_duration > 0:
                for target in narrow if forward else narrow[::-1]:
                    measure(tool, target, c1, f"{target.name}_c1")
            upstream.check_alive()
        return report(wide, narrow if args.c1_duration > 0 else [], args)
    finally:
        if gateway is not None:
            gateway.stop()
        upstream.stop()
