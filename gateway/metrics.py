"""Prometheus metrics: ``GET /metrics``, one process or several workers alike.

The request path pays for a metric with one small tuple per request when it is over
(gateway/finished.py), counted in batches by :meth:`Metrics.count`: into plain tallies
keyed by bounded labels (providers/labels.py). A prometheus-client value costs ~1 µs an update
in one process and ~3-10 µs in multiprocess mode (a lock and a memory-mapped file per value),
measured — a histogram observation updates two — so they are updated from the tallies by
:meth:`Metrics.sync` instead: before every scrape, at shutdown and, with several workers, every
second. The same step reads what the gateway's other parts already count (the log writer's
records, tokens and cost, Redis', the cache's and the rate limiter's faults) and adds what
changed.

With several workers (``gateway serve --workers N``) every worker writes its values to files
in a private ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode, set up by
the serve command), and whichever worker answers a scrape reads them all: the counters of a
worker that exited stay counted, its gauge (the log queue) is dropped. A scrape then sees
the other workers' requests of the last second at most a second late.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import re
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from gateway.context import Route
from providers.labels import MetricLabels
from providers.registry import Registry

if TYPE_CHECKING:
    from gateway.finished import RequestFacts
    from logging_pipeline.writer import WriterCounters

CONTENT_TYPE = CONTENT_TYPE_LATEST
SYNC_SECONDS = 1.0
"""With several workers: how often each one moves its tallies to the shared files."""

UPSTREAM_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0)
"""Seconds a provider took (a whole answer or a whole stream)."""
OVERHEAD_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
)  # fmt: skip
"""Seconds the gateway itself added (its time minus the providers')."""
TTFT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
"""Seconds from a streamed request's arrival to the provider's first chunk."""

MODES: Mapping[Route, str] = {
    "unified": "unified",
    "models": "models",
    "passthrough": "passthrough",
    "target_url": "passthrough",
    "fallbacks": "fallbacks",
    "manual_log": "log",
    "app": "app",
}
"""The ``mode`` label of each route (``cache`` for a cache hit, whatever the route)."""

_MAX_WAYS = 4096
"""Distinct (provider, model, route, cache result) a process remembers the labels of."""

_LIVE_FILE = re.compile(r"gauge_live\w*?_(\d+)\.db$")


class _Tally:
    """One histogram child's observations since the last sync."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one is +Inf
        self.total = 0.0

    def add(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1  # Prometheus buckets are "<="
        self.total += value


class Metrics:
    """The metrics of one process (see the module docstring); created by the runtime."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self._labels = MetricLabels(None)
        definitions = CollectorRegistry()
        self._requests = Counter(
            "gateway_requests", "Requests answered by the data plane.",
            ("provider", "model", "status", "mode"), registry=definitions,
        )  # fmt: skip
        self._upstream = Histogram(
            "gateway_upstream_latency_seconds",
            "Time spent waiting on providers per request (every attempt, whole answer or stream).",
            ("provider",), buckets=UPSTREAM_BUCKETS, registry=definitions,
        )  # fmt: skip
        self._overhead = Histogram(
            "gateway_overhead_seconds",
            "Time the gateway added to a request: its whole time minus the providers'.",
            ("mode",), buckets=OVERHEAD_BUCKETS, registry=definitions,
        )  # fmt: skip
        self._ttft = Histogram(
            "gateway_time_to_first_token_seconds",
            "Streamed requests: from arrival to the provider's first chunk.",
            ("provider",), buckets=TTFT_BUCKETS, registry=definitions,
        )  # fmt: skip
        self._cache = Counter(
            "gateway_cache_lookups", "Response cache lookups, by result.", ("result",),
            registry=definitions,
        )  # fmt: skip
        self._rate_limited = Counter(
            "gateway_rate_limited", "Requests refused by a rate-limit policy (429).",
            registry=definitions,
        )  # fmt: skip
        self._failovers = Counter(
            "gateway_failovers", "Upstream attempts made because an earlier one failed.",
            registry=definitions,
        )  # fmt: skip
        self._retries = Counter(
            "gateway_retries", "Answers sent again under a request's Helicone-Retry policy.",
            registry=definitions,
        )  # fmt: skip
        self._tokens = Counter(
            "gateway_tokens", "Tokens of logged requests (counted by the log writer).",
            ("provider", "model", "kind"), registry=definitions,
        )  # fmt: skip
        self._cost = Counter(
            "gateway_cost_usd", "Cost in USD of logged requests (counted by the log writer).",
            ("provider", "model"), registry=definitions,
        )  # fmt: skip
        self._log_queue = Gauge(
            "gateway_log_queue_bytes",
            "Bytes of journaled request records not yet written to the log store.",
            registry=definitions, multiprocess_mode="livesum",
        )  # fmt: skip
        self._log_records = Counter(
            "gateway_log_records",
            "Request records by what happened to them: journaled, written, replayed (written "
            "from a journal of a process that is gone), failed (in a failed write: kept and "
            "written again), lost.",
            ("outcome",), registry=definitions,
        )  # fmt: skip
        self._annotations = Counter(
            "gateway_annotations",
            "Annotations (feedback, scores, properties) by what happened to them: accepted "
            "(stored), applied (to their record), expired (the record never came; dropped).",
            ("outcome",), registry=definitions,
        )  # fmt: skip
        self._store_errors = Counter(
            "gateway_store_errors", "Errors of the shared stores (served without them).",
            ("store",), registry=definitions,
        )  # fmt: skip
        if multiprocess_dir is None:
            self.registry = definitions
        else:
            self.registry = CollectorRegistry()
            MultiProcessCollector(self.registry, multiprocess_dir)  # type: ignore[no-untyped-call]
        self._request_counts: dict[tuple[str, str, int, str], int] = {}
        self._tallies: dict[tuple[Histogram, str], _Tally] = {}
        self._ways: dict[tuple[str, str, Route, bool | None], tuple[str, str, str, _Tally, _Tally]]
        self._ways = {}
        self._children: dict[tuple[Any, ...], Any] = {}
        self._cache_counts = [0, 0]  # misses, hits
        self._events = [0, 0, 0]  # rate-limited, failovers, retries
        self._seen: dict[tuple[str, ...], float] = {}
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def from_environment(cls) -> Metrics:
        """Multiprocess mode when ``PROMETHEUS_MULTIPROC_DIR`` is set (``gateway serve``
        sets it for several workers, before any worker starts)."""
        return cls(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None)

    def bind(self, registry: Registry) -> None:
        """Fold model labels with the model registry (loaded at start-up)."""
        self._labels = MetricLabels(registry)
        self._ways.clear()  # remembered with the labels of the registry-less folding

    # -- counting finished requests --------------------------------------------------------

    def count(self, batch: Sequence[RequestFacts]) -> None:
        """Count a batch of finished requests (gateway/finished.py hands them over).

        What a request's provider, model, route and cache result give — its labels and its
        two histograms' tallies — is looked up once per such combination (:meth:`_way`), and
        the tallies are added to inline: a few dict lookups a request instead of seven calls.
        """
        counts = self._request_counts
        events = self._events
        ways = self._ways
        for facts in batch:
            hit = facts.cache_hit
            way = ways.get((facts.provider, facts.model, facts.route, hit))
            if way is None:
                way = self._way(facts.provider, facts.model, facts.route, hit)
            provider, model, mode, upstream_tally, overhead_tally = way
            key = (provider, model, facts.status, mode)
            counts[key] = counts.get(key, 0) + 1
            upstream = facts.upstream
            if upstream:
                # _Tally.add, inline; Prometheus buckets are "<="
                upstream_tally.counts[bisect_left(UPSTREAM_BUCKETS, upstream)] += 1
                upstream_tally.total += upstream
            if upstream or hit:
                overhead = facts.latency - upstream
                if not overhead > 0.0:  # max(0.0, overhead)
                    overhead = 0.0
                overhead_tally.counts[bisect_left(OVERHEAD_BUCKETS, overhead)] += 1
                overhead_tally.total += overhead
            if facts.first_byte is not None:
                self._tally(self._ttft, provider, TTFT_BUCKETS).add(facts.first_byte)
            if hit is not None:
                self._cache_counts[hit] += 1
            if facts.attempts > 1 or facts.retries or facts.error == "rate_limited":
                events[0] += facts.error == "rate_limited"
                events[1] += max(0, facts.attempts - 1)
                events[2] += facts.retries

    def _way(
        self, provider_name: str, model_name: str, route: Route, hit: bool | None
    ) -> tuple[str, str, str, _Tally, _Tally]:
        """The labels (provider, model, mode) and the upstream and overhead tallies of a
        request's (provider, model, route, cache result), remembered: the names come from
        clients, so the table starts over past :data:`_MAX_WAYS` (the tallies stay)."""
        provider = self._labels.provider(provider_name)
        mode = "cache" if hit else MODES[route]
        way = (
            provider,
            self._labels.model(model_name),
            mode,
            self._tally(self._upstream, provider, UPSTREAM_BUCKETS),
            self._tally(self._overhead, mode, OVERHEAD_BUCKETS),
        )
        if len(self._ways) >= _MAX_WAYS:
            self._ways.clear()
        self._ways[(provider_name, model_name, route, hit)] = way
        return way

    def _tally(self, histogram: Histogram, label: str, bounds: tuple[float, ...]) -> _Tally:
        tally = self._tallies.get((histogram, label))
        if tally is None:
            tally = self._tallies[(histogram, label)] = _Tally(bounds)
        return tally

    # -- moving counts into prometheus-client's values -------------------------------------

    def _child(self, metric: Any, *values: str) -> Any:
        key = (metric, *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values) if values else metric
        return child

    def sync(
        self, writer: WriterCounters | None = None, stores: Mapping[str, int] | None = None
    ) -> None:
        """Add what was counted since the last sync to the exported values.

        ``writer``: the log writer's counters (cumulative); ``stores``: each store's error
        count so far (cumulative). What they gained since the last sync is added."""
        for key, count in self._request_counts.items():
            if count:
                provider, model, status, mode = key
                self._child(self._requests, provider, model, str(status), mode).inc(count)
        self._request_counts.clear()
        for (histogram, label), tally in self._tallies.items():
            if not tally.total and not any(tally.counts):
                continue
            child = self._child(histogram, label)
            # prometheus-client has no public "add n observations to a bucket"; its own
            # observe() does exactly these two increments, once per observation.
            for index, count in enumerate(tally.counts):
                if count:
                    child._buckets[index].inc(count)
                    tally.counts[index] = 0
            child._sum.inc(tally.total)
            tally.total = 0.0
        for hit, result in ((1, "hit"), (0, "miss")):
            if self._cache_counts[hit]:
                self._child(self._cache, result).inc(self._cache_counts[hit])
                self._cache_counts[hit] = 0
        for index, metric in enumerate((self._rate_limited, self._failovers, self._retries)):
            if self._events[index]:
                metric.inc(self._events[index])
                self._events[index] = 0
        for store, errors in (stores or {}).items():
            self._add(("store", store), errors, self._child(self._store_errors, store))
        if writer is not None:
            self._sync_writer(writer)

    def _add(self, key: tuple[str, ...], total: float, child: Any) -> None:
        """Increase ``child`` by what the cumulative ``total`` gained since the last call."""
        last = self._seen.get(key, 0)
        if total != last:
            self._seen[key] = total
            child.inc(total - last if total > last else total)  # a smaller total: it restarted

    def _sync_writer(self, counters: WriterCounters) -> None:
        self._log_queue.set(counters.pending_bytes)
        for outcome, total in (
            ("journaled", counters.enqueued),
            ("written", counters.written),
            ("replayed", counters.replayed),
            ("failed", counters.failed),
            ("lost", counters.lost),
        ):
            self._add(("log", outcome), total, self._child(self._log_records, outcome))
        for outcome, total in (
            ("accepted", counters.annotations_accepted),
            ("applied", counters.annotations_applied),
            ("expired", counters.annotations_expired),
        ):
            self._add(("annotation", outcome), total, self._child(self._annotations, outcome))
        for (provider, model), (prompt, completion, nano_usd) in counters.usage.items():
            tokens = self._tokens
            self._add(("prompt", provider, model), prompt,
                      self._child(tokens, provider, model, "prompt"))  # fmt: skip
            self._add(("completion", provider, model), completion,
                      self._child(tokens, provider, model, "completion"))  # fmt: skip
            self._add(("cost", provider, model), nano_usd / 1e9,
                      self._child(self._cost, provider, model))  # fmt: skip

    # -- exposition ---------------------------------------------------------------------------

    def render(self) -> bytes:
        """The text exposition of every process's values (call :meth:`sync` first)."""
        if self.multiprocess_dir is not None:
            self._forget_dead_processes()
        return generate_latest(self.registry)

    def _forget_dead_processes(self) -> None:
        """Drop the gauges of workers that are gone (killed, or restarted by uvicorn): a live
        gauge's file is per process, and only the living count. Counters stay counted."""
        assert self.multiprocess_dir is not None
        for path in glob.glob(os.path.join(self.multiprocess_dir, "gauge_live*.db")):
            match = _LIVE_FILE.search(path)
            if match is None:
                continue
            pid = int(match.group(1))
            if pid != os.getpid() and not _alive(pid):
                mark_process_dead(pid, self.multiprocess_dir)  # type: ignore[no-untyped-call]

    # -- the periodic sync (several workers) ---------------------------------------------------

    def start(self, sync: Any) -> None:
        """With several workers, run ``sync()`` every :data:`SYNC_SECONDS` until :meth:`close`."""
        if self.multiprocess_dir is None:
            return

        async def every_second() -> None:
            while True:
                await asyncio.sleep(SYNC_SECONDS)
                sync()

        self._task = asyncio.get_running_loop().create_task(every_second(), name="metrics-sync")

    async def close(self) -> None:
        """Stop the periodic sync; this process's gauge leaves the shared files."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.multiprocess_dir is not None:
            mark_process_dead(os.getpid(), self.multiprocess_dir)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
