"""``python -m bench.ab``: the same gateway bench for two source trees, A (base) against B (new).

A change to the request path is worth keeping only if it lowers the gateway's CPU per request,
and on this shared 2-core machine one run of each tree, one after the other, mostly compares
the machine's drift (15% or more within a minute). So: one nginx upstream
(:mod:`bench.upstream`), two ``gateway serve`` processes with the same settings, each importing
its own tree (``PYTHONPATH=<tree>``: it comes before the venv's editable install, which is
checked before anything is measured), measured in interleaved rounds (:func:`round_order`; a warm-up
before each run), one target under load at a time. Reported per run and pooled over the
rounds: req/s, p50, and the CPU the gateway's process tree used per request (``/proc``, as the
main bench does), split into the serving process and its children (the log writer) when
logging is on. The verdict is the pooled ratio new / base with the spread of the per-round
ratios (each round's two runs share the machine's conditions).

``--policy`` runs both gateways with ``REDIS_URL`` and every request with the rate-limit line's
policy (:mod:`bench.ratelimit`): an A/B of what the limiter costs per request.

``--forwarder`` adds the bench's reference forwarder (:mod:`bench.forwarder`, from the tree
the bench runs from) as a third target, for the floor ratio of issue 10's bar.

``--models routed,pinned`` measures the routing line's two requests (:mod:`bench.routing`:
the organisation's BYOK key first, against the client's own key) on each gateway, and their
ratio per tree.

``--models openai,gemini,bedrock,anthropic`` loads each gateway with each of those requests
in turn (:data:`MODELS`: the main bench's OpenAI path and its three translated paths, answered
by the same nginx upstream), every (tree, model) pair a target of the interleaved rounds: the
per-provider CPU per request inside the running server, each translated path's extra over the
OpenAI path of the same gateway in the same rounds, and (with both trees) each provider's
new / base. ``--no-base`` measures the ``--new`` tree alone (providers against each other).

With ``--logging on`` the writer's backlog is waited out after every run (``/healthz``
counters), so it never runs during the other target's turn, and the children's CPU is counted
until it has settled: the per-request figure then includes what writing the record costs.
``--logging both`` starts each tree's gateway twice, logging off and on, every one a target of
the same rounds, and adds each tree's *logging on/off* line: what logging costs in throughput
(the main bench's logging line, at a tree's leisure: ``--no-base`` for one tree) and in CPU
per request, serving process and writer.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import payloads
from bench import ratelimit as rl
from bench.forwarder_proc import ForwarderProcess
from bench.gateway_proc import REPO, Gateway
from bench.load import LoadGenerator, LoadResult, RequestSpec, combine, load_generator
from bench.phases import NATIVE, probe, progress
from bench.procs import BenchError, ServedProcess, in_workdir
from bench.routing import routing_specs, store_byok_key
from bench.upstream import Upstream

PACKAGES = ("gateway", "logging_pipeline", "providers", "cache", "ratelimit")
"""The project's top-level packages: each must be imported from the tree under test."""
SETTLE_TIMEOUT_S = 30.0
MODELS = {
    "openai": payloads.CHAT_MODEL,
    "anthropic": payloads.TRANSLATED_MODEL,
    **NATIVE,
    "routed": payloads.ROUTED_MODEL,
    "pinned": payloads.PINNED_MODEL,
}
"""``--models`` names: the main bench's non-streamed requests, by the provider serving them;
``routed`` and ``pinned`` are the routing line's two requests (:mod:`bench.routing`)."""
ROUTING = ("routed", "pinned")
"""With either of these, each gateway's organisation holds the routing line's BYOK OpenAI key
(stored through the provider-keys API, as the main bench does): then ``openai``, the same
model string as ``routed``, is routed BYOK first too."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("--base", type=Path, default=Path("/work/main"), help="tree A")
    parser.add_argument("--new", type=Path, default=Path.cwd(), help="tree B (default: cwd)")
    parser.add_argument(
        "--logging", choices=("on", "off", "both"), default="off",
        help="both: each tree's gateway twice, logging off and on",
    )  # fmt: skip
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per run")
    parser.add_argument("--rounds", type=int, default=6, help="interleaved runs per target")
    parser.add_argument(
        "--forwarder", action="store_true", help="add the reference forwarder as a target"
    )
    parser.add_argument(
        "--policy", action="store_true",
        help="REDIS_URL set, every request with the rate-limit line's policy (bench.ratelimit)",
    )  # fmt: skip
    parser.add_argument(
        "--models",
        default="openai",
        help=f"comma-separated requests to load each gateway with, of {', '.join(MODELS)}",
    )
    parser.add_argument(
        "--no-base", action="store_true", help="measure the --new tree alone (with --models)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown or not args.models or len(set(args.models)) != len(args.models):
        parser.error(f"--models: a list of distinct names of {', '.join(MODELS)}")
    if args.forwarder and "openai" not in args.models:
        parser.error("--forwarder is compared with the openai model: add it to --models")
    args.base, args.new = args.base.resolve(), args.new.resolve()
    for tree in (args.base, args.new):
        if not (tree / "gateway" / "__init__.py").is_file():
            parser.error(f"{tree} is not a source tree of the gateway (no gateway/__init__.py)")
    return args


def imported_from(env: dict[str, str]) -> dict[str, str]:
    """Where an interpreter with ``env`` imports each of :data:`PACKAGES` from."""
    code = (
        "import importlib, json, sys\n"
        f"names = {list(PACKAGES)!r}\n"
        "print(json.dumps({n: importlib.import_module(n).__file__ for n in names}))\n"
    )
    # -P: no current directory first on sys.path, as for the ``gateway`` script (whose first
    # entry is its own bin directory), which runs in this tree (cwd=REPO) whatever is tested
    done = subprocess.run(
        [sys.executable, "-P", "-c", code],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise BenchError(f"cannot import the gateway with {env.get('PYTHONPATH')}: {done.stderr}")
    found: dict[str, str] = json.loads(done.stdout)
    return found


def check_tree(gateway: Gateway, tree: Path) -> None:
    """Fail unless the gateway's environment imports every package from ``tree``."""
    for name, path in imported_from(gateway.env).items():
        if not Path(path).resolve().is_relative_to(tree):
            raise BenchError(f"{gateway.name} would import {name} from {path}, not from {tree}")


