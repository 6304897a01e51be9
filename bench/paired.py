"""``python -m bench.paired``: added latency at one connection, request by request (issue 10).

On this shared two-core machine, runs of a few seconds at one connection move with the
machine's phase (``bench.ab --connections 1`` read p50s of 0.14-0.59 ms for one target within
three minutes), more than the differences looked for. Here every target is asked in turn,
one request each, in a random order each turn, over one keep-alive connection per target (a
Python client, the bench's raw HTTP/1.1 client): the direct upstream (nginx), the reference
forwarder, and the gateways of ``--base`` and ``--new`` (logging ``--logging``), for
``--turns`` turns after ``--warmup`` turns. Neighbouring requests see the same machine, so
each turn's difference *target - direct* is that target's added latency with the phase (and
the client's own cost) taken out. Printed: each target's p50 and p90 of the full response
time, the p50 of its per-turn added latency, and each gateway's added p50 as a multiple of
the forwarder's (issue 10's bar: <= 1.3x, target <= 1.15x), plus the p50 of the per-turn
difference *new - base*. ``--no-base``: only the ``--new`` tree's gateway.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from bench import payloads
from bench.ab import MODELS, check_tree, settle
from bench.forwarder_proc import ForwarderProcess
from bench.gateway_proc import Gateway
from bench.load import RequestSpec
from bench.pairing import Target, measure, summarise
from bench.phases import probe, progress
from bench.procs import ServedProcess, print_report
from bench.upstream import Upstream


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.paired", description=__doc__)
    parser.add_argument("--base", type=Path, default=Path("/work/main"), help="tree A")
    parser.add_argument("--new", type=Path, default=Path.cwd(), help="tree B (default: cwd)")
    parser.add_argument("--no-base", action="store_true", help="only the --new tree's gateway")
    parser.add_argument("--logging", choices=("on", "off"), default="off")
    parser.add_argument("--turns", type=int, default=3000, help="measured requests per target")
    parser.add_argument("--warmup", type=int, default=300, help="unmeasured turns first")
    args = parser.parse_args(argv)
    args.base, args.new = args.base.resolve(), args.new.resolve()
    return args


def report(targets: list[Target], args: argparse.Namespace) -> str:
    lines = [
        f"paired at 1 connection, logging {args.logging}, {args.turns} turns "
        f"(after {args.warmup}), in a random order each turn",
        f"  {'target':<10} {'p50 ms':>7} {'p90 ms':>7} {'added p50 ms':>13}",
    ]
    results = summarise(targets)
    added = {name: r.added_p50_ms for name, r in results.items()}
    for r in results.values():
        lines.append(f"  {r.name:<10} {r.p50_ms:>7.3f} {r.p90_ms:>7.3f} {r.added_p50_ms:>13.3f}")
    forwarder = added["forwarder"]
    for name in ("base", "new"):
        if name in added:
            lines.append(
                f"  {name} added p50 / forwarder's: {added[name] / forwarder:.2f}x "
                "(bar <= 1.3x, target <= 1.15x)"
            )
    by_name = {t.name: t for t in targets}
    if "base" in by_name:
        diff = [1000 * (n - b) for n, b in zip(by_name["new"].seconds, by_name["base"].seconds,
                                                  strict=True)]  # fmt: skip
        lines.append(f"  new - base, per turn: p50 {statistics.median(diff):+.3f} ms")
    return "\n".join(lines)


def run(args: argparse.Namespace, workdir: Path) -> str:
    upstream = Upstream(workdir)
    servers: list[ServedProcess] = []
    try:
        progress("starting the upstream ...")
        upstream.start()
        body = payloads.request_body(MODELS["openai"])
        targets = [Target("direct", upstream.port, RequestSpec(payloads.CHAT_PATH, body))]
        forwarder = ForwarderProcess(workdir, upstream.base_url)
        servers.append(forwarder)
        forwarder.start()
        targets.append(Target("forwarder", forwarder.port, RequestSpec(payloads.CHAT_PATH, body)))
        trees = [("new", args.new)] if args.no_base else [("base", args.base), ("new", args.new)]
        for name, tree in trees:
            gateway = Gateway(workdir, upstream.base_url, name=name,
                              logging=args.logging == "on",
                              extra_env={"PYTHONPATH": str(tree)})  # fmt: skip
            check_tree(gateway, tree)
            gateway.create_key()
            progress(f"starting the {name} gateway ({tree}) ...")
            servers.append(gateway)
            gateway.start()
            spec = RequestSpec(payloads.CHAT_PATH, body, {"Authorization": f"Bearer {gateway.key}"})
            targets.append(Target(name, gateway.port, spec))
        for target in targets:
            probe(target.port, target.spec, b'"chat.completion"', target.name)
        progress(f"{args.warmup} + {args.turns} turns ...")
        started = time.monotonic()
        measure(targets, args.turns, args.warmup)
        progress(f"done in {time.monotonic() - started:.0f} s")
        for target in targets:
            target.close()
        for server in servers:
            if isinstance(server, Gateway) and server.logging:
                settle(server)
        return report(targets, args)
    finally:
        for server in servers:
            server.stop()
        upstream.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return print_report("paired", False, lambda workdir: run(args, workdir))


if __name__ == "__main__":
    sys.exit(main())
