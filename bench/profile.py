"""``python -m bench.profile``: where the gateway process's CPU goes per request, under wrk.

One nginx upstream (:mod:`bench.upstream`) and one ``gateway serve`` started through
:mod:`bench.profiled_gateway` (``PYTHONPATH=--tree``), logging ``--logging`` (default off);
the unified ``/v1/chat/completions`` request of the main bench at ``--connections``; a
warm-up, then the profiler is switched on for one measured run and off again. Printed: the
``--top`` functions by own time (``--sort tottime``) or by time including callees
(``cumtime``), as calls and microseconds per request. cProfile's own overhead inflates every
function call several times over, so the figures are shares, not costs: compare them with
each other and between two trees, and measure a change's effect with :mod:`bench.ab`.
``--policy`` sends every request with the rate-limit line's policy (:mod:`bench.ratelimit`,
``Helicone-RateLimit-Policy``) to a gateway whose counters are on the machine's Redis
(``REDIS_URL``), to see what the limiter costs. ``--output`` keeps the :mod:`pstats` file
for ``python -m pstats``. ``--forwarder`` profiles the
reference forwarder (:mod:`bench.forwarder`) the same way instead, for comparison. ``--model``
loads the gateway with another of :data:`bench.ab.MODELS` (a translated path: Anthropic,
Gemini, Bedrock) instead of the OpenAI path, to compare two profiles function by function.
"""

from __future__ import annotations

import argparse
import json
import os
import pstats
import signal
import sys
import time
from pathlib import Path

from bench import payloads
from bench import ratelimit as rl
from bench.ab import MODELS
from bench.forwarder_proc import REPO, ForwarderProcess
from bench.gateway_proc import Gateway
from bench.load import RequestSpec, load_generator
from bench.phases import probe, progress
from bench.procs import BenchError, print_report
from bench.upstream import Upstream


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--tree", type=Path, default=Path.cwd(), help="source tree (cwd)")
    parser.add_argument("--logging", choices=("on", "off"), default="off")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0, help="profiled seconds")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--sort", choices=("tottime", "cumtime"), default="tottime")
    parser.add_argument(
        "--forwarder", action="store_true", help="profile the reference forwarder instead"
    )
    parser.add_argument(
        "--gc-only", action="store_true", help="only the collector's pauses, no profiler"
    )
    parser.add_argument("--output", type=Path, default=None, help="keep the pstats file here")
    parser.add_argument(
        "--policy", action="store_true",
        help="REDIS_URL set, every request with the rate-limit line's policy (bench.ratelimit)",
    )  # fmt: skip
    parser.add_argument(
        "--model", choices=tuple(MODELS), default="openai", help="the request to load with"
    )
    args = parser.parse_args(argv)
    if args.forwarder and args.model != "openai":
        parser.error("the forwarder has no routing: --model openai only")
    args.tree = args.tree.resolve()
    return args


def table(stats: pstats.Stats, requests: int, sort: str, top: int) -> str:
    """The ``top`` functions by ``sort``: calls, own µs and cumulative µs per request."""
    rows = []
    raw = stats.stats  # type: ignore[attr-defined]
    for (path, line, name), (_, calls, tottime, cumtime, _) in raw.items():
        rows.append((tottime if sort == "tottime" else cumtime, calls, tottime, cumtime,
                     f"{Path(path).name}:{line}({name})"))  # fmt: skip
    rows.sort(reverse=True)
    total = sum(r[2] for r in rows)
    lines = [
        f"{requests} requests, {1e6 * total / requests:.0f} us of profiled own time per request",
        f"{'calls/req':>9} {'own us/req':>10} {'cum us/req':>10}  function",
    ]
    for _, calls, tottime, cumtime, where in rows[:top]:
        lines.append(
            f"{calls / requests:>9.2f} {1e6 * tottime / requests:>10.2f} "
            f"{1e6 * cumtime / requests:>10.2f}  {where}"
        )
    return "\n".join(lines)


def collector(path: Path, requests: int) -> str:
    """The garbage collector's line: collections per 1,000 requests and µs per request, by
    generation (cProfile charges them to whatever function allocated at the time)."""
    data = json.loads(path.read_text())
    parts = [
        f"gen{g}: {1000 * n / requests:.1f}/1k req, {1e6 * s / requests:.1f} us/req"
        for g, (n, s) in enumerate(zip(data["counts"], data["seconds"], strict=True))
    ]
    return "garbage collector: " + "; ".join(parts) + "\n"


def run(args: argparse.Namespace, workdir: Path) -> str:
    upstream = Upstream(workdir)
    server: Gateway | ForwarderProcess | None = None
    out = args.output.resolve() if args.output else workdir / "gateway.prof"
    try:
        progress("starting the upstream ...")
        upstream.start()
        tool = load_generator(workdir)
        # The wrapper by its path, with -P: ``-m`` would put this directory first on
        # sys.path, before the PYTHONPATH naming the tree under test
        wrapper = [sys.executable, "-P", str(Path(__file__).with_name("profiled_gateway.py"))]
        extra = {"BENCH_PROFILE_OUT": str(out)}
        if args.gc_only:
            extra["BENCH_PROFILE_GC_ONLY"] = "1"
        if args.forwarder:
            server = ForwarderProcess(workdir, upstream.base_url)
            server.command = wrapper
            server.env = {**os.environ, "BENCH_PROFILE_FORWARDER": "1",
                          "PYTHONPATH": str(REPO), **extra}  # fmt: skip
            key = "bench"
        else:
            url = rl.redis_url() if args.policy else None
            if args.policy and url is None:
                raise BenchError("--policy: no Redis server answers (REDIS_URL)")
            server = Gateway(
                workdir,
                upstream.base_url,
                logging=args.logging == "on",
                redis_url=url,
                extra_env={"PYTHONPATH": str(args.tree), **extra},
            )
            server.serve_command = wrapper
            key = server.create_key()
        progress(f"starting {server.label} under the profiler ...")
        server.start()
        spec = RequestSpec(
            payloads.CHAT_PATH,
            payloads.request_body(MODELS[args.model]),
            {"Authorization": f"Bearer {key}"},
        )
        if args.policy:
            spec = rl.limited(spec)
        probe(server.port, spec, b'"chat.completion"', server.label)
        tool.run("warm-up", server.base_url, spec, args.connections, args.warmup)
        os.kill(server.pid, signal.SIGUSR1)
        result = tool.run("profiled", server.base_url, spec, args.connections, args.duration)
        os.kill(server.pid, signal.SIGUSR2)
        deadline = time.monotonic() + 30
        while not out.exists():
            if time.monotonic() > deadline:
                raise BenchError("the gateway did not write its profile")
            time.sleep(0.2)
        time.sleep(0.5)  # the dump may still be being written
        head = (
            f"{server.label}, {MODELS[args.model]}, logging {args.logging}, "
            f"{args.connections} connections, "
            f"{'rate-limit policy on Redis, ' if args.policy else ''}"
            f"{result.rps:.0f} req/s{'' if args.gc_only else ' under the profiler'}\n"
            + collector(Path(str(out) + ".gc.json"), result.requests)
        )
        if args.gc_only:
            return head
        return head + table(pstats.Stats(str(out)), result.requests, args.sort, args.top)
    finally:
        if server is not None:
            server.stop()
        upstream.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    return print_report("profile", False, lambda workdir: run(args, workdir))


if __name__ == "__main__":
    sys.exit(main())