@dataclass
class Target:
    """One measured server and its runs, in order."""

    name: str
    server: ServedProcess
    spec: RequestSpec
    runs: list[LoadResult] = field(default_factory=list)
    tree: str = ""
    """``base`` or ``new`` (empty for the forwarder)."""
    model: str = "openai"
    """The :data:`MODELS` name of its request."""
    logging: bool = False
    """Whether its gateway logs (both kinds exist with ``--logging both``)."""

    def pooled(self) -> LoadResult:
        return combine(self.name, self.runs)


def settle(gateway: ServedProcess) -> None:
    """With logging on, wait until the writer has done with every record it was handed."""
    if not isinstance(gateway, Gateway) or not gateway.logging:
        return
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    last = -1
    while time.monotonic() < deadline:
        counters = gateway.health().get("logging")
        if not isinstance(counters, dict):
            raise BenchError(f"{gateway.name}'s /healthz has no 'logging' counters")
        enqueued = int(counters.get("enqueued", 0))
        done = (
            int(counters.get("written", 0))
            - int(counters.get("replayed", 0))
            + int(counters.get("lost", 0))
        )
        if done >= enqueued == last:  # caught up, and no straggler arrived since last poll
            return
        last = enqueued
        time.sleep(0.2)
    raise BenchError(f"{gateway.name}'s log writer did not catch up within {SETTLE_TIMEOUT_S} s")


def measure(tool: LoadGenerator, target: Target, args: argparse.Namespace, label: str) -> None:
    """A warm-up, then one measured run with the server's CPU (children until settled)."""
    server = target.server
    tool.run(label, server.base_url, target.spec, args.connections, args.warmup)
    settle(server)
    total_before, main_before = server.cpu_seconds(), server.main_cpu_seconds()
    result = tool.run(label, server.base_url, target.spec, args.connections, args.duration)
    main = server.main_cpu_seconds() - main_before
    settle(server)
    children = server.cpu_seconds() - server.main_cpu_seconds() - (total_before - main_before)
    result.server_main_cpu_s = main
    result.server_cpu_s = main + children
    server.check_alive()
    target.runs.append(result)


def spread(values: list[float]) -> str:
    """Median and range of per-round ratios, as percentages."""
    if not values:
        return "-"
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"median {100 * mid:.1f}%, range {100 * low:.1f} to {100 * high:.1f}%"


def ratios(new: Target, base: Target, of: str) -> tuple[float, list[float]]:
    """Pooled ``new / base`` of req/s (``of="rps"``) or CPU µs per request (``"cpu"``), and
    the per-round ratios (round n of each)."""

    def value(run: LoadResult) -> float:
        return run.rps if of == "rps" else run.server_cpu_us_per_request

    pooled = value(new.pooled()) / value(base.pooled())
    return pooled, [value(n) / value(b) for n, b in zip(new.runs, base.runs, strict=True)]


