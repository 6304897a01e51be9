"""The capacity bench (``python -m bench.capacity``, issue 14's methodology).

The arithmetic the report states — throughput at a p99 bound, the most streams without a
stall, the leak slope — on made-up runs; the delayed upstream's stream checked with the
official SDK's chunk type; the stream client against the real upstream on a socket; one tiny
end-to-end run (a gateway, short steps) so the runner itself is exercised in ``make test``, and
one of two workers logging into the ClickHouse stand-in, every answered request logged once.
No assertion depends on timing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from openai.types.chat import ChatCompletionChunk

from bench import capacity, payloads
from bench.capacity_report import (
    CapacityRun,
    ConfigResult,
    LeakRun,
    added_ttft,
    leak_slope,
    most_streams_without_stall,
    render,
    throughput_at_bounds,
)
from bench.delayed_upstream import DelayedUpstream, stream_events
from bench.load import LoadResult, RequestSpec
from bench.logcheck import ANSWERED_METRIC, LogCount, metric_total
from bench.streams import StreamLevel, StreamSample, run_streams, stall_reasons, summarize


def _run(connections: int, rps: float, p99: float, errors: int = 0) -> LoadResult:
    return LoadResult(
        label=f"c{connections}",
        connections=connections,
        threads=1,
        duration_s=1.0,
        requests=int(rps),
        rps=rps,
        latency_ms={"p50": 20.5, "p99": p99},
        errors={"status": errors},
    )


def _level(concurrency: int, stalled: int = 0, ttft_p50: float = 21.0) -> StreamLevel:
    return StreamLevel(
        label=f"s{concurrency}",
        concurrency=concurrency,
        duration_s=1.0,
        streams=10,
        complete=10 - stalled,
        errors=0,
        error_samples=[],
        ttft_ms={"p50": ttft_p50, "p99": ttft_p50 + 2, "max": ttft_p50 + 3},
        gap_ms={"p50": 20.0, "p99": 22.0, "max": 30.0},
        events_per_stream={"min": 64, "max": 64},
        stalls={"gap": stalled} if stalled else {},
    )


def test_throughput_at_bounds_takes_the_best_step_within_each_bound() -> None:
    sweep = [
        _run(1, 49, 20.6),
        _run(8, 390, 23.0),
        _run(32, 1500, 28.0),
        _run(64, 2900, 45.0),
        _run(128, 3100, 90.0),
        _run(256, 3300, 60.0, errors=3),  # within 50 ms but failed requests: never counts
    ]
    found = throughput_at_bounds(sweep, delay_ms=20.0)
    assert found[1.0] is not None and found[1.0].connections == 1
    assert found[5.0] is not None and found[5.0].connections == 8
    assert found[10.0] is not None and found[10.0].rps == 1500
    assert found[50.0] is not None and found[50.0].connections == 64
    assert throughput_at_bounds([_run(1, 49, 25.0)], 20.0)[1.0] is None


def test_most_streams_without_stall_stops_at_the_first_stalled_level() -> None:
    assert most_streams_without_stall([_level(16), _level(64), _level(256, stalled=1)]) == 64
    assert most_streams_without_stall([_level(64), _level(16)]) == 64
    assert most_streams_without_stall([_level(16, stalled=2), _level(64)]) is None


def test_added_ttft_is_against_the_direct_level_of_the_same_concurrency() -> None:
    direct = [_level(16, ttft_p50=20.5), _level(64, ttft_p50=21.0)]
    assert added_ttft(_level(64, ttft_p50=23.5), direct) == pytest.approx(2.5)
    assert math.isnan(added_ttft(_level(512), direct))


def test_stall_reasons() -> None:
    fine = StreamSample(ttft_s=0.021, gaps_s=[0.02, 0.021], events=3, complete=True)
    assert stall_reasons(fine, delay_ms=20) == ""
    assert stall_reasons(StreamSample(error="status 503"), 20) == "error"
    assert stall_reasons(StreamSample(ttft_s=0.02, events=3), 20) == "incomplete"
    late = StreamSample(ttft_s=0.125, gaps_s=[0.02], events=2, complete=True)
    assert stall_reasons(late, 20) == "first_chunk"
    gap = StreamSample(ttft_s=0.02, gaps_s=[0.02, 0.101], events=3, complete=True)
    assert stall_reasons(gap, 20) == "gap"


def test_summarize_pools_streams_and_counts_each_stalled_stream_once() -> None:
    samples = [
        StreamSample(ttft_s=0.020, gaps_s=[0.020, 0.020], events=3, complete=True),
        StreamSample(ttft_s=0.030, gaps_s=[0.020, 0.200], events=3, complete=True),
        StreamSample(error="connection lost"),
    ]
    level = summarize("x", 3, 1.0, samples, delay_ms=20)
    assert (level.streams, level.complete, level.errors) == (3, 2, 1)
    assert level.stalls == {"gap": 1, "error": 1} and level.stalled == 2
    assert level.ttft_ms["p50"] == pytest.approx(20.0)
    assert level.gap_ms["max"] == pytest.approx(200.0)
    assert level.events_per_stream == {"min": 3.0, "max": 3.0}


def test_leak_slope_and_run() -> None:
    assert leak_slope([0, 100, 200], [1000, 1001, 1002]) == pytest.approx(0.01)
    assert math.isnan(leak_slope([0], [1]))
    assert math.isnan(leak_slope([5, 5], [1, 2]))
    leak = LeakRun(warmup_requests=50)
    for requests, rss in ((0, 100_000), (100_000, 100_100), (200_000, 100_200)):
        leak.add(requests, rss)
    assert leak.kib_per_million == pytest.approx(1000.0)
    data = leak.to_json()
    assert data["extrapolated"] is True and data["measured_requests"] == 200_000
    assert data["growth_kib"] == 200


def test_stream_events_are_openai_chunks_framed_one_per_http_chunk() -> None:
    framed = stream_events(64)
    assert len(framed) == 64 and framed[-1].endswith(b"data: [DONE]\n\n\r\n0\r\n\r\n")
    chunks = []
    for frame in framed:
        size, _, rest = frame.partition(b"\r\n")
        event = rest[: int(size, 16)]
        assert event.startswith(b"data: ") and event.endswith(b"\n\n")
        chunks.append(ChatCompletionChunk.model_validate_json(event[6:]))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])


def test_parse_args_and_configs() -> None:
    assert capacity.parse_configs("off:1, on:2") == [(False, 1), (True, 2)]
    with pytest.raises(SystemExit):
        capacity.parse_configs("maybe:1")
    quick = capacity.parse_args(["--quick"])
    assert quick.leak_requests == 30_000 and quick.stream_levels == [16, 128, 512]
    full = capacity.parse_args(["--leak-requests", "1000000", "--connections", "1,4"])
    assert full.leak_requests == 1_000_000 and full.connections == [1, 4]


def test_finite_replaces_unmeasured_figures() -> None:
    assert capacity.finite({"a": [math.nan, 1.0], "b": math.inf, "c": "x"}) == {
        "a": [None, 1.0],
        "b": None,
        "c": "x",
    }


def test_render_names_every_section_and_inapplicable_configs() -> None:
    run = CapacityRun(delay_ms=20, chunks=64, interval_ms=20, leak_requests=200_000)
    run.direct_sweep = [_run(1, 49, 20.4), _run(8, 395, 21.0)]
    run.direct_streams = [_level(16)]
    config = ConfigResult("logging_off_w1", logging=False, workers=1)
    config.sweep, config.streams = [_run(1, 48, 20.9), _run(8, 380, 23.0)], [_level(16)]
    config.rss_idle_kib, config.rss_peak_kib, config.rss_after_kib = 130_000, 150_000, 140_000
    config.leak.add(0, 140_000)
    config.leak.add(200_000, 140_100)
    run.configs = [config, ConfigResult("logging_on_w2", True, 2, not_applicable="no chdb")]
    text = render(run)
    for part in (
        "Throughput at p99 bounds",
        "Sustained streams",
        "Memory",
        "extrapolated to 1M",
        "logging on, --workers 2: not applicable: no chdb",
    ):
        assert part in text
    json.dumps(capacity.finite(run.to_json()), allow_nan=False)


def test_metric_total_sums_every_label_set_of_one_metric() -> None:
    text = (
        "# HELP gateway_requests_total Requests answered by the data plane.\n"
        "# TYPE gateway_requests_total counter\n"
        'gateway_requests_total{mode="plain",model="gpt-4o-mini",provider="openai",status="200"}'
        " 1200.0\n"
        'gateway_requests_total{mode="stream",model="other",provider="groq",status="200"} 34.0\n'
        "gateway_requests_totally_else 5.0\n"
        'gateway_requests_created{mode="plain"} 1.7e9\n'
    )
    assert metric_total(text, ANSWERED_METRIC) == 1234
    assert metric_total(text, "gateway_nothing_total") == 0


def test_log_count_verdicts_and_their_report_line() -> None:
    assert LogCount(10, 10, 10).logged_once
    assert LogCount(10, 10, 10).describe().endswith("(each logged once)")
    missing, doubled = LogCount(10, 8, 8), LogCount(10, 11, 10)
    assert not missing.logged_once and "2 answered requests not logged" in missing.describe()
    assert not doubled.logged_once and "1 duplicate rows" in doubled.describe()
    run = CapacityRun(delay_ms=20, chunks=64, interval_ms=20, leak_requests=100)
    config = ConfigResult("logging_on_w2", True, 2, log_count=missing)
    run.configs = [config]
    assert "logging on, --workers 2: request log: 10 requests answered, 8 rows" in render(run)
    assert run.to_json()["configs"]["logging_on_w2"]["request_log"] == {
        "answered": 10, "rows": 8, "request_ids": 8, "logged_once": False
    }  # fmt: skip


def test_stream_client_against_the_delayed_upstream(tmp_path: Path) -> None:
    upstream = DelayedUpstream(tmp_path, delay_ms=2, chunks=6, interval_ms=2)
    upstream.start()
    try:
        spec = RequestSpec(payloads.STREAM_UPSTREAM_PATH, payloads.request_body("m", stream=True))
        level = run_streams("direct", upstream.port, spec, 3, 0.2, delay_ms=2, spread_s=0.01)
        missing = RequestSpec("/nowhere", "{}")
        failed = run_streams("404", upstream.port, missing, 1, 0.05, delay_ms=2, spread_s=0)
    finally:
        upstream.stop()
    assert level.streams >= 3 and level.errors == 0 and level.complete == level.streams, level
    assert level.events_per_stream == {"min": 6.0, "max": 6.0}
    assert failed.errors >= 1 and failed.error_samples == ["status 404"]


def test_an_event_already_due_does_not_break_the_connection(tmp_path: Path) -> None:
    """With no delay the first event is due at once, and uvloop's ``call_at`` answers a plain
    ``Handle`` for it (no ``when()``). The upstream used to fail on the connection's next
    request then and close it: a loaded machine made the same with a 2 ms delay (a CI run)."""
    upstream = DelayedUpstream(tmp_path, delay_ms=0, chunks=3, interval_ms=1)
    upstream.start()
    try:
        spec = RequestSpec(payloads.STREAM_UPSTREAM_PATH, payloads.request_body("m", stream=True))
        level = run_streams("direct", upstream.port, spec, 1, 0.1, delay_ms=0, spread_s=0)
    finally:
        upstream.stop()
    assert level.streams >= 3, level
    assert (level.errors, level.error_samples) == (0, []), level
    assert level.complete == level.streams


def test_capacity_smoke_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The whole runner, tiny: the direct baseline and one gateway (logging off, one worker)."""
    out = tmp_path / "capacity.json"
    status = capacity.main(
        [
            "--connections",
            "1,2",
            "--duration",
            "1",
            "--warmup",
            "1",
            "--stream-levels",
            "2",
            "--stream-duration",
            "0.3",
            "--chunks",
            "4",
            "--interval-ms",
            "5",
            "--delay-ms",
            "5",
            "--leak-requests",
            "100",
            "--leak-connections",
            "2",
            "--configs",
            "off:1",
            "--json",
            str(out),
        ]
    )
    assert status == 0
    report = capsys.readouterr().out
    assert "logging off, --workers 1" in report
    data = json.loads(out.read_text())
    config = data["configs"]["logging_off_w1"]
    assert [r["connections"] for r in config["sweep"]] == [1, 2]
    assert all(r["error_total"] == 0 for r in config["sweep"]), config["sweep"]  # what failed
    assert config["streams"][0]["errors"] == 0 and config["streams"][0]["complete"] >= 2
    assert config["memory_kib"]["idle"] > 0 and config["memory_kib"]["peak"] > 0
    assert config["leak"]["measured_requests"] >= 100 and config["leak"]["extrapolated"]


