"""``python -m bench.cache``: a response-cache HIT from Redis against the uncached path.

Issue 12's bar: at 32 connections a HIT must serve at least as many requests per second as
the uncached gateway path through the instant upstream (≥ 100%). One gateway (``gateway
serve``, logging off, ``REDIS_URL`` = ``--redis-url``, its own key prefix, deleted at the end)
in front of the bench's nginx upstream (:mod:`bench.upstream`); the same chat request is sent
without cache headers (every request goes upstream) and with ``Helicone-Cache-Enabled: true``
(filled once by a probe, then every request is a HIT), in interleaved rounds (A B, B A, …),
each a warm-up then a measured run, pooled per target as the main bench does
(:func:`bench.load.combine`). Also reported: p50 at 1 connection for each.

Not part of ``make test``; ``make bench`` runs it after the main bench.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import redis

from bench import payloads
from bench.gateway_proc import Gateway
from bench.load import LoadResult, RequestSpec, combine, load_generator
from bench.phases import probe, progress
from bench.procs import BenchError
from bench.upstream import Upstream

BAR_RATIO = 1.0
"""A HIT's pooled RPS over the uncached path's, at the throughput connections."""
_CACHE = {"Helicone-Cache-Enabled": "true"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.cache", description=__doc__)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4, help="interleaved runs per target")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--quick", action="store_true", help="3 s runs, 1 s warm-ups, 2 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.rounds = 3.0, 1.0, 2
    return args


def _check_redis(url: str) -> None:
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise BenchError(f"Redis is not reachable at {url} ({exc}): start redis-server") from exc
    finally:
        client.close()


def _measure(
    args: argparse.Namespace, workdir: Path, prefix: str
) -> tuple[dict[str, LoadResult], dict[str, LoadResult], dict[str, object]]:
    _check_redis(args.redis_url)
    upstream = Upstream(workdir)
    gateway: Gateway | None = None
    try:
        progress("starting the upstream ...")
        upstream.start()
        tool = load_generator(workdir)
        gateway = Gateway(workdir, upstream.base_url, name="gateway_cache", logging=False)
        gateway.env.update(REDIS_URL=args.redis_url, GATEWAY_REDIS_KEY_PREFIX=prefix)
        gateway.create_key()
        progress("starting the gateway (REDIS_URL set) ...")
        gateway.start()
        auth = {"Authorization": f"Bearer {gateway.key}"}
        body = payloads.request_body(payloads.CHAT_MODEL)
        specs = {
            "uncached": RequestSpec(payloads.CHAT_PATH, body, auth),
            "hit": RequestSpec(payloads.CHAT_PATH, body, {**auth, **_CACHE}),
        }
        for name, spec in specs.items():  # the first "hit" probe fills the cache
            probe(gateway.port, spec, b'"chat.completion"', f"{name} via the gateway")
        single = {
            name: tool.run(f"{name}_c1", gateway.base_url, spec, 1, args.duration)
            for name, spec in specs.items()
        }
        rounds: dict[str, list[LoadResult]] = {name: [] for name in specs}
        order = list(specs.items())
        for number in range(1, args.rounds + 1):
            for name, spec in order if number % 2 else order[::-1]:
                label = f"{name}_c{args.connections}"
                progress(f"{label} round {number}/{args.rounds} ...")
                tool.run(label, gateway.base_url, spec, args.connections, args.warmup)
                cpu = gateway.cpu_seconds()
                result = tool.run(label, gateway.base_url, spec, args.connections, args.duration)
                result.server_cpu_s = gateway.cpu_seconds() - cpu
                rounds[name].append(result)
                gateway.check_alive()
        pooled = {name: combine(f"{name}_c{args.connections}", runs)
                  for name, runs in rounds.items()}
        cache_health: dict[str, object] = gateway.health()["cache"]
        if cache_health.get("backend") != "redis" or cache_health.get("unavailable"):
            raise BenchError(f"the gateway's cache did not use Redis: {cache_health}")
        return pooled, single, cache_health
    finally:
        if gateway is not None:
            gateway.stop()
        upstream.stop()


def _drop_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        names = list(client.scan_iter(match=prefix + "*", count=1000))
        if names:
            client.delete(*names)
    finally:
        client.close()


def report(
    pooled: dict[str, LoadResult], single: dict[str, LoadResult], health: dict[str, object],
    connections: int,
) -> tuple[str, bool]:
    hit, uncached = pooled["hit"], pooled["uncached"]
    ratio = hit.rps / uncached.rps if uncached.rps else 0.0
    errors = hit.error_total + uncached.error_total
    passed = ratio >= BAR_RATIO and errors == 0
    lines = [
        "response cache (Redis) vs the uncached gateway path",
        f"  {'target':<10} {'req/s c' + str(connections):>12} {'p50 ms':>8} {'p99 ms':>8} "
        f"{'cpu us/req':>11} {'p50 ms c1':>10}",
    ]
    for name in ("uncached", "hit"):
        run = pooled[name]
        lines.append(
            f"  {name:<10} {run.rps:>12.0f} {run.latency_ms['p50']:>8.2f} "
            f"{run.latency_ms['p99']:>8.2f} {run.server_cpu_us_per_request:>11.0f} "
            f"{single[name].latency_ms['p50']:>10.3f}"
        )
    lines.append(f"  cache counters: {health}")
    verdict = "PASS" if passed else "FAIL"
    lines.append(
        f"  [{verdict}] HIT req/s at c{connections} = {100 * ratio:.1f}% of uncached "
        f"(bar >= {100 * BAR_RATIO:.0f}%), errors {errors}"
    )
    return "\n".join(lines), passed


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-cache-"))
    prefix = f"bench-cache-{uuid.uuid4().hex[:8]}:"
    try:
        pooled, single, health = _measure(args, workdir, prefix)
    except BenchError as exc:
        print(f"bench.cache: error: {exc}", file=sys.stderr)
        return 1
    finally:
        try:
            _drop_prefix(args.redis_url, prefix)
        except redis.RedisError as exc:
            print(f"bench.cache: could not clean up Redis keys: {exc}", file=sys.stderr)
        shutil.rmtree(workdir, ignore_errors=True)
    text, _ = report(pooled, single, health, args.connections)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
