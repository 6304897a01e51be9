"""The request path's batched bookkeeping, cheaper and the same.

``Metrics.count`` remembers each (provider, model, route, cache result)'s labels and tallies:
what it counts must be exactly what looking them up per request counts — request counters,
both histograms' buckets and sums, cache results and events — across the table starting over
and across ``bind`` (the registry folding model names differently). The JSON request line,
its fixed fields written once, must be the line orjson makes of its fields."""

from __future__ import annotations

import itertools
from bisect import bisect_left
from typing import Any

import orjson
import pytest

from gateway import metrics as metrics_module
from gateway.accesslog import AccessLog
from gateway.finished import RequestFacts
from gateway.metrics import MODES, OVERHEAD_BUCKETS, TTFT_BUCKETS, UPSTREAM_BUCKETS, Metrics
from providers.registry import Registry


def _facts() -> list[RequestFacts]:
    out = []
    ways = itertools.product(
        ("openai", "groq", "", "nowhere"),
        ("gpt-4o-mini", "gpt-4o", "", "not-a-model"),
        ("unified", "passthrough", "fallbacks"),
        (None, True, False),
    )
    for n, (provider, model, route, hit) in enumerate(ways):
        upstream = (0.0, 0.03, 0.2, 7.0)[n % 4]
        latency = upstream + (-0.001, 0.0, 0.0004, 0.02)[n % 3]  # once below the upstream's
        first = None if n % 5 else latency / 2
        out.append(RequestFacts(
            float(n), f"id{n}", "org", route, provider, model, (200, 429, 502)[n % 3], latency,  # type: ignore[arg-type]
            upstream, first, hit, 1 + n % 3, n % 2, "rate_limited" if n % 7 == 0 else None,
        ))  # fmt: skip
    return out


def _by_hand(metrics: Metrics, batch: list[RequestFacts]) -> dict[str, Any]:
    """What the per-request lookups (the count before the table) give, on fresh tallies."""
    labels = metrics._labels
    counts: dict[tuple[str, str, int, str], int] = {}
    tallies: dict[tuple[str, str], tuple[list[int], float]] = {}

    def add(kind: str, label: str, bounds: tuple[float, ...], value: float) -> None:
        buckets, total = tallies.get((kind, label), ([0] * (len(bounds) + 1), 0.0))
        buckets[bisect_left(bounds, value)] += 1
        tallies[(kind, label)] = (buckets, total + value)

    cache = [0, 0]
    events = [0, 0, 0]
    for facts in batch:
        provider = labels.provider(facts.provider)
        mode = "cache" if facts.cache_hit else MODES[facts.route]
        key = (provider, labels.model(facts.model), facts.status, mode)
        counts[key] = counts.get(key, 0) + 1
        if facts.upstream:
            add("upstream", provider, UPSTREAM_BUCKETS, facts.upstream)
        if facts.upstream or facts.cache_hit:
            add("overhead", mode, OVERHEAD_BUCKETS, max(0.0, facts.latency - facts.upstream))
        if facts.first_byte is not None:
            add("ttft", provider, TTFT_BUCKETS, facts.first_byte)
        if facts.cache_hit is not None:
            cache[facts.cache_hit] += 1
        if facts.attempts > 1 or facts.retries or facts.error == "rate_limited":
            events[0] += facts.error == "rate_limited"
            events[1] += max(0, facts.attempts - 1)
            events[2] += facts.retries
    return {"counts": counts, "tallies": tallies, "cache": cache, "events": events}


def _counted(metrics: Metrics) -> dict[str, Any]:
    names = {id(metrics._upstream): "upstream", id(metrics._overhead): "overhead",
             id(metrics._ttft): "ttft"}  # fmt: skip
    tallies = {
        (names[id(histogram)], label): (list(tally.counts), tally.total)
        for (histogram, label), tally in metrics._tallies.items()
        if tally.total or any(tally.counts)
    }
    return {"counts": dict(metrics._request_counts), "tallies": tallies,
            "cache": list(metrics._cache_counts), "events": list(metrics._events)}  # fmt: skip


def _same(counted: dict[str, Any], expected: dict[str, Any]) -> None:
    assert counted["counts"] == expected["counts"]
    assert counted["cache"] == expected["cache"] and counted["events"] == expected["events"]
    assert counted["tallies"].keys() == expected["tallies"].keys()
    for key, (buckets, total) in expected["tallies"].items():
        assert counted["tallies"][key][0] == buckets
        assert counted["tallies"][key][1] == pytest.approx(total)


@pytest.mark.parametrize("max_ways", [4096, 5])
def test_remembered_ways_count_what_per_request_lookups_count(
    monkeypatch: pytest.MonkeyPatch, max_ways: int
) -> None:
    monkeypatch.setattr(metrics_module, "_MAX_WAYS", max_ways)  # 5: starts over many times
    batch = _facts()
    metrics = Metrics()
    metrics.count(batch)
    metrics.count(batch[::-1])  # the second time from the table
    _same(_counted(metrics), _by_hand(metrics, batch + batch[::-1]))
    assert len(metrics._ways) <= max_ways


def test_bind_forgets_the_labels_folded_without_the_registry() -> None:
    batch = [f for f in _facts() if f.model == "gpt-4o-mini"]
    metrics = Metrics()
    metrics.count(batch)
    assert {key[1] for key in metrics._request_counts} == {"other"}  # no registry yet
    metrics.sync()
    metrics.bind(Registry.load())
    metrics.count(batch)
    assert {key[1] for key in metrics._request_counts} == {"gpt-4o-mini"}
    _same(_counted(metrics), _by_hand(metrics, batch))


def test_the_json_request_line_is_its_fields_serialised() -> None:
    """``AccessLog._json_line`` writes the fixed fields once: byte for byte the line orjson
    makes of ``_fields`` — every route, cache result, error, and names to escape or cut."""
    log = AccessLog("json", write=lambda line: None)
    odd = ('a"quoted\\name', "line\nbreak\u2028", "é" * 300, "")
    lines = 0
    for n, facts in enumerate(_facts()):
        for error in (None, "rate_limited", 'we"ird'):
            facts = facts._replace(error=error, model=odd[n % 4] if n % 3 == 0 else facts.model,
                                   org=None if n % 4 == 0 else f"org-{n}")  # fmt: skip
            expected = orjson.dumps(log._fields(facts), option=orjson.OPT_APPEND_NEWLINE)
            assert log._json_line(facts) == expected
            lines += 1
    assert lines > 400
