"""Added latency at one connection, request by request: targets asked in turn (issue 10).

On this shared two-core machine a run of a few seconds at one connection moves with the
machine's phase more than the differences looked for (one target's p50 read 0.14-0.59 ms
within three minutes). Asking every target in turn, one request each, in a random order each
turn, over one keep-alive connection per target, puts neighbouring requests on the same
machine: each turn's difference *target - direct* is that target's added latency with the
phase (and the client's own cost) taken out, and its median over the turns is the figure.
Used by ``python -m bench.paired`` (two trees' gateways) and by the main bench, which holds
the gateways' added p50 against the reference forwarder's with it.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from bench.load import RequestSpec, percentile
from bench.procs import BenchError
from bench.ttfb import RawHttpClient, raw_request


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

    def close(self) -> None:
        self.client.close()


def measure(targets: Sequence[Target], turns: int, warmup: int) -> None:
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


@dataclass(frozen=True)
class PairedResult:
    """One target's turns: its own response times and its per-turn added latency."""

    name: str
    turns: int
    p50_ms: float
    p90_ms: float
    added_p50_ms: float
    """Median over the turns of (this target's time - the direct upstream's, same turn)."""

    def to_json(self) -> dict[str, float | int | str]:
        return asdict(self)


def summarise(targets: Sequence[Target]) -> dict[str, PairedResult]:
    """Each target's figures, the first target being the direct upstream (added 0)."""
    direct = targets[0]
    out: dict[str, PairedResult] = {}
    for target in targets:
        if not target.seconds:
            raise BenchError(f"{target.name}: no measured turns")
        ms = sorted(1000 * s for s in target.seconds)
        extra = [1000 * (t - d) for t, d in zip(target.seconds, direct.seconds, strict=True)]
        out[target.name] = PairedResult(
            name=target.name,
            turns=len(ms),
            p50_ms=percentile(ms, 50),
            p90_ms=percentile(ms, 90),
            added_p50_ms=statistics.median(extra) if target is not direct else 0.0,
        )
    return out
