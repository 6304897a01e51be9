"""bench/ingest.py without running it: the log body it sends is the proxied chat's record, and
the verdict needs both the throughput bar and every accepted record written (no timing is
asserted)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from bench import ingest, payloads
from bench.load import LoadResult
from bench.requestlog import LogAccount, RequestTally
from gateway.ingest.logged import logged_capture
from gateway.ingest.manual import parse_manual_log
from logging_pipeline.estimate import TokenEstimator
from logging_pipeline.record import build_record
from logging_pipeline.schema import INSERT_COLUMNS
from providers.registry import Registry
from providers.spec import PROVIDERS


def test_the_log_body_is_the_proxied_chat_and_its_answer(tmp_path: Path) -> None:
    log = parse_manual_log(
        ingest.log_body().encode(), hint="openai", headers={}, organization_id="o",
        api_key_id="k", path=ingest.LOG_PATH, table=PROVIDERS, now=0.0,
    )  # fmt: skip
    record = build_record(logged_capture(log.call), Registry.load(), TokenEstimator(tmp_path))
    row = dict(zip(INSERT_COLUMNS, record.row, strict=True))
    answer = orjson.loads(payloads.chat_completion())
    assert row["model"] == answer["model"] and row["provider"] == "openai"
    assert row["prompt_tokens"] == answer["usage"]["prompt_tokens"]
    assert row["completion_tokens"] == answer["usage"]["completion_tokens"]
    assert row["latency"] == 350 and row["cost_known"]


def _run(rps: float, errors: int = 0) -> LoadResult:
    return LoadResult("x", 32, 2, 10.0, int(rps * 10), rps, {"p50": 1.0, "p99": 2.0},
                      errors={"status": errors} if errors else {}, server_cpu_s=1.0)  # fmt: skip


def _account(sent: int, written: int, lost: int = 0, settled: bool = True) -> LogAccount:
    tally = RequestTally(wrk_sent=sent - 2, wrk_answered=sent - 2, probes=2)
    counters = {"enqueued": sent, "written": written, "lost": lost, "failed": 0, "replayed": 0}
    return LogAccount(tally, counters, settled)


@pytest.mark.parametrize(
    ("ingest_rps", "errors", "written", "lost", "passed"),
    [
        (1200.0, 0, 100, 0, True),
        (700.0, 0, 100, 0, False),  # under the proxy path
        (1200.0, 3, 100, 0, False),  # failed requests
        (1200.0, 0, 99, 0, False),  # a record not written
        (1200.0, 0, 100, 1, False),  # a record lost
    ],
)
def test_the_verdict(
    ingest_rps: float, errors: int, written: int, lost: int, passed: bool
) -> None:
    account = _account(100, written, lost)
    pooled = {"proxy": _run(800.0), "ingest": _run(ingest_rps, errors)}
    text, verdict = ingest.report(pooled, account, account.tally, 32)
    assert verdict is passed
    assert ("[PASS]" if passed else "[FAIL]") in text