def test_two_workers_with_embedded_logging_is_not_applicable(tmp_path: Path) -> None:
    """Nothing is started: the embedded engine cannot serve two workers (README)."""
    pytest.importorskip("chdb")
    args = capacity.parse_args([])
    upstream = DelayedUpstream(tmp_path)  # never started
    result = capacity.measure_config(None, upstream, tmp_path, True, 2, args)  # type: ignore[arg-type]
    assert result.not_applicable == capacity.NO_EMBEDDED_WORKERS
    assert not result.sweep and not result.streams


def test_two_workers_logging_into_the_clickhouse_stand_in(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--configs on:2 --clickhouse stand-in``, tiny: two workers, each with its log writer,
    write to the stand-in in its own process; every request the gateway answered (its
    ``/metrics``) is one row in ClickHouse, and nothing failed on the way."""
    pytest.importorskip("chdb")
    out = tmp_path / "capacity.json"
    status = capacity.main(
        ["--connections", "1,8", "--duration", "1", "--warmup", "1", "--stream-levels", "4",
         "--stream-duration", "0.3", "--chunks", "4", "--interval-ms", "5", "--delay-ms", "5",
         "--leak-requests", "400", "--leak-connections", "8", "--configs", "on:2",
         "--clickhouse", "stand-in", "--json", str(out)]
    )  # fmt: skip
    assert status == 0
    assert "each logged once" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["meta"]["clickhouse"] == "chdb behind HTTP" and data["meta"]["clickhouse_note"]
    config = data["configs"]["logging_on_w2"]
    assert config["not_applicable"] is None and config["log_settled"] is True
    assert config["problems"] == []
    assert all(r["error_total"] == 0 for r in config["sweep"])
    log = config["request_log"]
    assert log["logged_once"] and log["answered"] >= 400