def _pair_line(what: str, target: Target, reference: Target, *, cpu_spread: bool) -> str:
    """``target`` against ``reference`` of the same tree: pooled req/s ratio with its per-round
    spread, and the pooled CPU µs per request it costs more (with its spread if asked)."""
    rps, rps_rounds = ratios(target, reference, "rps")
    extra = (
        target.pooled().server_cpu_us_per_request - reference.pooled().server_cpu_us_per_request
    )
    line = f"  {what} req/s: {100 * rps:.1f}% pooled ({spread(rps_rounds)}); CPU us/req "
    if not cpu_spread:
        return f"{line}{extra:+.0f} pooled"
    _, cpu_rounds = ratios(target, reference, "cpu")
    return f"{line}{extra:+.0f} pooled ({spread(cpu_rounds)})"


def comparisons(targets: list[Target]) -> list[str]:
    """The verdict lines: new / base per model (both trees), each translated path against the
    OpenAI path of the same gateway (several models), each gateway against the forwarder."""
    gateways = [t for t in targets if t.tree]
    by_key = {(t.tree, t.model, t.logging): t for t in gateways}
    trees = list(dict.fromkeys(t.tree for t in gateways))
    models = list(dict.fromkeys(t.model for t in gateways))
    modes = list(dict.fromkeys(t.logging for t in gateways))

    def named(what: str, logging: bool) -> str:
        """``what``, with the logging mode when both are measured."""
        return what if len(modes) == 1 else f"{what} (logging {'on' if logging else 'off'})"

    lines = []
    if len(trees) == 2:
        for model, logging in ((m, on) for m in models for on in modes):
            base, new = by_key["base", model, logging], by_key["new", model, logging]
            rps, rps_rounds = ratios(new, base, "rps")
            cpu, cpu_rounds = ratios(new, base, "cpu")
            what = named("new/base" if len(models) == 1 else f"new/base {model}", logging)
            lines.append(f"  {what} req/s:      {100 * rps:.1f}% pooled ({spread(rps_rounds)})")
            lines.append(f"  {what} CPU us/req: {100 * cpu:.1f}% pooled ({spread(cpu_rounds)})")
    if len(modes) == 2:
        for tree, model in ((t, m) for t in trees for m in models):
            on, off = by_key[tree, model, True], by_key[tree, model, False]
            what = f"{tree} logging on/off" + ("" if len(models) == 1 else f" {model}")
            lines.append(_pair_line(what, on, off, cpu_spread=True))
    for logging in modes:
        if "openai" in models and len(models) > 1:
            for tree in trees:
                openai = by_key[tree, "openai", logging]
                for model in models:
                    if model == "openai":
                        continue
                    lines.append(_pair_line(named(f"{tree} {model}/openai", logging),
                                            by_key[tree, model, logging], openai,
                                            cpu_spread=True))  # fmt: skip
        if set(ROUTING) <= set(models):
            for tree in trees:
                routed, pinned = by_key[tree, "routed", logging], by_key[tree, "pinned", logging]
                lines.append(_pair_line(named(f"{tree} routed/pinned", logging), routed, pinned,
                                        cpu_spread=False))  # fmt: skip
    forwarders = [t for t in targets if not t.tree]
    if forwarders:
        for tree, logging in ((t, on) for t in trees for on in modes):
            gateway = by_key[tree, "openai", logging]
            frac, per_round = ratios(gateway, forwarders[0], "rps")
            lines.append(
                f"  {gateway.name}/forwarder req/s: {100 * frac:.1f}% pooled ({spread(per_round)})"
            )
    return lines


def report(targets: list[Target], args: argparse.Namespace) -> str:
    split = args.logging != "off"
    width = max(10, *(len(t.name) for t in targets))
    head = f"  {'round':<6} {'target':<{width}} {'req/s':>9} {'p50 ms':>7} {'CPU us/req':>11}"
    if split:
        head += f" {'process':>8} {'writer':>7}"
    lines = [
        f"A/B at {args.connections} connections, logging {args.logging}, "
        f"{'rate-limit policy on Redis, ' if args.policy else ''}"
        f"{args.rounds} rounds of {args.duration:g} s, models {', '.join(args.models)}",
        *(() if args.no_base else (f"  base: {args.base}",)),
        f"  new:  {args.new}",
        head,
    ]

    def row(label: str, name: str, run: LoadResult) -> str:
        text = (
            f"  {label:<6} {name:<{width}} {run.rps:>9.0f} {run.latency_ms.get('p50', 0):>7.2f} "
            f"{run.server_cpu_us_per_request:>11.0f}"
        )
        if split:
            text += (
                f" {run.server_main_cpu_us_per_request:>8.0f}"
                f" {run.server_children_cpu_us_per_request:>7.0f}"
            )
        return text

    for number in range(args.rounds):
        for target in targets:
            lines.append(row(str(number + 1), target.name, target.runs[number]))
    for target in targets:
        lines.append(row("pooled", target.name, target.pooled()))
    lines.extend(comparisons(targets))
    errors = sum(t.pooled().error_total for t in targets)
    if errors:
        lines.append(f"  WARNING: {errors} failed requests")
    return "\n".join(lines)


