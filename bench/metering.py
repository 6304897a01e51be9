"""``python -m bench.metering``: what metering costs a request that has nothing metered.

Every unified and passthrough request asks the meter whether anything is metered for it:
the policy from the per-organisation cache, without an await
(:meth:`gateway.metering.Meter.cached_policy`), then ``Meter.session_under`` (``Meter.session``,
which awaits the store, only on a miss). For an organisation without a credit account or
budget the request then pays nothing else (no body parsing, no answer recording, no database
write). This measures that question, warm cache, per call (``perf_counter_ns``), p50 and p99
in µs, next to the same question for an organisation that *is* metered (the session object
built, still no I/O).
The store is an in-memory stand-in: a cache miss (one query per organisation per TTL) is not
what is measured. Not part of ``make test`` (tests/test_bench_metering.py runs it tiny).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any, cast

from gateway.context import RequestContext, parse_options
from gateway.metering import Meter
from gateway.store import BudgetRule, CreditStore, KeyIdentity, MeterPolicy
from gateway.store._credits import UNMETERED
from providers.registry import Registry

BAR_US = 1.0
"""What "no cost at all" is held to: under a microsecond p50 on an unmetered request."""


class _Policies:
    """The store's ``policy`` without a database."""

    def __init__(self, policies: dict[str, MeterPolicy]) -> None:
        self._policies = policies

    async def policy(self, org_id: str) -> MeterPolicy:
        return self._policies.get(org_id, UNMETERED)


async def _measure(iterations: int) -> dict[str, dict[str, float]]:
    metered = MeterPolicy(
        account=True, budgets=(BudgetRule("b", "user", "alice", "day", 10**9),)
    )
    store = cast(CreditStore, _Policies({"metered": metered}))
    meter = Meter(
        store, cast(Registry, None), cache_ttl=3600, hold_ttl=60, sweep_interval=60
    )
    results: dict[str, dict[str, float]] = {}
    for org in ("unmetered", "metered"):
        ctx = RequestContext(parse_options({"helicone-user-id": "alice"}))
        ctx.identity = KeyIdentity("key", org, org)
        await meter.session(ctx)  # warm the cache
        samples: list[int] = []
        for _ in range(iterations):
            started = time.perf_counter_ns()
            policy = meter.cached_policy(org)  # what the request path does (gateway/routing.py)
            if policy is None:
                await meter.session(ctx)
            else:
                meter.session_under(ctx, policy)
            samples.append(time.perf_counter_ns() - started)
        samples.sort()
        results[org] = {
            "p50_us": statistics.median(samples) / 1000,
            "p99_us": samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1000,
        }
    return results


def measure(iterations: int) -> dict[str, dict[str, float]]:
    return asyncio.run(_measure(iterations))


def render(results: dict[str, Any]) -> str:
    lines = [f"{'organisation':<14}{'p50 µs':>10}{'p99 µs':>10}"]
    for org, row in results.items():
        lines.append(f"{org:<14}{row['p50_us']:>10.3f}{row['p99_us']:>10.3f}")
    met = results["unmetered"]["p50_us"] <= BAR_US
    lines.append(f"unmetered request: bar ≤ {BAR_US:g} µs p50: {'met' if met else 'NOT met'}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.metering", description=__doc__)
    parser.add_argument("--iterations", type=int, default=200_000)
    args = parser.parse_args(argv)
    print(render(measure(args.iterations)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
