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
import random
import statistics
import sys
import time
from pathlib import Path

from bench import payloads
from bench.ab import MODELS, check_tree, settle
from bench.forwarder_proc import ForwarderProcess
from bench.gateway_proc import Gateway
from bench.load import RequestSpec, percentile
from bench.phases import probe, progress
from bench.procs import BenchError, ServedProcess, in_workdir
from bench.ttfb import RawHttpClient, raw_request
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


class Target:
    """One server, its keep-alive connection and its request, and the times measured."""

    def __init__(self, name: str, port: int, spec: RequestSpec) -> None:
        self.name = name
        self.port = port
        self.client = RawHttpClient(port)
        self.raw = raw_request(port, spec)
        self.spec = spec
        self.seconds: list[float] = []

    def ask(self) -> float:
        exchange = self.client.request(self.raw)
        if exchange.status != 200:
            raise BenchError(f"{self.name}: answered {exchange.status}: {exchange.body[:300]!r}")
        return exchange.total_s


def measure(targets: list[Target], turns: int, warmup: int) -> None:
    """``warmup`` then ``turns`` turns, one request to each target per turn, in a random
    order each turn (seeded: the same order for every run), so that no target follows
    another more often (the one before may have warmed the caches that code shares: the
    interpreter, uvloop, aiohttp); the measured times go to each target's ``seconds``."""
    order = list(targets)
    shuffle = random.Random(20261203).shuffle
    for turn in range(warmup + turns):
        shuffle(order)
        for target in order:
            elapsed = target.ask()
            if turn >= warmup:
                target.seconds.append(elapsed)


def report(targets: list[Target], args: argparse.Namespace) -> str:
    direct = targets[0]
    lines = [
        f"paired at 1 connection, logging {args.logging}, {args.turns} turns "
        f"(after {args.warmup}), in a random order each turn",
        f"  {'target':<10} {'p50 ms':>7} {'p90 ms':>7} {'added p50 ms':>13}",
    ]
    added: dict[str, float] = {}
    for target in targets:
        ms = sorted(1000 * s for s in target.seconds)
        extra = [1000 * (t - d) for t, d in zip(target.seconds, direct.seconds, strict=True)]
        added[target.name] = statistics.median(extra)
        lines.append(
            f"  {target.name:<10} {percentile(ms, 50):>7.3f} {percentile(ms, 90):>7.3f} "
            f"{added[target.name] if target is not direct else 0.0:>13.3f}"
        )
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
            target.client.close()
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
    done = in_workdir("paired", False, lambda workdir: run(args, workdir))
    if done is None:
        return 1
    print(done[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