def gateway_targets(
    args: argparse.Namespace, workdir: Path, upstream: Upstream, servers: list[ServedProcess]
) -> list[Target]:
    """One gateway per tree (started, appended to ``servers``), and a target per (model, tree),
    a model's trees next to each other. A single model's targets are named by tree alone."""
    trees = [("new", args.new)] if args.no_base else [("base", args.base), ("new", args.new)]
    url = rl.redis_url() if args.policy else None
    if args.policy and url is None:
        raise BenchError("--policy: no Redis server answers (REDIS_URL)")
    modes = [False, True] if args.logging == "both" else [args.logging == "on"]
    gateways: dict[tuple[str, bool], Gateway] = {}
    for (name, tree), logging in ((t, on) for t in trees for on in modes):
        server = name if len(modes) == 1 else f"{name}-{'on' if logging else 'off'}"
        gateway = Gateway(
            workdir,
            upstream.base_url,
            name=server,
            logging=logging,
            redis_url=url,
            extra_env={"PYTHONPATH": str(tree)},
        )
        check_tree(gateway, tree)
        gateway.create_key()
        progress(f"starting the {server} gateway ({tree}) ...")
        servers.append(gateway)
        gateway.start()
        gateways[name, logging] = gateway
        if set(ROUTING) & set(args.models):
            store_byok_key(gateway, upstream.base_url)
    targets = []
    for model in args.models:
        body = payloads.request_body(MODELS[model])
        for (name, logging), gateway in gateways.items():
            spec = RequestSpec(payloads.CHAT_PATH, body, {"Authorization": f"Bearer {gateway.key}"})
            if model in ROUTING:
                specs = routing_specs(gateway.key)
                spec = specs.routed if model == "routed" else specs.pinned
            label = gateway.name if args.models == ["openai"] else f"{gateway.name}/{model}"
            spec = rl.limited(spec) if args.policy else spec
            targets.append(Target(label, gateway, spec, tree=name, model=model, logging=logging))
    return targets


def round_order(targets: list[Target], number: int) -> list[Target]:
    """The order of round ``number`` (from 1): rotated by one every two rounds and reversed
    every other round (A B C D, D C B A, B C D A, A D C B, ...), so that over twice as many
    rounds as targets every target takes every position equally often. Plain reversal is
    that for two targets (A B, B A, B A, A B here), but with more it keeps the first and the
    last target at the ends, each running twice in a row across a round's boundary, and the
    others always between two different targets."""
    shift = (number - 1) // 2 % len(targets)
    order = targets[shift:] + targets[:shift]
    return order if number % 2 else order[::-1]


def run(args: argparse.Namespace, workdir: Path) -> tuple[str, dict[str, Any]]:
    upstream = Upstream(workdir)
    servers: list[ServedProcess] = []
    try:
        progress("starting the upstream ...")
        upstream.start()
        tool = load_generator(workdir)
        targets = gateway_targets(args, workdir, upstream, servers)
        if args.forwarder:
            forwarder = ForwarderProcess(workdir, upstream.base_url)
            servers.append(forwarder)
            forwarder.start()
            body = payloads.request_body(payloads.CHAT_MODEL)
            spec = RequestSpec(payloads.CHAT_PATH, body, {"Authorization": "Bearer bench"})
            targets.append(Target("forwarder", forwarder, spec))
        limited = {"helicone-ratelimit-policy": rl.POLICY} if args.policy else None
        for target in targets:
            # With --policy, a gateway's answer must come through the limiter (its header)
            expected = limited if isinstance(target.server, Gateway) else None
            if target.model == "routed":  # served by the organisation's own endpoint
                expected = {**(expected or {}), "x-request-id": payloads.BYOK_REQUEST_ID}
            probe(target.server.port, target.spec, b'"chat.completion"', target.name, expected)
        for number in range(1, args.rounds + 1):
            for target in round_order(targets, number):
                progress(f"round {number}/{args.rounds}: {target.name} ...")
                measure(tool, target, args, f"{target.name}_c{args.connections}")
            upstream.check_alive()
        text = report(targets, args)
        data = {
            "base": None if args.no_base else str(args.base),
            "new": str(args.new),
            "logging": args.logging,
            "connections": args.connections,
            "models": {name: MODELS[name] for name in args.models},
            "runs": {t.name: [r.to_json() for r in t.runs] for t in targets},
            "pooled": {t.name: t.pooled().to_json() for t in targets},
        }
        return text, data
    finally:
        for server in servers:
            server.stop()
        upstream.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    done = in_workdir("ab", args.keep, lambda workdir: run(args, workdir))
    if done is None:
        return 1
    (text, data), seconds = done
    print(text)
    print(f"  ({seconds:g} s)")
    if args.json is not None:
        args.json.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
